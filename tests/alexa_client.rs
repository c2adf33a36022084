//! The Alexa client against the in-process simulator: every operation's happy path, every error
//! class from a real HTTP answer, the token cache, throttling and the customer endpoint rules.
//! Timing assertions read the simulator's request log, never a sleep.

// Test helpers outside #[test] functions may unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alexa_simulator::{
    DiscoveryMode, GetShape, Operation, RateLimit as SimRateLimit, RefreshTokenState, Region,
    RequestRecord, ScriptedResponse, SimConfig, SimState, Simulator, TlsConfig, sandbox,
};
use alexa_skill_operator::alexa::{
    AccountLinkingRequest, AlexaClient, AlexaError, ApiObserver, Backoff, ClientConfig,
    CustomerEnableRequest, CustomerLinkRequest, LwaCredentials, Operation as ApiOperation,
    RateLimit as ClientRateLimit, SecretString,
};
use alexa_skill_operator::crd::account_linking::{
    AccessTokenScheme, AccountLinkingType, PlatformAuthorizationUrl, PlatformType,
    VoiceForwardAccountLinking,
};
use alexa_skill_operator::crd::common::Stage;
use alexa_skill_operator::crd::enablement::AccountLinkRequestType;
use serde_json::{Value, json};

const SKILL: &str = sandbox::SKILL_ID;
const LINK_SECRET: &str = "link-client-secret-value";

async fn start(config: SimConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

fn client_config(sim: &Simulator) -> ClientConfig {
    ClientConfig {
        smapi_url: sim.url(),
        lwa_url: sim.lwa_token_url(),
        customer_discovery_url: sim.url(),
        endpoint_overrides: sim.endpoint_overrides().into_iter().collect(),
        rate_limit: None,
        backoff: Backoff {
            base: Duration::from_millis(10),
            factor: 2.0,
            max: Duration::from_millis(100),
        },
        timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

fn client(sim: &Simulator) -> AlexaClient {
    AlexaClient::new(client_config(sim)).expect("client builds")
}

fn owner() -> LwaCredentials {
    LwaCredentials::new(
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        sandbox::REFRESH_TOKEN,
    )
}

fn other_owner() -> LwaCredentials {
    LwaCredentials::new(
        sandbox::CLIENT_ID_2,
        sandbox::CLIENT_SECRET_2,
        sandbox::REFRESH_TOKEN_2,
    )
}

fn customer(region: Region) -> LwaCredentials {
    LwaCredentials::new(
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        sandbox::customer_refresh_token(region),
    )
}

fn link_request() -> AccountLinkingRequest {
    AccountLinkingRequest {
        type_: Some(AccountLinkingType::AuthCode),
        authorization_url: Some("https://auth.example.com/authorize".into()),
        client_id: Some("alexa-skill".into()),
        scopes: vec!["profile".into()],
        access_token_url: Some("https://auth.example.com/token".into()),
        client_secret: Some(SecretString::from(LINK_SECRET)),
        access_token_scheme: Some(AccessTokenScheme::HttpBasic),
        default_token_expiration_in_seconds: Some(3600),
        authorization_urls_by_platform: vec![PlatformAuthorizationUrl {
            platform_type: PlatformType::Ios,
            platform_authorization_url: "https://auth.example.com/ios".into(),
        }],
        skip_on_enablement: Some(true),
        voice_forward_account_linking: Some(VoiceForwardAccountLinking::Disabled),
        ..AccountLinkingRequest::default()
    }
}

fn enable_request(code: &str) -> CustomerEnableRequest {
    CustomerEnableRequest {
        stage: Stage::Live,
        account_link_request: CustomerLinkRequest {
            type_: AccountLinkRequestType::AuthCode,
            auth_code: SecretString::from(code),
            redirect_uri: "https://app.example.com/alexa/callback".into(),
            code_verifier: None,
        },
    }
}

fn records(sim: &Simulator, op: Operation) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.operation == op)
        .collect()
}

fn contains_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(map) => map.values().any(contains_null),
        _ => false,
    }
}

