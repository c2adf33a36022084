//! Typed errors of the Alexa client. Controllers act on the variant (retry, wait for a spec
//! change, report bad credentials) and show the Display text in a condition message, so every
//! message says what went wrong and what to do, carries Amazon's `code` and `message`, and never
//! contains a token, secret or authorization code.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::observer::Operation;

/// Longest message taken from a response body; keeps condition messages readable.
const MAX_MESSAGE_CHARS: usize = 1000;
/// Longest transport error text kept (cut after redaction, in [`AlexaError::redact`]).
pub(crate) const MAX_TRANSPORT_CHARS: usize = 500;
/// Longest non-JSON body snippet quoted in a message.
const MAX_SNIPPET_CHARS: usize = 200;
/// A Retry-After longer than this is treated as this long, so a broken header cannot stall
/// a credential for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// What replaces a secret value that Amazon echoed back in a message.
const REDACTED: &str = "[REDACTED]";

/// One rule a request broke, as Amazon lists it in `violations` of a 400 (sometimes 403) body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Amazon's machine-readable code, when given (for example `INVALID_STRING_LENGTH`).
    pub code: Option<String>,
    /// Amazon's human-readable message.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What Amazon said about a failed request: its machine-readable code, its message and the
/// individual rule violations. Shared by every "Amazon answered with an error" variant of
/// [`AlexaError`], so reading, redaction and display are written once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiError {
    /// Amazon's (or LWA's) error code, when given.
    pub code: Option<String>,
    /// Amazon's message, or the status' reason phrase when the body had none.
    pub message: String,
    /// Individual rule violations, when Amazon listed them (400s, sometimes 403s).
    pub violations: Vec<Violation>,
}

impl ApiError {
    /// An answer with just a message (tests, and errors the client raises itself).
    pub fn message(message: impl Into<String>) -> ApiError {
        ApiError {
            code: None,
            message: message.into(),
            violations: Vec::new(),
        }
    }

    /// The same answer with a code.
    pub fn with_code(mut self, code: impl Into<String>) -> ApiError {
        self.code = Some(code.into());
        self
    }

    fn redact(self, secrets: &[&str]) -> ApiError {
        let r = |s: String| redact_text(s, secrets);
        ApiError {
            code: self.code.map(r),
            message: r(self.message),
            violations: self
                .violations
                .into_iter()
                .map(|v| Violation {
                    code: v.code.map(r),
                    message: r(v.message),
                })
                .collect(),
        }
    }
}

