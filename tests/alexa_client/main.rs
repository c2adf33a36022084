//! The Alexa client against the in-process simulator: every operation's happy path, every error
//! class from a real HTTP answer, the token cache, throttling and the customer endpoint rules.
//! One test binary (`cargo test --test alexa_client`), one file per topic. Timing assertions
//! read the simulator's request log or run on paused tokio time (the client's clock), never on
//! a sleep.

// Test helpers outside #[test] functions may unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account_linking;
mod customer;
mod enablement;
mod errors;
mod secrets;
mod throttling;
mod tls;
mod tokens;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alexa_skill_operator::alexa::{
    AccountLinkingRequest, AlexaClient, ApiObserver, Backoff, ClientConfig, CustomerEnableRequest,
    CustomerLinkRequest, LwaCredentials, Operation as ApiOperation, SecretString,
};
use alexa_skill_operator::crd::account_linking::{
    AccessTokenScheme, AccountLinkingType, PlatformAuthorizationUrl, PlatformType,
    VoiceForwardAccountLinking,
};
use alexa_skill_operator::crd::common::Stage;
use alexa_skill_operator::crd::enablement::AccountLinkRequestType;
// The simulator, for every file of this binary: imported here only.
pub(crate) use alexa_simulator::{
    DiscoveryMode, GetShape, Operation, RateLimit as SimRateLimit, RefreshTokenState, Region,
    RequestRecord, ScriptedResponse, SimConfig, SimState, Simulator, TlsConfig, sandbox,
};
use serde_json::Value;

pub(crate) const SKILL: &str = sandbox::SKILL_ID;
pub(crate) const LINK_SECRET: &str = "link-client-secret-value";

pub(crate) async fn start(config: SimConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

pub(crate) fn client_config(sim: &Simulator) -> ClientConfig {
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

pub(crate) fn client(sim: &Simulator) -> AlexaClient {
    AlexaClient::new(client_config(sim)).expect("client builds")
}

pub(crate) fn owner() -> LwaCredentials {
    LwaCredentials::new(
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        sandbox::REFRESH_TOKEN,
    )
}

pub(crate) fn other_owner() -> LwaCredentials {
    LwaCredentials::new(
        sandbox::CLIENT_ID_2,
        sandbox::CLIENT_SECRET_2,
        sandbox::REFRESH_TOKEN_2,
    )
}

pub(crate) fn customer(region: Region) -> LwaCredentials {
    LwaCredentials::new(
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        sandbox::customer_refresh_token(region),
    )
}

pub(crate) fn link_request() -> AccountLinkingRequest {
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

pub(crate) fn enable_request(code: &str) -> CustomerEnableRequest {
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

pub(crate) fn records(sim: &Simulator, op: Operation) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.operation == op)
        .collect()
}

pub(crate) fn contains_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(map) => map.values().any(contains_null),
        _ => false,
    }
}

/// The one record of `op` answered with `status`.
pub(crate) fn answered(sim: &Simulator, op: Operation, status: u16) -> RequestRecord {
    let mut found: Vec<RequestRecord> = records(sim, op)
        .into_iter()
        .filter(|r| r.status == status)
        .collect();
    assert_eq!(found.len(), 1, "one {op} answered {status}: {found:?}");
    found.remove(0)
}

/// API requests (not token refreshes) of one LWA client sent after `after`.
pub(crate) fn api_calls_after(
    sim: &Simulator,
    client_id: &str,
    after: &RequestRecord,
) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            r.seq > after.seq
                && r.operation != Operation::Token
                && r.client.as_deref() == Some(client_id)
        })
        .collect()
}

#[derive(Default)]
pub(crate) struct CountingObserver {
    pub(crate) requests: Mutex<HashMap<(&'static str, Option<u16>), usize>>,
    pub(crate) refreshes: AtomicUsize,
    pub(crate) throttled: AtomicUsize,
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
