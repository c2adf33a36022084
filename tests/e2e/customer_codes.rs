//! Customer mode's single-use authorization codes and endpoints (issue 15 items 4 and 5): a code
//! is saved as Pending before it is sent, sent at most once, an unknown outcome is settled by
//! reading Amazon's status, a late link is polled, errors before sending do not spend it; and
//! customer calls never go to a host named in status.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alexa_simulator::{Operation, Region, ScriptedResponse, SimConfig, sandbox};
// An earlier version's plain digest: the operator upgrades it to its keyed form.
use alexa_skill_operator::controller::secrets::hash_tag as code_digest;
use alexa_skill_operator::crd::SkillEnablement;
use alexa_skill_operator::crd::enablement::AuthCodeState;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::enablement::{customer, customer_secrets};
use crate::support::{Harness, SKILL, is_ready, message, reason, settle, stalled};

const NAME: &str = "na-customer";

fn na_customer() -> Value {
    customer(NAME, "na-lwa", "na-code")
}

fn code_state(obj: &SkillEnablement) -> Option<AuthCodeState> {
    obj.status.as_ref().and_then(|s| s.auth_code_state)
}

fn endpoint(obj: &SkillEnablement) -> Option<String> {
    obj.status.as_ref().and_then(|s| s.endpoint.clone())
}

async fn patch_status(h: &Harness, status: Value) {
    let api: Api<SkillEnablement> = Api::namespaced(h.client.clone(), &h.ns);
    api.patch_status(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .expect("patch status");
}

/// Forces one reconcile (what a resync does) with the reconcile-requested-at annotation and
/// waits until the operator acknowledged it.
async fn reconcile_now(h: &Harness, value: &str) -> SkillEnablement {
    h.merge_patch::<SkillEnablement>(
        NAME,
        json!({"metadata": {"annotations": {"alexa.operator.dev/reconcile-requested-at": value}}}),
    )
    .await;
    h.wait_for::<SkillEnablement, _>(NAME, "reconciled on request", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some(value)
    })
    .await
}

/// Amazon links the accounts, then the answer is lost: the operator reads the status and is
/// Ready without sending the code again.
#[tokio::test]
async fn an_answer_lost_after_linking_is_read_back_not_resent() {
    let h = Harness::start().await;
    customer_secrets(&h, Region::Na, &sandbox::partner_code(Region::Na, 1)).await;
    h.sim
        .faults()
        .drop_after_applying(Operation::CustomerEnable, 1);
    h.apply::<SkillEnablement>(na_customer()).await.unwrap();
    let obj = h
        .wait_for::<SkillEnablement, _>(NAME, "Ready", is_ready)
        .await;
    assert_eq!(code_state(&obj), Some(AuthCodeState::Spent));
    assert_eq!(
        h.count(Operation::CustomerEnable),
        1,
        "the code went out once"
    );
    let obj = reconcile_now(&h, "1").await;
    assert!(is_ready(&obj));
    assert_eq!(h.count(Operation::CustomerEnable), 1);
    h.shutdown().await;
}

/// A customer object whose status says its code went out and the answer never came (an
/// operator stopped after sending): the state the next operator has to settle.
async fn left_pending(h: &Harness) {
    let code = sandbox::partner_code(Region::Na, 1);
    customer_secrets(h, Region::Na, &code).await;
    h.apply::<SkillEnablement>(na_customer()).await.unwrap();
    patch_status(
        h,
        json!({"authCodeHash": code_digest(&code), "authCodeState": "Pending"}),
    )
    .await;
}