/// Why a call to Amazon failed, in classes the reconcilers can act on without parsing strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlexaError {
    /// HTTP 400 (or another 4xx without a dedicated class): the request itself is wrong.
    /// Terminal for this spec generation.
    #[error(
        "Amazon rejected the request as invalid{}: {}{}. Fix the spec or the referenced Secret; the same request will keep failing",
        CodeSuffix(.0.code.as_deref()),
        .0.message,
        ViolationList(&.0.violations)
    )]
    InvalidRequest(ApiError),

    /// HTTP 401 that persisted after the cached token was dropped and a fresh one fetched.
    #[error(
        "Amazon did not accept the access token even after a fresh one was fetched (HTTP 401{}): {}. Check that the Login with Amazon credentials belong to the account that owns the skill and carry the required scope",
        CodeInParens(.0.code.as_deref()),
        .0.message
    )]
    Unauthorized(ApiError),

    /// HTTP 403: the credentials are valid but not allowed to do this.
    #[error(
        "Amazon refused the operation (HTTP 403{}): {}. The credentials work but may not do this: check they belong to the skill's vendor and have the scope alexa::ask:skills:readwrite (skill owner) or alexa::skills:account_linking (customer)",
        CodeInParens(.0.code.as_deref()),
        .0.message
    )]
    Forbidden(ApiError),

    /// HTTP 404: the skill, stage or resource does not exist. Callers decide what that means
    /// for their operation.
    #[error(
        "Amazon found no such resource (HTTP 404{}): {}. Check the skill ID and stage",
        CodeInParens(.0.code.as_deref()),
        .0.message
    )]
    NotFound(ApiError),

    /// HTTP 412: the `If-Match` ETag is stale; read the current state and try again.
    #[error(
        "Amazon refused the update because it changed since it was read (HTTP 412{}): {}. The operator re-reads and applies again",
        CodeInParens(.0.code.as_deref()),
        .0.message
    )]
    PreconditionFailed(ApiError),

    /// HTTP 429: too many requests. Every call with the same credentials already waits.
    #[error(
        "Amazon is throttling requests (HTTP 429{}): {}{}. Calls with these credentials are slowed down automatically; lower the operator's API rate limit if this persists",
        CodeInParens(answer.code.as_deref()),
        answer.message,
        RetryAfterSuffix(*retry_after)
    )]
    Throttled {
        /// What Amazon said.
        answer: ApiError,
        /// How long Amazon asked to wait (`Retry-After`), when it said.
        retry_after: Option<Duration>,
    },

    /// Nothing was sent: the credential's calls are held for longer than a call may wait
    /// (`max_in_call_wait`), so the call returns instead of holding a worker. The reconcile is
    /// requeued for `retry_after`.
    #[error(
        "Calls with these credentials wait another {:.1} s ({cause}); nothing was sent. The operator tries again then; other credentials are not affected",
        retry_after.as_secs_f64()
    )]
    Deferred {
        /// How long until a request with these credentials may go out.
        retry_after: Duration,
        /// Why the credential's calls wait.
        cause: DeferCause,
    },

    /// HTTP 5xx (or 408): trouble on Amazon's side, usually temporary.
    #[error(
        "Amazon's API is unavailable (HTTP {status}): {message}. This is usually temporary; the operator retries with back-off"
    )]
    Unavailable {
        /// The HTTP status code.
        status: u16,
        /// Amazon's message, or the status' reason phrase.
        message: String,
    },

    /// HTTP 5xx (or 408) with a `Retry-After`: Amazon said when to come back, so every call with
    /// the same credentials waits that long, as after a 429.
    #[error(
        "Amazon's API is unavailable (HTTP {status}): {message} (Amazon asked to wait {:.1} s). Calls with these credentials pause that long; the operator retries",
        retry_after.as_secs_f64()
    )]
    Overloaded {
        /// The HTTP status code.
        status: u16,
        /// Amazon's message, or the status' reason phrase.
        message: String,
        /// How long Amazon asked to wait (`Retry-After`).
        retry_after: Duration,
    },

    /// No HTTP response: connection refused or reset, DNS failure, timeout.
    #[error(
        "Could not reach Amazon: {message}. Check network access (DNS, proxy, firewall) to Amazon's API hosts; the operator retries with back-off"
    )]
    Transport {
        /// What failed, with the host but never a full URL, token or secret.
        message: String,
    },

    /// Login with Amazon refused the credentials: an OAuth error answer (`invalid_grant`,
    /// `invalid_client`, `unauthorized_client`, ...) from the token endpoint.
    #[error(
        "Login with Amazon rejected the credentials ({error}{}). Check the client-id, client-secret and refresh-token keys of the credentials Secret: the refresh token must have been issued to that client ID and not revoked",
        DescriptionSuffix(description.as_deref())
    )]
    Credentials {
        /// The OAuth error code, for example `invalid_grant`.
        error: String,
        /// LWA's `error_description`, when given.
        description: Option<String>,
    },

    /// The configured URL answered with something that is not the API it should be (a 404 or
    /// 405 without an API error, a redirect, an HTML page, text, JSON of another shape, a
    /// token answer without a token): the URL or its setting is wrong. Nothing was judged about
    /// the credentials or the request, so the message says which setting to fix.
    #[error(
        "{url} did not answer like {service} ({answered}), so the credentials and the request were not judged. Check {setting}"
    )]
    WrongEndpoint {
        /// What should have answered, e.g. "the Login with Amazon token endpoint".
        service: &'static str,
        /// The URL that answered, without user info or query.
        url: String,
        /// Where the URL came from: the flag and environment variable, or Amazon's discovery.
        setting: Setting,
        /// What came back instead, e.g. "HTTP 404 with an HTML page".
        answered: String,
    },

    /// A successful status with a body that could not be read.
    #[error(
        "Amazon's answer to {operation} could not be read: {message}. Amazon's API may have changed; please report this"
    )]
    Decode {
        /// The operation whose answer was unreadable.
        operation: Operation,
        /// What was wrong with the body (never the body itself).
        message: String,
    },

    /// The client configuration or a caller-supplied value cannot be used.
    #[error("Invalid Alexa client configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
}

/// Why calls with a credential wait (see [`AlexaError::Deferred`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferCause {
    /// Amazon or Login with Amazon answered 429 or 5xx (with its `Retry-After`, or the
    /// back-off when it gave none).
    RetryAfter,
    /// The operator's own per-credential rate budget (`--api-rate-limit`, `--api-burst`) has no
    /// slot that soon.
    RateBudget,
}

impl fmt::Display for DeferCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeferCause::RetryAfter => {
                "Amazon answered 429 or a server error and asked every call with these credentials to wait"
            }
            DeferCause::RateBudget => {
                "the per-credential rate budget --api-rate-limit/--api-burst has no free slot sooner"
            }
        })
    }
}

/// Where a URL the client called came from, so a wrong answer names the setting to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `--smapi-url` / `ALEXA_SMAPI_URL`.
    SmapiUrl,
    /// `--lwa-url` / `ALEXA_LWA_URL`.
    LwaUrl,
    /// `--customer-discovery-url` / `ALEXA_CUSTOMER_DISCOVERY_URL`.
    CustomerDiscoveryUrl,
    /// An `--endpoint-override` / `ALEXA_ENDPOINT_OVERRIDES` entry.
    EndpointOverride,
    /// A host Amazon's endpoint discovery (or its documented fallback list) named.
    DiscoveredEndpoint,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::SmapiUrl => "--smapi-url (ALEXA_SMAPI_URL)",
            Setting::LwaUrl => "--lwa-url (ALEXA_LWA_URL)",
            Setting::CustomerDiscoveryUrl => {
                "--customer-discovery-url (ALEXA_CUSTOMER_DISCOVERY_URL)"
            }
            Setting::EndpointOverride => "the --endpoint-override (ALEXA_ENDPOINT_OVERRIDES) entry for this host",
            Setting::DiscoveredEndpoint => {
                "Amazon's endpoint discovery answer; map the host with --endpoint-override (ALEXA_ENDPOINT_OVERRIDES) if it must go through a proxy"
            }
        })
    }
}

