//! SkillAccountLinking end to end.

use std::time::Duration;

use alexa_simulator::{Operation, ScriptedResponse};
use alexa_skill_operator::controller::account_linking::request_hash;
use alexa_skill_operator::controller::context::FIELD_MANAGER;
use alexa_skill_operator::controller::secrets::hash_tag;
use alexa_skill_operator::crd::{SkillAccountLinking, SkillAccountLinkingStatus};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube_test_server::Fault;
use serde_json::json;

use crate::support::{
    Harness, SKILL, auth_code_linking, is_ready, message, reason, sal, settle, skip_on_real_server,
    stalled,
};

async fn ready_harness() -> Harness {
    let h = Harness::with_owner(&[], Some("first-secret")).await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .expect("apply");
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    h
}

/// Writes `status` to object "weather" as the operator's field manager: the state an earlier
/// operator (version) left behind.
async fn write_status(h: &Harness, status: &SkillAccountLinkingStatus) {
    let api: Api<SkillAccountLinking> = Api::namespaced(h.client.clone(), &h.ns);
    api.patch_status(
        "weather",
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(json!({
            "apiVersion": "alexa.operator.dev/v1alpha1",
            "kind": "SkillAccountLinking",
            "status": status,
        })),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn create_becomes_ready_with_redirect_urls_and_the_secret_on_amazon() {
    let h = ready_harness().await;
    let obj = h.get::<SkillAccountLinking>("weather").await.unwrap();
    let status = obj.status.unwrap();
    assert!(
        !status.redirect_urls.is_empty(),
        "redirect URLs from Amazon are surfaced"
    );
    assert!(
        status
            .redirect_urls
            .iter()
            .all(|u| u.contains("/api/skill/link/")),
        "{:?}",
        status.redirect_urls
    );
    assert!(status.etag.is_some());
    assert_eq!(
        status.client_secret_hash,
        Some(h.digest("first-secret").await),
        "the keyed digest, never a plain one"
    );
    let stored = h
        .sim
        .account_linking(SKILL, "development")
        .expect("configured on Amazon");
    assert_eq!(stored["clientSecret"], "first-secret");
    assert_eq!(stored["clientId"], "alexa-skill");
    // GET (404) + PUT + read-back GET: nothing more.
    assert_eq!(h.count(Operation::UpdateAccountLinking), 1);
    assert_eq!(h.count(Operation::GetAccountLinking), 2);
    // The client secret reaches Amazon but never the object, its status or events.
    let visible = h.visible_objects().await;
    assert!(
        !serde_json::to_string(&visible)
            .unwrap()
            .contains("first-secret")
    );
    h.wait_event("weather", "Created", |_| true).await;
    h.shutdown().await;
}

#[tokio::test]
async fn spec_change_sends_one_put_with_the_current_etag() {
    let h = ready_harness().await;
    let etag = h.sim.etag(SKILL, "development").unwrap();
    h.sim.clear_requests();
    let mut changed = auth_code_linking();
    changed["scopes"] = json!(["profile", "email", "address"]);
    h.apply::<SkillAccountLinking>(sal("weather", changed))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready at generation 2", |o| {
            is_ready(o) && o.metadata.generation == Some(2)
        })
        .await;
    let puts: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.operation == Operation::UpdateAccountLinking)
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].if_match.as_deref(), Some(etag.as_str()));
    assert_eq!(
        h.sim.account_linking(SKILL, "development").unwrap()["scopes"],
        json!(["profile", "email", "address"])
    );
    assert_eq!(obj.status.unwrap().etag, h.sim.etag(SKILL, "development"));
    h.wait_event("weather", "Updated", |n| n.contains("scopes"))
        .await;
    h.shutdown().await;
}

