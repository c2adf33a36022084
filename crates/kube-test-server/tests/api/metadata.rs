//! Object metadata: resourceVersion, uid, generation, no-op writes, ObjectMeta validation.

use serde_json::json;

use crate::{APPLY, MERGE, SAL, SHORT, Watch, patch, post, put, rv, sal, server};

#[tokio::test]
async fn global_resource_version_uid_and_creation_timestamp() {
    let s = server();
    let (_, a) = post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "a"}}),
    )
    .await;
    let (_, b) = post(&s, SAL, sal("b")).await;
    assert_eq!(rv(&b), rv(&a) + 1, "one counter across resources");
    assert_eq!(s.resource_version(), rv(&b));
    assert_ne!(a["metadata"]["uid"], b["metadata"]["uid"]);
    assert_eq!(a["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        a["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // generateName
    let (c, g) = post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"generateName": "gen-"}}),
    )
    .await;
    assert_eq!(c, 201);
    assert!(g["metadata"]["name"].as_str().unwrap().starts_with("gen-"));
}

#[tokio::test]
async fn generation_starts_at_1_and_is_bumped_only_by_spec_changes() {
    let s = server();
    let (_, o) = post(&s, SAL, sal("x")).await;
    assert_eq!(o["metadata"]["generation"], 1);
    // (what, path below the object, merge patch, generation afterwards), in order.
    let rows = [
        (
            "metadata change",
            "",
            json!({"metadata": {"labels": {"a": "b"}}}),
            1,
        ),
        (
            "status change",
            "/status",
            json!({"status": {"observedGeneration": 1}}),
            1,
        ),
        (
            "spec change",
            "",
            json!({"spec": {"managementPolicy": "Observe"}}),
            2,
        ),
    ];
    for (what, sub, body, want) in rows {
        let (_, o) = patch(&s, &format!("{SAL}/x{sub}"), MERGE, body).await;
        assert_eq!(o["metadata"]["generation"], want, "{what}");
    }
}

#[tokio::test]
async fn noop_writes_keep_resource_version_and_emit_no_event() {
    let s = server();
    let (_, o) = post(&s, SAL, sal("x")).await;
    let before = rv(&o);
    let (_, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={before}")).await;
    let (c, o2) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"spec": {"stage": "development"}}),
    )
    .await;
    assert_eq!((c, rv(&o2)), (200, before));
    let (_, o3) = put(&s, &format!("{SAL}/x"), o.clone()).await;
    assert_eq!(rv(&o3), before);
    let status = json!({"apiVersion": "alexa.operator.dev/v1alpha1", "kind": "SkillAccountLinking", "status": {"observedGeneration": 1}});
    let (_, a1) = patch(
        &s,
        &format!("{SAL}/x/status?fieldManager=ctl&force=true"),
        APPLY,
        status.clone(),
    )
    .await;
    let (_, a2) = patch(
        &s,
        &format!("{SAL}/x/status?fieldManager=ctl&force=true"),
        APPLY,
        status,
    )
    .await;
    assert_eq!(rv(&a1), rv(&a2), "repeated identical apply is a no-op");
    assert_eq!(s.resource_version(), rv(&a1));
    // Exactly one event: the first status apply.
    let e = w.next_non_bookmark(SHORT).await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert!(w.next_non_bookmark(SHORT).await.is_none());
}

#[tokio::test]
async fn metadata_is_validated_like_object_meta() {
    let s = server();
    let cm = "/api/v1/namespaces/default/configmaps";
    // (what, Some(merge patch of configmap "a") or None (create), body, code, field of the
    // first cause when the answer must name one), in order: row 3 creates "a".
    let rows = [
        (
            "a label key with a space",
            None,
            json!({"metadata": {"name": "a", "labels": {"bad key": "x"}}}),
            422,
            Some("metadata.labels"),
        ),
        (
            "a label value with a '!'",
            None,
            json!({"metadata": {"name": "a", "labels": {"ok": "not ok!"}}}),
            422,
            None,
        ),
        (
            "a prefixed key and a valid value",
            None,
            json!({"metadata": {"name": "a", "labels": {"example.com/ok": "fine.value_1"}}}),
            201,
            None,
        ),
        (
            "finalizers that are not a list",
            Some("a"),
            json!({"metadata": {"finalizers": "x"}}),
            400,
            None,
        ),
        (
            "an annotation that is not a string",
            Some("a"),
            json!({"metadata": {"annotations": {"a": 1}}}),
            400,
            None,
        ),
        (
            "a name that is not a DNS subdomain",
            None,
            json!({"metadata": {"name": "Upper_Case"}}),
            422,
            Some("metadata.name"),
        ),
    ];
    for (what, target, body, want, field) in rows {
        let (c, st) = match target {
            None => post(&s, cm, body).await,
            Some(name) => patch(&s, &format!("{cm}/{name}"), MERGE, body).await,
        };
        assert_eq!(c, want, "{what}: {st}");
        if let Some(field) = field {
            assert_eq!(
                st["details"]["causes"][0]["field"].as_str(),
                Some(field),
                "{what}"
            );
        }
    }
}
