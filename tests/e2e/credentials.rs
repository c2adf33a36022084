//! Shared credentials: AlexaCredentials and ClusterAlexaCredentials used by both managed kinds
//! (no credentials Secret in the app namespaces), one token and one stage-conflict view across
//! namespaces, namespaces outside allowedNamespaces refused, the credentials objects' own
//! status, and deletion held while they are in use.

use alexa_simulator::{Operation, sandbox};
use alexa_skill_operator::crd::{
    AlexaCredentials, ClusterAlexaCredentials, SkillAccountLinking, SkillEnablement,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::{Harness, SKILL, is_ready, message, reason, sal, skip_on_real_server};

/// The sandbox owner's credentials as Secret `name` in `namespace`.
async fn lwa_secret(h: &Harness, namespace: &str, name: &str, refresh_token: &str) {
    let api: Api<Secret> = Api::namespaced(h.client.clone(), namespace);
    let obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "stringData": {"client-id": sandbox::CLIENT_ID, "client-secret": sandbox::CLIENT_SECRET,
                       "refresh-token": refresh_token}});
    api.patch(
        name,
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply Secret");
}

async fn label_namespace(h: &Harness, namespace: &str, labels: Value) {
    let api: Api<Namespace> = Api::all(h.client.clone());
    api.patch(
        namespace,
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": labels}})),
    )
    .await
    .expect("label namespace");
}