#[tokio::test]
async fn steady_state_resync_costs_one_get_and_no_put() {
    // Counted between known reconciles, not in a wall-clock window: each resync is forced
    // (reconcile-requested-at runs what a resync runs) and awaited through its acknowledgement in
    // status, written after the reconcile's calls; the 1 h resync period adds none of its own.
    let h = ready_harness().await;
    let (gets, puts) = (
        h.count(Operation::GetAccountLinking),
        h.count(Operation::UpdateAccountLinking),
    );
    for i in 1..=3 {
        let value = format!("resync-{i}");
        h.request_reconcile("weather", &value).await;
        h.wait_for::<SkillAccountLinking, _>("weather", "resync acknowledged", |o| {
            o.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some(value.as_str())
        })
        .await;
        assert_eq!(
            h.count(Operation::GetAccountLinking),
            gets + i,
            "one GET per resync"
        );
    }
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        puts,
        "no PUT in steady state"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn out_of_band_change_is_repaired_and_reported() {
    let h = Harness::with_owner(&["--resync-period", "1s"], Some("s")).await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    let mut tampered = h.sim.account_linking(SKILL, "development").unwrap();
    tampered["clientId"] = json!("someone-else");
    h.sim.set_account_linking(SKILL, "development", tampered);
    h.wait_until("drift is repaired", || {
        h.sim.account_linking(SKILL, "development").unwrap()["clientId"] == "alexa-skill"
    })
    .await;
    let note = h
        .wait_event("weather", "DriftRepaired", |n| n.contains("clientId"))
        .await;
    assert!(
        !note.contains("someone-else"),
        "events name fields, never values: {note}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn stale_etag_is_reread_and_retried() {
    let h = ready_harness().await;
    h.sim.faults().script(
        Operation::UpdateAccountLinking,
        vec![ScriptedResponse::json(
            412,
            json!({"message": "precondition failed", "code": "PRECONDITION_FAILED"}),
        )],
    );
    h.sim.clear_requests();
    let mut changed = auth_code_linking();
    changed["clientId"] = json!("alexa-skill-2");
    h.apply::<SkillAccountLinking>(sal("weather", changed))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready at generation 2", |o| {
        is_ready(o) && o.metadata.generation == Some(2)
    })
    .await;
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        2,
        "412, then one successful PUT"
    );
    assert_eq!(
        h.sim.account_linking(SKILL, "development").unwrap()["clientId"],
        "alexa-skill-2"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn rotated_client_secret_is_reapplied_without_waiting_for_resync() {
    let h = ready_harness().await;
    h.sim.clear_requests();
    h.secret("oauth", &[("client-secret", "second-secret")])
        .await;
    h.wait_until("rotation is applied", || {
        h.sim.account_linking(SKILL, "development").unwrap()["clientSecret"] == "second-secret"
    })
    .await;
    let want = h.digest("second-secret").await;
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready with new hash", |o| {
            is_ready(o)
                && o.status.as_ref().and_then(|s| s.client_secret_hash.clone())
                    == Some(want.clone())
        })
        .await;
    assert!(is_ready(&obj));
    assert_eq!(h.count(Operation::UpdateAccountLinking), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn invalid_request_stalls_with_amazons_message_and_is_not_retried_until_the_spec_changes() {
    let h = Harness::with_owner(&["--resync-period", "1s"], Some("s")).await;
    h.sim.faults().script(
        Operation::UpdateAccountLinking,
        vec![ScriptedResponse::json(400, json!({"message": "authorizationUrl must use HTTPS", "violations": [{"code": "INVALID_URL", "message": "authorizationUrl must use HTTPS"}]}))],
    );
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Stalled", |o| reason(o) == "InvalidSpec")
        .await;
    assert!(
        message(&obj).contains("authorizationUrl must use HTTPS"),
        "{}",
        message(&obj)
    );
    assert!(stalled(&obj), "Stalled=True");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        1,
        "the rejected request is not resent"
    );
    let mut changed = auth_code_linking();
    changed["authorizationUrl"] = json!("https://auth.example.com/v2/authorize");
    h.apply::<SkillAccountLinking>(sal("weather", changed))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    assert_eq!(h.count(Operation::UpdateAccountLinking), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn throttling_honours_retry_after_then_converges() {
    let h = Harness::with_owner(&[], Some("s")).await;
    let throttled = ScriptedResponse::json(
        429,
        json!({"message": "Too many requests", "code": "TOO_MANY_REQUESTS"}),
    )
    .with_header("Retry-After", "1");
    // Every in-call retry is throttled too, so the reconcile reports Throttled and requeues.
    h.sim.faults().script(
        Operation::GetAccountLinking,
        vec![throttled.clone(), throttled.clone(), throttled],
    );
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    let throttled = h
        .wait_for::<SkillAccountLinking, _>("weather", "Throttled", |o| reason(o) == "Throttled")
        .await;
    assert!(
        message(&throttled).contains("TOO_MANY_REQUESTS")
            && message(&throttled).contains("Too many requests"),
        "the condition carries Amazon's code and message: {}",
        message(&throttled)
    );
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    let gets: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.operation == Operation::GetAccountLinking)
        .collect();
    for pair in gets.windows(2).take(3) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(950),
            "a GET came {gap:?} after a 429 with Retry-After: 1"
        );
    }
    assert_eq!(
        gets.len(),
        5,
        "3 throttled GETs, then GET 404 + read-back GET: {gets:?}"
    );
    h.shutdown().await;
}

