//! Customer skill enablement (app-to-app account linking) and regional endpoint discovery.
//!
//! A customer's Amazon account lives in one region (NA, EU or FE) and the customer API must be
//! called there. Rules, following Amazon's Skill Enablement reference:
//! 0. Customer calls carry the customer's token, authorization code and PKCE verifier, so they
//!    go only to Amazon's regional hosts and the `--endpoint-override` keys
//!    ([`super::ClientConfig::allowed_customer_host`]). A hint or discovered host outside that
//!    set (another host, a URL, `http://`) is skipped with a warning, never called.
//! 1. An `endpoint_hint` (the endpoint that worked last time, kept in the resource's status) is
//!    tried first. Its answer is trusted, except a 401/403 (and, for enable and disable, a
//!    404), which Amazon gives for a wrong region: then discovery runs.
//! 2. Discovery (`GET /v1/alexaApiEndpoint`) lists endpoints; they are tried in order until one
//!    answers. A 401, 403 or 404 from an endpoint means "not this region": try the next.
//! 3. When discovery itself fails with 5xx or a network error (or lists nothing), the hosts
//!    `api.amazonalexa.com`, `api.eu.amazonalexa.com`, `api.fe.amazonalexa.com` are tried in
//!    that order; there a 5xx or network error also moves on to the next host for the status
//!    read and the disable. The enable, which carries a single-use authorization code, stops
//!    there instead and returns the error: the code may have reached Amazon, and sending it to
//!    the next host would replay it. Only a 401/403/404 (the code was certainly not consumed)
//!    moves the enable on.
//! 4. Wrong-region 401s do not trigger a token refresh on each endpoint. Only when every
//!    endpoint answered 401 is the token dropped, refreshed once and the endpoints tried once
//!    more.
//!
//! Each host is mapped through `endpoint_overrides` (default `https://HOST`). The host that
//! answered is returned so the controller can store it and pass it back as the next hint.

use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Method;
use secrecy::ExposeSecret;

use super::client::{AlexaClient, AuthRetry, Request, join, skill_segment};
use super::config::FALLBACK_CUSTOMER_ENDPOINTS;
use super::credentials::LwaCredentials;
use super::errors::{AlexaError, Setting};
use super::models::{CustomerEnableRequest, CustomerEnablementStatus, endpoints_from_json};
use super::observer::Operation;

/// A failed [`AlexaClient::customer_enable`], with whether a request carrying the code left the
/// operator: the caller decides from both whether the single-use code may have been consumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct EnableFailure {
    /// What went wrong last.
    pub error: AlexaError,
    /// The failing request, carrying the code, may have reached Amazon. `false`: the failure
    /// came before it was sent (token refresh, discovery, the client's throttle, a connection
    /// that could not be opened); earlier wrong-region 401/403/404 answers did not use the code.
    pub sent: bool,
}

/// Which customer operation a pass over the endpoints performs.
enum CustomerOp<'a> {
    Status,
    Enable {
        body: Vec<u8>,
        secrets: Vec<&'a str>,
    },
    Disable,
}

impl CustomerOp<'_> {
    fn operation(&self) -> Operation {
        match self {
            CustomerOp::Status => Operation::CustomerStatus,
            CustomerOp::Enable { .. } => Operation::CustomerEnable,
            CustomerOp::Disable => Operation::CustomerDisable,
        }
    }

    /// Whether the request carries a single-use authorization code, so it must not be sent
    /// again (to any host) once it may have reached Amazon.
    fn carries_code(&self) -> bool {
        matches!(self, CustomerOp::Enable { .. })
    }
}

/// What one endpoint's answer means for the search.
enum Attempt {
    /// The right region answered.
    Done(Option<CustomerEnablementStatus>),
    /// Status only: 404, the skill is not enabled (or this is the wrong region and Amazon
    /// answers wrong regions with 404).
    Absent,
    /// Probably the wrong region; try the next endpoint.
    WrongRegion(AlexaError),
    /// A real failure; stop (unless on the fallback list, transient and not the enable).
    Failed(AlexaError),
    /// The enable failed before its request (with the code) was sent; stop.
    NotSent(AlexaError),
}

/// Endpoints to try after the hint, and whether they are Amazon's fixed fallback list.
struct Candidates {
    hosts: Vec<String>,
    fallback: bool,
}

/// Outcome of one pass over the endpoints.
enum Pass {
    Done(String, Option<CustomerEnablementStatus>),
    /// A failure; `true` when the failing request (carrying a code, for the enable) was sent.
    Failed(AlexaError, bool),
    AllWrongRegion(Vec<AlexaError>),
}

