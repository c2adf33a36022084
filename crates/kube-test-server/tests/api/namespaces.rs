//! Namespace deletion as the namespace controller does it: Terminating, contents deleted
//! (finalizers honoured), creates refused with 403, the namespace gone once empty.

use serde_json::{Value, json};

use crate::{MERGE, delete, get, patch, post, sal, server};

const NS: &str = "/api/v1/namespaces";
const TEAM_SAL: &str = "/apis/alexa.operator.dev/v1alpha1/namespaces/team/skillaccountlinkings";
const TEAM_SECRETS: &str = "/api/v1/namespaces/team/secrets";

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": "v"}})
}

#[tokio::test]
async fn a_new_namespace_is_active_with_the_kubernetes_finalizer() {
    let s = server();
    let (code, ns) = post(&s, NS, namespace("team")).await;
    assert_eq!(code, 201);
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents_and_then_the_namespace() {
    let s = server();
    post(&s, NS, namespace("team")).await;
    post(&s, NS, namespace("other")).await;
    post(&s, TEAM_SECRETS, secret("lwa")).await;
    post(&s, "/api/v1/namespaces/other/secrets", secret("lwa")).await;
    let mut held = sal("x");
    held["metadata"]["finalizers"] = json!(["alexa.operator.dev/cleanup"]);
    assert_eq!(post(&s, TEAM_SAL, held).await.0, 201);

    let (code, ns) = delete(&s, &format!("{NS}/team"), None).await;
    assert_eq!(code, 200);
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string(), "{ns}");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        get(&s, &format!("{TEAM_SECRETS}/lwa")).await.0,
        404,
        "the Secret (no finalizer) is deleted at once"
    );
    let (code, terminating) = get(&s, &format!("{TEAM_SAL}/x")).await;
    assert_eq!(code, 200, "kept while its finalizer remains");
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    let (code, ns) = get(&s, &format!("{NS}/team")).await;
    assert_eq!((code, &ns["status"]["phase"]), (200, &json!("Terminating")));
    assert_eq!(
        get(&s, "/api/v1/namespaces/other/secrets/lwa").await.0,
        200,
        "other namespaces are untouched"
    );
    // Deleting again changes nothing.
    assert_eq!(delete(&s, &format!("{NS}/team"), None).await.0, 200);

    let (code, _) = patch(
        &s,
        &format!("{TEAM_SAL}/x"),
        MERGE,
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(get(&s, &format!("{TEAM_SAL}/x")).await.0, 404);
    assert_eq!(
        get(&s, &format!("{NS}/team")).await.0,
        404,
        "the namespace goes once empty"
    );
    assert_eq!(get(&s, &format!("{NS}/other")).await.0, 200);
}

#[tokio::test]
async fn an_empty_namespace_goes_at_once() {
    let s = server();
    post(&s, NS, namespace("team")).await;
    let (code, answer) = delete(&s, &format!("{NS}/team"), None).await;
    assert_eq!(code, 200);
    assert_eq!(
        answer["status"]["phase"], "Terminating",
        "answered with the terminating Namespace, as the apiserver does"
    );
    assert_eq!(get(&s, &format!("{NS}/team")).await.0, 404);
}

#[tokio::test]
async fn creating_in_a_terminating_namespace_is_forbidden() {
    let s = server();
    post(&s, NS, namespace("team")).await;
    let mut held = secret("keep");
    held["metadata"]["finalizers"] = json!(["example.com/keep"]);
    post(&s, TEAM_SECRETS, held).await;
    delete(&s, &format!("{NS}/team"), None).await;

    let (code, status) = post(&s, TEAM_SECRETS, secret("new")).await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        "secrets \"new\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "NamespaceTerminating"
    );
    let (code, status) = post(&s, TEAM_SAL, sal("y")).await;
    assert_eq!(code, 403);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("skillaccountlinkings.alexa.operator.dev \"y\" is forbidden"),
        "{status}"
    );
    // Server-side apply creating an object is a create too.
    let (code, _) = patch(
        &s,
        &format!("{TEAM_SECRETS}/applied?fieldManager=t"),
        crate::APPLY,
        secret("applied"),
    )
    .await;
    assert_eq!(code, 403);
    let (code, _) = post(
        &s,
        "/apis/events.k8s.io/v1/namespaces/team/events",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
               "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "c",
               "reportingInstance": "i", "action": "A", "reason": "R", "type": "Normal",
               "regarding": {"kind": "Secret", "namespace": "team", "name": "keep"}}),
    )
    .await;
    assert_eq!(code, 403, "events are content too");
    // Updates and deletes are still allowed: the held Secret can be read, let go and goes.
    assert_eq!(get(&s, &format!("{TEAM_SECRETS}/keep")).await.0, 200);
    let (code, _) = patch(
        &s,
        &format!("{TEAM_SECRETS}/keep"),
        MERGE,
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(get(&s, &format!("{NS}/team")).await.0, 404);
    // A namespace of the same name can be created again, and used.
    assert_eq!(post(&s, NS, namespace("team")).await.0, 201);
    assert_eq!(post(&s, TEAM_SECRETS, secret("new")).await.0, 201);
}
