//! One test per apiserver behaviour the test server reproduces (raw HTTP through the router,
//! plus kube clients where the behaviour matters to kube).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

use std::time::Duration;

use axum::body::Body;
use http::{Method, Request};
use http_body_util::BodyExt;
use kube_test_server::{Fault, TestServer};
use serde_json::{Value, json};
use tower::ServiceExt;

const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds");
const SAL: &str = "/apis/alexa.operator.dev/v1alpha1/namespaces/default/skillaccountlinkings";
const SEN: &str = "/apis/alexa.operator.dev/v1alpha1/namespaces/default/skillenablements";
const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const JSONPATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

fn server() -> TestServer {
    TestServer::new().with_crds_from_dir(CRDS).unwrap()
}

async fn call(
    s: &TestServer,
    method: Method,
    uri: &str,
    ct: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut b = Request::builder().method(method).uri(uri);
    if body.is_some() {
        b = b.header("content-type", ct);
    }
    let req = b
        .body(Body::from(body.map(|v| v.to_string()).unwrap_or_default()))
        .unwrap();
    let resp = s.router().oneshot(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (code, v)
}

/// What kubectl get sends.
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// GET with an Accept header: status, Content-Type, body.
async fn get_accept(s: &TestServer, uri: &str, accept: &str) -> (u16, String, Value) {
    let req = Request::builder()
        .uri(uri)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap();
    let resp = s.router().oneshot(req).await.unwrap();
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, ct, serde_json::from_slice(&bytes).unwrap())
}

async fn get(s: &TestServer, uri: &str) -> (u16, Value) {
    call(s, Method::GET, uri, JSON, None).await
}
async fn post(s: &TestServer, uri: &str, body: Value) -> (u16, Value) {
    call(s, Method::POST, uri, JSON, Some(body)).await
}
async fn put(s: &TestServer, uri: &str, body: Value) -> (u16, Value) {
    call(s, Method::PUT, uri, JSON, Some(body)).await
}
async fn patch(s: &TestServer, uri: &str, ct: &str, body: Value) -> (u16, Value) {
    call(s, Method::PATCH, uri, ct, Some(body)).await
}
async fn delete(s: &TestServer, uri: &str, body: Option<Value>) -> (u16, Value) {
    call(s, Method::DELETE, uri, JSON, body).await
}

fn sal(name: &str) -> Value {
    json!({
        "apiVersion": "alexa.operator.dev/v1alpha1",
        "kind": "SkillAccountLinking",
        "metadata": {"name": name},
        "spec": {
            "skillId": "amzn1.ask.skill.1",
            "stage": "development",
            "credentialsSecretRef": {"name": "creds"},
            "accountLinking": {"type": "IMPLICIT", "authorizationUrl": "https://a.example/auth", "clientId": "cid"}
        }
    })
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Reads newline-delimited watch events from a streaming body.
struct Watch {
    body: Body,
    buf: Vec<u8>,
}

impl Watch {
    async fn open(s: &TestServer, uri: &str) -> (u16, Watch) {
        Watch::open_accept(s, uri, JSON).await
    }
    async fn open_accept(s: &TestServer, uri: &str, accept: &str) -> (u16, Watch) {
        let req = Request::builder()
            .uri(uri)
            .header("accept", accept)
            .body(Body::empty())
            .unwrap();
        let resp = s.router().oneshot(req).await.unwrap();
        (
            resp.status().as_u16(),
            Watch {
                body: resp.into_body(),
                buf: Vec::new(),
            },
        )
    }
    /// Next event, or None on end of stream / timeout.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            match tokio::time::timeout(wait, self.body.frame()).await {
                Ok(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
                _ => return None,
            }
        }
    }
    async fn next_non_bookmark(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let e = self.next(wait).await?;
            if e["type"] != "BOOKMARK" {
                return Some(e);
            }
        }
    }
}

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- paths

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

// ---------------------------------------------------------------- Status bodies

#[tokio::test]
async fn status_404_not_found() {
    let s = server();
    let (c, st) = get(&s, &format!("{SAL}/missing")).await;
    assert_eq!(c, 404);
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["reason"], "NotFound");
    assert_eq!(st["code"], 404);
    assert_eq!(
        st["message"],
        "skillaccountlinkings.alexa.operator.dev \"missing\" not found"
    );
    assert_eq!(st["details"]["group"], "alexa.operator.dev");
}

#[tokio::test]
async fn status_409_already_exists() {
    let s = server();
    assert_eq!(post(&s, SAL, sal("x")).await.0, 201);
    let (c, st) = post(&s, SAL, sal("x")).await;
    assert_eq!(
        (c, st["reason"].as_str(), st["code"].as_u64()),
        (409, Some("AlreadyExists"), Some(409))
    );
    assert_eq!(
        st["message"],
        "skillaccountlinkings.alexa.operator.dev \"x\" already exists"
    );
}

#[tokio::test]
async fn status_415_for_protobuf() {
    let s = server();
    let (c, st) = call(
        &s,
        Method::POST,
        "/api/v1/namespaces/default/secrets",
        "application/vnd.kubernetes.protobuf",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (c, st["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (c, _) = call(
        &s,
        Method::PATCH,
        "/api/v1/namespaces/default/secrets/x",
        "application/vnd.kubernetes.protobuf",
        Some(json!({})),
    )
    .await;
    assert_eq!(c, 415);
}

#[tokio::test]
async fn status_410_expired_for_continue_token_after_compaction() {
    let s = server();
    for i in 0..3 {
        post(
            &s,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": format!("c{i}")}}),
        )
        .await;
    }
    let (_, page) = get(&s, "/api/v1/namespaces/default/configmaps?limit=1").await;
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    s.compact_history();
    let (c, st) = get(
        &s,
        &format!("/api/v1/namespaces/default/configmaps?limit=1&continue={token}"),
    )
    .await;
    assert_eq!(
        (c, st["reason"].as_str(), st["code"].as_u64()),
        (410, Some("Expired"), Some(410))
    );
}

#[tokio::test]
async fn malformed_requests_get_status_errors_not_panics() {
    let s = server();
    let (c, st) = call(
        &s,
        Method::POST,
        SAL,
        JSON,
        Some(Value::String("not an object".into())),
    )
    .await;
    assert_eq!((c, st["kind"].as_str()), (400, Some("Status")));
    let req = Request::builder()
        .method("POST")
        .uri(SAL)
        .header("content-type", JSON)
        .body(Body::from("{broken"))
        .unwrap();
    let resp = s.router().oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let (c, _) = patch(&s, &format!("{SAL}/x"), "text/plain", json!({})).await;
    assert_eq!(c, 415);
    post(&s, SAL, sal("x")).await;
    let (c, _) = patch(&s, &format!("{SAL}/x"), JSONPATCH, json!({"not": "a list"})).await;
    assert_eq!(c, 400);
    let (c, _) = get(&s, &format!("{SAL}?labelSelector=a%20in%20b")).await;
    assert_eq!(c, 400);
    let (c, _) = get(&s, &format!("{SAL}?watch=true&resourceVersion=abc")).await;
    assert_eq!(c, 400);
    let (c, _) = call(&s, Method::PUT, SAL, JSON, Some(json!({}))).await;
    assert_eq!(c, 405);
    let (c, _) = get(
        &s,
        "/apis/alexa.operator.dev/v1alpha1/namespaces/default/skillaccountlinkings/x/scale",
    )
    .await;
    assert_eq!(c, 404);
}

// ---------------------------------------------------------------- metadata

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
    let (_, o) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .await;
    assert_eq!(o["metadata"]["generation"], 1, "metadata change");
    let (_, o) = patch(
        &s,
        &format!("{SAL}/x/status"),
        MERGE,
        json!({"status": {"observedGeneration": 1}}),
    )
    .await;
    assert_eq!(o["metadata"]["generation"], 1, "status change");
    let (_, o) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"spec": {"managementPolicy": "Observe"}}),
    )
    .await;
    assert_eq!(o["metadata"]["generation"], 2, "spec change");
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
    let (c, st) = post(
        &s,
        cm,
        json!({"metadata": {"name": "a", "labels": {"bad key": "x"}}}),
    )
    .await;
    assert_eq!(
        (c, st["details"]["causes"][0]["field"].as_str()),
        (422, Some("metadata.labels"))
    );
    let (c, _) = post(
        &s,
        cm,
        json!({"metadata": {"name": "a", "labels": {"ok": "not ok!"}}}),
    )
    .await;
    assert_eq!(c, 422);
    let (c, _) = post(
        &s,
        cm,
        json!({"metadata": {"name": "a", "labels": {"example.com/ok": "fine.value_1"}}}),
    )
    .await;
    assert_eq!(c, 201);
    let (c, _) = patch(
        &s,
        &format!("{cm}/a"),
        MERGE,
        json!({"metadata": {"finalizers": "x"}}),
    )
    .await;
    assert_eq!(c, 400);
    let (c, _) = patch(
        &s,
        &format!("{cm}/a"),
        MERGE,
        json!({"metadata": {"annotations": {"a": 1}}}),
    )
    .await;
    assert_eq!(c, 400);
    let (c, st) = post(&s, cm, json!({"metadata": {"name": "Upper_Case"}})).await;
    assert_eq!(
        (c, st["details"]["causes"][0]["field"].as_str()),
        (422, Some("metadata.name"))
    );
}