impl AlexaError {
    /// Whether trying the same call again later may succeed without any change to the spec or
    /// Secrets: throttling, server trouble, network trouble, and a stale ETag (after re-reading).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AlexaError::Throttled { .. }
                | AlexaError::Deferred { .. }
                | AlexaError::Unavailable { .. }
                | AlexaError::Overloaded { .. }
                | AlexaError::Transport { .. }
                | AlexaError::PreconditionFailed { .. }
        )
    }

    /// Whether the client itself retries this within a call (the same request may succeed
    /// unchanged after a short wait).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            AlexaError::Throttled { .. }
                | AlexaError::Deferred { .. }
                | AlexaError::Unavailable { .. }
                | AlexaError::Overloaded { .. }
                | AlexaError::Transport { .. }
        )
    }

    /// How long Amazon asked to wait before the next attempt, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AlexaError::Throttled { retry_after, .. } => *retry_after,
            AlexaError::Overloaded { retry_after, .. }
            | AlexaError::Deferred { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Bounded label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            AlexaError::InvalidRequest { .. } => "invalid_request",
            AlexaError::Unauthorized { .. } => "unauthorized",
            AlexaError::Forbidden { .. } => "forbidden",
            AlexaError::NotFound { .. } => "not_found",
            AlexaError::PreconditionFailed { .. } => "precondition_failed",
            AlexaError::Throttled { .. } | AlexaError::Deferred { .. } => "throttled",
            // One label for all server trouble, with or without Retry-After.
            AlexaError::Unavailable { .. } | AlexaError::Overloaded { .. } => "unavailable",
            AlexaError::Transport { .. } => "transport",
            AlexaError::Credentials { .. } => "credentials",
            AlexaError::WrongEndpoint { .. } => "wrong_endpoint",
            AlexaError::Decode { .. } => "decode",
            AlexaError::Config { .. } => "config",
        }
    }

    /// Amazon's (or LWA's) machine-readable error code, when the answer carried one; lets a
    /// controller recognise specific rejections (for example a used authorization code).
    pub fn code(&self) -> Option<&str> {
        match self {
            AlexaError::Credentials { error, .. } => Some(error),
            _ => self.answer().and_then(|a| a.code.as_deref()),
        }
    }

    /// What Amazon said, for the variants that carry an API error answer.
    pub fn answer(&self) -> Option<&ApiError> {
        match self {
            AlexaError::InvalidRequest(a)
            | AlexaError::Unauthorized(a)
            | AlexaError::Forbidden(a)
            | AlexaError::NotFound(a)
            | AlexaError::PreconditionFailed(a)
            | AlexaError::Throttled { answer: a, .. } => Some(a),
            _ => None,
        }
    }

    /// The HTTP status behind this error, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            AlexaError::InvalidRequest(_) => Some(400),
            AlexaError::Unauthorized(_) => Some(401),
            AlexaError::Forbidden(_) => Some(403),
            AlexaError::NotFound(_) => Some(404),
            AlexaError::PreconditionFailed(_) => Some(412),
            AlexaError::Throttled { .. } => Some(429),
            AlexaError::Unavailable { status, .. } | AlexaError::Overloaded { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Replaces every occurrence of the given secret values in the error's text fields, in case
    /// Amazon echoes part of the request (an authorization code, say) in its message.
    pub(crate) fn redact(self, secrets: &[&str]) -> Self {
        let r = |s: String| redact_text(s, secrets);
        match self {
            AlexaError::InvalidRequest(a) => AlexaError::InvalidRequest(a.redact(secrets)),
            AlexaError::Unauthorized(a) => AlexaError::Unauthorized(a.redact(secrets)),
            AlexaError::Forbidden(a) => AlexaError::Forbidden(a.redact(secrets)),
            AlexaError::NotFound(a) => AlexaError::NotFound(a.redact(secrets)),
            AlexaError::PreconditionFailed(a) => AlexaError::PreconditionFailed(a.redact(secrets)),
            AlexaError::Throttled {
                answer,
                retry_after,
            } => AlexaError::Throttled {
                answer: answer.redact(secrets),
                retry_after,
            },
            AlexaError::Unavailable { status, message } => AlexaError::Unavailable {
                status,
                message: r(message),
            },
            AlexaError::Overloaded {
                status,
                message,
                retry_after,
            } => AlexaError::Overloaded {
                status,
                message: r(message),
                retry_after,
            },
            AlexaError::Transport { message } => AlexaError::Transport {
                message: truncate(&r(message), MAX_TRANSPORT_CHARS),
            },
            AlexaError::Deferred { .. } => self,
            AlexaError::Credentials { error, description } => AlexaError::Credentials {
                error: r(error),
                description: description.map(r),
            },
            AlexaError::WrongEndpoint {
                service,
                url,
                setting,
                answered,
            } => AlexaError::WrongEndpoint {
                service,
                url: r(url),
                setting,
                answered: r(answered),
            },
            AlexaError::Decode { operation, message } => AlexaError::Decode {
                operation,
                message: r(message),
            },
            AlexaError::Config { message } => AlexaError::Config {
                message: r(message),
            },
        }
    }

    /// Builds the error for a non-success HTTP answer of `operation` from its status,
    /// `Retry-After` and body. Never fails, whatever the body holds. Callers check
    /// [`foreign_api_answer`] first: this assumes the answer came from Amazon's API.
    pub(crate) fn from_response(
        operation: Operation,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> AlexaError {
        let parsed = ApiErrorBody::parse(body);
        let message = parsed
            .message
            .or_else(|| parsed.violations.first().map(|v| v.message.clone()))
            .unwrap_or_else(|| fallback_message(status, body));
        let answer = ApiError {
            code: parsed.code,
            message,
            violations: parsed.violations,
        };
        match status {
            400 => AlexaError::InvalidRequest(answer),
            401 => AlexaError::Unauthorized(answer),
            403 => AlexaError::Forbidden(answer),
            404 => AlexaError::NotFound(answer),
            412 => AlexaError::PreconditionFailed(answer),
            429 => AlexaError::Throttled {
                answer,
                retry_after,
            },
            408 | 500..=599 => server_trouble(status, answer.message, retry_after),
            402..=499 => {
                let code = answer
                    .code
                    .clone()
                    .unwrap_or_else(|| format!("HTTP_{status}"));
                AlexaError::InvalidRequest(answer.with_code(code))
            }
            _ => AlexaError::Decode {
                operation,
                message: format!("unexpected HTTP status {status}"),
            },
        }
    }

    /// Builds the error for a Login with Amazon answer that is not a token. Callers check
    /// [`foreign_lwa_answer`] first: this assumes the answer came from an OAuth token endpoint.
    pub(crate) fn from_lwa_response(
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> AlexaError {
        let oauth = OAuthErrorBody::parse(body);
        match (status, oauth) {
            (429, oauth) => AlexaError::Throttled {
                answer: ApiError {
                    code: oauth.as_ref().map(|o| o.error.clone()),
                    message: oauth
                        .and_then(|o| o.description)
                        .unwrap_or_else(|| fallback_message(status, body)),
                    violations: Vec::new(),
                },
                retry_after,
            },
            (408 | 500..=599, oauth) => server_trouble(
                status,
                oauth
                    .and_then(|o| o.description.or(Some(o.error)))
                    .unwrap_or_else(|| fallback_message(status, body)),
                retry_after,
            ),
            (400..=499, Some(oauth)) => AlexaError::Credentials {
                error: oauth.error,
                description: oauth.description,
            },
            (400..=499, None) => AlexaError::Credentials {
                error: format!("http_{status}"),
                description: Some(fallback_message(status, body)),
            },
            _ => AlexaError::Decode {
                operation: Operation::LwaToken,
                message: format!("unexpected HTTP status {status}"),
            },
        }
    }

    /// The error for an answer [`foreign_api_answer`] or [`foreign_lwa_answer`] judged foreign.
    pub(crate) fn wrong_endpoint(
        service: &'static str,
        url: &str,
        setting: Setting,
        answered: String,
    ) -> AlexaError {
        AlexaError::WrongEndpoint {
            service,
            url: display_url(url),
            setting,
            answered,
        }
    }
}

/// Whether a non-success answer of Amazon's API (SMAPI, discovery, customer enablement) came
/// from something else: a redirect, a 405, or a 4xx whose body is not JSON (an HTML error page,
/// a proxy's text). Returns what answered, for the message; `None` means "Amazon's answer,
/// classify it by status". 5xx stay transient whatever the body: a broken gateway in front of
/// the right URL is temporary. An empty 4xx body is read as Amazon's (its pages do not promise a
/// body on every 404).
pub(crate) fn foreign_api_answer(status: u16, body: &[u8]) -> Option<String> {
    match status {
        300..=399 => Some(format!("a redirect, HTTP {status}")),
        405 => Some("HTTP 405 Method Not Allowed".to_owned()),
        400..=499 if status != 429 && !body_is_empty(body) && !is_json(body) => {
            Some(format!("HTTP {status} with {}", body_kind(body)))
        }
        _ => None,
    }
}

/// Whether a Login with Amazon answer came from something that is not an OAuth 2.0 token
/// endpoint: a redirect, a 404/405, a 4xx without an OAuth error body (`{"error":
/// "snake_case_code"}`), or a 2xx without an `access_token`. Only a real OAuth error judges the
/// credentials; everything else means the URL is wrong.
pub(crate) fn foreign_lwa_answer(status: u16, body: &[u8]) -> Option<String> {
    match status {
        200..=299 if !has_access_token(body) => Some(format!(
            "HTTP {status} with {} that holds no access_token",
            body_kind(body)
        )),
        300..=399 => Some(format!("a redirect, HTTP {status}")),
        404 | 405 => Some(format!("HTTP {status} with {}", body_kind(body))),
        400..=499
            if status != 429 && !OAuthErrorBody::parse(body).is_some_and(|o| o.is_oauth()) =>
        {
            Some(format!(
                "HTTP {status} with {}, not an OAuth error",
                body_kind(body)
            ))
        }
        _ => None,
    }
}

fn body_is_empty(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok()
}

fn has_access_token(body: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<Value>(body),
        Ok(Value::Object(map)) if matches!(map.get("access_token"), Some(Value::String(t)) if !t.is_empty())
    )
}

/// A short description of a body that is not what was expected; never the body itself (it
/// could echo a request value).
fn body_kind(body: &[u8]) -> &'static str {
    if body_is_empty(body) {
        return "an empty body";
    }
    let text = String::from_utf8_lossy(body);
    let head = text
        .trim_start()
        .get(..64)
        .unwrap_or(text.trim_start())
        .to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<html") {
        "an HTML page"
    } else if head.starts_with('<') {
        "an XML document"
    } else if is_json(body) {
        "JSON of another shape"
    } else {
        "a non-JSON body"
    }
}