/// The operator stopped after sending (status says Pending): the next one reads Amazon's
/// status instead of sending. Not linked → the code counts as spent (0 POSTs).
#[tokio::test]
async fn a_pending_code_not_linked_on_amazon_is_spent_not_resent() {
    let mut h = Harness::servers(SimConfig::default()).await;
    left_pending(&h).await;
    h.start_operator(&[]).await;
    let obj = h
        .wait_for::<SkillEnablement, _>(NAME, "AuthCodeInvalid", |o| reason(o) == "AuthCodeInvalid")
        .await;
    assert!(message(&obj).contains("unknown"), "{}", message(&obj));
    assert!(message(&obj).contains("na-code"), "{}", message(&obj));
    assert!(stalled(&obj));
    assert_eq!(code_state(&obj), Some(AuthCodeState::Spent));
    let obj = reconcile_now(&h, "1").await;
    assert_eq!(reason(&obj), "AuthCodeInvalid");
    assert!(h.count(Operation::CustomerStatus) >= 2, "it did look");
    assert_eq!(h.count(Operation::CustomerEnable), 0, "never resent");

    // A new code is sent (once) and links.
    h.secret(
        "na-code",
        &[("auth-code", &sandbox::partner_code(Region::Na, 2))],
    )
    .await;
    h.wait_for::<SkillEnablement, _>(NAME, "Ready", is_ready)
        .await;
    assert_eq!(h.count(Operation::CustomerEnable), 1);
    h.shutdown().await;
}

/// The same, with Amazon showing the accounts linked: Ready, 0 POSTs.
#[tokio::test]
async fn a_pending_code_linked_on_amazon_is_ready_without_a_post() {
    let mut h = Harness::servers(SimConfig::default()).await;
    left_pending(&h).await;
    let linked = json!({
        "skill": {"id": SKILL, "stage": "live"},
        "user": {"id": "amzn1.ask.account.customer"},
        "accountLink": {"status": "LINKED"},
        "status": "ENABLED"
    });
    h.sim.faults().script(
        Operation::CustomerStatus,
        vec![ScriptedResponse::json(200, linked)],
    );
    h.start_operator(&[]).await;
    let obj = h
        .wait_for::<SkillEnablement, _>(NAME, "Ready", is_ready)
        .await;
    assert_eq!(code_state(&obj), Some(AuthCodeState::Spent));
    assert_eq!(h.count(Operation::CustomerEnable), 0);
    h.shutdown().await;
}

/// Amazon answers 2xx but links late: Creating while polling, then Ready; one POST.
#[tokio::test]
async fn a_link_completing_late_is_polled_until_ready() {
    let h = Harness::start().await;
    h.sim.faults().set_link_after_reads(1);
    customer_secrets(&h, Region::Na, &sandbox::partner_code(Region::Na, 1)).await;
    h.apply::<SkillEnablement>(na_customer()).await.unwrap();
    let obj = h
        .wait_for::<SkillEnablement, _>(NAME, "Creating, code accepted", |o| {
            reason(o) == "Creating" && code_state(o) == Some(AuthCodeState::Accepted)
        })
        .await;
    assert!(message(&obj).contains("NOT_LINKED"), "{}", message(&obj));
    let obj = h
        .wait_for::<SkillEnablement, _>(NAME, "Ready", is_ready)
        .await;
    assert_eq!(code_state(&obj), Some(AuthCodeState::Spent));
    assert_eq!(h.count(Operation::CustomerEnable), 1, "never resent");
    assert_eq!(
        h.count(Operation::CustomerStatus),
        3,
        "the first read, one NOT_LINKED poll, the LINKED poll"
    );
    h.shutdown().await;
}

