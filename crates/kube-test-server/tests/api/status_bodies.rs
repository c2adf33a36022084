//! Errors come back as `Status` bodies with the apiserver's reasons and messages.

use axum::body::Body;
use http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{JSON, JSONPATCH, SAL, call, get, post, sal, server};

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

/// One request of `malformed_requests_get_status_errors_not_panics`: (what, method, path,
/// Content-Type, raw body, expected code, whether the body is checked to be a `Status`).
type Malformed = (
    &'static str,
    Method,
    String,
    &'static str,
    &'static str,
    u16,
    bool,
);

#[tokio::test]
async fn malformed_requests_get_status_errors_not_panics() {
    let s = server();
    post(&s, SAL, sal("x")).await;
    let rows: Vec<Malformed> = vec![
        (
            "a JSON string, not an object",
            Method::POST,
            SAL.to_string(),
            JSON,
            r#""not an object""#,
            400,
            true,
        ),
        (
            "broken JSON",
            Method::POST,
            SAL.to_string(),
            JSON,
            "{broken",
            400,
            false,
        ),
        (
            "a patch of an unknown content type",
            Method::PATCH,
            format!("{SAL}/x"),
            "text/plain",
            "{}",
            415,
            false,
        ),
        (
            "a JSON patch that is not a list",
            Method::PATCH,
            format!("{SAL}/x"),
            JSONPATCH,
            r#"{"not": "a list"}"#,
            400,
            false,
        ),
        (
            "a label selector that does not parse",
            Method::GET,
            format!("{SAL}?labelSelector=a%20in%20b"),
            JSON,
            "",
            400,
            false,
        ),
        (
            "a watch from a resourceVersion that is not a number",
            Method::GET,
            format!("{SAL}?watch=true&resourceVersion=abc"),
            JSON,
            "",
            400,
            false,
        ),
        (
            "PUT on a collection",
            Method::PUT,
            SAL.to_string(),
            JSON,
            "{}",
            405,
            false,
        ),
        (
            "a subresource custom resources do not have",
            Method::GET,
            format!("{SAL}/x/scale"),
            JSON,
            "",
            404,
            false,
        ),
    ];
    for (what, method, uri, content_type, body, want, status_body) in rows {
        let mut request = Request::builder().method(method).uri(&uri);
        if !body.is_empty() {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Body::from(body)).unwrap();
        let response = s.router().oneshot(request).await.unwrap();
        let code = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(code, want, "{what}: {}", String::from_utf8_lossy(&bytes));
        if status_body {
            let st: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(st["kind"], "Status", "{what}");
        }
    }
}