#[tokio::test]
async fn account_linking_round_trip() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();

    assert_eq!(
        client
            .get_account_linking(&creds, SKILL, Stage::Development)
            .await
            .unwrap(),
        None,
        "not configured yet reads as None"
    );
    let written = client
        .update_account_linking(&creds, SKILL, Stage::Development, &link_request(), None)
        .await
        .unwrap();
    assert_eq!(
        written,
        sim.etag(SKILL, "development"),
        "the PUT's ETag is returned"
    );
    let read = client
        .get_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap()
        .expect("configured now");
    let info = &read.value;
    assert_eq!(info.type_, Some(AccountLinkingType::AuthCode));
    assert_eq!(info.client_id.as_deref(), Some("alexa-skill"));
    assert_eq!(info.scopes, vec!["profile".to_string()]);
    assert_eq!(info.access_token_scheme, Some(AccessTokenScheme::HttpBasic));
    assert_eq!(info.default_token_expiration_in_seconds, Some(3600));
    assert_eq!(info.skip_on_enablement, Some(true));
    assert_eq!(info.authorization_urls_by_platform.len(), 1);
    assert!(
        !info.redirect_urls.is_empty(),
        "Amazon's redirect URLs are surfaced"
    );
    assert_eq!(
        info.differences_from(&link_request()),
        Vec::<&str>::new(),
        "what was written reads back without drift"
    );
    let etag = read.etag.clone().expect("GET returns an ETag");
    assert_eq!(Some(etag.clone()), sim.etag(SKILL, "development"));

    // Update with the ETag just read.
    let mut changed = link_request();
    changed.scopes = vec!["profile".into(), "email".into()];
    client
        .update_account_linking(&creds, SKILL, Stage::Development, &changed, Some(&etag))
        .await
        .unwrap();
    let stored = sim.account_linking(SKILL, "development").unwrap();
    assert_eq!(stored["scopes"], json!(["profile", "email"]));
    assert_eq!(stored["clientSecret"], LINK_SECRET);

    client
        .delete_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap();
    assert!(sim.account_linking(SKILL, "development").is_none());
    let again = client
        .delete_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap_err();
    assert!(matches!(again, AlexaError::NotFound { .. }), "{again:?}");
}

#[tokio::test]
async fn put_body_is_wrapped_without_nulls_and_if_match_only_when_given() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    let minimal = AccountLinkingRequest {
        type_: Some(AccountLinkingType::Implicit),
        authorization_url: Some("https://auth.example.com/authorize".into()),
        client_id: Some("alexa-skill".into()),
        ..AccountLinkingRequest::default()
    };
    client
        .update_account_linking(&creds, SKILL, Stage::Development, &minimal, None)
        .await
        .unwrap();
    let etag = sim.etag(SKILL, "development").unwrap();
    client
        .update_account_linking(
            &creds,
            SKILL,
            Stage::Development,
            &link_request(),
            Some(&etag),
        )
        .await
        .unwrap();

    let puts = records(&sim, Operation::UpdateAccountLinking);
    assert_eq!(puts.len(), 2);
    assert_eq!(
        puts[0].path,
        format!("/v1/skills/{SKILL}/stages/development/accountLinkingClient")
    );
    assert_eq!(puts[0].if_match, None, "no If-Match without a known ETag");
    assert_eq!(puts[1].if_match.as_deref(), Some(etag.as_str()), "verbatim");
    let first = puts[0].body.clone().unwrap();
    assert_eq!(
        first,
        json!({"accountLinkingRequest": {
            "type": "IMPLICIT",
            "authorizationUrl": "https://auth.example.com/authorize",
            "clientId": "alexa-skill"
        }})
    );
    let second = puts[1].body.clone().unwrap();
    assert!(!contains_null(&second), "{second}");
    let inner = second["accountLinkingRequest"].as_object().unwrap();
    for key in [
        "type",
        "authorizationUrl",
        "clientId",
        "scopes",
        "accessTokenUrl",
        "clientSecret",
        "accessTokenScheme",
        "defaultTokenExpirationInSeconds",
        "authorizationUrlsByPlatform",
        "skipOnEnablement",
        "voiceForwardAccountLinking",
    ] {
        assert!(inner.contains_key(key), "{key} missing from {second}");
    }
    assert!(!inner.contains_key("domains"), "empty lists are omitted");
    // The secret reached Amazon (the simulator's store), never its log.
    assert_eq!(
        sim.account_linking(SKILL, "development").unwrap()["clientSecret"],
        LINK_SECRET
    );
}