/// Endpoint discovery fails (unreadable answer) before the code is sent: the code stays
/// unspent and is sent on the next attempt, which links.
#[tokio::test]
async fn a_discovery_error_before_sending_leaves_the_code_unspent() {
    let h = Harness::start().await;
    let discovery = |body| ScriptedResponse::json(200, body);
    // First discovery (the status read) is fine; the enable at the remembered NA host answers
    // "wrong region", and the discovery after it is unreadable.
    h.sim.faults().script(
        Operation::DiscoverEndpoints,
        vec![
            discovery(json!({"endpoints": ["api.amazonalexa.com"]})),
            discovery(json!({"unexpected": true})),
        ],
    );
    h.sim.faults().script(
        Operation::CustomerEnable,
        vec![ScriptedResponse::json(
            404,
            json!({"message": "wrong region"}),
        )],
    );
    customer_secrets(&h, Region::Na, &sandbox::partner_code(Region::Na, 1)).await;
    h.apply::<SkillEnablement>(na_customer()).await.unwrap();
    let obj = h
        .wait_for::<SkillEnablement, _>(NAME, "Ready", is_ready)
        .await;
    assert_eq!(code_state(&obj), Some(AuthCodeState::Spent));
    let enables: Vec<u16> = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.operation == Operation::CustomerEnable)
        .map(|r| r.status)
        .collect();
    assert_eq!(enables, vec![404, 201]);
    assert_eq!(h.count(Operation::DiscoverEndpoints), 2);
    h.shutdown().await;
}

/// The Pending record reaches the API server before the code is sent: it is visible while the
/// (slow) POST has not been answered.
#[tokio::test]
async fn the_code_is_saved_as_pending_before_it_is_sent() {
    let h = Harness::start().await;
    customer_secrets(&h, Region::Na, &sandbox::partner_code(Region::Na, 1)).await;
    h.sim.faults().set_latency(Duration::from_secs(2));
    h.apply::<SkillEnablement>(na_customer()).await.unwrap();
    let obj = h
        .wait_for::<SkillEnablement, _>(NAME, "Pending", |o| {
            code_state(o) == Some(AuthCodeState::Pending)
        })
        .await;
    assert_eq!(reason(&obj), "Creating");
    assert_eq!(h.count(Operation::CustomerEnable), 0, "not answered yet");
    h.sim.faults().set_latency(Duration::ZERO);
    h.wait_for::<SkillEnablement, _>(NAME, "Ready", is_ready)
        .await;
    assert_eq!(h.count(Operation::CustomerEnable), 1);
    h.shutdown().await;
}

/// A listener that counts connections and never answers.
async fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (addr, hits)
}

/// Issue 15 item 5: whoever may patch `skillenablements/status` cannot send the customer's
/// token or code elsewhere: a status naming another host (bare or as a URL) is ignored and
/// replaced, and the object stays Ready.
#[tokio::test]
async fn an_endpoint_patched_into_status_is_never_called() {
    let h = Harness::start().await;
    customer_secrets(&h, Region::Na, &sandbox::partner_code(Region::Na, 1)).await;
    h.apply::<SkillEnablement>(na_customer()).await.unwrap();
    h.wait_for::<SkillEnablement, _>(NAME, "Ready", is_ready)
        .await;
    let (addr, hits) = trap().await;
    for (i, foreign) in [format!("http://{addr}"), addr.clone()].iter().enumerate() {
        patch_status(&h, json!({"endpoint": foreign})).await;
        let obj = reconcile_now(&h, &format!("patched-{i}")).await;
        assert!(is_ready(&obj), "{}", message(&obj));
        assert_eq!(
            endpoint(&obj).as_deref(),
            Some(Region::Na.host()),
            "replaced"
        );
    }
    // A new code with a foreign endpoint in status: it goes to Amazon's host, never the trap.
    h.sim
        .remove_customer_enablement(sandbox::customer(Region::Na), SKILL);
    patch_status(&h, json!({"endpoint": format!("http://{addr}")})).await;
    h.secret(
        "na-code",
        &[("auth-code", &sandbox::partner_code(Region::Na, 2))],
    )
    .await;
    settle().await;
    let obj = reconcile_now(&h, "new-code").await;
    let obj = if is_ready(&obj) {
        obj
    } else {
        h.wait_for::<SkillEnablement, _>(NAME, "Ready", is_ready)
            .await
    };
    assert_eq!(endpoint(&obj).as_deref(), Some(Region::Na.host()));
    assert_eq!(h.count(Operation::CustomerEnable), 2);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the trap");
    h.shutdown().await;
}