// ---------------------------------------------------------------- PUT / PATCH

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
async fn server_side_apply_creates_on_missing_and_records_managed_fields() {
    let s = server();
    let (c, o) = patch(&s, &format!("{SAL}/x?fieldManager=alice"), APPLY, sal("x")).await;
    assert_eq!(c, 201, "{o}");
    let mf = o["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0]["manager"], "alice");
    assert_eq!(mf[0]["operation"], "Apply");
    assert!(mf[0]["fieldsV1"]["f:spec"]["f:skillId"].is_object());
    // Status apply by another manager: separate entry with subresource "status".
    let st = json!({"apiVersion": "alexa.operator.dev/v1alpha1", "kind": "SkillAccountLinking", "status": {"observedGeneration": 1, "drift": []}});
    let (c, o) = patch(&s, &format!("{SAL}/x/status?fieldManager=ctl"), APPLY, st).await;
    assert_eq!(c, 200);
    assert_eq!(o["status"]["observedGeneration"], 1);
    let e = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "ctl")
        .unwrap()
        .clone();
    assert_eq!(e["subresource"], "status");
    // Missing fieldManager is a 400.
    assert_eq!(patch(&s, &format!("{SAL}/x"), APPLY, sal("x")).await.0, 400);
    // Status apply cannot create.
    assert_eq!(
        patch(
            &s,
            &format!("{SAL}/nope/status?fieldManager=ctl"),
            APPLY,
            json!({"status": {}})
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn server_side_apply_conflicts_unless_forced() {
    let s = server();
    patch(&s, &format!("{SAL}/x?fieldManager=alice"), APPLY, sal("x")).await;
    let mut bob = sal("x");
    bob["spec"]["accountLinking"]["clientId"] = json!("bob-id");
    let (c, st) = patch(&s, &format!("{SAL}/x?fieldManager=bob"), APPLY, bob.clone()).await;
    assert_eq!((c, st["reason"].as_str()), (409, Some("Conflict")));
    assert_eq!(
        st["message"],
        "Apply failed with 1 conflict: conflict with \"alice\" using alexa.operator.dev/v1alpha1: .spec.accountLinking.clientId"
    );
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldManagerConflict");
    assert_eq!(
        st["details"]["causes"][0]["field"],
        ".spec.accountLinking.clientId"
    );
    // Same values: shared ownership, no conflict.
    assert_eq!(
        patch(&s, &format!("{SAL}/x?fieldManager=carol"), APPLY, sal("x"))
            .await
            .0,
        200
    );
    // Merge patches (Update) take fields over without conflicts.
    let (c, o) = patch(
        &s,
        &format!("{SAL}/x?force=true&fieldManager=bob"),
        APPLY,
        bob,
    )
    .await;
    assert_eq!(c, 200);
    assert_eq!(o["spec"]["accountLinking"]["clientId"], "bob-id");
    let alice = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "alice")
        .unwrap()
        .clone();
    assert!(
        alice["fieldsV1"]["f:spec"]["f:accountLinking"]
            .get("f:clientId")
            .is_none(),
        "forced field moved to bob"
    );
    // An Update by a third manager then conflicts with bob's apply.
    patch(
        &s,
        &format!("{SAL}/x?fieldManager=dave"),
        MERGE,
        json!({"spec": {"accountLinking": {"clientId": "dave-id"}}}),
    )
    .await;
    let mut bob2 = sal("x");
    bob2["spec"]["accountLinking"]["clientId"] = json!("bob-id");
    let (c, st) = patch(&s, &format!("{SAL}/x?fieldManager=bob"), APPLY, bob2).await;
    assert_eq!(c, 409, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("conflict with \"dave\"")
    );
}

#[tokio::test]
async fn server_side_apply_removes_fields_the_manager_stopped_applying() {
    let s = server();
    let mut cfg = sal("x");
    cfg["metadata"]["labels"] = json!({"team": "a", "tier": "web"});
    cfg["spec"]["accountLinking"]["scopes"] = json!(["profile"]);
    patch(
        &s,
        &format!("{SAL}/x?fieldManager=alice"),
        APPLY,
        cfg.clone(),
    )
    .await;
    patch(
        &s,
        &format!("{SAL}/x?fieldManager=other"),
        MERGE,
        json!({"metadata": {"labels": {"keep": "me"}}}),
    )
    .await;
    cfg["metadata"]["labels"] = json!({"team": "a"});
    cfg["spec"]["accountLinking"]
        .as_object_mut()
        .unwrap()
        .remove("scopes");
    let (c, o) = patch(&s, &format!("{SAL}/x?fieldManager=alice"), APPLY, cfg).await;
    assert_eq!(c, 200);
    assert_eq!(o["metadata"]["labels"], json!({"team": "a", "keep": "me"}));
    assert!(o["spec"]["accountLinking"].get("scopes").is_none());
}

// ---------------------------------------------------------------- status subresource

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

// ---------------------------------------------------------------- finalizers & delete

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
    let (c, st) = delete(
        &s,
        &format!("{SAL}/x"),
        Some(json!({"preconditions": {"uid": "wrong"}})),
    )
    .await;
    assert_eq!((c, st["reason"].as_str()), (409, Some("Conflict")));
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition: wrong")
    );
    let (c, _) = delete(
        &s,
        &format!("{SAL}/x"),
        Some(json!({"preconditions": {"resourceVersion": "999999"}})),
    )
    .await;
    assert_eq!(c, 409);
    let (c, _) = delete(&s, &format!("{SAL}/x"), Some(json!({"preconditions": {"uid": o["metadata"]["uid"], "resourceVersion": o["metadata"]["resourceVersion"]}}))).await;
    assert_eq!(c, 200);
    assert_eq!(delete(&s, &format!("{SAL}/x"), None).await.0, 404);
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

// ---------------------------------------------------------------- lists

#[tokio::test]
async fn list_has_kind_list_and_resource_version() {
    let s = server();
    post(&s, SAL, sal("x")).await;
    let (c, l) = get(&s, SAL).await;
    assert_eq!(c, 200);
    assert_eq!(l["kind"], "SkillAccountLinkingList");
    assert_eq!(l["apiVersion"], "alexa.operator.dev/v1alpha1");
    assert_eq!(
        l["metadata"]["resourceVersion"],
        s.resource_version().to_string()
    );
    assert_eq!(l["items"][0]["kind"], "SkillAccountLinking");
    let (_, l) = get(&s, "/api/v1/namespaces/default/secrets").await;
    assert_eq!(l["kind"], "SecretList");
}

#[tokio::test]
async fn list_label_selectors() {
    let s = server();
    for (n, labels) in [
        ("a", json!({"app": "x", "tier": "web"})),
        ("b", json!({"app": "y"})),
        ("c", json!({})),
    ] {
        post(
            &s,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": n, "labels": labels}}),
        )
        .await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    for (sel, want) in [
        ("app%3Dx", vec!["a"]),
        ("app!%3Dx", vec!["b", "c"]),
        ("app%20in%20(x,y)", vec!["a", "b"]),
        ("app%20notin%20(x)", vec!["b", "c"]),
        ("tier", vec!["a"]),
        ("!app", vec!["c"]),
    ] {
        let (_, l) = get(
            &s,
            &format!("/api/v1/namespaces/default/configmaps?labelSelector={sel}"),
        )
        .await;
        assert_eq!(names(&l), want, "{sel}");
    }
}

#[tokio::test]
async fn list_field_selectors() {
    let s = server();
    for ns in ["a", "b"] {
        for n in ["x", "y"] {
            post(
                &s,
                &format!("/api/v1/namespaces/{ns}/secrets"),
                json!({"metadata": {"name": n}}),
            )
            .await;
        }
    }
    let (_, l) = get(&s, "/api/v1/secrets?fieldSelector=metadata.name%3Dx").await;
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    let (_, l) = get(
        &s,
        "/api/v1/secrets?fieldSelector=metadata.namespace%3Db,metadata.name!%3Dx",
    )
    .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    assert_eq!(l["items"][0]["metadata"]["name"], "y");
    let (_, l) = get(
        &s,
        "/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Dy",
    )
    .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn list_limit_and_continue() {
    let s = server();
    for i in 0..5 {
        post(
            &s,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": format!("c{i}")}}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut first_rv = None;
    loop {
        let uri = match &token {
            Some(t) => format!("/api/v1/namespaces/default/configmaps?limit=2&continue={t}"),
            None => "/api/v1/namespaces/default/configmaps?limit=2".into(),
        };
        let (_, l) = get(&s, &uri).await;
        first_rv.get_or_insert(l["metadata"]["resourceVersion"].clone());
        assert_eq!(
            l["metadata"]["resourceVersion"],
            *first_rv.as_ref().unwrap()
        );
        for i in l["items"].as_array().unwrap() {
            seen.push(i["metadata"]["name"].as_str().unwrap().to_string());
        }
        match l["metadata"]["continue"].as_str() {
            Some(t) => {
                assert!(l["metadata"]["remainingItemCount"].as_u64().unwrap() > 0);
                token = Some(t.to_string());
            }
            None => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
}

// ---------------------------------------------------------------- watch

#[tokio::test]
async fn watch_events_are_ndjson_with_each_writes_resource_version() {
    let s = server();
    let start = s.resource_version();
    let (c, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={start}")).await;
    assert_eq!(c, 200);
    let (_, a) = post(&s, SAL, sal("x")).await;
    let (_, b) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"spec": {"managementPolicy": "Observe"}}),
    )
    .await;
    let (_, d) = delete(&s, &format!("{SAL}/x"), None).await;
    for (want_type, want) in [("ADDED", &a), ("MODIFIED", &b), ("DELETED", &d)] {
        let e = w.next_non_bookmark(LONG).await.unwrap();
        assert_eq!(e["type"], want_type);
        assert_eq!(rv(&e["object"]), rv(want));
        assert_eq!(e["object"]["kind"], "SkillAccountLinking");
    }
    assert!(rv(&d) > rv(&b) && rv(&b) > rv(&a));
}

#[tokio::test]
async fn watch_namespaced_and_cluster_wide() {
    let s = server();
    let start = s.resource_version();
    let (_, mut ns_w) = Watch::open(
        &s,
        &format!("/api/v1/namespaces/b/configmaps?watch=1&resourceVersion={start}"),
    )
    .await;
    let (_, mut all_w) = Watch::open(
        &s,
        &format!("/api/v1/configmaps?watch=1&resourceVersion={start}"),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/a/configmaps",
        json!({"metadata": {"name": "x"}}),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/b/configmaps",
        json!({"metadata": {"name": "y"}}),
    )
    .await;
    assert_eq!(
        ns_w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"],
        "y"
    );
    assert_eq!(
        all_w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"],
        "x"
    );
    assert_eq!(
        all_w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"],
        "y"
    );
}

#[tokio::test]
async fn watch_with_selectors_sends_added_and_deleted_on_transitions() {
    let s = server();
    let cm = "/api/v1/namespaces/default/configmaps";
    let (_, mut w) = Watch::open(
        &s,
        &format!(
            "{cm}?watch=true&labelSelector=app%3Dx&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    post(
        &s,
        cm,
        json!({"metadata": {"name": "a", "labels": {"app": "y"}}}),
    )
    .await;
    let (_, m) = patch(
        &s,
        &format!("{cm}/a"),
        MERGE,
        json!({"metadata": {"labels": {"app": "x"}}}),
    )
    .await;
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), rv(&e["object"])),
        (Some("ADDED"), rv(&m))
    );
    patch(&s, &format!("{cm}/a"), MERGE, json!({"data": {"k": "v"}})).await;
    assert_eq!(w.next_non_bookmark(LONG).await.unwrap()["type"], "MODIFIED");
    let (_, gone) = patch(
        &s,
        &format!("{cm}/a"),
        MERGE,
        json!({"metadata": {"labels": {"app": "z"}}}),
    )
    .await;
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(
        e["object"]["metadata"]["labels"]["app"], "x",
        "previous state"
    );
    assert_eq!(
        rv(&e["object"]),
        rv(&gone),
        "with the write's resourceVersion"
    );
    patch(&s, &format!("{cm}/a"), MERGE, json!({"data": {"k": "w"}})).await;
    assert!(w.next_non_bookmark(SHORT).await.is_none());
}

#[tokio::test]
async fn watch_replays_from_a_resource_version() {
    let s = server();
    let (_, a) = post(&s, SAL, sal("a")).await;
    post(&s, SAL, sal("b")).await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "other"}}),
    )
    .await;
    post(&s, SAL, sal("c")).await;
    let (_, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={}", rv(&a))).await;
    let names: Vec<String> = vec![
        w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"]
            .as_str()
            .unwrap()
            .into(),
        w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"]
            .as_str()
            .unwrap()
            .into(),
    ];
    assert_eq!(names, ["b", "c"]);
    assert!(w.next_non_bookmark(SHORT).await.is_none());
    // Without a resourceVersion: synthetic ADDED for the current state.
    let (_, mut w) = Watch::open(&s, &format!("{SAL}?watch=true")).await;
    for _ in 0..3 {
        assert_eq!(w.next_non_bookmark(LONG).await.unwrap()["type"], "ADDED");
    }
}

