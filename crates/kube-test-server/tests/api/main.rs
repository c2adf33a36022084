//! One test per apiserver behaviour the test server reproduces (raw HTTP through the router,
//! plus kube clients where the behaviour matters to kube). One test binary
//! (`cargo test -p kube-test-server --test api`), one file per topic; the helpers below are
//! shared.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

mod apply;
mod core_kinds;
mod crd;
mod delete;
mod discovery;
mod events;
mod hooks;
mod lists;
mod metadata;
mod metadata_only;
mod namespaces;
mod paths;
mod scale;
mod status_bodies;
mod table;
mod updates;
mod watch;

use std::time::Duration;

use axum::body::Body;
use http::{Method, Request};
use http_body_util::BodyExt;
use kube_test_server::TestServer;
use serde_json::{Value, json};
use tower::ServiceExt;

pub(crate) const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds");
pub(crate) const SAL: &str =
    "/apis/alexa.operator.dev/v1alpha1/namespaces/default/skillaccountlinkings";
pub(crate) const SEN: &str =
    "/apis/alexa.operator.dev/v1alpha1/namespaces/default/skillenablements";
pub(crate) const JSON: &str = "application/json";
pub(crate) const MERGE: &str = "application/merge-patch+json";
pub(crate) const JSONPATCH: &str = "application/json-patch+json";
pub(crate) const APPLY: &str = "application/apply-patch+yaml";

pub(crate) fn server() -> TestServer {
    TestServer::new().with_crds_from_dir(CRDS).unwrap()
}

pub(crate) async fn call(
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
pub(crate) const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// GET with an Accept header: status, Content-Type, body.
pub(crate) async fn get_accept(s: &TestServer, uri: &str, accept: &str) -> (u16, String, Value) {
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

pub(crate) async fn get(s: &TestServer, uri: &str) -> (u16, Value) {
    call(s, Method::GET, uri, JSON, None).await
}
pub(crate) async fn post(s: &TestServer, uri: &str, body: Value) -> (u16, Value) {
    call(s, Method::POST, uri, JSON, Some(body)).await
}
pub(crate) async fn put(s: &TestServer, uri: &str, body: Value) -> (u16, Value) {
    call(s, Method::PUT, uri, JSON, Some(body)).await
}
pub(crate) async fn patch(s: &TestServer, uri: &str, ct: &str, body: Value) -> (u16, Value) {
    call(s, Method::PATCH, uri, ct, Some(body)).await
}
pub(crate) async fn delete(s: &TestServer, uri: &str, body: Option<Value>) -> (u16, Value) {
    call(s, Method::DELETE, uri, JSON, body).await
}

pub(crate) fn sal(name: &str) -> Value {
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

pub(crate) fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Reads newline-delimited watch events from a streaming body.
pub(crate) struct Watch {
    body: Body,
    buf: Vec<u8>,
}

impl Watch {
    pub(crate) async fn open(s: &TestServer, uri: &str) -> (u16, Watch) {
        Watch::open_accept(s, uri, JSON).await
    }
    pub(crate) async fn open_accept(s: &TestServer, uri: &str, accept: &str) -> (u16, Watch) {
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
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Value> {
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
    pub(crate) async fn next_non_bookmark(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let e = self.next(wait).await?;
            if e["type"] != "BOOKMARK" {
                return Some(e);
            }
        }
    }
}

pub(crate) const SHORT: Duration = Duration::from_millis(300);
pub(crate) const LONG: Duration = Duration::from_secs(5);

pub(crate) fn cells(row: &Value) -> Vec<Value> {
    row["cells"].as_array().unwrap().clone()
}

pub(crate) fn column_names(t: &Value) -> Vec<String> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// An age such as `0s` or `3s` (the objects were just created).
pub(crate) fn is_fresh_age(v: &Value) -> bool {
    v.as_str()
        .and_then(|s| s.strip_suffix('s'))
        .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n < 60))
}