#[tokio::test]
async fn get_reads_wrapped_and_flat_bodies_alike() {
    let sim = start(SimConfig {
        get_shape: GetShape::Wrapped,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let creds = owner();
    let skill = sandbox::SKILL_ID_2; // preset account linking on development
    let wrapped = client
        .get_account_linking(&creds, skill, Stage::Development)
        .await
        .unwrap()
        .unwrap();
    sim.set_get_shape(GetShape::Flat);
    let flat = client
        .get_account_linking(&creds, skill, Stage::Development)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wrapped, flat);
    assert_eq!(
        flat.value.client_id.as_deref(),
        Some("example-alexa-client")
    );
    assert_eq!(flat.value.type_, Some(AccountLinkingType::AuthCode));
    assert!(!flat.value.redirect_urls.is_empty());

    // Odd but plausible answers: "true" as a string, unknown fields, numbers as strings.
    sim.faults().script(
        Operation::GetAccountLinking,
        vec![
            ScriptedResponse::json(
                200,
                json!({"accountLinkingResponse": {
                    "type": "IMPLICIT",
                    "authorizationUrl": "https://a",
                    "skipOnEnablement": "true",
                    "defaultTokenExpirationInSeconds": "20",
                    "reciprocalAccessTokenUrl": "https://r",
                    "brandNewField": {"x": [1]}
                }}),
            )
            .with_header("ETag", "\"v7\""),
        ],
    );
    let odd = client
        .get_account_linking(&creds, skill, Stage::Development)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(odd.etag.as_deref(), Some("\"v7\""));
    assert_eq!(odd.value.skip_on_enablement, Some(true));
    assert_eq!(odd.value.default_token_expiration_in_seconds, Some(20));
    assert_eq!(
        odd.value.reciprocal_access_token_url.as_deref(),
        Some("https://r")
    );
    assert!(odd.value.domains.is_empty());
}

#[tokio::test]
async fn stage_enablement_happy_path() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Development)
            .await
            .unwrap()
    );
    client
        .enable_stage(&creds, SKILL, Stage::Development)
        .await
        .unwrap();
    assert!(
        client
            .stage_enabled(&creds, SKILL, Stage::Development)
            .await
            .unwrap()
    );
    assert!(sim.stage_enabled(SKILL, "development"));
    // Enabling live disables development, as Amazon does.
    client
        .enable_stage(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert!(
        client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Development)
            .await
            .unwrap()
    );
    client
        .disable_stage(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    let paths: Vec<String> = records(&sim, Operation::EnableStage)
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        vec![
            format!("/v1/skills/{SKILL}/stages/development/enablement"),
            format!("/v1/skills/{SKILL}/stages/live/enablement"),
        ]
    );
}

#[tokio::test]
async fn customer_enable_status_and_disable() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = customer(Region::Na);

    let endpoints = client.discover_endpoints(&creds).await.unwrap();
    assert_eq!(endpoints, vec!["api.amazonalexa.com".to_string()]);

    let (endpoint, status) = client.customer_status(&creds, None, SKILL).await.unwrap();
    assert_eq!(endpoint, "api.amazonalexa.com");
    assert_eq!(status, None);

    let code = sandbox::partner_code(Region::Na, 1);
    let (endpoint, status) = client
        .customer_enable(&creds, Some(&endpoint), SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert_eq!(endpoint, "api.amazonalexa.com");
    assert!(status.is_enabled() && status.is_linked(), "{status:?}");
    assert_eq!(
        status.user_id.as_deref(),
        Some(sandbox::user_id(Region::Na))
    );
    assert_eq!(status.skill_id.as_deref(), Some(SKILL));

    let (_, status) = client
        .customer_status(&creds, Some(&endpoint), SKILL)
        .await
        .unwrap();
    assert!(status.unwrap().is_linked());

    // The single-use code is spent: a second enable is an invalid request, without the code
    // in the message.
    let err = client
        .customer_enable(&creds, Some(&endpoint), SKILL, &enable_request(&code))
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::InvalidRequest { .. }), "{err:?}");
    assert!(!err.to_string().contains(&code));

    let endpoint = client
        .customer_disable(&creds, Some(&endpoint), SKILL)
        .await
        .unwrap();
    assert_eq!(endpoint, "api.amazonalexa.com");
    let (_, status) = client
        .customer_status(&creds, Some(&endpoint), SKILL)
        .await
        .unwrap();
    assert_eq!(status, None);
    let err = client
        .customer_disable(&creds, Some(&endpoint), SKILL)
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::NotFound { .. }), "{err:?}");

    // The enable body on the wire.
    let enable = &records(&sim, Operation::CustomerEnable)[0];
    assert_eq!(
        enable.body.clone().unwrap(),
        json!({"stage": "live", "accountLinkRequest": {
            "type": "AUTH_CODE", "authCode": "***",
            "redirectUri": "https://app.example.com/alexa/callback"
        }})
    );
    // Discovery: the explicit call, the first status call without a hint, and the last disable
    // (a 404 from the hinted endpoint may mean "wrong region", so it is checked once).
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 3);
}

