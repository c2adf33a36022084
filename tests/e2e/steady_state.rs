//! Steady state costs Kubernetes nothing (issue 17): resyncs with nothing changed neither write
//! to the apiserver nor read Secrets; a changed Secret is read once.

use std::collections::BTreeMap;

use alexa_simulator::Operation;
use alexa_skill_operator::crd::SkillAccountLinking;

use crate::support::{Harness, auth_code_linking, is_ready, sal, skip_on_real_server};

/// The test server's requests by "verb resource" (subresources after a slash), Lease
/// renewals left out (leader election writes them on its own clock).
fn kube_requests(h: &Harness) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in h.test_server().requests() {
        let parts: Vec<&str> = r.path.split('/').collect();
        let resource = match parts.iter().position(|p| *p == "namespaces") {
            Some(i) if parts.len() > i + 2 => {
                let sub = parts
                    .get(i + 4)
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default();
                format!("{}{sub}", parts[i + 2])
            }
            _ => parts.last().copied().unwrap_or_default().to_string(),
        };
        if resource != "leases" {
            *out.entry(format!("{} {resource}", r.verb)).or_insert(0) += 1;
        }
    }
    out
}

/// Waits until the simulator has answered `more` further account-linking GETs (resyncs).
async fn resyncs(h: &Harness, more: usize) {
    let start = h.count(Operation::GetAccountLinking);
    h.wait_until(&format!("{more} resyncs"), || {
        h.count(Operation::GetAccountLinking) >= start + more
    })
    .await;
}

async fn ready_with_fast_resync() -> Harness {
    let h = Harness::with_owner(&["--resync-period", "1s"], Some("first-secret")).await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .expect("apply");
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    // The status write of the first reconcile may land after Ready is seen: one resync more.
    resyncs(&h, 1).await;
    h
}

fn writes(requests: &BTreeMap<String, usize>) -> usize {
    requests
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("get ") && !k.starts_with("list ") && !k.starts_with("watch ")
        })
        .map(|(_, n)| n)
        .sum()
}

fn secret_gets(requests: &BTreeMap<String, usize>) -> usize {
    requests.get("get secrets").copied().unwrap_or(0)
}

#[tokio::test]
async fn resyncs_with_nothing_changed_write_nothing_and_read_no_secret() {
    if skip_on_real_server("the test server's request log") {
        return;
    }
    let h = ready_with_fast_resync().await;
    h.test_server().clear_requests();
    resyncs(&h, 3).await;
    let requests = kube_requests(&h);
    assert_eq!(
        writes(&requests),
        0,
        "no write in steady state: {requests:?}"
    );
    assert_eq!(secret_gets(&requests), 0, "no Secret read: {requests:?}");
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        1,
        "only the create"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn secrets_are_listed_and_watched_once_for_all_controllers() {
    if skip_on_real_server("the test server's request log") {
        return;
    }
    // Four controllers react to Secrets (both managed kinds and both credentials kinds); they
    // share one metadata watch, so the apiserver serves one list and one watch of every Secret.
    let h = ready_with_fast_resync().await;
    let requests = kube_requests(&h);
    assert_eq!(
        requests.get("list secrets").copied(),
        Some(1),
        "{requests:?}"
    );
    assert_eq!(
        requests.get("watch secrets").copied(),
        Some(1),
        "{requests:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_changed_secret_is_read_once_then_resyncs_read_none() {
    if skip_on_real_server("the test server's request log") {
        return;
    }
    let h = ready_with_fast_resync().await;
    h.test_server().clear_requests();
    h.secret("oauth", &[("client-secret", "second-secret")])
        .await;
    h.wait_until("the rotated secret reaches Amazon", || {
        h.sim
            .account_linking(crate::support::SKILL, "development")
            .unwrap()["clientSecret"]
            == "second-secret"
    })
    .await;
    resyncs(&h, 3).await;
    let requests = kube_requests(&h);
    assert_eq!(
        secret_gets(&requests),
        1,
        "the changed Secret once, the unchanged credentials never: {requests:?}"
    );
    assert_eq!(
        requests.get("patch skillaccountlinkings/status").copied(),
        Some(2),
        "the pending write recorded before the PUT, then its result; none per resync: {requests:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn resyncs_through_shared_credentials_read_no_credentials_object_and_no_secret() {
    if skip_on_real_server("the test server's request log") {
        return;
    }
    let h = Harness::with_owner(&["--resync-period", "1s"], Some("first-secret")).await;
    let team = serde_json::json!({"apiVersion": "alexa.operator.dev/v1alpha1",
        "kind": "AlexaCredentials", "metadata": {"name": "team"},
        "spec": {"secretRef": {"name": "lwa"}}});
    h.apply::<alexa_skill_operator::crd::credentials::AlexaCredentials>(team)
        .await
        .expect("apply credentials");
    let linking = crate::credentials::with_ref(
        sal("weather", auth_code_linking()),
        "AlexaCredentials",
        "team",
    );
    h.apply::<SkillAccountLinking>(linking)
        .await
        .expect("apply");
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    // The credentials object counts its user (debounced by 1 s) before the window starts.
    h.wait_for::<alexa_skill_operator::crd::credentials::AlexaCredentials, _>(
        "team",
        "Ready and in use once",
        |c| {
            is_ready(c)
                && c.status
                    .as_ref()
                    .and_then(|s| s.in_use.as_ref())
                    .map(|u| u.count)
                    == Some(1)
        },
    )
    .await;
    resyncs(&h, 2).await;
    h.test_server().clear_requests();
    resyncs(&h, 3).await;
    let requests = kube_requests(&h);
    assert_eq!(
        requests.get("get alexacredentials").copied().unwrap_or(0),
        0,
        "the credentials object comes from the watch cache: {requests:?}"
    );
    assert_eq!(secret_gets(&requests), 0, "no Secret read: {requests:?}");
    assert_eq!(
        writes(&requests),
        0,
        "no write in steady state: {requests:?}"
    );
    h.shutdown().await;
}