#[tokio::test]
async fn watch_bookmarks_when_allowed() {
    let s = server().with_bookmark_interval(Duration::from_millis(50));
    post(&s, SAL, sal("a")).await;
    let now = s.resource_version();
    let (_, mut w) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&allowWatchBookmarks=true&resourceVersion={now}"),
    )
    .await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(e["object"]["kind"], "SkillAccountLinking");
    assert_eq!(rv(&e["object"]), now);
    let (_, mut nb) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={now}")).await;
    assert!(
        nb.next(Duration::from_millis(200)).await.is_none(),
        "no bookmarks unless asked"
    );
}

#[tokio::test]
async fn watch_send_initial_events_ends_with_annotated_bookmark() {
    let s = server();
    post(&s, SAL, sal("a")).await;
    post(&s, SAL, sal("b")).await;
    let now = s.resource_version();
    let (c, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=")).await;
    assert_eq!(c, 200);
    assert_eq!(w.next(LONG).await.unwrap()["type"], "ADDED");
    assert_eq!(w.next(LONG).await.unwrap()["type"], "ADDED");
    let b = w.next(LONG).await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(
        b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(rv(&b["object"]), now);
    post(&s, SAL, sal("c")).await;
    assert_eq!(
        w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"],
        "c"
    );
    // Without resourceVersionMatch=NotOlderThan it is refused.
    let (c, _) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"),
    )
    .await;
    assert_eq!(c, 422);
}

#[tokio::test]
async fn watch_timeout_seconds_ends_the_stream() {
    let s = server();
    let (_, mut w) = Watch::open(
        &s,
        &format!(
            "{SAL}?watch=true&timeoutSeconds=1&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    let t = std::time::Instant::now();
    assert!(w.next(Duration::from_secs(20)).await.is_none());
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(900) && el < Duration::from_secs(15),
        "{el:?}"
    );
}

#[tokio::test]
async fn watch_from_compacted_resource_version_is_in_stream_410() {
    let s = server();
    let (_, a) = post(&s, SAL, sal("a")).await;
    post(&s, SAL, sal("b")).await;
    s.compact_history();
    let (c, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={}", rv(&a))).await;
    assert_eq!(c, 200, "HTTP 200, error in-stream");
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(w.next(SHORT).await.is_none());
    // A fresh list after compaction returns a resourceVersion that can be watched (no relist loop).
    let (_, l) = get(&s, SAL).await;
    let list_rv = l["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={list_rv}")).await;
    assert!(
        w.next(SHORT).await.is_none(),
        "no 410 for the post-compaction list resourceVersion"
    );
    post(&s, SAL, sal("after")).await;
    assert_eq!(w.next(LONG).await.unwrap()["type"], "ADDED");
    // History bounded by count too.
    let s = TestServer::with_history_limit(2)
        .with_crds_from_dir(CRDS)
        .unwrap();
    let (_, first) = post(&s, SAL, sal("a")).await;
    for n in ["b", "c", "d"] {
        post(&s, SAL, sal(n)).await;
    }
    let (_, mut w) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&resourceVersion={}", rv(&first)),
    )
    .await;
    assert_eq!(w.next(LONG).await.unwrap()["object"]["code"], 410);
}

#[tokio::test]
async fn close_watches_ends_every_stream() {
    let s = server();
    let (_, mut w1) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&resourceVersion={}", s.resource_version()),
    )
    .await;
    let (_, mut w2) = Watch::open(
        &s,
        &format!(
            "/api/v1/secrets?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    s.close_watches();
    assert!(w1.next(LONG).await.is_none());
    assert!(w2.next(LONG).await.is_none());
}

// ---------------------------------------------------------------- core kinds

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
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let s = server();
    let recorder = Recorder::new(
        s.client(),
        Reporter {
            controller: "test-ctl".into(),
            instance: None,
        },
    );
    let reference = ObjectReference {
        api_version: Some("alexa.operator.dev/v1alpha1".into()),
        kind: Some("SkillAccountLinking".into()),
        name: Some("x".into()),
        namespace: Some("default".into()),
        uid: Some("u1".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Linked".into(),
        note: Some("done".into()),
        action: "Link".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
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

// ---------------------------------------------------------------- CRD enforcement

#[tokio::test]
async fn crd_prunes_unknown_fields() {
    let s = server();
    let mut o = sal("x");
    o["spec"]["unknown"] = json!(1);
    o["spec"]["accountLinking"]["bogus"] = json!("x");
    o["extra"] = json!(true);
    let (c, o) = post(&s, SAL, o).await;
    assert_eq!(c, 201);
    assert!(o["spec"].get("unknown").is_none());
    assert!(o["spec"]["accountLinking"].get("bogus").is_none());
    assert!(o.get("extra").is_none());
}

#[tokio::test]
async fn crd_applies_defaults() {
    let s = server();
    let (_, o) = post(&s, SAL, sal("x")).await;
    assert_eq!(o["spec"]["deletionPolicy"], "Delete");
    assert_eq!(o["spec"]["managementPolicy"], "Manage");
}

#[tokio::test]
async fn crd_schema_validation_is_422_with_causes() {
    let s = server();
    let mut o = sal("x");
    o["spec"]["stage"] = json!("prod");
    o["spec"]["skillId"] = json!("");
    o["spec"]["accountLinking"]["scopes"] = json!(vec!["a"; 16]);
    o["spec"]["accountLinking"]["clientId"] = json!(5);
    o["spec"]["credentialsSecretRef"] = json!({});
    let (c, st) = post(&s, SAL, o).await;
    assert_eq!(
        (c, st["reason"].as_str(), st["code"].as_u64()),
        (422, Some("Invalid"), Some(422))
    );
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.starts_with("SkillAccountLinking.alexa.operator.dev \"x\" is invalid: ["),
        "{msg}"
    );
    let causes: Vec<(String, String)> = st["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("spec.stage", "FieldValueNotSupported"),
        ("spec.skillId", "FieldValueInvalid"),
        ("spec.accountLinking.scopes", "FieldValueTooMany"),
        ("spec.accountLinking.clientId", "FieldValueTypeInvalid"),
        ("spec.credentialsSecretRef.name", "FieldValueRequired"),
    ] {
        assert!(
            causes.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {causes:?}"
        );
    }
    assert!(
        msg.contains(
            "spec.stage: Unsupported value: \"prod\": supported values: \"development\", \"live\""
        ),
        "{msg}"
    );
    assert!(
        msg.contains("spec.credentialsSecretRef.name: Required value"),
        "{msg}"
    );
    // Missing required spec entirely.
    let (c, st) = post(&s, SAL, json!({"metadata": {"name": "y"}})).await;
    assert_eq!(c, 422);
    assert_eq!(
        st["message"],
        "SkillAccountLinking.alexa.operator.dev \"y\" is invalid: spec: Required value"
    );
    // Nullable fields accept null.
    let mut n = sal("z");
    n["spec"]["accountLinking"]["skipOnEnablement"] = Value::Null;
    assert_eq!(post(&s, SAL, n).await.0, 201);
    // maxLength and minimum.
    let mut m = sal("w");
    m["spec"]["skillId"] = json!("a".repeat(256));
    m["spec"]["accountLinking"]["defaultTokenExpirationInSeconds"] = json!(0);
    let (_, st) = post(&s, SAL, m).await;
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.skillId: Too long: may not be more than 255 bytes"),
        "{msg}"
    );
    assert!(msg.contains("spec.accountLinking.defaultTokenExpirationInSeconds: Invalid value: 0: spec.accountLinking.defaultTokenExpirationInSeconds in body should be greater than or equal to 1"), "{msg}");
}

#[tokio::test]
async fn crd_schema_pattern_min_items_maximum_nullable_from_inline_crd() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.dev"},
        "spec": {"group": "test.dev", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "code": {"type": "string", "pattern": "^[a-z]+$"},
                        "tags": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        "size": {"type": "integer", "maximum": 10},
                        "note": {"type": "string"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}
                    }}
                }}}}]}
    });
    let s = TestServer::new().with_crd(crd).unwrap();
    let path = "/apis/test.dev/v1/namespaces/default/widgets";
    let (c, st) = post(&s, path, json!({"metadata": {"name": "w"}, "spec": {"code": "ABC", "tags": [], "size": 11, "note": null}})).await;
    assert_eq!(c, 422);
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "spec.code: Invalid value: \"ABC\": spec.code in body should match '^[a-z]+$'"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(
            "spec.note: Invalid value: \"null\": spec.note in body must be of type string: \"null\""
        ),
        "{msg}"
    );
    let (c, o) = post(
        &s,
        path,
        json!({"metadata": {"name": "w"}, "spec": {"code": "abc", "free": {"any": {"thing": 1}}}}),
    )
    .await;
    assert_eq!(c, 201);
    assert_eq!(
        o["spec"]["free"]["any"]["thing"], 1,
        "preserve-unknown-fields keeps data"
    );
    // list-type map: apply merges by key and detects duplicates.
    let (c, _) = patch(&s, &format!("{path}/w?fieldManager=a"), APPLY, json!({"apiVersion": "test.dev/v1", "kind": "Widget", "spec": {"ports": [{"name": "http", "port": 80}]}})).await;
    assert_eq!(c, 200);
    let (c, o) = patch(&s, &format!("{path}/w?fieldManager=b"), APPLY, json!({"apiVersion": "test.dev/v1", "kind": "Widget", "spec": {"ports": [{"name": "grpc", "port": 90}]}})).await;
    assert_eq!(c, 200);
    assert_eq!(o["spec"]["ports"].as_array().unwrap().len(), 2, "{o}");
    let (c, _) = patch(
        &s,
        &format!("{path}/w"),
        MERGE,
        json!({"spec": {"ports": [{"name": "a"}, {"name": "a"}]}}),
    )
    .await;
    assert_eq!(c, 422);
}

