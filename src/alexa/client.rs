//! The SMAPI client: account linking and skill owner enablement, plus the request loop every
//! operation goes through (token, rate budget, Retry-After gate, bounded retries, 401 refresh).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, IF_MATCH};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::config::ClientConfig;
use super::credentials::LwaCredentials;
use super::errors::{AlexaError, ApiError, Setting, foreign_api_answer, redact_body};
use super::models::{AccountLinkingInfo, AccountLinkingRequest, Versioned};
use super::observer::Operation;
use super::throttle::Throttle;
use super::token_cache::TokenCache;
use super::transport::{
    BodyError, bearer, build_http_client, etag, header_value, host_of, read_body, retry_after,
    transport_error,
};
use crate::crd::common::Stage;

/// Characters escaped in a path segment: everything but RFC 3986 unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest skill ID Amazon accepts.
const MAX_SKILL_ID_CHARS: usize = 255;

/// Client for SMAPI, the Skill Enablement API and LWA. Cheap to clone (one `Arc`); all clones
/// share the connection pool, the token cache and the per-credential rate budget, so create one
/// per process and hand clones to every controller.
#[derive(Clone)]
pub struct AlexaClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AlexaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlexaClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Shared state behind every clone.
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) config: ClientConfig,
    pub(crate) tokens: TokenCache,
    pub(crate) throttle: Arc<Throttle>,
}

/// One HTTP request as the retry loop sends it.
pub(crate) struct Request<'a> {
    pub(crate) operation: Operation,
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) if_match: Option<&'a str>,
    /// Whether repeating a request that may have reached Amazon is harmless. A non-idempotent
    /// request is retried only when it certainly was not processed (connect failure, 429).
    pub(crate) idempotent: bool,
    /// Values to strip from error messages should Amazon echo them (authorization codes).
    pub(crate) secrets: Vec<&'a str>,
    /// In-call retries of transient errors, when not the configured number.
    pub(crate) max_retries: Option<u32>,
    /// The setting the URL came from, named when something else than Amazon answers.
    pub(crate) setting: Setting,
    /// Set once the request may have reached Amazon (anything but a failed connect), so a
    /// caller sending a single-use code knows whether it left the operator.
    pub(crate) sent: Option<&'a AtomicBool>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(operation: Operation, method: Method, url: String) -> Request<'a> {
        Request {
            operation,
            method,
            url,
            body: None,
            if_match: None,
            idempotent: true,
            secrets: Vec::new(),
            max_retries: None,
            setting: match operation {
                Operation::DiscoverEndpoints => Setting::CustomerDiscoveryUrl,
                Operation::CustomerEnable
                | Operation::CustomerStatus
                | Operation::CustomerDisable => Setting::DiscoveredEndpoint,
                Operation::LwaToken => Setting::LwaUrl,
                _ => Setting::SmapiUrl,
            },
            sent: None,
        }
    }
}

