//! The operator against the seed-literal simulator and against the divergences a real Amazon
//! might have (issue 14, item 3): cosmetic ones converge with one PUT and stay quiet; ones that
//! change what a write stores end in NotConverging after 3 PUTs, naming the field.

use alexa_simulator::{Divergences, FaultConfig, Operation, PutAnswer};
use alexa_skill_operator::crd::SkillAccountLinking;
use serde_json::{Value, json};

use crate::support::{
    Harness, SKILL, auth_code_linking, is_ready, message, reason, sal, settle, stalled,
};

/// A harness whose simulator answers with `faults` (seed-literal otherwise), with the owner's
/// credentials and the OAuth client secret in place.
async fn harness(faults: FaultConfig) -> Harness {
    let h = Harness::with_owner(&[], Some("first-secret")).await;
    h.sim.faults().set_config(faults);
    h
}

fn diverging(divergences: Divergences) -> FaultConfig {
    FaultConfig {
        divergences,
        ..FaultConfig::default()
    }
}

/// One forced resync: waits for its GET, then long enough for any write it would make.
async fn resync(h: &Harness, value: &str) {
    let gets = h.count(Operation::GetAccountLinking);
    h.request_reconcile("weather", value).await;
    h.wait_until("the resync's GET", || {
        h.count(Operation::GetAccountLinking) > gets
    })
    .await;
    settle().await;
}

/// (GETs, PUTs) of account linking so far.
fn counts(h: &Harness) -> (usize, usize) {
    (
        h.count(Operation::GetAccountLinking),
        h.count(Operation::UpdateAccountLinking),
    )
}

/// Every spec field the CRD has, with `skipOnEnablement: true` and a client secret.
fn every_field() -> Value {
    let mut spec = auth_code_linking();
    let extra = json!({
        "scopes": ["profile", "email", "postal_code"],
        "domains": ["cdn.example.com", "static.example.com"],
        "defaultTokenExpirationInSeconds": 3600,
        "redirectUrls": ["https://app.example.com/cb"],
        "authorizationUrlsByPlatform": [
            {"platformType": "iOS", "platformAuthorizationUrl": "https://auth.example.com/ios"},
            {"platformType": "Android", "platformAuthorizationUrl": "https://auth.example.com/android"}
        ],
        "skipOnEnablement": true,
        "voiceForwardAccountLinking": "ENABLED"
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    spec
}

#[tokio::test]
async fn seed_literal_amazon_costs_three_requests_to_converge_one_get_per_resync_one_put_per_rotation()
 {
    let h = harness(FaultConfig::default()).await;
    h.apply::<SkillAccountLinking>(sal("weather", every_field()))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    settle().await;
    // GET (404), PUT, read-back GET.
    assert_eq!(counts(&h), (2, 1), "to converge");
    let shown = h.sim.account_linking(SKILL, "development").unwrap();
    assert_eq!(shown["skipOnEnablement"], true, "the write carried it");

    for i in 0..3 {
        resync(&h, &format!("resync-{i}")).await;
    }
    assert_eq!(counts(&h), (5, 1), "one GET per resync, no write");

    h.sim.clear_requests();
    h.secret("oauth", &[("client-secret", "second-secret")])
        .await;
    h.wait_until("the rotated secret is written", || {
        h.sim.account_linking(SKILL, "development").unwrap()["clientSecret"] == "second-secret"
    })
    .await;
    let want = h.digest("second-secret").await;
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready after the rotation", |o| {
            is_ready(o)
                && o.status.as_ref().and_then(|s| s.client_secret_hash.clone())
                    == Some(want.clone())
        })
        .await;
    settle().await;
    // GET, PUT, read-back GET.
    assert_eq!(counts(&h), (2, 1), "for the rotation: {}", message(&obj));
    resync(&h, "after-rotation").await;
    assert_eq!(counts(&h), (3, 1), "quiet again");
    h.shutdown().await;
}

