//! Every error class from a real HTTP answer, in-call retries, and the request timeout.

use std::time::Duration;

use alexa_skill_operator::alexa::{AlexaClient, AlexaError, LwaCredentials};
use alexa_skill_operator::crd::common::Stage;
use serde_json::json;
use tokio::time::Instant;

use crate::{
    Operation, Region, SKILL, ScriptedResponse, SimConfig, client, client_config, customer,
    enable_request, link_request, owner, sandbox, start,
};

/// On paused tokio time: the 429's Retry-After gate below delays the next calls by a
/// second of paused time, not of the wall clock.
#[tokio::test(start_paused = true)]
async fn every_error_class_from_real_answers() {
    let sim = start(SimConfig::default()).await;
    let mut config = client_config(&sim);
    config.max_retries = 0;
    let client = AlexaClient::new(config).unwrap();
    let creds = owner();
    let faults = sim.faults();
    let get = || client.get_account_linking(&creds, SKILL, Stage::Development);

    // 400 with violations.
    faults.script(
        Operation::GetAccountLinking,
        vec![ScriptedResponse::json(
            400,
            json!({"message": "Request is not valid.", "violations": [
                {"code": "INVALID_URL", "message": "authorizationUrl is not a valid URL."}
            ]}),
        )],
    );
    let err = get().await.unwrap_err();
    let AlexaError::InvalidRequest(alexa_skill_operator::alexa::ApiError {
        violations,
        message,
        ..
    }) = &err
    else {
        panic!("400 → InvalidRequest, got {err:?}");
    };
    assert_eq!(message, "Request is not valid.");
    assert_eq!(violations[0].code.as_deref(), Some("INVALID_URL"));
    assert!(
        err.to_string()
            .contains("INVALID_URL: authorizationUrl is not a valid URL.")
    );
    assert!(!err.is_retryable());

    // 403 from the simulator itself: another vendor's skill.
    let err = client
        .get_account_linking(&creds, sandbox::OTHER_VENDOR_SKILL_ID, Stage::Development)
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::Forbidden { .. }), "{err:?}");
    assert_eq!(err.code(), Some("ACCESS_DENIED"));
    assert!(err.to_string().contains("ACCESS_DENIED"));

    // 404: unknown skill on a delete.
    let err = client
        .delete_account_linking(&creds, "amzn1.ask.skill.unknown", Stage::Development)
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::NotFound { .. }), "{err:?}");
    // ... and a live stage that does not exist reads as not enabled.
    assert!(
        !client
            .stage_enabled(&creds, sandbox::DEV_ONLY_SKILL_ID, Stage::Live)
            .await
            .unwrap()
    );

    // 412: stale If-Match.
    faults.set_stale_etag(true);
    let err = client
        .update_account_linking(
            &creds,
            SKILL,
            Stage::Development,
            &link_request(),
            Some("\"old\""),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AlexaError::PreconditionFailed { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    faults.set_stale_etag(false);

    // 429 with Retry-After (not retried in-call with max_retries 0).
    faults.script(
        Operation::GetAccountLinking,
        vec![ScriptedResponse::status(429).with_header("Retry-After", "1")],
    );
    let err = get().await.unwrap_err();
    assert!(
        matches!(err, AlexaError::Throttled { retry_after: Some(d), .. } if d == Duration::from_secs(1)),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));

    // 500 and 503.
    for status in [500, 503] {
        faults.script(
            Operation::GetAccountLinking,
            vec![ScriptedResponse::json(
                status,
                json!({"code": "INTERNAL_ERROR", "message": "Something broke."}),
            )],
        );
        // The gate from the 429 above may still be closed: that only delays.
        let err = get().await.unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert!(matches!(err, AlexaError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("Something broke."));
        assert!(err.is_retryable());
    }

    // Transport: the connection is closed without an answer.
    faults.drop_next(1);
    let err = get().await.unwrap_err();
    assert!(matches!(err, AlexaError::Transport { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("/v1/skills"),
        "no URL path: {err}"
    );

    // Decode: a 200 whose body is not an account linking object.
    faults.script(
        Operation::GetAccountLinking,
        vec![ScriptedResponse::json(200, json!(["not", "an", "object"]))],
    );
    let err = get().await.unwrap_err();
    assert!(matches!(err, AlexaError::Decode { .. }), "{err:?}");

    // 401 that persists after the refresh.
    faults.script(
        Operation::GetAccountLinking,
        vec![ScriptedResponse::status(401), ScriptedResponse::status(401)],
    );
    let err = get().await.unwrap_err();
    assert!(matches!(err, AlexaError::Unauthorized { .. }), "{err:?}");

    // Credentials: LWA refuses the refresh token.
    let bad = LwaCredentials::new(sandbox::CLIENT_ID, sandbox::CLIENT_SECRET, "Atzr|revoked");
    let err = client
        .get_account_linking(&bad, SKILL, Stage::Development)
        .await
        .unwrap_err();
    let AlexaError::Credentials { error, .. } = &err else {
        panic!("invalid_grant → Credentials, got {err:?}");
    };
    assert_eq!(error, "invalid_grant");
    assert!(!err.is_retryable());
    let wrong_secret = LwaCredentials::new(sandbox::CLIENT_ID, "nope", sandbox::REFRESH_TOKEN);
    let err = client
        .get_account_linking(&wrong_secret, SKILL, Stage::Development)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_client"), "{err:?}");
}

#[tokio::test]
async fn transient_errors_are_retried_in_call_but_a_customer_enable_is_not_repeated() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim); // max_retries 2
    let creds = owner();
    let faults = sim.faults();

    faults.drop_next(1);
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    assert_eq!(sim.count(Operation::GetStageEnablement), 2);

    faults.script(
        Operation::GetStageEnablement,
        vec![ScriptedResponse::status(503), ScriptedResponse::status(500)],
    );
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    assert_eq!(sim.count(Operation::GetStageEnablement), 5);

    faults.script(
        Operation::GetStageEnablement,
        vec![ScriptedResponse::status(500); 3],
    );
    let err = client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::Unavailable { status: 500, .. }));
    assert_eq!(
        sim.count(Operation::GetStageEnablement),
        8,
        "1 + max_retries"
    );

    // A POST that may have been processed is not sent again: the code would be spent.
    let cust = customer(Region::Na);
    faults.script(
        Operation::CustomerEnable,
        vec![ScriptedResponse::status(500)],
    );
    let code = sandbox::partner_code(Region::Na, 3);
    let err = client
        .customer_enable(
            &cust,
            Some("api.amazonalexa.com"),
            SKILL,
            &enable_request(&code),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.error, AlexaError::Unavailable { .. }) && err.sent,
        "{err:?}"
    );
    assert_eq!(sim.count(Operation::CustomerEnable), 1);
    // ... but a 429 (certainly not processed) is.
    faults.script(
        Operation::CustomerEnable,
        vec![ScriptedResponse::status(429).with_header("Retry-After", "0")],
    );
    let (_, status) = client
        .customer_enable(
            &cust,
            Some("api.amazonalexa.com"),
            SKILL,
            &enable_request(&code),
        )
        .await
        .unwrap();
    assert!(status.is_linked());
    assert_eq!(sim.count(Operation::CustomerEnable), 3);
}

/// On paused tokio time: the simulator's 3 s latency and the client's 300 ms timeout are both
/// tokio timers, so the call gives up at exactly the timeout.
#[tokio::test(start_paused = true)]
async fn a_request_slower_than_the_timeout_fails_as_transport() {
    let sim = start(SimConfig::default()).await;
    let mut config = client_config(&sim);
    config.timeout = Duration::from_millis(300);
    config.max_retries = 0;
    let client = AlexaClient::new(config).unwrap();
    let creds = owner();
    // The token comes first, without latency (faults skip LWA by default).
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    sim.faults().set_latency(Duration::from_secs(3));
    let started = Instant::now();
    let err = client
        .get_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, AlexaError::Transport { .. }), "{err:?}");
    assert_eq!(err.category(), "transport");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "gave up after {took:?}, not after the 300 ms timeout (the server answers after 3 s)"
    );
}