/// A URL as shown in messages: scheme, host, port and path only (user info and query, which may
/// carry credentials, are dropped).
pub(crate) fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "an unparsable URL".to_owned(),
    }
}

/// A 5xx (or 408): [`AlexaError::Overloaded`] when Amazon sent `Retry-After`, so the wait it
/// asked for is honoured like a 429's; else [`AlexaError::Unavailable`] (back-off).
fn server_trouble(status: u16, message: String, retry_after: Option<Duration>) -> AlexaError {
    match retry_after {
        Some(retry_after) => AlexaError::Overloaded {
            status,
            message,
            retry_after,
        },
        None => AlexaError::Unavailable { status, message },
    }
}

/// The parts of an Amazon API error body the client uses, read tolerantly: SMAPI sends either
/// `{"message", "violations": [{"code","message"}]}` or `{"code", "message", "validationDetails"}`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ApiErrorBody {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) violations: Vec<Violation>,
}

impl ApiErrorBody {
    /// Reads an error body; anything that is not a JSON object gives an empty result.
    pub(crate) fn parse(body: &[u8]) -> ApiErrorBody {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return ApiErrorBody::default();
        };
        let code = string_field(&map, &["code", "errorCode", "error"]);
        let mut message = string_field(&map, &["message", "Message", "error_description"]);
        let violations = match map.get("violations") {
            Some(Value::Array(items)) => items.iter().filter_map(violation_from).collect(),
            _ => Vec::new(),
        };
        if let Some(details) = map.get("validationDetails").filter(|v| !v.is_null()) {
            let details = truncate(&details.to_string(), MAX_SNIPPET_CHARS);
            message = Some(match message {
                Some(m) => format!("{m} (validation details: {details})"),
                None => format!("validation details: {details}"),
            });
        }
        ApiErrorBody {
            code,
            message: message.map(|m| truncate(&m, MAX_MESSAGE_CHARS)),
            violations,
        }
    }
}