#[tokio::test]
async fn crd_cel_rules_and_transition_rules() {
    let s = server();
    // Plain rule: AUTH_CODE requires more fields.
    let mut o = sal("x");
    o["spec"]["accountLinking"]["type"] = json!("AUTH_CODE");
    let (c, st) = post(&s, SAL, o).await;
    assert_eq!(c, 422);
    assert_eq!(st["details"]["causes"][0]["field"], "spec.accountLinking");
    assert!(st["message"].as_str().unwrap().contains("spec.accountLinking: Invalid value: \"object\": type AUTH_CODE requires accessTokenUrl, accessTokenScheme and clientSecretRef"), "{st}");
    // Transition rule: skillId is immutable.
    post(&s, SAL, sal("x")).await;
    let (c, st) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"spec": {"skillId": "amzn1.ask.skill.2"}}),
    )
    .await;
    assert_eq!(c, 422);
    assert_eq!(
        st["message"],
        "SkillAccountLinking.alexa.operator.dev \"x\" is invalid: spec.skillId: Invalid value: \"string\": skillId is immutable; create a new object instead"
    );
    assert_eq!(st["details"]["causes"][0]["field"], "spec.skillId");
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
    // SkillEnablement: exactly one mode.
    let en = json!({"metadata": {"name": "e"}, "spec": {"skillId": "s", "stage": "live"}});
    let (c, st) = post(&s, SEN, en).await;
    assert_eq!(c, 422);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("set exactly one of credentialsSecretRef"),
        "{st}"
    );
}

// ---------------------------------------------------------------- Table output (kubectl get)

fn cells(row: &Value) -> Vec<Value> {
    row["cells"].as_array().unwrap().clone()
}

fn column_names(t: &Value) -> Vec<String> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// An age such as `0s` or `3s` (the objects were just created).
fn is_fresh_age(v: &Value) -> bool {
    v.as_str()
        .and_then(|s| s.strip_suffix('s'))
        .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n < 60))
}