/// Every API request fails for 3 s. The operator retries with back-off (the harness runs
/// `--backoff-base 200ms --backoff-max 2s`; two in-call retries, full jitter), so the storm
/// sees about 15 attempts on average, not the hundreds a retry loop without back-off sends (the
/// same test with a 1 ms back-off counts several hundred); then the object converges.
#[tokio::test]
async fn server_error_storm_converges() {
    let h = Harness::with_owner(&[], Some("s")).await;
    h.sim.faults().set_error_rate(1.0);
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.sim.faults().set_error_rate(0.0);
    let failed = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.operation != Operation::Token && r.status >= 500)
        .count();
    assert!(
        failed >= 3,
        "the operator retried during the storm: {failed}"
    );
    assert!(
        failed <= 40,
        "{failed} failing requests in a 3 s storm: more than the back-off allows"
    );
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    assert!(h.sim.account_linking(SKILL, "development").is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn missing_secret_stalls_then_recovers_when_created() {
    let h = Harness::start().await;
    h.secret("oauth", &[("client-secret", "s")]).await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "SecretNotFound", |o| {
            reason(o) == "SecretNotFound"
        })
        .await;
    assert!(
        message(&obj).contains(&format!("{}/lwa", h.ns)),
        "{}",
        message(&obj)
    );
    assert_eq!(
        h.sim.requests().len(),
        0,
        "no call to Amazon without credentials"
    );
    h.owner_credentials().await;
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    h.shutdown().await;
}