/// An OAuth 2.0 error body from Login with Amazon: `{"error", "error_description"}`.
#[derive(Debug, PartialEq)]
pub(crate) struct OAuthErrorBody {
    pub(crate) error: String,
    pub(crate) description: Option<String>,
}

impl OAuthErrorBody {
    /// Whether the error is an OAuth 2.0 error code (RFC 6749 §5.2: `invalid_grant`,
    /// `invalid_client`, ...: lower-case letters and underscores), not some other JSON `error`.
    pub(crate) fn is_oauth(&self) -> bool {
        !self.error.is_empty()
            && self
                .error
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
    }

    /// Reads an OAuth error body; `None` when there is no `error` string.
    pub(crate) fn parse(body: &[u8]) -> Option<OAuthErrorBody> {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };
        let error = string_field(&map, &["error"])?;
        Some(OAuthErrorBody {
            error: truncate(&error, MAX_SNIPPET_CHARS),
            description: string_field(&map, &["error_description", "message"])
                .map(|d| truncate(&d, MAX_MESSAGE_CHARS)),
        })
    }
}

/// Parses a `Retry-After` value: delay seconds (integer or decimal) or an HTTP date. Unusable
/// values give `None`; very long delays are capped.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = value.parse::<f64>() {
        // NaN and negative values are unusable; huge ones (1e300) mean "a long time": cap.
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        Duration::try_from_secs_f64(secs).unwrap_or(MAX_RETRY_AFTER)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Replaces every occurrence of each secret (ignoring very short values, which would mangle
/// ordinary words) with a marker, in every form an answer can echo it in: as sent, JSON-escaped
/// (also with `\/`) and percent-encoded (URL and form encoding). Runs before any truncation,
/// so a secret is never cut into a part that escapes it.
pub(crate) fn redact_text(text: String, secrets: &[&str]) -> String {
    let mut text = text;
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        for form in echoed_forms(secret) {
            if text.contains(&form) {
                text = text.replace(&form, REDACTED);
            }
        }
    }
    text
}

/// Characters form encoding (`application/x-www-form-urlencoded`) leaves as they are.
const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// The forms of `secret` an answer may carry, longest first (so a longer form is not left
/// half-replaced by a shorter one inside it).
fn echoed_forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(secret)
        .to_owned();
    let encode = |set| percent_encoding::utf8_percent_encode(secret, set).to_string();
    let mut forms = vec![
        secret.to_owned(),
        json.replace('/', "\\/"),
        json,
        encode(percent_encoding::NON_ALPHANUMERIC),
        encode(FORM).replace("%20", "+"),
    ];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

/// An answer's body with every echoed secret replaced, before anything reads (and truncates)
/// it: a JSON body's strings and keys are redacted after JSON unescaping (so `\u0041`-style
/// escapes cannot hide a secret), any other text as it is.
pub(crate) fn redact_body(body: &[u8], secrets: &[&str]) -> Vec<u8> {
    if let Ok(mut value) = serde_json::from_slice::<Value>(body) {
        redact_value(&mut value, secrets);
        return serde_json::to_vec(&value).unwrap_or_default();
    }
    match std::str::from_utf8(body) {
        Ok(text) => redact_text(text.to_owned(), secrets).into_bytes(),
        Err(_) => body.to_vec(), // never shown: messages only quote UTF-8 bodies
    }
}

fn redact_value(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::String(s) => *s = redact_text(std::mem::take(s), secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, secrets)),
        Value::Object(map) => {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(k, mut v)| {
                    redact_value(&mut v, secrets);
                    (redact_text(k, secrets), v)
                })
                .collect();
        }
        _ => {}
    }
}

/// Cuts `text` to at most `max` characters (on a character boundary), marking the cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &text[..idx]),
        None => text.to_owned(),
    }
}