async fn ready_false(s: &TestServer, name: &str, reason: &str) {
    let (c, o) = patch(
        s,
        &format!("{SAL}/{name}/status"),
        MERGE,
        json!({"status": {"conditions": [
            {"type": "Synced", "status": "True", "reason": "Other", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": reason, "message": "m", "lastTransitionTime": "2025-01-01T00:00:00Z"}
        ]}}),
    )
    .await;
    assert_eq!(c, 200, "{o}");
}

#[tokio::test]
async fn table_for_custom_resource_list_has_printer_columns() {
    let s = server();
    post(&s, SAL, sal("a")).await;
    post(&s, SAL, sal("b")).await;
    ready_false(&s, "a", "SecretNotFound").await;
    let (c, ct, t) = get_accept(&s, SAL, TABLE_ACCEPT).await;
    assert_eq!(c, 200, "{t}");
    assert_eq!(ct, "application/json;as=Table;v=v1;g=meta.k8s.io");
    assert_eq!(
        (&t["kind"], &t["apiVersion"]),
        (&json!("Table"), &json!("meta.k8s.io/v1"))
    );
    assert_eq!(
        t["metadata"]["resourceVersion"],
        s.resource_version().to_string()
    );
    assert_eq!(
        column_names(&t),
        ["Name", "Skill", "Stage", "Ready", "Reason", "Age"]
    );
    let defs = t["columnDefinitions"].as_array().unwrap();
    assert_eq!(defs[0]["format"], "name");
    assert_eq!(defs[5]["type"], "date");
    assert!(
        defs.iter()
            .all(|d| d["priority"] == 0 && d["description"].is_string())
    );
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let a = cells(&rows[0]);
    assert_eq!(
        a[..5],
        [
            json!("a"),
            json!("amzn1.ask.skill.1"),
            json!("development"),
            json!("False"),
            json!("SecretNotFound")
        ]
    );
    assert!(is_fresh_age(&a[5]), "{a:?}");
    // No status yet: the filter columns select nothing (kubectl prints them empty).
    let b = cells(&rows[1]);
    assert_eq!(
        b[..5],
        [
            json!("b"),
            json!("amzn1.ask.skill.1"),
            json!("development"),
            Value::Null,
            Value::Null
        ]
    );
    // Rows carry PartialObjectMetadata by default (kubectl reads namespace and labels from it).
    let obj = &rows[0]["object"];
    assert_eq!(obj["kind"], "PartialObjectMetadata");
    assert_eq!(obj["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(obj["metadata"]["name"], "a");
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert!(obj.get("spec").is_none());

    // includeObject=Object / None.
    let (_, _, t) = get_accept(&s, &format!("{SAL}?includeObject=Object"), TABLE_ACCEPT).await;
    assert_eq!(t["rows"][0]["object"]["kind"], "SkillAccountLinking");
    assert_eq!(t["rows"][0]["object"]["spec"]["stage"], "development");
    let (_, _, t) = get_accept(&s, &format!("{SAL}?includeObject=None"), TABLE_ACCEPT).await;
    assert_eq!(t["rows"][0]["object"], Value::Null);
    let (c, _, st) = get_accept(&s, &format!("{SAL}?includeObject=All"), TABLE_ACCEPT).await;
    assert_eq!((c, &st["reason"]), (400, &json!("BadRequest")));
    // v1beta1 when that is what the client asks for first.
    let (_, ct, t) = get_accept(
        &s,
        SAL,
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json",
    )
    .await;
    assert_eq!(ct, "application/json;as=Table;v=v1beta1;g=meta.k8s.io");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(t["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1beta1");
    // Selectors, limit and continue work as for lists; the ListMeta is kept.
    let (_, _, t) = get_accept(&s, &format!("{SAL}?limit=1"), TABLE_ACCEPT).await;
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    let cont = t["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, _, t) = get_accept(&s, &format!("{SAL}?limit=1&continue={cont}"), TABLE_ACCEPT).await;
    assert_eq!(t["rows"][0]["cells"][0], "b");
    let (_, _, t) = get_accept(
        &s,
        &format!("{SAL}?fieldSelector=metadata.name%3Db"),
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    // Cluster-wide lists too.
    let (_, _, t) = get_accept(
        &s,
        "/apis/alexa.operator.dev/v1alpha1/skillaccountlinkings",
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn without_a_table_accept_header_nothing_changes() {
    let s = server();
    post(&s, SAL, sal("a")).await;
    for accept in [
        JSON,
        "*/*",
        "application/json;as=PartialObjectMetadataList;v=v2;g=meta.k8s.io,application/json",
    ] {
        let (c, ct, l) = get_accept(&s, SAL, accept).await;
        assert_eq!((c, ct.as_str()), (200, JSON), "{accept}");
        assert_eq!(l["kind"], "SkillAccountLinkingList", "{accept}");
        assert_eq!(l, get(&s, SAL).await.1);
        let (_, _, o) = get_accept(&s, &format!("{SAL}/a"), accept).await;
        assert_eq!(o["kind"], "SkillAccountLinking");
    }
    // Errors stay Status bodies.
    let (c, _, st) = get_accept(&s, &format!("{SAL}/nope"), TABLE_ACCEPT).await;
    assert_eq!((c, &st["kind"]), (404, &json!("Status")));
}

#[tokio::test]
async fn table_for_one_custom_resource() {
    let s = server();
    let (_, o) = post(&s, SAL, sal("a")).await;
    ready_false(&s, "a", "Stalled").await;
    let (c, ct, t) = get_accept(&s, &format!("{SAL}/a"), TABLE_ACCEPT).await;
    assert_eq!(c, 200);
    assert_eq!(ct, "application/json;as=Table;v=v1;g=meta.k8s.io");
    assert_eq!(t["kind"], "Table");
    assert_eq!(column_names(&t).len(), 6);
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["cells"][3], "False");
    assert_eq!(rows[0]["cells"][4], "Stalled");
    assert_eq!(rows[0]["object"]["metadata"]["uid"], o["metadata"]["uid"]);
    assert_eq!(
        t["metadata"]["resourceVersion"],
        rows[0]["object"]["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn table_cells_follow_the_printer_column_types() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.t.dev"},
        "spec": {"group": "t.dev", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                 "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
                    {"name": "On", "type": "boolean", "jsonPath": ".spec.on"},
                    {"name": "When", "type": "date", "jsonPath": ".spec.when", "description": "d"},
                    {"name": "Bad", "type": "date", "jsonPath": ".spec.bad"},
                    {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1},
                    {"name": "Count", "type": "string", "jsonPath": ".spec.size"},
                    {"name": "Second", "type": "string", "jsonPath": ".spec.tags[1]"},
                    {"name": "Wrong", "type": "integer", "jsonPath": ".spec.on"}
                 ]},
                {"name": "v2", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
            ]}
    });
    let s = TestServer::new().with_crd(crd).unwrap();
    let when = (chrono::Utc::now() - chrono::Duration::hours(50))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (c, o) = post(
        &s,
        "/apis/t.dev/v1/namespaces/default/widgets",
        json!({"apiVersion": "t.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"size": 3, "ratio": 1.5, "on": true, "when": when, "bad": "yesterday", "tags": ["x", "y"]}}),
    )
    .await;
    assert_eq!(c, 201, "{o}");
    let (_, _, t) = get_accept(
        &s,
        "/apis/t.dev/v1/namespaces/default/widgets",
        TABLE_ACCEPT,
    )
    .await;
    let defs = t["columnDefinitions"].as_array().unwrap();
    assert_eq!(defs[4]["description"], "d");
    assert_eq!(
        defs[1]["description"],
        "Custom resource definition column (in JSONPath format): .spec.size"
    );
    assert_eq!(defs[6]["priority"], 1);
    assert_eq!(
        cells(&t["rows"][0]),
        [
            json!("w"),
            json!(3),
            json!(1.5),
            json!(true),
            json!("2d2h"),
            json!("<invalid>"),
            json!(r#"["x","y"]"#),
            json!("3"),
            json!("y"),
            Value::Null
        ]
    );
    // A version without printer columns gets NAME and AGE.
    let (_, _, t) = get_accept(
        &s,
        "/apis/t.dev/v2/namespaces/default/widgets",
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(column_names(&t), ["Name", "Age"]);
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert!(is_fresh_age(&t["rows"][0]["cells"][1]), "{t}");
}

#[tokio::test]
async fn table_watch_sends_one_row_tables_with_column_definitions_first() {
    let s = server();
    post(&s, SAL, sal("a")).await;
    let (c, mut w) = Watch::open_accept(&s, &format!("{SAL}?watch=true"), TABLE_ACCEPT).await;
    assert_eq!(c, 200);
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"]["kind"], "Table");
    assert_eq!(column_names(&e["object"]).len(), 6);
    assert_eq!(e["object"]["rows"].as_array().unwrap().len(), 1);
    assert_eq!(e["object"]["rows"][0]["cells"][0], "a");
    assert_eq!(e["object"]["rows"][0]["cells"][3], Value::Null);
    ready_false(&s, "a", "SecretNotFound").await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["kind"], "Table");
    assert_eq!(
        e["object"]["columnDefinitions"],
        Value::Null,
        "headers only once"
    );
    let row = &e["object"]["rows"][0];
    assert_eq!(row["cells"][3], "False");
    assert_eq!(row["cells"][4], "SecretNotFound");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(
        e["object"]["metadata"]["resourceVersion"],
        row["object"]["metadata"]["resourceVersion"]
    );
    delete(&s, &format!("{SAL}/a"), None).await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(e["object"]["rows"][0]["cells"][0], "a");

    // From a resourceVersion, with a selector and includeObject=Object (kubectl get X NAME -w).
    let (_, b) = post(&s, SAL, sal("b")).await;
    let (_, mut w) = Watch::open_accept(
        &s,
        &format!(
            "{SAL}?watch=true&resourceVersion={}&fieldSelector=metadata.name%3Db&includeObject=Object",
            rv(&b)
        ),
        TABLE_ACCEPT,
    )
    .await;
    post(&s, SAL, sal("c")).await;
    ready_false(&s, "b", "Oops").await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(column_names(&e["object"]).len(), 6);
    assert_eq!(e["object"]["rows"][0]["cells"][4], "Oops");
    assert_eq!(
        e["object"]["rows"][0]["object"]["kind"],
        "SkillAccountLinking"
    );
    // Bookmarks are Tables too (the apiserver transforms every event but errors).
    let (_, mut w) = Watch::open_accept(
        &s,
        &format!("{SAL}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
        TABLE_ACCEPT,
    )
    .await;
    let mut types = Vec::new();
    loop {
        let e = w.next(LONG).await.unwrap();
        assert_eq!(e["object"]["kind"], "Table", "{e}");
        types.push(e["type"].as_str().unwrap().to_string());
        if e["type"] == "BOOKMARK" {
            let meta = &e["object"]["rows"][0]["object"]["metadata"];
            assert_eq!(meta["annotations"]["k8s.io/initial-events-end"], "true");
            break;
        }
    }
    assert_eq!(types, ["ADDED", "ADDED", "BOOKMARK"]);
    // Without the Accept header the same watch streams objects as before.
    let (_, mut w) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&fieldSelector=metadata.name%3Db"),
    )
    .await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["object"]["kind"], "SkillAccountLinking");
}

#[tokio::test]
async fn table_for_builtin_kinds() {
    let s = server().with_namespaces(&["default"]);
    post(
        &s,
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "creds"}, "stringData": {"a": "1", "b": "2"}}),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "cm"}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}}),
    )
    .await;
    let (_, _, t) = get_accept(&s, "/api/v1/namespaces/default/secrets", TABLE_ACCEPT).await;
    assert_eq!(column_names(&t), ["Name", "Type", "Data", "Age"]);
    let c = cells(&t["rows"][0]);
    assert_eq!(c[..3], [json!("creds"), json!("Opaque"), json!(2)]);
    assert!(is_fresh_age(&c[3]), "{c:?}");
    let (_, _, t) = get_accept(&s, "/api/v1/namespaces/default/configmaps/cm", TABLE_ACCEPT).await;
    assert_eq!(column_names(&t), ["Name", "Data", "Age"]);
    assert_eq!(t["rows"][0]["cells"][1], 2);
    let (_, _, t) = get_accept(&s, "/api/v1/namespaces", TABLE_ACCEPT).await;
    assert_eq!(column_names(&t), ["Name", "Status", "Age"]);
    assert_eq!(
        cells(&t["rows"][0])[..2],
        [json!("default"), json!("Active")]
    );
    let (_, _, t) = get_accept(
        &s,
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(column_names(&t), ["Name", "Holder", "Age"]);
    assert_eq!(t["rows"], json!([]));
}