/// A successful (2xx) answer.
pub(crate) struct Answer {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// The one 401 → refresh → retry a public call is allowed, shared by all its attempts (also
/// across customer endpoints, so trying three regions cannot cause three refreshes).
#[derive(Debug, Default)]
pub(crate) struct AuthRetry {
    used: bool,
}

impl AuthRetry {
    /// A budget already used up: a 401 is returned as is.
    pub(crate) fn spent() -> AuthRetry {
        AuthRetry { used: true }
    }
}

impl AlexaClient {
    /// Builds a client. Fails only on an invalid configuration or when TLS cannot be set up.
    pub fn new(config: ClientConfig) -> Result<AlexaClient, AlexaError> {
        config.validate()?;
        let http = build_http_client(&config)?;
        let throttle = Arc::new(Throttle::new(config.rate_limit, config.observer.clone()));
        let tokens = TokenCache::new(http.clone(), &config, throttle.clone());
        Ok(AlexaClient {
            inner: Arc::new(Inner {
                http,
                config,
                tokens,
                throttle,
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Forgets the cached access token (and any remembered credentials rejection) of `creds`,
    /// for example when their Secret changed, so the next call fetches a fresh token.
    pub fn invalidate_token(&self, creds: &LwaCredentials) {
        self.inner.tokens.invalidate(creds);
    }

    /// Checks that Login with Amazon accepts `creds` by getting an access token (the cached one
    /// while fresh, so checking often costs no request).
    pub async fn verify_credentials(&self, creds: &LwaCredentials) -> Result<(), AlexaError> {
        self.inner.tokens.token(creds).await.map(|_| ())
    }

    /// Reads a skill stage's account linking. `Ok(None)` when Amazon answers 404 (not
    /// configured yet, or no such skill: a following update tells which).
    pub async fn get_account_linking(
        &self,
        creds: &LwaCredentials,
        skill_id: &str,
        stage: Stage,
    ) -> Result<Option<Versioned<AccountLinkingInfo>>, AlexaError> {
        let op = Operation::GetAccountLinking;
        let url = self.account_linking_url(skill_id, stage)?;
        match self.call(creds, Request::new(op, Method::GET, url)).await {
            Ok(answer) => {
                let value = AccountLinkingInfo::from_json(&answer.body).map_err(|message| {
                    AlexaError::Decode {
                        operation: op,
                        message,
                    }
                })?;
                Ok(Some(Versioned {
                    value,
                    etag: etag(&answer.headers),
                }))
            }
            Err(AlexaError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Creates or replaces a skill stage's account linking. Sends `If-Match` only when
    /// `if_match` is given (verbatim). Returns the new ETag when Amazon sends one (its docs
    /// allow 204 without, or 200 with an ETag). A stale ETag gives
    /// [`AlexaError::PreconditionFailed`]: re-read and apply again.
    pub async fn update_account_linking(
        &self,
        creds: &LwaCredentials,
        skill_id: &str,
        stage: Stage,
        request: &AccountLinkingRequest,
        if_match: Option<&str>,
    ) -> Result<Option<String>, AlexaError> {
        let op = Operation::UpdateAccountLinking;
        let url = self.account_linking_url(skill_id, stage)?;
        let body = serde_json::to_vec(request).map_err(|e| AlexaError::Config {
            message: format!("cannot serialize the account linking request: {e}"),
        })?;
        let mut req = Request::new(op, Method::PUT, url);
        req.body = Some(body);
        req.if_match = if_match;
        if let Some(secret) = &request.client_secret {
            req.secrets.push(secret.expose_secret());
        }
        let answer = self.call(creds, req).await?;
        Ok(etag(&answer.headers))
    }

    /// Removes a skill stage's account linking. A 404 is returned as
    /// [`AlexaError::NotFound`]; for a deletion the caller usually treats it as done.
    pub async fn delete_account_linking(
        &self,
        creds: &LwaCredentials,
        skill_id: &str,
        stage: Stage,
    ) -> Result<(), AlexaError> {
        let url = self.account_linking_url(skill_id, stage)?;
        let req = Request::new(Operation::DeleteAccountLinking, Method::DELETE, url);
        self.call(creds, req).await.map(|_| ())
    }

    /// Enables a skill stage for the skill owner's developer account. Amazon disables the
    /// other stage as a side effect.
    pub async fn enable_stage(
        &self,
        creds: &LwaCredentials,
        skill_id: &str,
        stage: Stage,
    ) -> Result<(), AlexaError> {
        let url = self.enablement_url(skill_id, stage)?;
        let req = Request::new(Operation::EnableStage, Method::PUT, url);
        self.call(creds, req).await.map(|_| ())
    }

    /// Whether a skill stage is enabled for the skill owner: Amazon answers 204 (enabled) or
    /// 404 (not enabled; also when the skill does not exist).
    pub async fn stage_enabled(
        &self,
        creds: &LwaCredentials,
        skill_id: &str,
        stage: Stage,
    ) -> Result<bool, AlexaError> {
        let url = self.enablement_url(skill_id, stage)?;
        let req = Request::new(Operation::GetStageEnablement, Method::GET, url);
        match self.call(creds, req).await {
            Ok(_) => Ok(true),
            Err(AlexaError::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Disables a skill stage for the skill owner. A 404 is returned as
    /// [`AlexaError::NotFound`].
    pub async fn disable_stage(
        &self,
        creds: &LwaCredentials,
        skill_id: &str,
        stage: Stage,
    ) -> Result<(), AlexaError> {
        let url = self.enablement_url(skill_id, stage)?;
        let req = Request::new(Operation::DisableStage, Method::DELETE, url);
        self.call(creds, req).await.map(|_| ())
    }

    fn account_linking_url(&self, skill_id: &str, stage: Stage) -> Result<String, AlexaError> {
        let skill = skill_segment(skill_id)?;
        Ok(join(
            &self.inner.config.smapi_url,
            &format!(
                "/v1/skills/{skill}/stages/{}/accountLinkingClient",
                stage.as_str()
            ),
        ))
    }

    fn enablement_url(&self, skill_id: &str, stage: Stage) -> Result<String, AlexaError> {
        let skill = skill_segment(skill_id)?;
        Ok(join(
            &self.inner.config.smapi_url,
            &format!("/v1/skills/{skill}/stages/{}/enablement", stage.as_str()),
        ))
    }

    /// Sends a request with a fresh [`AuthRetry`].
    pub(crate) async fn call(
        &self,
        creds: &LwaCredentials,
        request: Request<'_>,
    ) -> Result<Answer, AlexaError> {
        self.execute(creds, &request, &mut AuthRetry::default())
            .await
    }

    /// The request loop: token → rate budget and Retry-After gate (waited out only when it is
    /// shorter than `max_in_call_wait`, else [`AlexaError::Deferred`]) → send → classify. Retries
    /// throttling, server and network errors up to `max_retries` times with full-jitter
    /// back-off (a 429, or a 5xx with Retry-After, waits behind the credential's gate instead),
    /// and answers one 401 per `auth` by dropping the token, refreshing and sending once more.
    pub(crate) async fn execute(
        &self,
        creds: &LwaCredentials,
        request: &Request<'_>,
        auth: &mut AuthRetry,
    ) -> Result<Answer, AlexaError> {
        let inner = &self.inner;
        let config = &inner.config;
        let fingerprint = creds.fingerprint();
        let host = host_of(&request.url);
        let max_retries = request.max_retries.unwrap_or(config.max_retries);
        let mut failures = 0u32;
        loop {
            let token = inner.tokens.token(creds).await?;
            // Never holds the worker longer than `max_in_call_wait`: a longer gate or rate wait
            // returns `Deferred` without sending, and the reconcile is requeued for it.
            inner
                .throttle
                .acquire(&fingerprint, config.max_in_call_wait)
                .await?;
            let sent_at = Instant::now();
            let (error, maybe_processed) = match self.send_once(request, &token.value, &host).await
            {
                Ok(answer) => {
                    inner.throttle.succeeded(&fingerprint, sent_at);
                    return Ok(answer);
                }
                Err(failure) => failure,
            };
            let mut secrets = request.secrets.clone();
            secrets.push(token.value.expose_secret());
            let error = error.redact(&secrets);

            if matches!(error, AlexaError::Unauthorized { .. }) && !auth.used {
                auth.used = true;
                tracing::debug!(
                    operation = %request.operation,
                    credential = %fingerprint,
                    "401 from Amazon; dropping the access token and retrying once"
                );
                inner.tokens.invalidate_generation(creds, token.generation);
                continue;
            }

            let wait = gate_for(&error, || config.backoff.delay(failures + 1));
            if let Some(gate) = wait {
                inner
                    .throttle
                    .congested(&fingerprint, sent_at, Instant::now() + gate);
                tracing::info!(
                    operation = %request.operation,
                    credential = %fingerprint,
                    status = error.status(),
                    wait_ms = gate.as_millis() as u64,
                    "Amazon asked to wait; pausing every call with these credentials"
                );
            }
            let budget_left = failures < max_retries;
            if !retry_in_call(&error, request, maybe_processed, budget_left, wait, config) {
                return Err(error);
            }
            failures += 1;
            let backoff = match wait {
                // The gate makes this and every other call with the credential wait.
                Some(_) => Duration::ZERO,
                None => config.backoff.delay(failures),
            };
            tracing::debug!(
                operation = %request.operation,
                credential = %fingerprint,
                error = %error,
                attempt = failures,
                wait_ms = backoff.as_millis() as u64,
                "retrying after a transient error"
            );
            if !backoff.is_zero() {
                tokio::time::sleep(backoff).await;
            }
        }
    }

    /// One HTTP exchange. On failure also says whether Amazon may have processed the request.
    async fn send_once(
        &self,
        request: &Request<'_>,
        token: &secrecy::SecretString,
        host: &str,
    ) -> Result<Answer, (AlexaError, bool)> {
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), &request.url)
            .header(
                AUTHORIZATION,
                bearer(token.expose_secret()).map_err(|e| (e, false))?,
            )
            .header(ACCEPT, "application/json");
        if let Some(etag) = request.if_match {
            builder = builder.header(
                IF_MATCH,
                header_value("ETag", etag).map_err(|e| (e, false))?,
            );
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let started = Instant::now();
        let response = builder.send().await;
        if let Some(sent) = request.sent {
            if response.as_ref().map_or_else(|e| !e.is_connect(), |_| true) {
                sent.store(true, Ordering::Release);
            }
        }
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                self.observe(request.operation, None, started);
                return Err((transport_error(&err, host), !err.is_connect()));
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_body(response).await;
        self.observe(request.operation, Some(status), started);
        let body = match body {
            Ok(body) => body,
            Err(BodyError::Read(err)) => return Err((transport_error(&err, host), true)),
            Err(BodyError::TooLarge) => {
                return Err((
                    AlexaError::Decode {
                        operation: request.operation,
                        message: "answer is too large".into(),
                    },
                    true,
                ));
            }
        };
        if (200..300).contains(&status) {
            return Ok(Answer { headers, body });
        }
        let mut secrets = request.secrets.clone();
        secrets.push(token.expose_secret());
        let body = redact_body(&body, &secrets);
        if let Some(answered) = foreign_api_answer(status, &body) {
            let error = AlexaError::wrong_endpoint(
                "Amazon's Alexa API",
                &request.url,
                request.setting,
                answered,
            );
            tracing::warn!(operation = %request.operation, error = %error, "the configured URL is not Amazon's API");
            return Err((error, true));
        }
        let error =
            AlexaError::from_response(request.operation, status, retry_after(&headers), &body);
        Err((error, true))
    }

    fn observe(&self, operation: Operation, status: Option<u16>, started: Instant) {
        if let Some(observer) = &self.inner.config.observer {
            observer.request(operation, status, started.elapsed());
        }
    }
}

/// How long a failure closes the credential's gate: a 429 (Amazon's Retry-After, else the
/// back-off) or a 5xx with Retry-After. Amazon asked every caller, not just this one, to hold off.
fn gate_for(error: &AlexaError, backoff: impl FnOnce() -> Duration) -> Option<Duration> {
    match error {
        AlexaError::Throttled { retry_after, .. } => Some(retry_after.unwrap_or_else(backoff)),
        AlexaError::Overloaded { retry_after, .. } => Some(*retry_after),
        _ => None,
    }
}

/// Whether the same request is tried again within this call: a transient error, with retries
/// left, a wait short enough to sit out here, and no risk of doing twice what Amazon may have
/// done (a non-idempotent request is repeated only when it certainly was not processed).
fn retry_in_call(
    error: &AlexaError,
    request: &Request<'_>,
    maybe_processed: bool,
    budget_left: bool,
    wait: Option<Duration>,
    config: &ClientConfig,
) -> bool {
    let safe_to_repeat =
        request.idempotent || !maybe_processed || matches!(error, AlexaError::Throttled { .. });
    error.is_transient()
        && safe_to_repeat
        && budget_left
        && wait.is_none_or(|w| w <= config.max_in_call_wait)
}

/// A skill ID as a percent-encoded path segment, after checking Amazon's length rule.
pub(crate) fn skill_segment(skill_id: &str) -> Result<String, AlexaError> {
    let len = skill_id.chars().count();
    if len == 0 || len > MAX_SKILL_ID_CHARS {
        return Err(AlexaError::InvalidRequest(ApiError::message(format!(
            "skill ID must be 1 to {MAX_SKILL_ID_CHARS} characters, got {len}"
        ))));
    }
    if skill_id.chars().all(|c| c == '.') {
        // "." and ".." would be resolved away as path segments, even percent-encoded.
        return Err(AlexaError::InvalidRequest(ApiError::message(format!(
            "skill ID {skill_id:?} is not a valid skill ID"
        ))));
    }
    Ok(utf8_percent_encode(skill_id, PATH_SEGMENT).to_string())
}

/// `base` (without trailing slashes) followed by `path` (starting with `/`).
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrong answer names the setting the URL came from.
    #[test]
    fn each_operation_names_the_setting_its_url_comes_from() {
        let cases = [
            (Operation::GetAccountLinking, Setting::SmapiUrl),
            (Operation::UpdateAccountLinking, Setting::SmapiUrl),
            (Operation::DeleteAccountLinking, Setting::SmapiUrl),
            (Operation::EnableStage, Setting::SmapiUrl),
            (Operation::GetStageEnablement, Setting::SmapiUrl),
            (Operation::DisableStage, Setting::SmapiUrl),
            (Operation::DiscoverEndpoints, Setting::CustomerDiscoveryUrl),
            (Operation::CustomerEnable, Setting::DiscoveredEndpoint),
            (Operation::CustomerStatus, Setting::DiscoveredEndpoint),
            (Operation::CustomerDisable, Setting::DiscoveredEndpoint),
            (Operation::LwaToken, Setting::LwaUrl),
        ];
        for (op, setting) in cases {
            assert_eq!(
                Request::new(op, Method::GET, String::new()).setting,
                setting,
                "{op}"
            );
        }
        assert!(
            Setting::EndpointOverride
                .to_string()
                .contains("--endpoint-override")
        );
    }

    #[test]
    fn skill_ids_are_checked_and_encoded() {
        assert_eq!(
            skill_segment("amzn1.ask.skill.00000000-0000-0000-0000-000000000001").unwrap(),
            "amzn1.ask.skill.00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(skill_segment("a/b c?d#e%").unwrap(), "a%2Fb%20c%3Fd%23e%25");
        assert!(skill_segment("..").is_err());
        assert_eq!(skill_segment("a..b").unwrap(), "a..b");
        assert_eq!(skill_segment("").unwrap_err().category(), "invalid_request");
        assert!(skill_segment(&"x".repeat(256)).is_err());
        assert!(skill_segment(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn urls_use_lower_case_stages() {
        let client = AlexaClient::new(ClientConfig {
            smapi_url: "http://127.0.0.1:1/".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            client.account_linking_url("s", Stage::Live).unwrap(),
            "http://127.0.0.1:1/v1/skills/s/stages/live/accountLinkingClient"
        );
        assert_eq!(
            client.enablement_url("s", Stage::Development).unwrap(),
            "http://127.0.0.1:1/v1/skills/s/stages/development/enablement"
        );
    }
}
