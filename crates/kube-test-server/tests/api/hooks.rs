//! Test hooks: the request log, fault injection, dumps.

use http::Method;
use kube_test_server::Fault;
use serde_json::json;

use crate::{APPLY, MERGE, SAL, delete, get, patch, post, sal, server};

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
