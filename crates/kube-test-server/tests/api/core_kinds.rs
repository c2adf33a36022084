//! Core kinds: Secrets, ConfigMaps, Events and Leases, also through typed kube clients.

use serde_json::{Value, json};

use crate::{MERGE, get, patch, post, server};

#[tokio::test]
async fn secret_string_data_is_merged_into_base64_data() {
    let s = server();
    let (c, o) = post(&s, "/api/v1/namespaces/default/secrets", json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hello", "a": "y"}})).await;
    assert_eq!(c, 201);
    assert_eq!(o["data"], json!({"a": "eQ==", "b": "aGVsbG8="}));
    assert!(o.get("stringData").is_none());
    assert_eq!(o["type"], "Opaque");
    let (_, o) = patch(
        &s,
        "/api/v1/namespaces/default/secrets/s",
        MERGE,
        json!({"stringData": {"c": "z"}}),
    )
    .await;
    assert_eq!(o["data"]["c"], "eg==");
    assert_eq!(o["data"]["b"], "aGVsbG8=");
    let (c, _) = post(
        &s,
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "bad"}, "data": {"a": "!!!"}}),
    )
    .await;
    assert_eq!(c, 400);
}

#[tokio::test]
async fn configmaps_crud_with_typed_kube_client() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    let s = server();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("c".into());
    cm.data = Some([("a".to_string(), "1".to_string())].into());
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    assert!(created.metadata.uid.is_some());
    let patched = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap().len(), 2);
    assert_eq!(api.list(&Default::default()).await.unwrap().items.len(), 1);
    let deleted = api.delete("c", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right(), "built-in kinds answer a Success Status");
    let err = api.get("c").await.unwrap_err();
    match err {
        kube::Error::Api(st) => assert_eq!(st.code, 404),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn events_recorder_creates_then_merge_patches_events_k8s_io() {
    let s = server();
    crate::events::publish_linked(&s, 2).await;
    let reqs = s.requests();
    let ev_reqs: Vec<_> = reqs
        .iter()
        .filter(|r| {
            r.path
                .starts_with("/apis/events.k8s.io/v1/namespaces/default/events")
        })
        .collect();
    assert_eq!(
        ev_reqs.iter().map(|r| r.verb.as_str()).collect::<Vec<_>>(),
        ["create", "patch"]
    );
    assert!(ev_reqs.iter().all(|r| r.status < 300), "{ev_reqs:?}");
    let events: Vec<Value> = s
        .dump()
        .into_iter()
        .filter(|o| o["apiVersion"] == "events.k8s.io/v1")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["series"]["count"], 2);
    assert_eq!(events[0]["reason"], "Linked");
    assert_eq!(events[0]["regarding"]["name"], "x");
}

#[tokio::test]
async fn core_v1_events_and_leases() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, PostParams};
    let s = server();
    let (c, _) = post(
        &s,
        "/api/v1/namespaces/default/events",
        json!({"metadata": {"name": "e1"}, "involvedObject": {"name": "x"}, "reason": "R"}),
    )
    .await;
    assert_eq!(c, 201);
    let (_, l) = get(
        &s,
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dx",
    )
    .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let leases: Api<Lease> = Api::default_namespaced(s.client());
    let mut lease = Lease::default();
    lease.metadata.name = Some("leader".into());
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut upd = created.clone();
    upd.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
        holder_identity: Some("me".into()),
        ..Default::default()
    });
    let replaced = leases
        .replace("leader", &PostParams::default(), &upd)
        .await
        .unwrap();
    assert_eq!(
        replaced.spec.unwrap().holder_identity.as_deref(),
        Some("me")
    );
    // A second replace with the stale object conflicts (leader election relies on it).
    let err = leases
        .replace("leader", &PostParams::default(), &upd)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref st) if st.code == 409),
        "{err:?}"
    );
}