#[tokio::test]
async fn delete_removes_the_account_linking_and_orphan_leaves_it() {
    let h = ready_harness().await;
    h.delete::<SkillAccountLinking>("weather").await;
    h.wait_gone::<SkillAccountLinking>("weather").await;
    assert_eq!(h.count(Operation::DeleteAccountLinking), 1);
    assert!(h.sim.account_linking(SKILL, "development").is_none());

    let mut orphan = sal("weather-orphan", auth_code_linking());
    orphan["spec"]["deletionPolicy"] = json!("Orphan");
    h.apply::<SkillAccountLinking>(orphan).await.unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather-orphan", "Ready", is_ready)
        .await;
    h.delete::<SkillAccountLinking>("weather-orphan").await;
    h.wait_gone::<SkillAccountLinking>("weather-orphan").await;
    assert_eq!(
        h.count(Operation::DeleteAccountLinking),
        1,
        "Orphan sends no DELETE"
    );
    assert!(h.sim.account_linking(SKILL, "development").is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn paused_objects_make_no_calls_and_force_reconcile_is_acknowledged() {
    let h = ready_harness().await;
    h.merge_patch::<SkillAccountLinking>(
        "weather",
        json!({"metadata": {"annotations": {"alexa.operator.dev/paused": "true"}}}),
    )
    .await;
    h.wait_for::<SkillAccountLinking, _>("weather", "Paused", |o| reason(o) == "Paused")
        .await;
    h.sim.clear_requests();
    let mut changed = auth_code_linking();
    changed["clientId"] = json!("changed-while-paused");
    h.apply::<SkillAccountLinking>(sal("weather", changed))
        .await
        .unwrap();
    settle().await;
    assert_eq!(h.sim.requests().len(), 0, "no calls while paused");
    h.merge_patch::<SkillAccountLinking>(
        "weather",
        json!({"metadata": {"annotations": {"alexa.operator.dev/paused": null}}}),
    )
    .await;
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    assert_eq!(
        h.sim.account_linking(SKILL, "development").unwrap()["clientId"],
        "changed-while-paused"
    );

    h.sim.clear_requests();
    h.merge_patch::<SkillAccountLinking>("weather", json!({"metadata": {"annotations": {"alexa.operator.dev/reconcile-requested-at": "now-1"}}})).await;
    h.wait_for::<SkillAccountLinking, _>("weather", "acknowledged", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("now-1")
    })
    .await;
    assert_eq!(
        h.count(Operation::GetAccountLinking),
        1,
        "a forced reconcile reads Amazon once"
    );
    assert_eq!(h.count(Operation::UpdateAccountLinking), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn observe_mode_reports_drift_without_writing() {
    let h = Harness::with_owner(&[], None).await;
    h.sim.set_account_linking(
        SKILL,
        "development",
        json!({"type": "IMPLICIT", "authorizationUrl": "https://auth.example.com/authorize", "clientId": "console-value", "scopes": ["profile"]}),
    );
    let mut obj = sal(
        "observed",
        json!({"type": "IMPLICIT", "authorizationUrl": "https://auth.example.com/authorize", "clientId": "git-value", "scopes": ["profile"]}),
    );
    obj["spec"]["managementPolicy"] = json!("Observe");
    h.apply::<SkillAccountLinking>(obj).await.unwrap();
    let o = h
        .wait_for::<SkillAccountLinking, _>("observed", "DriftDetected", |o| {
            reason(o) == "DriftDetected"
        })
        .await;
    assert_eq!(
        o.status.unwrap().drift,
        vec!["spec.accountLinking.clientId".to_string()]
    );
    assert_eq!(h.count(Operation::UpdateAccountLinking), 0);
    h.delete::<SkillAccountLinking>("observed").await;
    h.wait_gone::<SkillAccountLinking>("observed").await;
    assert_eq!(
        h.count(Operation::DeleteAccountLinking),
        0,
        "Observe never deletes"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn observe_mode_with_a_client_secret_is_ready_when_everything_readable_matches() {
    let h = Harness::with_owner(&[], Some("console-secret")).await;
    let mut on_amazon = auth_code_linking();
    on_amazon.as_object_mut().unwrap().remove("clientSecretRef");
    on_amazon["clientSecret"] = json!("console-secret");
    h.sim.set_account_linking(SKILL, "development", on_amazon);
    let mut obj = sal("observed", auth_code_linking());
    obj["spec"]["managementPolicy"] = json!("Observe");
    h.apply::<SkillAccountLinking>(obj).await.unwrap();
    let o = h
        .wait_for::<SkillAccountLinking, _>("observed", "Ready", is_ready)
        .await;
    assert!(
        message(&o).contains("cannot compare clientSecret"),
        "{}",
        message(&o)
    );
    assert!(o.status.unwrap().drift.is_empty());
    assert_eq!(h.count(Operation::UpdateAccountLinking), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn schema_and_cel_rules_reject_invalid_objects() {
    let h = Harness::servers(Default::default()).await;
    let mut missing = auth_code_linking();
    missing.as_object_mut().unwrap().remove("accessTokenUrl");
    let err = h
        .apply::<SkillAccountLinking>(sal("bad", missing))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("accessTokenUrl"), "{err}");

    let mut too_many = auth_code_linking();
    too_many["scopes"] = json!((0..16).map(|i| format!("s{i}")).collect::<Vec<_>>());
    assert!(
        h.apply::<SkillAccountLinking>(sal("bad", too_many))
            .await
            .is_err()
    );

    let mut bad_enum = auth_code_linking();
    bad_enum["type"] = json!("PASSWORD");
    assert!(
        h.apply::<SkillAccountLinking>(sal("bad", bad_enum))
            .await
            .is_err()
    );

    h.apply::<SkillAccountLinking>(sal("good", auth_code_linking()))
        .await
        .unwrap();
    let mut moved = sal("good", auth_code_linking());
    moved["spec"]["skillId"] = json!("amzn1.ask.skill.other");
    let err = h.apply::<SkillAccountLinking>(moved).await.unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    h.shutdown().await;
}

#[tokio::test]
async fn deletion_waits_for_amazon_and_says_how_to_let_go() {
    let h = ready_harness().await;
    h.delete_secret("lwa").await;
    h.delete::<SkillAccountLinking>("weather").await;
    // The Secret's deletion alone already reads SecretNotFound: wait for the status written
    // after the object's deletion was seen.
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "blocked deletion", |o| {
            o.metadata.deletion_timestamp.is_some() && message(o).contains("deletionPolicy")
        })
        .await;
    assert_eq!(reason(&obj), "SecretNotFound");
    assert!(
        message(&obj).contains("deletionPolicy: Orphan"),
        "{}",
        message(&obj)
    );
    assert!(h.sim.account_linking(SKILL, "development").is_some());
    h.merge_patch::<SkillAccountLinking>("weather", json!({"spec": {"deletionPolicy": "Orphan"}}))
        .await;
    h.wait_gone::<SkillAccountLinking>("weather").await;
    assert!(
        h.sim.account_linking(SKILL, "development").is_some(),
        "Orphan leaves Amazon alone"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn transient_failures_while_deleting_read_as_deleting_and_retry() {
    let h = ready_harness().await;
    // Amazon keeps failing until the test has seen the object report Deleting, so the
    // assertion does not race the operator's retries; then the outage ends.
    let unavailable = ScriptedResponse::json(503, json!({"message": "try later"}));
    h.sim
        .faults()
        .script(Operation::DeleteAccountLinking, vec![unavailable; 1000]);
    h.delete::<SkillAccountLinking>("weather").await;
    h.wait_for::<SkillAccountLinking, _>("weather", "Deleting", |o| reason(o) == "Deleting")
        .await;
    let failed = h.sim.count(Operation::DeleteAccountLinking);
    assert!(failed >= 1, "a DELETE was attempted");
    h.sim.faults().clear();
    h.wait_gone::<SkillAccountLinking>("weather").await;
    assert!(h.sim.account_linking(SKILL, "development").is_none());
    assert!(
        h.sim.count(Operation::DeleteAccountLinking) > failed,
        "the DELETE was retried after the outage"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_secret_update_that_landed_before_the_status_write_failed_is_not_sent_again() {
    if skip_on_real_server("fault injection into the Kubernetes API") {
        return;
    }
    let h = ready_harness().await;
    h.sim.clear_requests();
    // The write that records the new secret (the second status write of the rotation; the
    // first records the update as pending) fails, as if the operator died right after the PUT.
    h.test_server().inject_fault(Fault {
        method: Some(http::Method::PATCH),
        path_contains: Some("skillaccountlinkings/weather/status".into()),
        nth: 2,
        status: 500,
    });
    h.secret("oauth", &[("client-secret", "second-secret")])
        .await;
    let want = h.digest("second-secret").await;
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready with the new secret", |o| {
            is_ready(o)
                && o.status.as_ref().and_then(|s| s.client_secret_hash.clone())
                    == Some(want.clone())
        })
        .await;
    h.wait_event("weather", "Confirmed", |note| {
        note.contains("not sending it again")
    })
    .await;
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        1,
        "the secret is sent once"
    );
    assert_eq!(
        h.sim.account_linking(SKILL, "development").unwrap()["clientSecret"],
        "second-secret"
    );
    let status = obj.status.unwrap();
    assert_eq!(
        (status.pending_request_hash, status.pending_base_etag),
        (None, None),
        "the record is cleared"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_pending_update_that_never_reached_amazon_is_sent_after_a_restart() {
    let mut h = ready_harness().await;
    h.stop_operator().await;
    h.secret("oauth", &[("client-secret", "second-secret")])
        .await;
    // What a run that died just before its PUT left behind: the record, and Amazon unchanged.
    let obj = h.get::<SkillAccountLinking>("weather").await.unwrap();
    let etag = obj.status.as_ref().and_then(|s| s.etag.clone());
    assert!(etag.is_some(), "the simulator returns ETags");
    let mut status = obj.status.clone().unwrap();
    // In the plain form earlier versions recorded (upgraded to the keyed one on the next run).
    status.pending_request_hash = Some(request_hash(
        &obj.spec.account_linking,
        Some(&hash_tag("second-secret")),
    ));
    status.pending_base_etag = etag;
    write_status(&h, &status).await;
    h.sim.clear_requests();
    h.start_operator(&[]).await;
    h.wait_until("the new secret reaches Amazon", || {
        h.sim.account_linking(SKILL, "development").unwrap()["clientSecret"] == "second-secret"
    })
    .await;
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready without the record", |o| {
            is_ready(o)
                && o.status
                    .as_ref()
                    .is_some_and(|s| s.pending_request_hash.is_none())
        })
        .await;
    assert_eq!(h.count(Operation::UpdateAccountLinking), 1);
    assert_eq!(
        obj.status.unwrap().client_secret_hash,
        Some(h.digest("second-secret").await)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn an_update_in_flight_shows_updating_with_its_pending_record() {
    let h = ready_harness().await;
    // Every Amazon call takes 2 s, so the in-flight state lasts long enough to be seen.
    h.sim.faults().set_latency(Duration::from_secs(2));
    h.secret("oauth", &[("client-secret", "second-secret")])
        .await;
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Updating", |o| reason(o) == "Updating")
        .await;
    assert_eq!(
        message(&obj),
        "updating spec.accountLinking.clientSecretRef on Amazon"
    );
    assert!(!is_ready(&obj));
    let status = obj.status.unwrap();
    assert!(
        status.pending_request_hash.is_some(),
        "recorded before the PUT is sent"
    );
    assert_eq!(
        status.client_secret_hash,
        Some(h.digest("first-secret").await),
        "the new secret is not recorded as applied yet"
    );
    h.sim.faults().clear();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    let status = obj.status.unwrap();
    assert_eq!(status.pending_request_hash, None);
    assert_eq!(
        status.client_secret_hash,
        Some(h.digest("second-secret").await)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_plain_digest_recorded_by_an_earlier_version_is_upgraded_without_writing_to_amazon() {
    let mut h = ready_harness().await;
    let keyed = h.digest("first-secret").await;
    let obj = h.get::<SkillAccountLinking>("weather").await.unwrap();
    let mut status = obj.status.clone().unwrap();
    assert_eq!(status.client_secret_hash.as_deref(), Some(keyed.as_str()));
    let plain = hash_tag("first-secret");
    assert!(
        !serde_json::to_string(&status)
            .unwrap()
            .contains(plain.trim_start_matches("sha256:")),
        "no plain digest of the secret anywhere in status"
    );
    h.stop_operator().await;
    // What an earlier version left: the plain SHA-256 of the secret, and request hashes made
    // from it.
    status.client_secret_hash = Some(plain.clone());
    status.rejected_request_hash = Some(request_hash(
        &obj.spec.account_linking,
        Some(&hash_tag("an-older-secret")),
    ));
    write_status(&h, &status).await;
    h.sim.clear_requests();
    h.start_operator(&[]).await;
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "the keyed digest recorded", |o| {
            is_ready(o)
                && o.status
                    .as_ref()
                    .and_then(|s| s.client_secret_hash.as_deref())
                    == Some(keyed.as_str())
        })
        .await;
    settle().await;
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        0,
        "the upgrade sends nothing to Amazon"
    );
    assert!(
        h.count(Operation::GetAccountLinking) >= 1,
        "it did read Amazon"
    );
    let status = obj.status.unwrap();
    for record in [
        status.pending_request_hash,
        status.rejected_request_hash,
        status.unconverged_request_hash,
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            !record.starts_with("sha256:"),
            "plain digest left: {record}"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_huge_violations_list_gives_a_condition_and_an_event_of_at_most_one_kib() {
    let h = Harness::with_owner(&[], Some("s")).await;
    // About 100 KB of violations, with multi-byte characters so a cut by characters would not
    // be enough.
    let violations: Vec<_> = (0..1_000)
        .map(|i| json!({"code": "INVALID_VALUE", "message": format!("champ n°{i} refusé: {}", "é".repeat(40))}))
        .collect();
    h.sim.faults().script(
        Operation::UpdateAccountLinking,
        vec![ScriptedResponse::json(
            400,
            json!({"message": "invalid request", "violations": violations}),
        )],
    );
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Stalled", |o| reason(o) == "InvalidSpec")
        .await;
    for condition in &obj.status.as_ref().unwrap().conditions {
        assert!(
            condition.message.len() <= 1024,
            "{}: {} bytes",
            condition.type_,
            condition.message.len()
        );
    }
    let text = message(&obj);
    assert!(
        text.contains("Amazon rejected the request as invalid"),
        "{text}"
    );
    assert!(text.ends_with("… [truncated]"), "{text}");
    h.wait_event("weather", "InvalidSpec", |note| {
        note.len() <= 1024 && note.ends_with("… [truncated]")
    })
    .await;
    h.shutdown().await;
}