impl AlexaClient {
    /// Asks where the customer's account lives: `GET /v1/alexaApiEndpoint` at
    /// `customer_discovery_url`, with the customer's credentials. Returns host names as Amazon
    /// lists them (for example `api.eu.amazonalexa.com`).
    pub async fn discover_endpoints(
        &self,
        creds: &LwaCredentials,
    ) -> Result<Vec<String>, AlexaError> {
        let op = Operation::DiscoverEndpoints;
        let url = join(
            &self.inner.config.customer_discovery_url,
            "/v1/alexaApiEndpoint",
        );
        let answer = self.call(creds, Request::new(op, Method::GET, url)).await?;
        endpoints_from_json(&answer.body).map_err(|message| AlexaError::Decode {
            operation: op,
            message,
        })
    }

    /// The customer's enablement of `skill_id`, found per the module's endpoint rules. Returns
    /// the endpoint host that answered and `None` when the skill is not enabled for the
    /// customer (Amazon's 404).
    pub async fn customer_status(
        &self,
        creds: &LwaCredentials,
        endpoint_hint: Option<&str>,
        skill_id: &str,
    ) -> Result<(String, Option<CustomerEnablementStatus>), AlexaError> {
        self.customer_op(creds, endpoint_hint, skill_id, CustomerOp::Status)
            .await
            .map_err(|failure| failure.error)
    }

    /// Enables `skill_id` for the customer and links their account with the single-use
    /// authorization code. Returns the endpoint host that accepted it and Amazon's status. The
    /// request is not repeated once it may have reached Amazon (the code would be spent): a
    /// 5xx or broken connection is returned, and the caller should read the status before
    /// trying again. Authorization codes never appear in errors. The failure says whether a
    /// request carrying the code was sent at all ([`EnableFailure::sent`]).
    pub async fn customer_enable(
        &self,
        creds: &LwaCredentials,
        endpoint_hint: Option<&str>,
        skill_id: &str,
        request: &CustomerEnableRequest,
    ) -> Result<(String, CustomerEnablementStatus), EnableFailure> {
        let body = serde_json::to_vec(request).map_err(|e| EnableFailure {
            error: AlexaError::Config {
                message: format!("cannot serialize the enablement request: {e}"),
            },
            sent: false,
        })?;
        let link = &request.account_link_request;
        let mut secrets = vec![link.auth_code.expose_secret()];
        if let Some(verifier) = &link.code_verifier {
            secrets.push(verifier.expose_secret());
        }
        let (host, status) = self
            .customer_op(
                creds,
                endpoint_hint,
                skill_id,
                CustomerOp::Enable { body, secrets },
            )
            .await?;
        Ok((host, status.unwrap_or_default()))
    }

    /// Disables `skill_id` for the customer and unlinks their account. Returns the endpoint host
    /// that did it. [`AlexaError::NotFound`] when it was not enabled anywhere (usually: done).
    pub async fn customer_disable(
        &self,
        creds: &LwaCredentials,
        endpoint_hint: Option<&str>,
        skill_id: &str,
    ) -> Result<String, AlexaError> {
        self.customer_op(creds, endpoint_hint, skill_id, CustomerOp::Disable)
            .await
            .map(|(host, _)| host)
            .map_err(|failure| failure.error)
    }

    async fn customer_op(
        &self,
        creds: &LwaCredentials,
        hint: Option<&str>,
        skill_id: &str,
        op: CustomerOp<'_>,
    ) -> Result<(String, Option<CustomerEnablementStatus>), EnableFailure> {
        let skill =
            skill_segment(skill_id).map_err(|error| EnableFailure { error, sent: false })?;
        let hint = self.allowed_hint(hint, &op);
        let hint = hint.as_deref();
        let mut candidates = None;
        let mut refreshed = false;
        loop {
            match self
                .customer_pass(creds, hint, &skill, &op, &mut candidates)
                .await
            {
                Pass::Done(host, status) => return Ok((host, status)),
                // Only the failing attempt counts: a wrong-region 401/403/404 before it did not
                // process the code (see docs/AMAZON.md).
                Pass::Failed(error, sent) => return Err(EnableFailure { error, sent }),
                Pass::AllWrongRegion(errors) => {
                    let all_unauthorized = !errors.is_empty()
                        && errors
                            .iter()
                            .all(|e| matches!(e, AlexaError::Unauthorized { .. }));
                    if all_unauthorized && !refreshed {
                        refreshed = true;
                        tracing::debug!(
                            credential = %creds.fingerprint(),
                            "every customer endpoint answered 401; refreshing the token once"
                        );
                        self.inner.tokens.invalidate(creds);
                        continue;
                    }
                    let sent = op.carries_code() && !errors.is_empty();
                    return Err(EnableFailure {
                        error: most_telling(errors),
                        sent,
                    });
                }
            }
        }
    }

