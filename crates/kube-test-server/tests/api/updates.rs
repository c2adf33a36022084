//! PUT, merge, strategic-merge and JSON patches, and the status subresource.

use serde_json::json;

use crate::{JSONPATCH, MERGE, SAL, get, patch, post, put, sal, server};

#[tokio::test]
async fn put_requires_current_resource_version_for_custom_resources() {
    let s = server();
    let (_, o) = post(&s, SAL, sal("x")).await;
    let mut no_rv = o.clone();
    no_rv["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (c, st) = put(&s, &format!("{SAL}/x"), no_rv).await;
    assert_eq!((c, st["reason"].as_str()), (422, Some("Invalid")));
    let mut newer = o.clone();
    newer["spec"]["managementPolicy"] = json!("Observe");
    assert_eq!(put(&s, &format!("{SAL}/x"), newer.clone()).await.0, 200);
    let (c, st) = put(&s, &format!("{SAL}/x"), newer).await;
    assert_eq!((c, st["reason"].as_str()), (409, Some("Conflict")));
    assert_eq!(
        st["message"],
        "Operation cannot be fulfilled on skillaccountlinkings.alexa.operator.dev \"x\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // Core kinds allow unconditional updates.
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "c"}}),
    )
    .await;
    let (c, _) = put(
        &s,
        "/api/v1/namespaces/default/configmaps/c",
        json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
    )
    .await;
    assert_eq!(c, 200);
    // PUT to a missing object is 404.
    assert_eq!(put(&s, &format!("{SAL}/nope"), sal("nope")).await.0, 404);
}

#[tokio::test]
async fn merge_patch_rfc7386_and_strategic_merge_for_core_kinds() {
    let s = server();
    post(&s, "/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}})).await;
    let (c, o) = patch(
        &s,
        "/api/v1/namespaces/default/configmaps/c",
        MERGE,
        json!({"metadata": {"labels": {"a": null}}, "data": {"y": "3", "z": "4"}}),
    )
    .await;
    assert_eq!(c, 200);
    assert_eq!(o["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(o["data"], json!({"x": "1", "y": "3", "z": "4"}));
    let (c, o) = patch(
        &s,
        "/api/v1/namespaces/default/configmaps/c",
        "application/strategic-merge-patch+json",
        json!({"data": {"x": null}}),
    )
    .await;
    assert_eq!(c, 200);
    assert_eq!(o["data"], json!({"y": "3", "z": "4"}));
    // Strategic merge patch is not supported for custom resources (as in the apiserver).
    post(&s, SAL, sal("x")).await;
    assert_eq!(
        patch(
            &s,
            &format!("{SAL}/x"),
            "application/strategic-merge-patch+json",
            json!({})
        )
        .await
        .0,
        415
    );
    // A merge patch carrying a stale resourceVersion is a conflict.
    let (c, _) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"metadata": {"resourceVersion": "999999"}, "spec": {"stage": "live"}}),
    )
    .await;
    assert_eq!(c, 409);
}

#[tokio::test]
async fn json_patch_rfc6902_with_test_of_missing_path_against_null() {
    let s = server();
    post(&s, SAL, sal("x")).await;
    let ops = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["a.example/cleanup"]}
    ]);
    let (c, o) = patch(&s, &format!("{SAL}/x"), JSONPATCH, ops).await;
    assert_eq!(c, 200);
    assert_eq!(o["metadata"]["finalizers"], json!(["a.example/cleanup"]));
    // A failing test makes the whole patch fail atomically.
    let ops = json!([
        {"op": "remove", "path": "/metadata/finalizers/0"},
        {"op": "test", "path": "/metadata/finalizers/0", "value": "other"}
    ]);
    let (c, st) = patch(&s, &format!("{SAL}/x"), JSONPATCH, ops).await;
    assert_eq!((c, st["kind"].as_str()), (422, Some("Status")));
    assert_eq!(
        s.get_object(
            "alexa.operator.dev/v1alpha1",
            "skillaccountlinkings",
            Some("default"),
            "x"
        )
        .unwrap()["metadata"]["finalizers"][0],
        "a.example/cleanup"
    );
}

#[tokio::test]
async fn status_subresource_splits_spec_and_status() {
    let s = server();
    let mut with_status = sal("x");
    with_status["status"] = json!({"observedGeneration": 7});
    let (_, o) = post(&s, SAL, with_status).await;
    assert!(o.get("status").is_none(), "create drops status");
    // Main-resource writes ignore status.
    let (_, o) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"status": {"observedGeneration": 3}, "spec": {"stage": "development"}}),
    )
    .await;
    assert!(o.get("status").is_none());
    // /status writes change only status.
    let (c, o) = patch(&s, &format!("{SAL}/x/status"), MERGE, json!({"status": {"observedGeneration": 3}, "spec": {"managementPolicy": "Observe"}, "metadata": {"labels": {"x": "y"}}})).await;
    assert_eq!(c, 200);
    assert_eq!(o["status"]["observedGeneration"], 3);
    assert_eq!(o["spec"]["managementPolicy"], "Manage");
    assert!(o["metadata"].get("labels").is_none());
    // PUT /status too.
    let mut o2 = o.clone();
    o2["status"]["drift"] = json!(["spec.stage"]);
    o2["spec"]["stage"] = json!("live");
    let (c, o3) = put(&s, &format!("{SAL}/x/status"), o2).await;
    assert_eq!(c, 200);
    assert_eq!(o3["status"]["drift"], json!(["spec.stage"]));
    assert_eq!(o3["spec"]["stage"], "development");
    // GET /status returns the object.
    assert_eq!(get(&s, &format!("{SAL}/x/status")).await.0, 200);
}