#[tokio::test]
async fn hinted_endpoint_skips_discovery_and_a_wrong_hint_rediscovers() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = customer(Region::Eu);
    let code = sandbox::partner_code(Region::Eu, 1);
    let (endpoint, _) = client
        .customer_enable(
            &creds,
            Some("api.eu.amazonalexa.com"),
            SKILL,
            &enable_request(&code),
        )
        .await
        .unwrap();
    assert_eq!(endpoint, "api.eu.amazonalexa.com");
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 0);

    // A wrong hint (NA for an EU customer) answers 401: discover, then use EU.
    let (endpoint, status) = client
        .customer_status(&creds, Some("api.amazonalexa.com"), SKILL)
        .await
        .unwrap();
    assert_eq!(endpoint, "api.eu.amazonalexa.com");
    assert!(status.unwrap().is_enabled());
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 1);
    let regions: Vec<Option<Region>> = records(&sim, Operation::CustomerStatus)
        .iter()
        .map(|r| r.region)
        .collect();
    assert_eq!(regions, vec![Some(Region::Na), Some(Region::Eu)]);
    // A wrong-region 401 does not cost a token refresh.
    assert_eq!(sim.count(Operation::Token), 1);
}

#[tokio::test]
async fn discovery_with_several_endpoints_tries_them_in_order() {
    let sim = start(SimConfig::default()).await;
    sim.faults().set_discovery(DiscoveryMode::Multiple);
    let client = client(&sim);
    let creds = customer(Region::Eu);
    let code = sandbox::partner_code(Region::Eu, 2);
    let (endpoint, status) = client
        .customer_enable(&creds, None, SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert_eq!(endpoint, "api.eu.amazonalexa.com");
    assert!(status.is_linked());
    let tried: Vec<(Option<Region>, u16)> = records(&sim, Operation::CustomerEnable)
        .iter()
        .map(|r| (r.region, r.status))
        .collect();
    // The simulator lists the customer's own region last.
    assert_eq!(
        tried,
        vec![
            (Some(Region::Na), 401),
            (Some(Region::Fe), 401),
            (Some(Region::Eu), 201)
        ]
    );
    assert_eq!(
        sim.count(Operation::Token),
        1,
        "no refresh per wrong region"
    );
}

#[tokio::test]
async fn wrong_regions_answering_404_are_skipped_too() {
    let sim = start(SimConfig {
        wrong_region_status: 404,
        ..SimConfig::default()
    })
    .await;
    sim.faults().set_discovery(DiscoveryMode::Multiple);
    let client = client(&sim);
    let creds = customer(Region::Fe);
    // Not enabled anywhere: every region says 404, which reads as "not enabled".
    let (_, status) = client.customer_status(&creds, None, SKILL).await.unwrap();
    assert_eq!(status, None);
    let code = sandbox::partner_code(Region::Fe, 2);
    let (endpoint, _) = client
        .customer_enable(&creds, None, SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    // Enabled: the 404s of the other regions are passed over for the answer from FE.
    let (endpoint, status) = client.customer_status(&creds, None, SKILL).await.unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    assert!(status.unwrap().is_linked());
    let endpoint = client.customer_disable(&creds, None, SKILL).await.unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    assert_eq!(sim.count(Operation::Token), 1);
}

#[tokio::test]
async fn discovery_server_error_falls_back_to_na_eu_fe_in_order() {
    let sim = start(SimConfig::default()).await;
    sim.faults().set_discovery(DiscoveryMode::ServerError);
    let client = client(&sim);
    let creds = customer(Region::Fe);
    let code = sandbox::partner_code(Region::Fe, 1);
    let (endpoint, _) = client
        .customer_enable(&creds, None, SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    let (endpoint, status) = client.customer_status(&creds, None, SKILL).await.unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    assert!(status.unwrap().is_enabled());
    let regions: Vec<Option<Region>> = records(&sim, Operation::CustomerStatus)
        .iter()
        .map(|r| r.region)
        .collect();
    assert_eq!(
        regions,
        vec![Some(Region::Na), Some(Region::Eu), Some(Region::Fe)]
    );
    // Discovery is not retried in-call: the fallback list is the retry.
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 2);
}

#[tokio::test]
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
    assert!(matches!(err, AlexaError::Unavailable { .. }), "{err:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_calls_cause_one_token_request() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let mut calls = Vec::new();
    for _ in 0..10 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .get_account_linking(&owner(), sandbox::SKILL_ID_2, Stage::Development)
                .await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap().unwrap();
    }
    assert_eq!(sim.count(Operation::Token), 1);
    assert_eq!(sim.count(Operation::GetAccountLinking), 10);

    // A token that expires is refreshed once for the next calls, again single-flight.
    sim.expire_tokens();
    let mut calls = Vec::new();
    for _ in 0..10 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .stage_enabled(&owner(), SKILL, Stage::Development)
                .await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.count(Operation::Token), 2);
}