    /// The endpoint hint, when it names a host customer calls may go to; otherwise `None`
    /// (discovery runs) and a warning, since only someone editing status can have put it there.
    fn allowed_hint(&self, hint: Option<&str>, op: &CustomerOp<'_>) -> Option<String> {
        let hint = hint.map(str::trim).filter(|h| !h.is_empty())?;
        let allowed = self.inner.config.allowed_customer_host(hint);
        if allowed.is_none() {
            tracing::warn!(
                operation = %op.operation(),
                endpoint = hint,
                "ignoring the endpoint in status: not one of Amazon's regional hosts or an --endpoint-override host"
            );
        }
        allowed
    }

    /// Tries the hint, then the discovered (or fallback) endpoints, once each.
    async fn customer_pass(
        &self,
        creds: &LwaCredentials,
        hint: Option<&str>,
        skill: &str,
        op: &CustomerOp<'_>,
        candidates: &mut Option<Candidates>,
    ) -> Pass {
        let mut wrong = Vec::new();
        if let Some(hint) = hint {
            match self.customer_attempt(creds, hint, skill, op).await {
                Attempt::Done(status) => return Pass::Done(hint.to_owned(), status),
                Attempt::Absent => return Pass::Done(hint.to_owned(), None),
                Attempt::WrongRegion(err) => {
                    tracing::debug!(
                        operation = %op.operation(),
                        endpoint = hint,
                        error = %err,
                        "the remembered customer endpoint refused; discovering again"
                    );
                    wrong.push(err);
                }
                Attempt::Failed(err) => return Pass::Failed(err, true),
                Attempt::NotSent(err) => return Pass::Failed(err, false),
            }
        }
        if candidates.is_none() {
            match self.candidates(creds).await {
                Ok(found) => *candidates = Some(found),
                Err(err) => return Pass::Failed(err, false),
            }
        }
        let Some(found) = candidates.as_ref() else {
            return Pass::AllWrongRegion(wrong);
        };
        let mut absent_at: Option<&String> = None;
        for host in &found.hosts {
            if hint.is_some_and(|h| h.eq_ignore_ascii_case(host)) {
                continue;
            }
            match self.customer_attempt(creds, host, skill, op).await {
                Attempt::Done(status) => return Pass::Done(host.clone(), status),
                Attempt::Absent => {
                    absent_at.get_or_insert(host);
                }
                Attempt::WrongRegion(err) => wrong.push(err),
                // A 5xx or dropped connection on the fallback list may just be a host in
                // trouble, so reads and disables try the next one. Never the enable: its code
                // may have been consumed, and the caller reads the status before resending.
                Attempt::Failed(err)
                    if found.fallback
                        && !op.carries_code()
                        && matches!(
                            err,
                            AlexaError::Unavailable { .. }
                                | AlexaError::Overloaded { .. }
                                | AlexaError::Transport { .. }
                        ) =>
                {
                    wrong.push(err)
                }
                Attempt::Failed(err) => return Pass::Failed(err, true),
                Attempt::NotSent(err) => return Pass::Failed(err, false),
            }
        }
        match absent_at {
            Some(host) => Pass::Done(host.clone(), None),
            None => Pass::AllWrongRegion(wrong),
        }
    }

    /// Discovered endpoints, or Amazon's fallback list when discovery has server or network
    /// trouble or lists nothing. Discovery is not retried here: the fallback is the retry.
    async fn candidates(&self, creds: &LwaCredentials) -> Result<Candidates, AlexaError> {
        let op = Operation::DiscoverEndpoints;
        let url = join(
            &self.inner.config.customer_discovery_url,
            "/v1/alexaApiEndpoint",
        );
        let mut request = Request::new(op, Method::GET, url);
        request.max_retries = Some(0);
        let fallback = || Candidates {
            hosts: FALLBACK_CUSTOMER_ENDPOINTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            fallback: true,
        };
        let result = self
            .execute(creds, &request, &mut AuthRetry::default())
            .await
            .and_then(|answer| {
                endpoints_from_json(&answer.body).map_err(|message| AlexaError::Decode {
                    operation: op,
                    message,
                })
            });
        let result = result.map(|listed| self.allowed_discovered(listed));
        match result {
            Ok(hosts) if !hosts.is_empty() => Ok(Candidates {
                hosts,
                fallback: false,
            }),
            Ok(_) => {
                tracing::info!("endpoint discovery listed no endpoint; trying NA, EU, FE");
                Ok(fallback())
            }
            Err(
                err @ (AlexaError::Unavailable { .. }
                | AlexaError::Overloaded { .. }
                | AlexaError::Transport { .. }),
            ) => {
                tracing::info!(error = %err, "endpoint discovery failed; trying NA, EU, FE");
                Ok(fallback())
            }
            Err(err) => Err(err),
        }
    }