// ---------------------------------------------------------------- metadata-only answers

/// What kube's `Api<PartialObjectMeta<K>>` sends for a list (client-go adds protobuf first and
/// plain JSON last).
const META_LIST_ACCEPT: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
/// ... and for a get or a watch.
const META_ACCEPT: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

fn secret(name: &str, value: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": {"app": "skill"}},
        "type": "Opaque",
        "data": {"clientSecret": value}
    })
}

/// Only `metadata` (the apiserver's PartialObjectMetadata has nothing else).
fn assert_metadata_only(o: &Value, name: &str) {
    assert_eq!(o["kind"], "PartialObjectMetadata", "{o}");
    assert_eq!(o["apiVersion"], "meta.k8s.io/v1", "{o}");
    assert_eq!(o["metadata"]["name"], name, "{o}");
    let keys: Vec<&String> = o.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "only kind, apiVersion, metadata: {o}");
    assert!(o.get("data").is_none() && o.get("type").is_none(), "{o}");
}

#[tokio::test]
async fn metadata_list_and_get_of_secrets_carry_no_data() {
    let s = server();
    for n in ["a", "b"] {
        let (c, o) = post(&s, SECRETS, secret(n, "czNjcjN0")).await;
        assert_eq!(c, 201, "{o}");
    }
    for accept in [
        META_LIST_ACCEPT,
        "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
    ] {
        let (c, ct, l) = get_accept(&s, SECRETS, accept).await;
        assert_eq!(c, 200, "{l}");
        assert!(
            ct.starts_with("application/json;as=PartialObjectMetadataList"),
            "{ct}"
        );
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            l["metadata"]["resourceVersion"],
            s.resource_version().to_string()
        );
        let items = l["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_metadata_only(&items[0], "a");
        assert_metadata_only(&items[1], "b");
        assert_eq!(items[0]["metadata"]["labels"]["app"], "skill");
        assert!(items[0]["metadata"]["uid"].is_string());
        assert!(!l.to_string().contains("czNjcjN0"), "no secret data: {l}");
    }
    // Paging keeps the ListMeta; cluster-wide lists too; v1beta1 when asked for.
    let (_, _, l) = get_accept(&s, &format!("{SECRETS}?limit=1"), META_LIST_ACCEPT).await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let cont = l["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, _, l) = get_accept(
        &s,
        &format!("{SECRETS}?limit=1&continue={cont}"),
        META_LIST_ACCEPT,
    )
    .await;
    assert_metadata_only(&l["items"][0], "b");
    let (_, _, l) = get_accept(&s, "/api/v1/secrets", META_LIST_ACCEPT).await;
    assert_eq!(l["kind"], "PartialObjectMetadataList");
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    let (_, _, l) = get_accept(
        &s,
        SECRETS,
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1",
    )
    .await;
    assert_eq!(l["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(l["items"][0]["apiVersion"], "meta.k8s.io/v1beta1");

    // One object.
    let (c, ct, o) = get_accept(&s, &format!("{SECRETS}/a"), META_ACCEPT).await;
    assert_eq!(c, 200, "{o}");
    assert!(
        ct.starts_with("application/json;as=PartialObjectMetadata;"),
        "{ct}"
    );
    assert_metadata_only(&o, "a");
    // Custom resources lose spec and status the same way.
    post(&s, SAL, sal("x")).await;
    let (_, _, l) = get_accept(&s, SAL, META_LIST_ACCEPT).await;
    assert_eq!(l["items"][0]["kind"], "PartialObjectMetadata");
    assert!(l["items"][0].get("spec").is_none());

    // The list kind for one object, or the object kind for a list: 406 as from the apiserver.
    let (c, _, st) = get_accept(&s, &format!("{SECRETS}/a"), META_LIST_ACCEPT).await;
    assert_eq!((c, &st["reason"]), (406, &json!("NotAcceptable")), "{st}");
    assert_eq!(
        st["message"],
        "you requested PartialObjectMetadataList, but the requested object is not a list (*v1.Secret)"
    );
    let (c, _, st) = get_accept(&s, SECRETS, META_ACCEPT).await;
    assert_eq!((c, &st["kind"]), (406, &json!("Status")), "{st}");
    // Missing objects stay 404.
    let (c, _, _) = get_accept(&s, &format!("{SECRETS}/nope"), META_ACCEPT).await;
    assert_eq!(c, 404);
}

#[tokio::test]
async fn metadata_watch_of_secrets_sends_partial_object_metadata_events() {
    let s = server();
    post(&s, SECRETS, secret("a", "b2xk")).await;
    let (c, mut w) = Watch::open_accept(
        &s,
        &format!(
            "{SECRETS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ),
        META_ACCEPT,
    )
    .await;
    assert_eq!(c, 200);
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_metadata_only(&e["object"], "a");
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(e["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(
        e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // A rotation (what the operator's Secret watch is for), then a delete.
    let (c, rotated) = put(&s, &format!("{SECRETS}/a"), secret("a", "bmV3")).await;
    assert_eq!(c, 200, "{rotated}");
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_metadata_only(&e["object"], "a");
    assert_eq!(rv(&e["object"]), rv(&rotated));
    let (c, _) = delete(&s, &format!("{SECRETS}/a"), None).await;
    assert_eq!(c, 200);
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_metadata_only(&e["object"], "a");
    assert_eq!(rv(&e["object"]), s.resource_version());

    // From a resourceVersion (the replayed history is converted too).
    let start = s.resource_version();
    post(&s, SECRETS, secret("b", "b2xk")).await;
    let (_, mut w) = Watch::open_accept(
        &s,
        &format!("{SECRETS}?watch=true&resourceVersion={start}"),
        META_ACCEPT,
    )
    .await;
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_metadata_only(&e["object"], "b");
    // Events are single objects: the list kind is refused.
    let (c, _) = Watch::open_accept(&s, &format!("{SECRETS}?watch=true"), META_LIST_ACCEPT).await;
    assert_eq!(c, 406);
}

#[tokio::test]
async fn kube_partial_object_meta_watcher_gets_metadata_only_secrets() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, ListParams};
    use kube::core::PartialObjectMeta;
    use kube::runtime::watcher::{self, Event};

    let s = server();
    post(&s, SECRETS, secret("a", "b2xk")).await;
    let api: Api<PartialObjectMeta<Secret>> = Api::default_namespaced(s.client());
    // The kind tells which answer came back: a full Secret would say "Secret".
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].types.as_ref().unwrap().kind,
        "PartialObjectMetadata"
    );
    assert_eq!(
        api.get("a").await.unwrap().types.unwrap().kind,
        "PartialObjectMetadata"
    );

    // The operator's Secret watch: list, then watch, both metadata-only.
    let mut events = watcher::watcher(api, watcher::Config::default().any_semantic()).boxed();
    let mut listed = Vec::new();
    loop {
        match tokio::time::timeout(LONG, events.next()).await.unwrap() {
            Some(Ok(Event::InitApply(o))) => listed.push(o),
            Some(Ok(Event::InitDone)) => break,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].types.as_ref().unwrap().kind,
        "PartialObjectMetadata"
    );
    let (_, rotated) = put(&s, &format!("{SECRETS}/a"), secret("a", "bmV3")).await;
    let applied = loop {
        match tokio::time::timeout(LONG, events.next()).await.unwrap() {
            Some(Ok(Event::Apply(o))) => break o,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(applied.types.unwrap().kind, "PartialObjectMetadata");
    assert_eq!(
        applied.metadata.resource_version,
        rotated["metadata"]["resourceVersion"]
            .as_str()
            .map(String::from)
    );
}

// ---------------------------------------------------------------- Events: one object, two APIs

const CORE_EVENTS: &str = "/api/v1/namespaces/default/events";
const NEW_EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

async fn publish_linked(s: &TestServer, times: usize) {
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let recorder = Recorder::new(
        s.client(),
        Reporter {
            controller: "test-ctl".into(),
            instance: None,
        },
    );
    let reference = ObjectReference {
        api_version: Some("alexa.operator.dev/v1alpha1".into()),
        kind: Some("SkillAccountLinking".into()),
        name: Some("x".into()),
        namespace: Some("default".into()),
        uid: Some("u1".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Linked".into(),
        note: Some("done".into()),
        action: "Link".into(),
        secondary: None,
    };
    for _ in 0..times {
        recorder.publish(&ev, &reference).await.unwrap();
    }
}

#[tokio::test]
async fn events_k8s_io_events_are_listed_by_core_v1_with_the_describe_field_selector() {
    let s = server();
    publish_linked(&s, 2).await;
    // kubectl describe: involvedObject.{kind,name,namespace,uid}, chunked.
    let describe = format!(
        "{CORE_EVENTS}?fieldSelector=involvedObject.kind%3DSkillAccountLinking%2CinvolvedObject.name%3Dx%2CinvolvedObject.namespace%3Ddefault%2CinvolvedObject.uid%3Du1&limit=500"
    );
    let (c, l) = get(&s, &describe).await;
    assert_eq!(c, 200);
    assert_eq!(l["kind"], "EventList");
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{l}");
    let e = &items[0];
    assert_eq!(
        (&e["apiVersion"], &e["kind"]),
        (&json!("v1"), &json!("Event"))
    );
    assert_eq!(e["involvedObject"]["name"], "x");
    assert_eq!(e["involvedObject"]["uid"], "u1");
    assert_eq!(e["message"], "done");
    assert_eq!(e["reason"], "Linked");
    assert_eq!(e["action"], "Link");
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["count"], 2);
    assert_eq!(e["series"]["count"], 2);
    assert_eq!(e["source"]["component"], "test-ctl");
    assert_eq!(e["reportingComponent"], "test-ctl");
    for k in ["firstTimestamp", "lastTimestamp"] {
        let t = e[k].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z') && !t.contains('.'),
            "{k}: {t}"
        );
    }
    assert!(e.get("regarding").is_none() && e.get("note").is_none());
    // Other objects' events do not match.
    for other in [
        "involvedObject.uid%3Du2",
        "involvedObject.kind%3DSecret",
        "involvedObject.name%3Dy",
        "source%3Dsomeone-else",
    ] {
        let (_, l) = get(&s, &format!("{CORE_EVENTS}?fieldSelector={other}")).await;
        assert_eq!(l["items"], json!([]), "{other}");
    }
    let (_, l) = get(
        &s,
        &format!("{CORE_EVENTS}?fieldSelector=source%3Dtest-ctl,reason%3DLinked,type%3DNormal"),
    )
    .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    // Get by name through core v1, and cluster-wide.
    let name = e["metadata"]["name"].as_str().unwrap();
    let (c, one) = get(&s, &format!("{CORE_EVENTS}/{name}")).await;
    assert_eq!((c, &one["message"]), (200, &json!("done")));
    let (_, all) = get(&s, "/api/v1/events").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    // Still one object, stored as written, and get_object shows either view.
    assert_eq!(s.dump().len(), 1);
    assert_eq!(s.dump()[0]["apiVersion"], "events.k8s.io/v1");
    let core = s.get_object("v1", "events", Some("default"), name).unwrap();
    assert_eq!(core["message"], "done");
    let new = s
        .get_object("events.k8s.io/v1", "events", Some("default"), name)
        .unwrap();
    assert_eq!(new["note"], "done");
    let (_, l) = get(&s, NEW_EVENTS).await;
    assert_eq!(l["items"][0]["note"], "done");
    assert!(l["items"][0].get("message").is_none());
}

#[tokio::test]
async fn core_v1_events_are_seen_through_events_k8s_io() {
    let s = server();
    let (c, _) = post(
        &s,
        CORE_EVENTS,
        json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Secret", "name": "s", "namespace": "default"},
            "reason": "Failed", "message": "boom", "type": "Warning", "count": 3,
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2025-01-02T03:04:05Z", "lastTimestamp": "2025-01-02T03:05:05Z"}),
    )
    .await;
    assert_eq!(c, 201);
    let (c, e) = get(&s, &format!("{NEW_EVENTS}/e1")).await;
    assert_eq!(c, 200);
    assert_eq!(e["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["regarding"]["name"], "s");
    assert_eq!(e["note"], "boom");
    assert_eq!(e["deprecatedCount"], 3);
    assert_eq!(e["deprecatedSource"]["host"], "node-1");
    assert_eq!(e["deprecatedFirstTimestamp"], "2025-01-02T03:04:05Z");
    assert_eq!(e["deprecatedLastTimestamp"], "2025-01-02T03:05:05Z");
    assert_eq!(e["reportingController"], "kubelet");
    assert_eq!(e["eventTime"], "2025-01-02T03:04:05.000000Z");
    let (_, l) = get(
        &s,
        &format!("{NEW_EVENTS}?fieldSelector=regarding.name%3Ds,reportingController%3Dkubelet"),
    )
    .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    // One name, one object: the other API cannot create it again.
    let (c, st) = post(
        &s,
        NEW_EVENTS,
        json!({"metadata": {"name": "e1"}, "eventTime": "2025-01-02T03:04:05.000000Z", "reason": "R",
            "reportingController": "c", "reportingInstance": "i", "action": "A", "type": "Normal"}),
    )
    .await;
    assert_eq!((c, &st["reason"]), (409, &json!("AlreadyExists")));
    // A write through events.k8s.io keeps the core fields; deleting through either API removes it.
    let (c, p) = patch(&s, &format!("{NEW_EVENTS}/e1"), MERGE, json!({"note": "boom!", "series": {"count": 4, "lastObservedTime": "2025-01-02T03:06:05.000000Z"}})).await;
    assert_eq!((c, &p["note"]), (200, &json!("boom!")));
    let (_, core) = get(&s, &format!("{CORE_EVENTS}/e1")).await;
    assert_eq!(core["message"], "boom!");
    assert_eq!(core["involvedObject"]["name"], "s");
    assert_eq!(core["count"], 4);
    assert_eq!(core["lastTimestamp"], "2025-01-02T03:06:05Z");
    assert_eq!(core["firstTimestamp"], "2025-01-02T03:04:05Z");
    assert_eq!(core["source"]["host"], "node-1");
    // A no-op write through the other API is still a no-op.
    let before = rv(&core);
    let (_, same) = patch(
        &s,
        &format!("{CORE_EVENTS}/e1"),
        MERGE,
        json!({"message": "boom!"}),
    )
    .await;
    assert_eq!(rv(&same), before);
    let (c, _) = delete(&s, &format!("{NEW_EVENTS}/e1"), None).await;
    assert_eq!(c, 200);
    let (c, _) = get(&s, &format!("{CORE_EVENTS}/e1")).await;
    assert_eq!(c, 404);
}

#[tokio::test]
async fn watches_of_either_event_api_see_writes_through_the_other() {
    let s = server();
    let (_, mut core) = Watch::open(
        &s,
        &format!("{CORE_EVENTS}?watch=true&fieldSelector=involvedObject.name%3Dx"),
    )
    .await;
    let (_, mut new) = Watch::open(&s, &format!("{NEW_EVENTS}?watch=true")).await;
    publish_linked(&s, 2).await;
    let e = core.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"]["apiVersion"], "v1");
    assert_eq!(e["object"]["message"], "done");
    assert_eq!(e["object"]["count"], 1);
    let e = core.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["count"], 2);
    let e = new.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["object"]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["object"]["note"], "done");
    new.next_non_bookmark(LONG).await.unwrap();
    post(
        &s,
        CORE_EVENTS,
        json!({"metadata": {"name": "legacy"}, "involvedObject": {"name": "y"}, "reason": "R", "message": "old style"}),
    )
    .await;
    let e = new.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["object"]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["object"]["note"], "old style");
    assert_eq!(e["object"]["regarding"]["name"], "y");
    assert!(
        core.next_non_bookmark(SHORT).await.is_none(),
        "selector filters the core view"
    );
    // kubectl get events -w: a one-row Table per event, in core columns.
    let (_, mut t) = Watch::open_accept(
        &s,
        &format!("{NEW_EVENTS}?watch=true&fieldSelector=regarding.name%3Dx"),
        TABLE_ACCEPT,
    )
    .await;
    let e = t.next(LONG).await.unwrap();
    assert_eq!(e["object"]["kind"], "Table");
    assert_eq!(e["object"]["rows"][0]["cells"][3], "skillaccountlinking/x");
}

#[tokio::test]
async fn table_for_events_has_the_event_columns() {
    let s = server();
    publish_linked(&s, 3).await;
    for path in [CORE_EVENTS, NEW_EVENTS] {
        let (_, _, t) = get_accept(&s, path, TABLE_ACCEPT).await;
        assert_eq!(
            column_names(&t),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ],
            "{path}"
        );
        let wide: Vec<i64> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["priority"].as_i64().unwrap())
            .collect();
        assert_eq!(wide, [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
        let c = cells(&t["rows"][0]);
        assert!(is_fresh_age(&c[0]), "{c:?}");
        assert_eq!(
            c[1..7],
            [
                json!("Normal"),
                json!("Linked"),
                json!("skillaccountlinking/x"),
                json!(""),
                json!("test-ctl, test-ctl"),
                json!("done")
            ]
        );
        assert!(is_fresh_age(&c[7]));
        assert_eq!(c[8], 3);
    }
}

// ---------------------------------------------------------------- discovery

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

// ---------------------------------------------------------------- hooks

#[tokio::test]
async fn request_log_records_method_path_verb_status_and_field_manager() {
    let s = server();
    s.clear_requests();
    post(&s, SAL, sal("x")).await;
    patch(
        &s,
        &format!("{SAL}/x/status?fieldManager=ctl"),
        APPLY,
        json!({"status": {}}),
    )
    .await;
    get(&s, &format!("{SAL}/missing")).await;
    let r = s.requests();
    assert_eq!(r.len(), 3);
    assert_eq!(
        (r[0].method.clone(), r[0].verb.as_str(), r[0].status),
        (Method::POST, "create", 201)
    );
    assert_eq!(r[1].path, format!("{SAL}/x/status"));
    assert_eq!(r[1].field_manager.as_deref(), Some("ctl"));
    assert_eq!(r[1].query.as_deref(), Some("fieldManager=ctl"));
    assert_eq!(r[1].content_type.as_deref(), Some(APPLY));
    assert_eq!((r[2].verb.as_str(), r[2].status), ("get", 404));
    s.clear_requests();
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn inject_fault_on_nth_matching_request() {
    let s = server();
    post(&s, SAL, sal("x")).await;
    s.inject_fault(Fault {
        method: Some(Method::PATCH),
        path_contains: Some("/status".into()),
        nth: 2,
        status: 500,
    });
    s.inject_fault(Fault {
        method: Some(Method::GET),
        path_contains: None,
        nth: 1,
        status: 429,
    });
    let st = json!({"status": {"observedGeneration": 1}});
    assert_eq!(
        patch(&s, &format!("{SAL}/x/status"), MERGE, st.clone())
            .await
            .0,
        200
    );
    assert_eq!(
        patch(&s, &format!("{SAL}/x"), MERGE, json!({})).await.0,
        200,
        "path does not match"
    );
    let (c, body) = patch(&s, &format!("{SAL}/x/status"), MERGE, st.clone()).await;
    assert_eq!((c, body["reason"].as_str()), (500, Some("InternalError")));
    assert_eq!(
        patch(&s, &format!("{SAL}/x/status"), MERGE, st).await.0,
        200,
        "fault consumed"
    );
    let (c, body) = get(&s, &format!("{SAL}/x")).await;
    assert_eq!((c, body["reason"].as_str()), (429, Some("TooManyRequests")));
    assert_eq!(get(&s, &format!("{SAL}/x")).await.0, 200);
    s.inject_fault(Fault {
        method: None,
        path_contains: Some("skillaccountlinkings/x".into()),
        nth: 1,
        status: 409,
    });
    assert_eq!(delete(&s, &format!("{SAL}/x"), None).await.0, 409);
    assert!(
        s.requests()
            .iter()
            .any(|r| r.status == 409 && r.verb == "delete")
    );
}

#[tokio::test]
async fn dump_and_get_object() {
    let s = server();
    assert!(s.dump().is_empty(), "new() starts empty");
    let s = s.with_namespaces(&["default", "kube-system"]);
    post(&s, SAL, sal("x")).await;
    post(
        &s,
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "s"}}),
    )
    .await;
    let all = s.dump();
    assert!(all.iter().any(|o| o["kind"] == "SkillAccountLinking"));
    assert!(all.iter().any(|o| o["kind"] == "Secret"));
    assert!(
        all.iter()
            .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "default")
    );
    let o = s
        .get_object(
            "alexa.operator.dev/v1alpha1",
            "skillaccountlinkings",
            Some("default"),
            "x",
        )
        .unwrap();
    assert_eq!(o["spec"]["stage"], "development");
    assert!(
        s.get_object("v1", "secrets", Some("default"), "s")
            .is_some()
    );
    assert!(s.get_object("v1", "namespaces", None, "default").is_some());
    assert!(s.get_object("v1", "secrets", Some("other"), "s").is_none());
}