#[tokio::test]
async fn unauthorized_refreshes_once_and_retries_once() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(sim.count(Operation::Token), 1);

    // The server forgets the token: one 401, one refresh, one retry, success.
    sim.expire_tokens();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(sim.count(Operation::Token), 2);
    assert_eq!(sim.count(Operation::GetStageEnablement), 3);
    let statuses: Vec<u16> = records(&sim, Operation::GetStageEnablement)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![404, 401, 404]);

    // A 401 that does not go away: exactly one refresh and one retry, then Unauthorized.
    sim.faults().script(
        Operation::GetStageEnablement,
        vec![ScriptedResponse::status(401); 5],
    );
    let err = client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::Unauthorized { .. }), "{err:?}");
    assert_eq!(sim.count(Operation::Token), 3);
    assert_eq!(sim.count(Operation::GetStageEnablement), 5);
    sim.faults().clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_pauses_every_call_of_that_credential() {
    let sim = start(SimConfig::default()).await;
    let observer = Arc::new(CountingObserver::default());
    let mut config = client_config(&sim);
    config.observer = Some(observer.clone());
    let client = AlexaClient::new(config).unwrap();
    let creds = owner();
    // Warm the token so only API calls are timed.
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    client
        .stage_enabled(&other_owner(), sandbox::OTHER_VENDOR_SKILL_ID, Stage::Live)
        .await
        .unwrap();
    sim.faults().script(
        Operation::GetAccountLinking,
        vec![ScriptedResponse::status(429).with_header("Retry-After", "2")],
    );
    let first = {
        let client = client.clone();
        let creds = creds.clone();
        tokio::spawn(async move {
            client
                .get_account_linking(&creds, SKILL, Stage::Development)
                .await
        })
    };
    // Wait until the client has seen the 429 (its retry is waiting behind the gate), then
    // start more calls with the same credentials and one with other credentials.
    while observer.throttled.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let throttled_at = sim
        .requests()
        .into_iter()
        .find(|r| r.status == 429)
        .expect("the 429 is in the log")
        .at;
    let mut others = Vec::new();
    for _ in 0..3 {
        let client = client.clone();
        let creds = creds.clone();
        others.push(tokio::spawn(async move {
            client
                .stage_enabled(&creds, SKILL, Stage::Development)
                .await
        }));
    }
    let unaffected = client
        .stage_enabled(
            &other_owner(),
            sandbox::OTHER_VENDOR_SKILL_ID,
            Stage::Development,
        )
        .await;
    assert!(unaffected.is_ok());
    first.await.unwrap().unwrap();
    for other in others {
        other.await.unwrap().unwrap();
    }

    let after: Vec<RequestRecord> = sim
        .requests()
        .into_iter()
        .filter(|r| r.at > throttled_at && r.operation != Operation::Token)
        .collect();
    let same: Vec<&RequestRecord> = after
        .iter()
        .filter(|r| r.client.as_deref() == Some(sandbox::CLIENT_ID))
        .collect();
    assert_eq!(same.len(), 4, "the retried GET and three status calls");
    for r in &same {
        assert!(
            r.at.duration_since(throttled_at) >= Duration::from_secs(2),
            "{} {} sent {:?} after the 429",
            r.method,
            r.path,
            r.at.duration_since(throttled_at)
        );
    }
    let other: Vec<&RequestRecord> = after
        .iter()
        .filter(|r| r.client.as_deref() == Some(sandbox::CLIENT_ID_2))
        .collect();
    assert_eq!(other.len(), 1);
    assert!(other[0].at.duration_since(throttled_at) < Duration::from_secs(2));
}

/// The one record of `op` answered with `status`.
fn answered(sim: &Simulator, op: Operation, status: u16) -> RequestRecord {
    let mut found: Vec<RequestRecord> = records(sim, op)
        .into_iter()
        .filter(|r| r.status == status)
        .collect();
    assert_eq!(found.len(), 1, "one {op} answered {status}: {found:?}");
    found.remove(0)
}

/// API requests (not token refreshes) of one LWA client sent after `after`.
fn api_calls_after(sim: &Simulator, client_id: &str, after: &RequestRecord) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            r.seq > after.seq
                && r.operation != Operation::Token
                && r.client.as_deref() == Some(client_id)
        })
        .collect()
}

