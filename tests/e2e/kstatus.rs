//! What Flux (and any kstatus-based tool) concludes about both kinds at each phase: Current
//! when Ready, InProgress while reconciling or retrying, Failed when Stalled, Terminating while
//! deletion waits. The conditions are asserted on every server; kstatus' verdict itself is
//! asserted when tests/control-plane/run.sh provides the helper (`ALEXA_E2E_KSTATUS`).

use std::time::Duration;

use alexa_simulator::{Operation, ScriptedResponse, SimConfig};
use alexa_skill_operator::crd::{SkillAccountLinking, SkillEnablement};
use serde_json::json;

use crate::support::{
    Harness, SKILL, assert_kstatus, auth_code_linking, is_ready, owner, reason, sal, stalled,
};

fn throttled() -> Vec<ScriptedResponse> {
    let one = ScriptedResponse::json(
        429,
        json!({"message": "Too many requests", "code": "TOO_MANY_REQUESTS"}),
    )
    .with_header("Retry-After", "1");
    // Every in-call retry is throttled too, so a reconcile reports Throttled.
    vec![one.clone(), one.clone(), one]
}

fn invalid() -> Vec<ScriptedResponse> {
    vec![ScriptedResponse::json(
        400,
        json!({"message": "rejected by Amazon", "violations": [{"code": "INVALID", "message": "rejected by Amazon"}]}),
    )]
}

#[tokio::test]
async fn kstatus_follows_an_account_linking_through_its_phases() {
    let mut h = Harness::servers(SimConfig::default()).await;
    h.secret("oauth", &[("client-secret", "s")]).await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    // Before the operator's first status write kstatus cannot know anyone will act on the
    // object: with no conditions it says Current. (So with the operator not running, Flux
    // would call a fresh object healthy.)
    let fresh = h.get::<SkillAccountLinking>("weather").await.unwrap();
    assert!(fresh.status.is_none());
    assert_kstatus(&fresh, "Current");
    h.start_operator(&[]).await;

    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "SecretNotFound", |o| {
            reason(o) == "SecretNotFound"
        })
        .await;
    assert!(stalled(&obj));
    assert_kstatus(&obj, "Failed");

    h.sim
        .faults()
        .script(Operation::GetAccountLinking, throttled());
    h.owner_credentials().await;
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Throttled", |o| reason(o) == "Throttled")
        .await;
    assert_kstatus(&obj, "InProgress");
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    assert_kstatus(&obj, "Current");

    // Every Amazon call takes 2 s, so the update in flight can be seen.
    h.sim.faults().set_latency(Duration::from_secs(2));
    let mut changed = auth_code_linking();
    changed["scopes"] = json!(["profile"]);
    h.apply::<SkillAccountLinking>(sal("weather", changed))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Updating", |o| reason(o) == "Updating")
        .await;
    assert_kstatus(&obj, "InProgress");
    h.sim.faults().clear();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready at generation 2", |o| {
            is_ready(o) && o.metadata.generation == Some(2)
        })
        .await;
    assert_kstatus(&obj, "Current");

    h.sim
        .faults()
        .script(Operation::UpdateAccountLinking, invalid());
    let mut changed = auth_code_linking();
    changed["scopes"] = json!(["email"]);
    h.apply::<SkillAccountLinking>(sal("weather", changed))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "InvalidSpec", |o| {
            reason(o) == "InvalidSpec"
        })
        .await;
    assert!(stalled(&obj));
    assert_kstatus(&obj, "Failed");

    // Deletion blocked on Amazon's side (no credentials to delete with).
    h.delete_secret("lwa").await;
    h.delete::<SkillAccountLinking>("weather").await;
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "blocked deletion", |o| {
            o.metadata.deletion_timestamp.is_some() && reason(o) == "SecretNotFound"
        })
        .await;
    assert_kstatus(&obj, "Terminating");
    h.shutdown().await;
}

#[tokio::test]
async fn kstatus_follows_a_skill_enablement_through_its_phases() {
    let h = Harness::start().await;
    h.apply::<SkillEnablement>(owner("dev", "development"))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillEnablement, _>("dev", "SecretNotFound", |o| reason(o) == "SecretNotFound")
        .await;
    assert!(stalled(&obj));
    assert_kstatus(&obj, "Failed");

    h.sim
        .faults()
        .script(Operation::GetStageEnablement, throttled());
    h.owner_credentials().await;
    let obj = h
        .wait_for::<SkillEnablement, _>("dev", "Throttled", |o| reason(o) == "Throttled")
        .await;
    assert_kstatus(&obj, "InProgress");
    let obj = h
        .wait_for::<SkillEnablement, _>("dev", "Ready", is_ready)
        .await;
    assert_kstatus(&obj, "Current");

    // The stage is disabled behind the operator's back and Amazon refuses to enable it again.
    h.sim.faults().script(Operation::EnableStage, invalid());
    h.sim.set_stage_enabled(SKILL, "development", false);
    h.merge_patch::<SkillEnablement>(
        "dev",
        json!({"metadata": {"annotations": {"alexa.operator.dev/reconcile-requested-at": "1"}}}),
    )
    .await;
    let obj = h
        .wait_for::<SkillEnablement, _>("dev", "InvalidSpec", |o| reason(o) == "InvalidSpec")
        .await;
    assert!(stalled(&obj));
    assert_kstatus(&obj, "Failed");

    // One stage per account: the next object needs this one gone.
    h.merge_patch::<SkillEnablement>("dev", json!({"spec": {"deletionPolicy": "Orphan"}}))
        .await;
    h.delete::<SkillEnablement>("dev").await;
    h.wait_gone::<SkillEnablement>("dev").await;
    // (The spec change above may have had the stage enabled once more before the deletion.)
    h.sim.set_stage_enabled(SKILL, "development", false);

    // Observe mode finding the stage disabled is settled, not failing: Ready=False with
    // neither Reconciling nor Stalled. kstatus has no "settled but not Ready": its last rule
    // reads Ready=False as InProgress, so Flux waits on such an object until its health-check
    // timeout (the same holds for Paused).
    let mut observed = owner("observed", "development");
    observed["spec"]["managementPolicy"] = json!("Observe");
    h.apply::<SkillEnablement>(observed).await.unwrap();
    let obj = h
        .wait_for::<SkillEnablement, _>("observed", "DriftDetected", |o| {
            reason(o) == "DriftDetected"
        })
        .await;
    assert!(!is_ready(&obj) && !stalled(&obj));
    assert_kstatus(&obj, "InProgress");
    h.shutdown().await;
}