// ---------------------------------------------------------------- scale

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_10k_custom_objects_with_watch_fanout() {
    let s = server();
    let start_rv = s.resource_version();
    let (_, mut w1) =
        Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={start_rv}")).await;
    let (_, mut w2) = Watch::open(&s, &format!("/apis/alexa.operator.dev/v1alpha1/skillaccountlinkings?watch=true&resourceVersion={start_rv}")).await;
    let n = 10_000;
    let reader = |mut w: Watch| {
        tokio::spawn(async move {
            let mut count = 0;
            while count < n + 1000 {
                match w.next(LONG).await {
                    Some(e) if e["type"] != "BOOKMARK" => count += 1,
                    Some(_) => {}
                    None => break,
                }
            }
            count
        })
    };
    let (r1, r2) = (reader(w1), reader(w2));
    let t = std::time::Instant::now();
    for i in 0..n {
        let (c, _) = post(&s, SAL, sal(&format!("o{i}"))).await;
        assert_eq!(c, 201);
    }
    let created = t.elapsed();
    let t = std::time::Instant::now();
    for i in 0..1000 {
        let (c, _) = patch(
            &s,
            &format!("{SAL}/o{i}/status"),
            MERGE,
            json!({"status": {"observedGeneration": 1}}),
        )
        .await;
        assert_eq!(c, 200);
    }
    let patched = t.elapsed();
    let t = std::time::Instant::now();
    let (_, l) = get(&s, SAL).await;
    assert_eq!(l["items"].as_array().unwrap().len(), n);
    let (_, one) = get(&s, &format!("{SAL}?fieldSelector=metadata.name%3Do5000")).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let listed = t.elapsed();
    assert_eq!(r1.await.unwrap(), n + 1000);
    assert_eq!(r2.await.unwrap(), n + 1000);
    eprintln!("10k creates: {created:?}, 1k status patches: {patched:?}, list+get: {listed:?}");
    w1 = Watch::open(
        &s,
        &format!("{SAL}?watch=true&resourceVersion={}", start_rv),
    )
    .await
    .1;
    let first = w1.next(LONG).await.unwrap();
    assert_eq!(first["type"], "ADDED", "replay of 11k events from history");
    w2 = Watch::open(
        &s,
        &format!("{SAL}?watch=true&resourceVersion={}", s.resource_version()),
    )
    .await
    .1;
    assert!(w2.next(SHORT).await.is_none());
}