#[tokio::test]
async fn server_error_retry_after_pauses_the_next_call_of_that_credential() {
    let sim = start(SimConfig::default()).await;
    let mut config = client_config(&sim);
    config.max_retries = 0;
    let client = AlexaClient::new(config).unwrap();
    let creds = owner();
    // Warm both tokens so only API calls are timed.
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    client
        .stage_enabled(&other_owner(), sandbox::OTHER_VENDOR_SKILL_ID, Stage::Live)
        .await
        .unwrap();
    sim.faults().script(
        Operation::GetAccountLinking,
        vec![
            ScriptedResponse::json(503, json!({"message": "Busy, come back later."}))
                .with_header("Retry-After", "2"),
        ],
    );
    let err = client
        .get_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)), "{err:?}");
    assert_eq!(err.category(), "unavailable");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("Busy, come back later."), "{err}");
    let busy = answered(&sim, Operation::GetAccountLinking, 503);

    // Other credentials are not held back; the same credentials wait out Amazon's 2 s.
    client
        .stage_enabled(
            &other_owner(),
            sandbox::OTHER_VENDOR_SKILL_ID,
            Stage::Development,
        )
        .await
        .unwrap();
    client
        .get_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap();
    let other = api_calls_after(&sim, sandbox::CLIENT_ID_2, &busy);
    assert_eq!(other.len(), 1);
    assert!(other[0].at.duration_since(busy.at) < Duration::from_secs(2));
    let same = api_calls_after(&sim, sandbox::CLIENT_ID, &busy);
    assert_eq!(same.len(), 1, "{same:?}");
    assert!(
        same[0].at.duration_since(busy.at) >= Duration::from_secs(2),
        "next call of the credential sent {:?} after the 503",
        same[0].at.duration_since(busy.at)
    );
}

#[tokio::test]
async fn server_error_retry_after_is_waited_out_within_the_call() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim); // max_retries 2, back-off at most 100 ms
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    sim.faults().script(
        Operation::GetStageEnablement,
        vec![ScriptedResponse::status(503).with_header("Retry-After", "2")],
    );
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    let busy = answered(&sim, Operation::GetStageEnablement, 503);
    let retried = api_calls_after(&sim, sandbox::CLIENT_ID, &busy);
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert_eq!(retried[0].status, 404);
    assert!(
        retried[0].at.duration_since(busy.at) >= Duration::from_secs(2),
        "retry sent {:?} after the 503, not after Amazon's 2 s",
        retried[0].at.duration_since(busy.at)
    );
}

/// Waits until `at + offset` on the simulator's clock (its log timestamps are std `Instant`s).
async fn sleep_until(at: std::time::Instant, offset: Duration) {
    let remaining = (at + offset).saturating_duration_since(std::time::Instant::now());
    tokio::time::sleep(remaining).await;
}

#[tokio::test]
async fn tokens_are_reused_while_fresh_and_refreshed_ahead_of_expiry() {
    let sim = start(SimConfig::default()).await;
    // 3 s tokens refreshed 1 s ahead: fresh for 2 s, then renewed before they expire.
    sim.set_token_lifetime(Duration::from_secs(3));
    let mut config = client_config(&sim);
    config.refresh_ahead = Duration::from_secs(1);
    let client = AlexaClient::new(config).unwrap();
    let creds = owner();
    for _ in 0..3 {
        client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap();
    }
    assert_eq!(sim.count(Operation::Token), 1, "the fresh token is reused");
    let issued = answered(&sim, Operation::Token, 200);

    sleep_until(issued.at, Duration::from_millis(2200)).await;
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    let tokens = records(&sim, Operation::Token);
    assert_eq!(
        tokens.len(),
        2,
        "a new token inside the refresh-ahead window"
    );
    let renewed = tokens[1].at.duration_since(issued.at);
    assert!(
        renewed >= Duration::from_secs(2) && renewed < Duration::from_secs(3),
        "renewed {renewed:?} after issue: after the fresh period, before expiry"
    );
    // Ahead of expiry means no call ever met an expired token.
    assert!(sim.requests().iter().all(|r| r.status != 401));
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_at_half_life() {
    let sim = start(SimConfig::default()).await;
    // 4 s tokens with the default 5 min refresh-ahead: renewed at 2 s, not on every call.
    sim.set_token_lifetime(Duration::from_secs(4));
    let client = client(&sim);
    assert_eq!(client.config().refresh_ahead, Duration::from_secs(300));
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    let issued = answered(&sim, Operation::Token, 200);

    sleep_until(issued.at, Duration::from_millis(1200)).await;
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(
        sim.count(Operation::Token),
        1,
        "before half-life the token is reused"
    );

    sleep_until(issued.at, Duration::from_millis(2300)).await;
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    let tokens = records(&sim, Operation::Token);
    assert_eq!(tokens.len(), 2, "past half-life a new token is fetched");
    assert!(tokens[1].at.duration_since(issued.at) < Duration::from_secs(4));
    assert!(sim.requests().iter().all(|r| r.status != 401));
}

#[tokio::test]
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
    let started = std::time::Instant::now();
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
        took < Duration::from_secs(2),
        "gave up after {took:?}, not after the server's 3 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_never_exceed_the_configured_rate() {
    let sim = start(SimConfig::default()).await;
    let mut config = client_config(&sim);
    config.rate_limit = Some(ClientRateLimit {
        per_second: 10.0,
        burst: 5,
    });
    let client = AlexaClient::new(config).unwrap();
    let started = std::time::Instant::now();
    let mut calls = Vec::new();
    for i in 0..40 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            let stage = if i % 2 == 0 {
                Stage::Development
            } else {
                Stage::Live
            };
            client.stage_enabled(&owner(), SKILL, stage).await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let times: Vec<std::time::Instant> = records(&sim, Operation::GetStageEnablement)
        .iter()
        .map(|r| r.at)
        .collect();
    assert_eq!(times.len(), 40);
    let mut worst = 0;
    for (i, start) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
            .count();
        worst = worst.max(in_window);
    }
    assert!(
        worst <= 15,
        "{worst} requests within one second (limit 10/s, burst 5)"
    );
    // 40 requests at 10/s after a burst of 5 take at least 3.5 s.
    assert!(started.elapsed() >= Duration::from_millis(3400));
}

