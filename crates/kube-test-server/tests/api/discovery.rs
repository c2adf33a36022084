//! Discovery documents.

use serde_json::json;

use crate::{get, server};

#[tokio::test]
async fn discovery_documents() {
    let s = server();
    let (_, v) = get(&s, "/version").await;
    assert_eq!(v["major"], "1");
    let (_, api) = get(&s, "/api").await;
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, apis) = get(&s, "/apis").await;
    let groups: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        groups.contains(&"alexa.operator.dev")
            && groups.contains(&"coordination.k8s.io")
            && groups.contains(&"events.k8s.io")
    );
    let (_, core) = get(&s, "/api/v1").await;
    let secrets = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "secrets")
        .unwrap()
        .clone();
    assert_eq!(secrets["namespaced"], true);
    assert_eq!(secrets["kind"], "Secret");
    let (_, g) = get(&s, "/apis/alexa.operator.dev/v1alpha1").await;
    let r = g["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "skillaccountlinkings")
        .unwrap()
        .clone();
    assert_eq!(r["shortNames"], json!(["sal"]));
    assert_eq!(r["categories"], json!(["alexa"]));
    assert!(r["verbs"].as_array().unwrap().contains(&json!("watch")));
    assert!(
        g["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "skillaccountlinkings/status")
    );
    let (c, grp) = get(&s, "/apis/alexa.operator.dev").await;
    assert_eq!(
        (c, grp["preferredVersion"]["version"].as_str()),
        (200, Some("v1alpha1"))
    );
    // kube's discovery client can use it.
    let disc = kube::discovery::Discovery::new(s.client())
        .run()
        .await
        .unwrap();
    assert!(disc.has_group("alexa.operator.dev"));
}
