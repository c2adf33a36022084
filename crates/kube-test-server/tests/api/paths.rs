//! The URL layout: core and group paths, namespaced and cluster-wide lists.

use serde_json::json;

use crate::{get, post, sal, server};

#[tokio::test]
async fn paths_core_and_group_namespaced_and_cluster_wide_lists() {
    let s = server();
    for ns in ["a", "b"] {
        let (c, _) = post(
            &s,
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            json!({"metadata": {"name": "cm"}, "data": {"k": ns}}),
        )
        .await;
        assert_eq!(c, 201);
        let (c, _) = post(
            &s,
            &format!("/apis/alexa.operator.dev/v1alpha1/namespaces/{ns}/skillaccountlinkings"),
            sal("x"),
        )
        .await;
        assert_eq!(c, 201);
    }
    let (_, all) = get(&s, "/api/v1/configmaps").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (_, one) = get(&s, "/api/v1/namespaces/b/configmaps").await;
    assert_eq!(one["items"][0]["data"]["k"], "b");
    let (_, crs) = get(&s, "/apis/alexa.operator.dev/v1alpha1/skillaccountlinkings").await;
    assert_eq!(crs["items"].as_array().unwrap().len(), 2);
    let (c, obj) = get(
        &s,
        "/apis/alexa.operator.dev/v1alpha1/namespaces/a/skillaccountlinkings/x",
    )
    .await;
    assert_eq!(c, 200);
    assert_eq!(obj["metadata"]["namespace"], "a");
    // Cluster-scoped: namespaces.
    assert_eq!(
        post(
            &s,
            "/api/v1/namespaces",
            json!({"metadata": {"name": "default"}})
        )
        .await
        .0,
        201
    );
    let (_, nss) = get(&s, "/api/v1/namespaces").await;
    let names: Vec<&str> = nss["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"default"));
    let (c, ns) = get(&s, "/api/v1/namespaces/default").await;
    assert_eq!((c, ns["kind"].as_str()), (200, Some("Namespace")));
    // Unknown resource.
    let (c, st) = get(&s, "/apis/nope.example/v1/namespaces/a/things").await;
    assert_eq!((c, st["reason"].as_str()), (404, Some("NotFound")));
}