/// Captures everything logged at any level, to check no secret ever reaches the logs.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn secrets_never_appear_in_debug_output_errors_or_logs() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    let cust = customer(Region::Na);
    let code = sandbox::partner_code(Region::Na, 4);
    let request = enable_request(&code);
    let mut texts = vec![
        format!("{creds:?}"),
        format!("{cust:?}"),
        format!("{:?}", link_request()),
        format!("{request:?}"),
        format!("{client:?}"),
    ];

    // A refresh after a 401, a throttled call, a credentials error, an echoed secret.
    client
        .update_account_linking(&creds, SKILL, Stage::Development, &link_request(), None)
        .await
        .unwrap();
    sim.expire_tokens();
    client
        .get_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap();
    sim.faults().script(
        Operation::UpdateAccountLinking,
        vec![ScriptedResponse::json(
            400,
            json!({"code": "INVALID_SECRET", "message": format!("clientSecret {LINK_SECRET} is too weak")}),
        )],
    );
    let err = client
        .update_account_linking(&creds, SKILL, Stage::Development, &link_request(), None)
        .await
        .unwrap_err();
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    sim.faults().script(
        Operation::CustomerEnable,
        vec![ScriptedResponse::json(
            400,
            json!({"code": "INVALID_AUTH_CODE", "message": format!("authCode {code} was already used")}),
        )],
    );
    let err = client
        .customer_enable(&cust, None, SKILL, &request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INVALID_AUTH_CODE"));
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    let bad = LwaCredentials::new(
        sandbox::CLIENT_ID,
        "wrong-client-secret-value",
        "Atzr|revoked-token-value",
    );
    let err = client
        .stage_enabled(&bad, SKILL, Stage::Live)
        .await
        .unwrap_err();
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    let (_, status) = client
        .customer_enable(&cust, None, SKILL, &request)
        .await
        .unwrap();
    texts.push(format!("{status:?}"));

    drop(_guard);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    texts.push(logged.clone());
    assert!(
        logged.contains("401"),
        "the logs do show what happened: {logged}"
    );
    let secrets = [
        sandbox::CLIENT_SECRET,
        sandbox::REFRESH_TOKEN,
        sandbox::customer_refresh_token(Region::Na),
        LINK_SECRET,
        code.as_str(),
        "wrong-client-secret-value",
        "Atzr|revoked-token-value",
        "Atza|", // every access token the simulator issues starts so
    ];
    for text in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
        }
    }
}

#[tokio::test]
async fn rotated_refresh_tokens_are_kept() {
    // The simulator knows only the rotated refresh token; the configured one works only for
    // the first (scripted) refresh, which hands out the rotated one.
    let mut state = SimState::sandbox();
    state.vendors[0].refresh_tokens.push(RefreshTokenState {
        token: "Atzr|rotated-by-lwa".into(),
        client_id: sandbox::CLIENT_ID.into(),
    });
    let sim = start(SimConfig {
        state,
        ..SimConfig::default()
    })
    .await;
    sim.faults().script(
        Operation::Token,
        vec![ScriptedResponse::json(
            200,
            json!({"access_token": "Atza|scripted-invalid", "refresh_token": "Atzr|rotated-by-lwa",
                   "token_type": "bearer", "expires_in": "3600"}),
        )],
    );
    let client = client(&sim);
    let creds = LwaCredentials::new(
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        "Atzr|original-unknown",
    );
    // The scripted token is refused (401); the refresh must use the rotated refresh token.
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    assert_eq!(sim.count(Operation::Token), 2);
    let token_statuses: Vec<u16> = records(&sim, Operation::Token)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(token_statuses, vec![200, 200]);
}