/// A message for an error answer without a usable JSON message: a short plain-text body when
/// there is one (never HTML), else the status' reason phrase.
fn fallback_message(status: u16, body: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(body) {
        let text = text.trim();
        if !text.is_empty()
            && !text.starts_with('<')
            && !text.starts_with('{')
            && text.chars().count() <= MAX_SNIPPET_CHARS
        {
            return text.to_owned();
        }
    }
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP status {status}"))
}

/// First of `keys` holding a non-empty string (numbers are accepted and rendered).
fn string_field(map: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|key| match map.get(*key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// One entry of `violations`: an object with `code`/`message`, or a bare string.
fn violation_from(value: &Value) -> Option<Violation> {
    match value {
        Value::Object(map) => {
            let code = string_field(map, &["code"]);
            let message = string_field(map, &["message"]).or_else(|| code.clone())?;
            Some(Violation {
                code,
                message: truncate(&message, MAX_MESSAGE_CHARS),
            })
        }
        Value::String(s) if !s.trim().is_empty() => Some(Violation {
            code: None,
            message: truncate(s, MAX_MESSAGE_CHARS),
        }),
        _ => None,
    }
}

/// Renders `, code X` (or nothing) for Display.
struct CodeSuffix<'a>(Option<&'a str>);

impl fmt::Display for CodeSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, " ({code})"),
            None => Ok(()),
        }
    }
}

/// Renders `, code X` inside an existing parenthesis (or nothing) for Display.
struct CodeInParens<'a>(Option<&'a str>);

impl fmt::Display for CodeInParens<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, ", {code}"),
            None => Ok(()),
        }
    }
}

/// Renders the violations after a message (or nothing) for Display.
struct ViolationList<'a>(&'a [Violation]);

impl fmt::Display for ViolationList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str(" [violations: ")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        f.write_str("]")
    }
}

/// Renders `; retry after N s` (or a back-off hint) for Display.
struct RetryAfterSuffix(Option<Duration>);

impl fmt::Display for RetryAfterSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, "; Amazon asked to wait {:.1} s", d.as_secs_f64()),
            None => f.write_str("; backing off exponentially"),
        }
    }
}

/// Renders `: description` (or nothing) for Display.
struct DescriptionSuffix<'a>(Option<&'a str>);

