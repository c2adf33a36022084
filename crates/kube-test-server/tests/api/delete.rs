//! Deletion: finalizers, preconditions, delete collection.

use serde_json::json;

use crate::{JSONPATCH, LONG, MERGE, SAL, SHORT, Watch, delete, get, patch, post, rv, sal, server};

#[tokio::test]
async fn delete_with_finalizers_marks_terminating_and_last_finalizer_removal_deletes() {
    let s = server();
    let mut o = sal("x");
    o["metadata"]["finalizers"] = json!(["a/f", "b/f"]);
    let (_, created) = post(&s, SAL, o).await;
    let (_, mut w) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&resourceVersion={}", rv(&created)),
    )
    .await;
    let (c, d) = delete(&s, &format!("{SAL}/x"), None).await;
    assert_eq!(c, 202);
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        d["metadata"]["generation"], 2,
        "graceful deletion bumps generation"
    );
    assert!(
        get(&s, &format!("{SAL}/x")).await.0 == 200,
        "kept while finalizers remain"
    );
    // Deleting again is idempotent.
    assert_eq!(delete(&s, &format!("{SAL}/x"), None).await.0, 202);
    patch(
        &s,
        &format!("{SAL}/x"),
        JSONPATCH,
        json!([{"op": "remove", "path": "/metadata/finalizers/0"}]),
    )
    .await;
    assert_eq!(get(&s, &format!("{SAL}/x")).await.0, 200);
    let (c, gone) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(c, 200);
    assert_eq!(get(&s, &format!("{SAL}/x")).await.0, 404);
    let mut types = Vec::new();
    for _ in 0..3 {
        let e = w.next_non_bookmark(LONG).await.unwrap();
        types.push(e["type"].as_str().unwrap().to_string());
        if e["type"] == "DELETED" {
            assert_eq!(rv(&e["object"]), rv(&gone));
        }
    }
    assert!(w.next_non_bookmark(SHORT).await.is_none());
    assert_eq!(types, ["MODIFIED", "MODIFIED", "DELETED"]);
    // Without finalizers, delete removes at once.
    post(&s, SAL, sal("y")).await;
    assert_eq!(delete(&s, &format!("{SAL}/y"), None).await.0, 200);
    assert_eq!(get(&s, &format!("{SAL}/y")).await.0, 404);
}

#[tokio::test]
async fn adding_a_finalizer_to_a_terminating_object_is_422() {
    let s = server();
    let mut o = sal("x");
    o["metadata"]["finalizers"] = json!(["a/f"]);
    post(&s, SAL, o).await;
    delete(&s, &format!("{SAL}/x"), None).await;
    let (c, st) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"metadata": {"finalizers": ["a/f", "b/f"]}}),
    )
    .await;
    assert_eq!((c, st["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(st["details"]["causes"][0]["field"], "metadata.finalizers");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("no new finalizers can be added if the object is being deleted")
    );
}

#[tokio::test]
async fn delete_preconditions_uid_and_resource_version() {
    let s = server();
    let (_, o) = post(&s, SAL, sal("x")).await;
    // (what, delete options, code, reason and message part when checked), in order.
    let rows = [
        (
            "a wrong uid",
            Some(json!({"preconditions": {"uid": "wrong"}})),
            409,
            Some((
                "Conflict",
                "Precondition failed: UID in precondition: wrong",
            )),
        ),
        (
            "a stale resourceVersion",
            Some(json!({"preconditions": {"resourceVersion": "999999"}})),
            409,
            None,
        ),
        (
            "the current uid and resourceVersion",
            Some(
                json!({"preconditions": {"uid": o["metadata"]["uid"], "resourceVersion": o["metadata"]["resourceVersion"]}}),
            ),
            200,
            None,
        ),
        ("no object any more", None, 404, None),
    ];
    for (what, options, want, status) in rows {
        let (c, st) = delete(&s, &format!("{SAL}/x"), options).await;
        assert_eq!(c, want, "{what}: {st}");
        if let Some((reason, message)) = status {
            assert_eq!(st["reason"], reason, "{what}");
            assert!(
                st["message"].as_str().unwrap().contains(message),
                "{what}: {st}"
            );
        }
    }
}

#[tokio::test]
async fn delete_collection_with_label_selector() {
    let s = server();
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
        post(
            &s,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": n, "labels": {"l": l}}}),
        )
        .await;
    }
    let (c, _) = delete(
        &s,
        "/api/v1/namespaces/default/configmaps?labelSelector=l%3Dx",
        None,
    )
    .await;
    assert_eq!(c, 200);
    let (_, l) = get(&s, "/api/v1/namespaces/default/configmaps").await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
}