#[tokio::test]
async fn invalidate_token_forces_a_fresh_token() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(sim.count(Operation::Token), 1);
    client.invalidate_token(&creds);
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(sim.count(Operation::Token), 2);

    // A credentials rejection is remembered for a while: no LWA storm from many objects.
    let bad = LwaCredentials::new(sandbox::CLIENT_ID, sandbox::CLIENT_SECRET, "Atzr|revoked");
    for _ in 0..5 {
        let err = client
            .stage_enabled(&bad, SKILL, Stage::Live)
            .await
            .unwrap_err();
        assert_eq!(err.category(), "credentials");
    }
    assert_eq!(sim.count(Operation::Token), 3);
    client.invalidate_token(&bad);
    let _ = client.stage_enabled(&bad, SKILL, Stage::Live).await;
    assert_eq!(sim.count(Operation::Token), 4);
}

#[derive(Default)]
struct CountingObserver {
    requests: Mutex<HashMap<(&'static str, Option<u16>), usize>>,
    refreshes: AtomicUsize,
    throttled: AtomicUsize,
}

impl ApiObserver for CountingObserver {
    fn request(&self, operation: ApiOperation, status: Option<u16>, _elapsed: Duration) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((operation.as_str(), status))
            .or_default() += 1;
    }
    fn token_refresh(&self, ok: bool) {
        if ok {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn throttled(&self, _wait: Duration) {
        self.throttled.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn observer_sees_requests_refreshes_and_waits() {
    let sim = start(SimConfig::default()).await;
    let observer = Arc::new(CountingObserver::default());
    let mut config = client_config(&sim);
    config.observer = Some(observer.clone());
    config.rate_limit = Some(ClientRateLimit {
        per_second: 50.0,
        burst: 1,
    });
    let client = AlexaClient::new(config).unwrap();
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    let requests = observer.requests.lock().unwrap().clone();
    assert_eq!(requests.get(&("get_stage_enablement", Some(404))), Some(&2));
    assert_eq!(requests.get(&("lwa_token", Some(200))), Some(&1));
    assert_eq!(observer.refreshes.load(Ordering::SeqCst), 1);
    assert!(
        observer.throttled.load(Ordering::SeqCst) >= 1,
        "burst 1: the second call waited"
    );
}

#[tokio::test]
async fn own_rate_budget_stays_under_a_server_limit() {
    // The simulator throttles at 5/s; a client budget of 4/s never provokes a 429.
    let sim = start(SimConfig::default()).await;
    sim.faults().set_rate_limit(Some(SimRateLimit {
        per_second: 5.0,
        burst: 2,
        retry_after: Duration::ZERO,
    }));
    let mut config = client_config(&sim);
    config.max_retries = 6;
    config.backoff = Backoff {
        base: Duration::from_millis(200),
        factor: 2.0,
        max: Duration::from_secs(1),
    };
    config.rate_limit = Some(ClientRateLimit {
        per_second: 4.0,
        burst: 2,
    });
    let client = AlexaClient::new(config).unwrap();
    for _ in 0..6 {
        client
            .stage_enabled(&owner(), SKILL, Stage::Live)
            .await
            .unwrap();
    }
    let throttled = records(&sim, Operation::GetStageEnablement)
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(
        throttled, 0,
        "our own budget stays under the server's limit"
    );
}

/// The client's own TLS stack (rustls + ring, no process-wide provider installed in this test
/// binary) verifies certificates, and trusts configured extra roots.
#[tokio::test]
async fn https_verifies_certificates_and_trusts_configured_roots() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let sim = start(SimConfig {
        tls: Some(TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert_pem: cert.cert.pem().into_bytes(),
            key_pem: cert.signing_key.serialize_pem().into_bytes(),
        }),
        ..SimConfig::default()
    })
    .await;
    let tls_url = sim.tls_url().unwrap();
    let port = tls_url.rsplit(':').next().unwrap();
    let base = format!("https://localhost:{port}");
    let mut config = client_config(&sim);
    config.smapi_url = base.clone();
    config.lwa_url = format!("{base}/auth/o2/token");

    let untrusted = AlexaClient::new(config.clone()).unwrap();
    let err = untrusted
        .stage_enabled(&owner(), SKILL, Stage::Live)
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert_eq!(sim.count(Operation::Token), 0, "nothing got through");

    config.extra_root_certificates_pem = cert.cert.pem().into_bytes();
    let trusted = AlexaClient::new(config).unwrap();
    assert!(
        !trusted
            .stage_enabled(&owner(), SKILL, Stage::Live)
            .await
            .unwrap()
    );
    assert_eq!(sim.count(Operation::Token), 1);
    assert_eq!(sim.count(Operation::GetStageEnablement), 1);
}