#[tokio::test]
async fn server_side_apply_nulls_an_object_it_empties_and_removes_an_atomic_one() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.dev"},
        "spec": {"group": "test.dev", "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "keep": {"type": "string"},
                        "granular": {"type": "object", "properties": {"a": {"type": "string"}}},
                        "nullableRef": {"type": "object", "nullable": true, "properties": {"name": {"type": "string"}}},
                        "atomicRef": {"type": "object", "nullable": true, "x-kubernetes-map-type": "atomic",
                            "required": ["name"], "properties": {"name": {"type": "string"}}}
                    }}
                }}}}]}
    });
    let s = TestServer::new().with_crd(crd).unwrap();
    let path = "/apis/test.dev/v1/namespaces/default/gadgets/g?fieldManager=gitops";
    let gadget = |spec: Value| json!({"apiVersion": "test.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec});
    let full = json!({"keep": "k", "granular": {"a": "1"}, "nullableRef": {"name": "n"}, "atomicRef": {"name": "s"}});
    let (c, _) = patch(&s, path, APPLY, gadget(full)).await;
    assert_eq!(c, 201);
    let entries = s
        .get_object("test.dev/v1", "gadgets", Some("default"), "g")
        .unwrap();
    let owned = entries["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].clone();
    assert_eq!(
        owned["f:atomicRef"],
        json!({}),
        "an atomic object is one leaf: {owned}"
    );
    assert_eq!(owned["f:granular"], json!({"f:a": {}}), "{owned}");

    // Dropping an atomic object removes it whole.
    let (c, o) = patch(
        &s,
        path,
        APPLY,
        gadget(json!({"keep": "k", "granular": {"a": "1"}, "nullableRef": {"name": "n"}})),
    )
    .await;
    assert_eq!(c, 200, "{o}");
    assert!(o["spec"].get("atomicRef").is_none(), "{o}");
    // Dropping a granular one leaves null: kept when the schema allows it...
    let (c, o) = patch(
        &s,
        path,
        APPLY,
        gadget(json!({"keep": "k", "granular": {"a": "1"}})),
    )
    .await;
    assert_eq!(c, 200, "{o}");
    assert_eq!(o["spec"]["nullableRef"], Value::Null, "{o}");
    // ...refused when it does not (kubernetes#117447).
    let (c, st) = patch(&s, path, APPLY, gadget(json!({"keep": "k"}))).await;
    assert_eq!(c, 422);
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.granular in body must be of type object: \"null\""),
        "{msg}"
    );
}