    /// The discovered hosts customer calls may go to, in Amazon's order; the others are
    /// skipped with a warning (when none is left, the caller uses Amazon's fallback list).
    fn allowed_discovered(&self, listed: Vec<String>) -> Vec<String> {
        let config = &self.inner.config;
        listed
            .into_iter()
            .filter_map(|host| {
                let allowed = config.allowed_customer_host(&host);
                if allowed.is_none() {
                    tracing::warn!(
                        endpoint = %host,
                        "skipping an endpoint discovery listed: not one of Amazon's regional hosts or an --endpoint-override host"
                    );
                }
                allowed
            })
            .collect()
    }

    /// The request `op` sends to `host` (an allowed host: `None` otherwise); the enable's
    /// records in `sent` whether it left the operator.
    fn customer_request<'a>(
        &self,
        host: &str,
        skill: &str,
        op: &CustomerOp<'a>,
        sent: &'a AtomicBool,
    ) -> Option<Request<'a>> {
        let base = self.inner.config.customer_base_url(host)?;
        let url = join(
            &base,
            &format!("/v1/users/~current/skills/{skill}/enablement"),
        );
        let operation = op.operation();
        let mut request = match op {
            CustomerOp::Status => Request::new(operation, Method::GET, url),
            CustomerOp::Enable { body, secrets } => {
                let mut request = Request::new(operation, Method::POST, url);
                request.body = Some(body.clone());
                request.idempotent = false;
                request.secrets = secrets.clone();
                request.sent = Some(sent);
                request
            }
            CustomerOp::Disable => Request::new(operation, Method::DELETE, url),
        };
        if self.inner.config.endpoint_overrides.contains_key(host) {
            request.setting = Setting::EndpointOverride;
        }
        Some(request)
    }

    /// One customer request against one endpoint host.
    async fn customer_attempt(
        &self,
        creds: &LwaCredentials,
        host: &str,
        skill: &str,
        op: &CustomerOp<'_>,
    ) -> Attempt {
        let operation = op.operation();
        let sent = AtomicBool::new(false);
        let Some(request) = self.customer_request(host, skill, op, &sent) else {
            // Unreachable: hosts are filtered before they get here.
            return Attempt::NotSent(AlexaError::Config {
                message: format!("{host} is not a customer API host the operator may call"),
            });
        };
        // A 401 here usually means "wrong region", not "stale token": no refresh per endpoint
        // (customer_op refreshes once if every endpoint says 401).
        let mut auth = AuthRetry::spent();
        let result = self.execute(creds, &request, &mut auth).await;
        let result = match result {
            Err(err) if op.carries_code() && !sent.load(Ordering::Acquire) => {
                return Attempt::NotSent(err);
            }
            other => other,
        };
        match (op, result) {
            (CustomerOp::Status, Ok(answer)) => {
                match CustomerEnablementStatus::from_json(&answer.body) {
                    Ok(status) => Attempt::Done(Some(status)),
                    Err(message) => Attempt::Failed(AlexaError::Decode { operation, message }),
                }
            }
            (CustomerOp::Enable { .. }, Ok(answer)) => {
                // The code is spent now: never turn this success into an error.
                let status =
                    CustomerEnablementStatus::from_json(&answer.body).unwrap_or_else(|message| {
                        tracing::warn!(
                            endpoint = host,
                            reason = %message,
                            "customer enablement succeeded but its status body was unreadable"
                        );
                        CustomerEnablementStatus::default()
                    });
                Attempt::Done(Some(status))
            }
            (CustomerOp::Disable, Ok(_)) => Attempt::Done(None),
            (CustomerOp::Status, Err(AlexaError::NotFound { .. })) => Attempt::Absent,
            (
                _,
                Err(
                    err @ (AlexaError::Unauthorized { .. }
                    | AlexaError::Forbidden { .. }
                    | AlexaError::NotFound { .. }),
                ),
            ) => Attempt::WrongRegion(err),
            (_, Err(err)) => Attempt::Failed(err),
        }
    }
}

/// The error that says most about why no endpoint worked: a real failure first, then 404
/// (the right region saying "no such skill / not enabled"), then 403, then 401.
fn most_telling(errors: Vec<AlexaError>) -> AlexaError {
    let rank = |e: &AlexaError| match e {
        AlexaError::Unauthorized { .. } => 0,
        AlexaError::Forbidden { .. } => 1,
        AlexaError::NotFound { .. } => 2,
        _ => 3,
    };
    errors
        .into_iter()
        .rev()
        .max_by_key(rank)
        .unwrap_or_else(|| AlexaError::Transport {
            message: "no customer endpoint to try".into(),
        })
}