#[tokio::test]
async fn an_echoed_skip_on_enablement_is_ignored() {
    let h = harness(diverging(Divergences {
        echo_skip_on_enablement: true,
        ..Divergences::default()
    }))
    .await;
    let mut spec = auth_code_linking();
    spec["skipOnEnablement"] = json!(false);
    h.apply::<SkillAccountLinking>(sal("weather", spec))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    // Amazon echoes `true` where the spec says false (a console edit, say): not compared.
    let mut on_amazon = h.sim.account_linking(SKILL, "development").unwrap();
    on_amazon["skipOnEnablement"] = json!(true);
    h.sim.set_account_linking(SKILL, "development", on_amazon);
    resync(&h, "look-again").await;
    assert_eq!(
        counts(&h),
        (3, 1),
        "request-only fields are not compared, even when echoed"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_put_answered_200_with_an_etag_converges_and_records_it() {
    let h = harness(FaultConfig {
        put_answer: PutAnswer::OkWithEtag,
        ..FaultConfig::default()
    })
    .await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    settle().await;
    assert_eq!(h.count(Operation::UpdateAccountLinking), 1);
    let etag = obj.status.and_then(|s| s.etag);
    assert!(etag.is_some());
    assert_eq!(etag, h.sim.etag(SKILL, "development"));
    resync(&h, "look-again").await;
    assert_eq!(h.count(Operation::UpdateAccountLinking), 1, "quiet");
    h.shutdown().await;
}

#[tokio::test]
async fn lists_returned_in_another_order_converge_with_one_put_and_stay_quiet() {
    let h = harness(diverging(Divergences {
        reverse_lists: true,
        ..Divergences::default()
    }))
    .await;
    let mut spec = every_field();
    spec["redirectUrls"] = json!(["https://app.example.com/a", "https://app.example.com/b"]);
    h.apply::<SkillAccountLinking>(sal("weather", spec))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    settle().await;
    assert_eq!(h.count(Operation::UpdateAccountLinking), 1);
    assert_eq!(
        obj.status.map(|s| s.redirect_urls),
        Some(vec![
            "https://app.example.com/b".to_string(),
            "https://app.example.com/a".to_string()
        ]),
        "Amazon's order, as read"
    );
    resync(&h, "look-again").await;
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    assert_eq!(
        h.count(Operation::UpdateAccountLinking),
        1,
        "no rewrite for a reordering: {}",
        message(&obj)
    );
    h.shutdown().await;
}

/// Applies `spec`, waits for NotConverging, and checks it took exactly 3 PUTs; the message.
async fn not_converging_after_three_puts(h: &Harness, spec: Value) -> String {
    h.apply::<SkillAccountLinking>(sal("weather", spec))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "NotConverging", |o| {
            reason(o) == "NotConverging"
        })
        .await;
    settle().await;
    assert_eq!(h.count(Operation::UpdateAccountLinking), 3, "3 writes");
    assert!(stalled(&obj));
    message(&obj)
}

#[tokio::test]
async fn a_normalised_url_is_not_converging_after_three_puts_with_both_values() {
    let h = harness(diverging(Divergences {
        normalize_urls: true,
        ..Divergences::default()
    }))
    .await;
    let text = not_converging_after_three_puts(&h, auth_code_linking()).await;
    assert!(
        text.contains(
            r#"authorizationUrl: spec "https://auth.example.com/authorize", Amazon "https://auth.example.com/authorize/""#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"accessTokenUrl: spec "https://auth.example.com/token", Amazon "https://auth.example.com/token/""#
        ),
        "{text}"
    );
    assert!(!text.contains("first-secret"), "{text}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_field_amazon_does_not_store_is_not_converging_after_three_puts() {
    let h = harness(diverging(Divergences {
        drop_fields: vec!["defaultTokenExpirationInSeconds".to_string()],
        ..Divergences::default()
    }))
    .await;
    let mut spec = auth_code_linking();
    spec["defaultTokenExpirationInSeconds"] = json!(3600);
    let text = not_converging_after_three_puts(&h, spec).await;
    assert!(
        text.contains("defaultTokenExpirationInSeconds: spec 3600, Amazon unset"),
        "{text}"
    );
    h.shutdown().await;
}