/// ClusterAlexaCredentials `shared` over Secret `ops`/lwa-shared, for namespaces labelled
/// team=skills.
async fn cluster_credentials(h: &Harness, ops: &str) {
    let api: Api<ClusterAlexaCredentials> = Api::all(h.client.clone());
    let obj = json!({"apiVersion": "alexa.operator.dev/v1alpha1", "kind": "ClusterAlexaCredentials",
        "metadata": {"name": "shared"},
        "spec": {"secretRef": {"namespace": ops, "name": "lwa-shared"},
                 "allowedNamespaces": {"matchLabels": {"team": "skills"}}}});
    api.patch(
        "shared",
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply ClusterAlexaCredentials");
}

pub(crate) fn with_ref(mut obj: Value, kind: &str, name: &str) -> Value {
    let spec = obj["spec"].as_object_mut().expect("spec");
    spec.remove("credentialsSecretRef");
    spec.insert("credentialsRef".into(), json!({"kind": kind, "name": name}));
    obj
}

fn owner_in(name: &str, stage: &str) -> Value {
    with_ref(
        json!({"apiVersion": "alexa.operator.dev/v1alpha1", "kind": "SkillEnablement",
            "metadata": {"name": name},
            "spec": {"skillId": SKILL, "stage": stage, "credentialsSecretRef": {"name": "x"}}}),
        "ClusterAlexaCredentials",
        "shared",
    )
}

fn implicit() -> Value {
    json!({"type": "IMPLICIT", "authorizationUrl": "https://auth.example.com/authorize", "clientId": "alexa-skill"})
}

async fn apply_in<K>(h: &Harness, namespace: &str, obj: Value) -> K
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(h.client.clone(), namespace);
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    api.patch(
        &name,
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply")
}

/// Polls a SkillEnablement in another namespace until `check` holds.
async fn wait_enablement(
    h: &Harness,
    namespace: &str,
    name: &str,
    check: impl Fn(&SkillEnablement) -> bool,
) -> SkillEnablement {
    let api: Api<SkillEnablement> = Api::namespaced(h.client.clone(), namespace);
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    loop {
        let current = api.get_opt(name).await.expect("get");
        if let Some(o) = current.as_ref().filter(|o| check(o)) {
            return o.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{namespace}/{name}: {current:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

async fn wait_cluster_credentials(
    h: &Harness,
    what: &str,
    check: impl Fn(&ClusterAlexaCredentials) -> bool,
) -> ClusterAlexaCredentials {
    let api: Api<ClusterAlexaCredentials> = Api::all(h.client.clone());
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    loop {
        let current = api.get_opt("shared").await.expect("get");
        if let Some(o) = current.as_ref().filter(|o| check(o)) {
            return o.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ClusterAlexaCredentials shared not {what}: {current:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Two labelled namespaces (the test's and `other`) with no credentials Secret of their own,
/// ClusterAlexaCredentials `shared` over a Secret in a third namespace (where only the
/// platform team would have access), and the operator.
async fn shared_setup(h: &mut Harness) -> String {
    let other = h.other_namespace("b").await;
    let ops = h.other_namespace("ops").await;
    for ns in [h.ns.clone(), other.clone()] {
        label_namespace(h, &ns, json!({"team": "skills"})).await;
    }
    lwa_secret(h, &ops, "lwa-shared", sandbox::REFRESH_TOKEN).await;
    cluster_credentials(h, &ops).await;
    h.start_operator(&[]).await;
    other
}

#[tokio::test]
async fn cluster_credentials_serve_both_kinds_in_two_namespaces_with_one_token() {
    if skip_on_real_server("ClusterAlexaCredentials need the cluster-wide install") {
        return;
    }
    let mut h = Harness::servers(Default::default()).await;
    let other = shared_setup(&mut h).await;
    let linking = with_ref(sal("link", implicit()), "ClusterAlexaCredentials", "shared");
    h.apply::<SkillAccountLinking>(linking)
        .await
        .expect("apply");
    apply_in::<SkillEnablement>(&h, &other, owner_in("enable", "development")).await;

    h.wait_for::<SkillAccountLinking, _>("link", "Ready", is_ready)
        .await;
    wait_enablement(&h, &other, "enable", is_ready).await;
    assert!(
        h.sim.stage_enabled(SKILL, "development"),
        "enabled with the shared credentials"
    );
    let creds = wait_cluster_credentials(&h, "Ready and used twice", |c| {
        is_ready(c)
            && c.status
                .as_ref()
                .and_then(|s| s.in_use.as_ref())
                .map(|u| u.count)
                == Some(2)
    })
    .await;
    let in_use = creds.status.unwrap().in_use.unwrap();
    assert_eq!(
        in_use.names,
        vec![
            format!("SkillAccountLinking {}/link", h.ns),
            format!("SkillEnablement {other}/enable")
        ]
    );
    // One access token serves every user of the credentials, in both namespaces.
    assert_eq!(h.count(Operation::Token), 1, "{:?}", h.sim.requests());
    // The app namespaces hold no Secret at all.
    for ns in [&h.ns, &other] {
        let secrets: Api<Secret> = Api::namespaced(h.client.clone(), ns);
        let list = secrets.list(&Default::default()).await.expect("list");
        assert!(list.items.is_empty(), "{ns}: {:?}", list.items);
    }
    // Nothing secret in the credentials object's status.
    let raw = serde_json::to_string(&creds_status(&h).await).unwrap();
    assert!(
        !raw.contains(sandbox::REFRESH_TOKEN) && !raw.contains(sandbox::CLIENT_SECRET),
        "{raw}"
    );
}

async fn creds_status(h: &Harness) -> Value {
    let api: Api<ClusterAlexaCredentials> = Api::all(h.client.clone());
    serde_json::to_value(api.get("shared").await.expect("get")).unwrap()["status"].clone()
}

#[tokio::test]
async fn a_namespace_outside_the_selector_is_stalled_naming_the_selector() {
    if skip_on_real_server("ClusterAlexaCredentials need the cluster-wide install") {
        return;
    }
    let mut h = Harness::servers(Default::default()).await;
    shared_setup(&mut h).await;
    let outsider = h.other_namespace("outsider").await;
    label_namespace(&h, &outsider, json!({"team": "payments"})).await;
    apply_in::<SkillEnablement>(&h, &outsider, owner_in("enable", "development")).await;
    let refused = wait_enablement(&h, &outsider, "enable", |o| {
        reason(o) == "NamespaceNotAllowed"
    })
    .await;
    let text = message(&refused);
    assert!(
        text.contains("ClusterAlexaCredentials shared")
            && text.contains(&format!("namespace {outsider}"))
            && text.contains("(team=skills)"),
        "{text}"
    );
    assert!(crate::support::stalled(&refused));
    // Nothing was sent to Amazon for it (LWA saw only the credentials object's own check).
    assert_eq!(h.count(Operation::EnableStage), 0);
    assert_eq!(h.count(Operation::GetStageEnablement), 0);
    assert!(h.count(Operation::Token) <= 1, "{:?}", h.sim.requests());
}

#[tokio::test]
async fn stage_conflicts_are_seen_across_namespaces_sharing_cluster_credentials() {
    if skip_on_real_server("ClusterAlexaCredentials need the cluster-wide install") {
        return;
    }
    let mut h = Harness::servers(Default::default()).await;
    let other = shared_setup(&mut h).await;
    h.apply::<SkillEnablement>(owner_in("dev", "development"))
        .await
        .expect("apply");
    h.wait_for::<SkillEnablement, _>("dev", "Ready", is_ready)
        .await;
    apply_in::<SkillEnablement>(&h, &other, owner_in("live", "live")).await;
    let waiting = wait_enablement(&h, &other, "live", |o| reason(o) == "StageConflict").await;
    assert!(
        message(&waiting).contains(&format!("SkillEnablement {}/dev", h.ns)),
        "{}",
        message(&waiting)
    );
    assert!(!h.sim.stage_enabled(SKILL, "live"));
    assert_eq!(
        h.count(Operation::EnableStage),
        1,
        "only the older object enables"
    );
}

#[tokio::test]
async fn namespaced_credentials_in_use_hold_their_deletion_and_name_the_users() {
    let h = Harness::start().await;
    lwa_secret(&h, &h.ns, "team-lwa", sandbox::REFRESH_TOKEN).await;
    let creds = json!({"apiVersion": "alexa.operator.dev/v1alpha1", "kind": "AlexaCredentials",
        "metadata": {"name": "team"}, "spec": {"secretRef": {"name": "team-lwa"}}});
    h.apply::<AlexaCredentials>(creds).await.expect("apply");
    let linking = with_ref(sal("link", implicit()), "AlexaCredentials", "team");
    h.apply::<SkillAccountLinking>(linking)
        .await
        .expect("apply");
    let mut enable = owner_in("enable", "development");
    enable["spec"]["credentialsRef"] = json!({"kind": "AlexaCredentials", "name": "team"});
    h.apply::<SkillEnablement>(enable).await.expect("apply");
    h.wait_for::<SkillAccountLinking, _>("link", "Ready", is_ready)
        .await;
    h.wait_for::<SkillEnablement, _>("enable", "Ready", is_ready)
        .await;
    h.wait_for::<AlexaCredentials, _>("team", "Ready and used twice", |c| {
        is_ready(c)
            && c.status
                .as_ref()
                .and_then(|s| s.in_use.as_ref())
                .map(|u| u.count)
                == Some(2)
    })
    .await;

    h.delete::<AlexaCredentials>("team").await;
    let held = h
        .wait_for::<AlexaCredentials, _>("team", "InUse", |c| reason(c) == "InUse")
        .await;
    let text = message(&held);
    assert!(
        text.contains(&format!("SkillAccountLinking {}/link", h.ns))
            && text.contains(&format!("SkillEnablement {}/enable", h.ns)),
        "{text}"
    );
    // Users keep working while the deletion waits: their cleanup needs the credentials.
    h.delete::<SkillEnablement>("enable").await;
    h.wait_gone::<SkillEnablement>("enable").await;
    assert_eq!(h.count(Operation::DisableStage), 1);
    h.delete::<SkillAccountLinking>("link").await;
    h.wait_gone::<SkillAccountLinking>("link").await;
    h.wait_gone::<AlexaCredentials>("team").await;
}

#[tokio::test]
async fn invalid_shared_credentials_read_credentials_invalid_until_the_secret_is_fixed() {
    let h = Harness::start().await;
    lwa_secret(&h, &h.ns, "team-lwa", "Atzr|revoked").await;
    let creds = json!({"apiVersion": "alexa.operator.dev/v1alpha1", "kind": "AlexaCredentials",
        "metadata": {"name": "team"}, "spec": {"secretRef": {"name": "team-lwa"}}});
    h.apply::<AlexaCredentials>(creds).await.expect("apply");
    let linking = with_ref(sal("link", implicit()), "AlexaCredentials", "team");
    h.apply::<SkillAccountLinking>(linking)
        .await
        .expect("apply");
    let invalid = h
        .wait_for::<AlexaCredentials, _>("team", "CredentialsInvalid", |c| {
            reason(c) == "CredentialsInvalid"
        })
        .await;
    assert!(
        !serde_json::to_string(&invalid)
            .unwrap()
            .contains("Atzr|revoked")
    );
    h.wait_for::<SkillAccountLinking, _>("link", "CredentialsInvalid", |o| {
        reason(o) == "CredentialsInvalid"
    })
    .await;
    // Fixing the one Secret brings the credentials object and its user back.
    lwa_secret(&h, &h.ns, "team-lwa", sandbox::REFRESH_TOKEN).await;
    h.wait_for::<AlexaCredentials, _>("team", "Ready", is_ready)
        .await;
    h.wait_for::<SkillAccountLinking, _>("link", "Ready", is_ready)
        .await;
}

#[tokio::test]
async fn the_api_refuses_both_credentials_fields_at_once_and_neither() {
    let h = Harness::start().await;
    let mut both = sal("both", implicit());
    both["spec"]["credentialsRef"] = json!({"kind": "AlexaCredentials", "name": "team"});
    let err = h.apply::<SkillAccountLinking>(both).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("exactly one of credentialsSecretRef"),
        "{err}"
    );
    let mut neither = owner_in("neither", "live");
    neither["spec"]
        .as_object_mut()
        .unwrap()
        .remove("credentialsRef");
    let err = h.apply::<SkillEnablement>(neither).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("exactly one of credentialsSecretRef"),
        "{err}"
    );
    let mut two = owner_in("two", "live");
    two["spec"]["credentialsSecretRef"] = json!({"name": "lwa"});
    assert!(h.apply::<SkillEnablement>(two).await.is_err());
}

/// Two namespaces using one ClusterAlexaCredentials share one Retry-After gate and budget:
/// Amazon answers the shared credentials 429 (Retry-After 300 s) to the object in one
/// namespace, and the object in the other namespace reads `Throttled` without sending anything.
#[tokio::test]
async fn namespaces_sharing_cluster_credentials_share_one_throttle() {
    if skip_on_real_server("ClusterAlexaCredentials need the cluster-wide install") {
        return;
    }
    let mut h = Harness::servers(Default::default()).await;
    let other = shared_setup(&mut h).await;
    let linking = with_ref(sal("link", implicit()), "ClusterAlexaCredentials", "shared");
    h.apply::<SkillAccountLinking>(linking)
        .await
        .expect("apply");
    h.wait_for::<SkillAccountLinking, _>("link", "Ready", is_ready)
        .await;
    let five_minutes = std::time::Duration::from_secs(300);
    h.sim
        .faults()
        .throttle_client(sandbox::CLIENT_ID, five_minutes, five_minutes);
    apply_in::<SkillEnablement>(&h, &other, owner_in("enable", "development")).await;
    wait_enablement(&h, &other, "enable", |o| reason(o) == "Throttled").await;
    h.request_reconcile("link", "after-429").await;
    h.wait_for::<SkillAccountLinking, _>("link", "Throttled", |o| reason(o) == "Throttled")
        .await;
    let throttled: Vec<u16> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.operation != Operation::Token && r.status == 429)
        .map(|r| r.status)
        .collect();
    assert_eq!(
        throttled,
        vec![429],
        "one request answered 429, none from the other namespace inside its Retry-After: {:?}",
        h.sim.requests()
    );
}