impl fmt::Display for DescriptionSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, ": {d}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> AlexaError {
        AlexaError::from_response(Operation::GetAccountLinking, status, None, body.as_bytes())
    }

    #[test]
    fn classifies_each_status() {
        assert_eq!(classify(400, "").category(), "invalid_request");
        assert_eq!(classify(401, "").category(), "unauthorized");
        assert_eq!(classify(403, "").category(), "forbidden");
        assert_eq!(classify(404, "").category(), "not_found");
        assert_eq!(classify(412, "").category(), "precondition_failed");
        assert_eq!(classify(429, "").category(), "throttled");
        assert_eq!(classify(500, "").category(), "unavailable");
        assert_eq!(classify(503, "").category(), "unavailable");
        assert_eq!(classify(408, "").category(), "unavailable");
        assert_eq!(classify(409, "").category(), "invalid_request");
        assert_eq!(classify(302, "").category(), "decode");
    }

    #[test]
    fn reads_violations_body() {
        let err = classify(
            400,
            r#"{"message":"Request is not valid.","violations":[{"code":"INVALID_URL","message":"authorizationUrl is not a URL"},"free text",42]}"#,
        );
        let AlexaError::InvalidRequest(ApiError {
            code,
            message,
            violations,
        }) = &err
        else {
            panic!("wrong class {err:?}");
        };
        assert_eq!(code, &None);
        assert_eq!(message, "Request is not valid.");
        assert_eq!(violations.len(), 2);
        assert_eq!(violations[0].code.as_deref(), Some("INVALID_URL"));
        let text = err.to_string();
        assert!(text.contains("Request is not valid."), "{text}");
        assert!(
            text.contains("INVALID_URL: authorizationUrl is not a URL"),
            "{text}"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn reads_code_and_validation_details_body() {
        let err = classify(
            403,
            r#"{"code":"ACCESS_DENIED","message":"Not yours.","validationDetails":{"reason":{"type":"X"}}}"#,
        );
        assert_eq!(err.code(), Some("ACCESS_DENIED"));
        let text = err.to_string();
        assert!(text.contains("ACCESS_DENIED"), "{text}");
        assert!(text.contains("Not yours."), "{text}");
        assert!(text.contains("validation details"), "{text}");
    }

    #[test]
    fn malformed_bodies_never_panic_and_fall_back() {
        for body in [
            "",
            "null",
            "[]",
            "\"str\"",
            "{",
            "<html><body>Bad gateway</body></html>",
            "{\"message\": 5}",
            "{\"message\": null, \"violations\": {\"a\": 1}}",
        ] {
            for status in [400, 401, 403, 404, 412, 429, 500, 502, 599, 418, 100, 301] {
                let err = classify(status, body);
                let _ = err.to_string();
            }
        }
        let err = classify(502, "<html>oops</html>");
        assert_eq!(
            err,
            AlexaError::Unavailable {
                status: 502,
                message: "Bad Gateway".into()
            }
        );
        let err = classify(503, "upstream overloaded");
        assert!(err.to_string().contains("upstream overloaded"));
        // Invalid UTF-8 never panics.
        let err = AlexaError::from_response(Operation::CustomerStatus, 500, None, &[0xff, 0xfe]);
        assert_eq!(err.status(), Some(500));
    }

    #[test]
    fn long_messages_are_truncated_on_char_boundaries() {
        let long = "é".repeat(5000);
        let err = classify(400, &format!("{{\"message\":\"{long}\"}}"));
        let AlexaError::InvalidRequest(ApiError { message, .. }) = err else {
            panic!("wrong class");
        };
        assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn retryability_and_retry_after() {
        let throttled = AlexaError::from_response(
            Operation::GetAccountLinking,
            429,
            Some(Duration::from_secs(2)),
            b"",
        );
        assert!(throttled.is_retryable());
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(2)));
        assert!(throttled.to_string().contains("2.0 s"));
        assert!(classify(500, "").is_retryable());
        assert!(classify(412, "").is_retryable());
        assert!(!classify(412, "").is_transient());
        assert!(!classify(401, "").is_retryable());
        assert!(!classify(403, "").is_retryable());
        assert!(!classify(404, "").is_retryable());
        assert_eq!(classify(500, "").retry_after(), None);
        assert_eq!(classify(503, "").retry_after(), None);
        let transport = AlexaError::Transport {
            message: "connection refused".into(),
        };
        assert!(transport.is_retryable() && transport.is_transient());
    }

    #[test]
    fn server_errors_keep_retry_after() {
        let busy = AlexaError::from_response(
            Operation::GetAccountLinking,
            503,
            Some(Duration::from_secs(2)),
            br#"{"message":"Try later."}"#,
        );
        assert!(matches!(busy, AlexaError::Overloaded { .. }), "{busy:?}");
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(busy.status(), Some(503));
        assert_eq!(busy.category(), "unavailable");
        assert!(busy.is_retryable() && busy.is_transient());
        let text = busy.to_string();
        assert!(
            text.contains("HTTP 503") && text.contains("Try later."),
            "{text}"
        );
        assert!(text.contains("2.0 s"), "{text}");
        let busy = busy.redact(&["Try later."]);
        assert!(!busy.to_string().contains("Try later."));
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
        // Without the header a 5xx stays a plain back-off case.
        let plain = AlexaError::from_response(Operation::GetAccountLinking, 500, None, b"");
        assert!(matches!(plain, AlexaError::Unavailable { .. }), "{plain:?}");
        // Login with Amazon's 5xx the same way.
        let lwa = AlexaError::from_lwa_response(503, Some(Duration::from_secs(3)), b"");
        assert_eq!(lwa.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(lwa.category(), "unavailable");
    }

    #[test]
    fn lwa_errors() {
        let err = AlexaError::from_lwa_response(
            400,
            None,
            br#"{"error":"invalid_grant","error_description":"The request has an invalid grant parameter : refresh_token"}"#,
        );
        assert_eq!(err.category(), "credentials");
        assert_eq!(err.code(), Some("invalid_grant"));
        assert!(err.to_string().contains("invalid_grant"));
        assert!(!err.is_retryable());
        let err = AlexaError::from_lwa_response(503, None, b"");
        assert_eq!(err.category(), "unavailable");
        let err = AlexaError::from_lwa_response(429, Some(Duration::from_secs(1)), b"");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    }

    /// Login with Amazon answers: only an OAuth error judges the credentials; anything else
    /// that is not a token means the URL is wrong (`Some(..)` = foreign, with what answered).
    #[test]
    fn lwa_answers_are_classified_by_meaning() {
        let html = "<!DOCTYPE html><html><body>Not Found</body></html>";
        let cases: [(u16, &str, Option<&str>, &str); 15] = [
            (
                200,
                r#"{"access_token":"Atza|x","expires_in":3600}"#,
                None,
                "token",
            ),
            (
                200,
                r#"{"token":"x"}"#,
                Some("HTTP 200 with JSON of another shape that holds no access_token"),
                "wrong_endpoint",
            ),
            (
                200,
                html,
                Some("HTTP 200 with an HTML page that holds no access_token"),
                "wrong_endpoint",
            ),
            (
                200,
                "",
                Some("HTTP 200 with an empty body that holds no access_token"),
                "wrong_endpoint",
            ),
            (302, "", Some("a redirect, HTTP 302"), "wrong_endpoint"),
            (
                404,
                html,
                Some("HTTP 404 with an HTML page"),
                "wrong_endpoint",
            ),
            (
                404,
                r#"{"error":"invalid_grant"}"#,
                Some("HTTP 404 with JSON of another shape"),
                "wrong_endpoint",
            ),
            (
                405,
                "",
                Some("HTTP 405 with an empty body"),
                "wrong_endpoint",
            ),
            (
                400,
                "not json",
                Some("HTTP 400 with a non-JSON body, not an OAuth error"),
                "wrong_endpoint",
            ),
            (
                401,
                r#"{"message":"Unauthorized"}"#,
                Some("HTTP 401 with JSON of another shape, not an OAuth error"),
                "wrong_endpoint",
            ),
            (
                400,
                r#"{"error":"Bad Request!"}"#,
                Some("HTTP 400 with JSON of another shape, not an OAuth error"),
                "wrong_endpoint",
            ),
            (
                400,
                r#"{"error":"invalid_grant","error_description":"revoked"}"#,
                None,
                "credentials",
            ),
            (401, r#"{"error":"invalid_client"}"#, None, "credentials"),
            (
                400,
                r#"{"error":"unauthorized_client"}"#,
                None,
                "credentials",
            ),
            (503, html, None, "unavailable"),
        ];
        for (status, body, foreign, category) in cases {
            let got = foreign_lwa_answer(status, body.as_bytes());
            assert_eq!(got.as_deref(), foreign, "{status} {body}");
            let got_category = match got {
                Some(_) => "wrong_endpoint",
                None if (200..300).contains(&status) => "token",
                None => AlexaError::from_lwa_response(status, None, body.as_bytes()).category(),
            };
            assert_eq!(got_category, category, "{status} {body}");
        }
    }

    /// Amazon API answers: redirects, 405 and non-JSON 4xx bodies are not Amazon's; 5xx stay
    /// transient whatever the body; an empty 404 is Amazon's "not found".
    #[test]
    fn api_answers_from_something_else_are_recognised() {
        let cases: [(u16, &str, Option<&str>); 9] = [
            (
                404,
                "<html><body>404</body></html>",
                Some("HTTP 404 with an HTML page"),
            ),
            (
                404,
                "404 page not found",
                Some("HTTP 404 with a non-JSON body"),
            ),
            (
                403,
                "<?xml version=\"1.0\"?><Error/>",
                Some("HTTP 403 with an XML document"),
            ),
            (
                405,
                r#"{"message":"no"}"#,
                Some("HTTP 405 Method Not Allowed"),
            ),
            (301, "", Some("a redirect, HTTP 301")),
            (404, "", None),
            (404, r#"{"message":"Skill not found"}"#, None),
            (502, "<html>Bad gateway</html>", None),
            (429, "slow down", None),
        ];
        for (status, body, want) in cases {
            assert_eq!(
                foreign_api_answer(status, body.as_bytes()).as_deref(),
                want,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn wrong_endpoint_names_the_url_and_setting_but_no_user_info_or_query() {
        let err = AlexaError::wrong_endpoint(
            "a Login with Amazon token endpoint",
            "http://user:pw@127.0.0.1:9/wrong/token?key=s3cret",
            Setting::LwaUrl,
            "HTTP 404 with an HTML page".into(),
        );
        let text = err.to_string();
        assert!(text.contains("http://127.0.0.1:9/wrong/token"), "{text}");
        assert!(text.contains("--lwa-url (ALEXA_LWA_URL)"), "{text}");
        assert!(text.contains("not judged"), "{text}");
        assert!(!text.contains("s3cret") && !text.contains("pw@"), "{text}");
        assert_eq!(err.category(), "wrong_endpoint");
        assert!(!err.is_retryable());
    }

    #[test]
    fn retry_after_formats() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        // 2015-10-21T07:28:00Z is 10 s after `now`.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        // Absurd values Amazon (or a proxy) might send are capped, never a panic or overflow.
        for absurd in [
            "1e300",
            "18446744073709551616",
            "inf",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(
                parse_retry_after(absurd, now),
                Some(MAX_RETRY_AFTER),
                "{absurd}"
            );
        }
    }

    /// What the client does with an error answer: redact the body, classify, redact again.
    fn answered(status: u16, body: &str, secrets: &[&str]) -> String {
        let body = redact_body(body.as_bytes(), secrets);
        let err = AlexaError::from_response(Operation::GetAccountLinking, status, None, &body)
            .redact(secrets);
        format!("{err} {err:?}")
    }

    #[test]
    fn secrets_are_redacted_before_cutting_and_in_escaped_forms() {
        // Has a '/', a '"' and a space, so every escaping changes it.
        let secret = r#"s3cr/et"Val ue"#;
        let pad = "x".repeat(MAX_MESSAGE_CHARS - 6);
        let json = |message: &str| json_body(serde_json::json!({"message": message}));
        // (what, status, body)
        let cases = [
            ("across the cut", 400, json(&format!("{pad} {secret} tail"))),
            (
                "in re-serialised validation details",
                400,
                json_body(
                    serde_json::json!({"message": "bad", "validationDetails": {"echo": secret}}),
                ),
            ),
            (
                "as \\u escapes",
                400,
                r#"{"message": "got \u0073\u0033cr\/et\"Val\u0020ue"}"#.to_owned(),
            ),
            (
                "JSON-escaped in text",
                403,
                r#"rejected s3cr\/et\"Val ue"#.to_owned(),
            ),
            (
                "percent-encoded in text",
                400,
                "client_secret=s3cr%2Fet%22Val%20ue".to_owned(),
            ),
            (
                "form-encoded in text",
                400,
                "client_secret=s3cr%2Fet%22Val+ue".to_owned(),
            ),
            (
                "in a violation across the cut",
                400,
                json_body(
                    serde_json::json!({"violations": [{"message": format!("{pad} {secret}")}]}),
                ),
            ),
        ];
        let leaks: Vec<&str> = cases
            .iter()
            .filter(|(_, status, body)| {
                let text = answered(*status, body, &[secret]);
                text.contains("s3cr") || text.contains("Val") || !text.contains("[REDA")
            })
            .map(|(what, _, _)| *what)
            .collect();
        assert!(leaks.is_empty(), "leaked (or no marker): {leaks:?}");
    }

    fn json_body(value: serde_json::Value) -> String {
        value.to_string()
    }

    #[test]
    fn redaction_removes_echoed_secrets() {
        let err = classify(
            400,
            r#"{"code":"INVALID_AUTH_CODE","message":"authCode SplxlOBeZQQYbYS6WxSbIA is invalid","violations":[{"message":"SplxlOBeZQQYbYS6WxSbIA used"}]}"#,
        )
        .redact(&["SplxlOBeZQQYbYS6WxSbIA", ""]);
        let text = err.to_string();
        assert!(!text.contains("SplxlOBeZQQYbYS6WxSbIA"), "{text}");
        assert!(text.contains(REDACTED));
    }
}
