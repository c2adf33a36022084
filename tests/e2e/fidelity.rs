//! Amazon as its pages document it (issue 14): request-only fields are tracked, not compared;
//! a write Amazon accepts but does not apply ends in NotConverging after 3 PUTs.

use alexa_simulator::{Operation, ScriptedResponse};
use alexa_skill_operator::crd::SkillAccountLinking;
use serde_json::{Value, json};

use crate::support::{Harness, SKILL, auth_code_linking, is_ready, message, reason, sal, settle};

async fn harness() -> Harness {
    Harness::with_owner(&[], Some("first-secret")).await
}

/// Amazon's GET answer as the seed documents it: the readable fields only (no clientSecret,
/// no skipOnEnablement), with `clientId` as given.
fn seed_literal_get(client_id: &str, etag: &str) -> ScriptedResponse {
    let mut body: Value = auth_code_linking();
    let map = body.as_object_mut().unwrap();
    map.remove("clientSecretRef");
    map.insert("clientId".into(), json!(client_id));
    map.insert(
        "redirectUrls".into(),
        json!(["https://pitangui.amazon.com/api/skill/link/M2AAAAAAAAAAAA"]),
    );
    ScriptedResponse::json(200, body).with_header("ETag", etag)
}

#[tokio::test]
async fn skip_on_enablement_converges_with_one_put_and_resyncs_stay_quiet() {
    let h = harness().await;
    let mut spec = auth_code_linking();
    spec["skipOnEnablement"] = json!(true);
    h.apply::<SkillAccountLinking>(sal("weather", spec))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    // GET (404) + PUT + read-back GET.
    assert_eq!(h.count(Operation::UpdateAccountLinking), 1);
    assert_eq!(h.count(Operation::GetAccountLinking), 2);
    let stored = h.sim.account_linking(SKILL, "development").unwrap();
    assert_eq!(stored["skipOnEnablement"], true, "the write carried it");
    // Resyncs against Amazon as documented: its GET never returns skipOnEnablement.
    for (i, etag) in ["e-1", "e-2", "e-3"].iter().enumerate() {
        h.sim.faults().script(
            Operation::GetAccountLinking,
            vec![seed_literal_get("alexa-skill", etag)],
        );
        h.request_reconcile("weather", &format!("resync-{i}")).await;
        h.wait_until("the resync's GET", || {
            h.count(Operation::GetAccountLinking) == 3 + i
        })
        .await;
        settle().await;
    }
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        1,
        "no rewrite for a field Amazon never returns: {}",
        message(&obj)
    );
    assert!(obj.status.unwrap().request_only_hash.is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn changing_skip_on_enablement_is_written_once() {
    let h = harness().await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    assert_eq!(h.count(Operation::UpdateAccountLinking), 1);
    let mut spec = auth_code_linking();
    spec["skipOnEnablement"] = json!(true);
    h.apply::<SkillAccountLinking>(sal("weather", spec))
        .await
        .unwrap();
    h.wait_until("the second PUT", || {
        h.count(Operation::UpdateAccountLinking) == 2
    })
    .await;
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    settle().await;
    assert_eq!(h.count(Operation::UpdateAccountLinking), 2);
    assert_eq!(
        h.sim.account_linking(SKILL, "development").unwrap()["skipOnEnablement"],
        true
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_write_amazon_ignores_stops_after_three_puts_as_not_converging() {
    let h = harness().await;
    // Amazon has clientId "console-id" and accepts every write (204) without applying it.
    let mut on_amazon = auth_code_linking();
    on_amazon.as_object_mut().unwrap().remove("clientSecretRef");
    on_amazon["clientId"] = json!("console-id");
    h.sim.set_account_linking(SKILL, "development", on_amazon);
    let accepted: Vec<ScriptedResponse> = (0..5).map(|_| ScriptedResponse::status(204)).collect();
    h.sim
        .faults()
        .script(Operation::UpdateAccountLinking, accepted);
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "NotConverging", |o| {
            reason(o) == "NotConverging"
        })
        .await;
    settle().await;
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        3,
        "at most 3 writes"
    );
    let text = message(&obj);
    assert!(
        text.contains(r#"clientId: spec "alexa-skill", Amazon "console-id""#),
        "{text}"
    );
    assert!(!text.contains("first-secret"), "{text}");
    assert!(crate::support::stalled(&obj));
    h.wait_event("weather", "NotConverging", |_| true).await;
    let metrics = h.operator.as_ref().unwrap().metrics.render();
    assert!(
        metrics.contains(r#"not_converging_total{kind="SkillAccountLinking"} 1"#),
        "counted once when it stopped"
    );
    // A resync reads again but does not write.
    h.request_reconcile("weather", "look-again").await;
    h.wait_until("the resync's GET", || {
        h.count(Operation::GetAccountLinking) >= 7
    })
    .await;
    settle().await;
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        4,
        "the annotation allows one more attempt"
    );
    h.shutdown().await;
}
