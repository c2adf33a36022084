//! Client for Amazon's Skill Management API (SMAPI), the Skill Enablement API and Login with
//! Amazon (LWA). This is the only module that knows HTTP details of those APIs: the controllers
//! call typed methods on [`AlexaClient`] and act on typed [`AlexaError`]s.
//!
//! What every call gets, so controllers do not have to think about it:
//! - an LWA access token from a per-credential cache, refreshed ahead of expiry, one refresh in
//!   flight per credential however many reconciles wait ([`LwaCredentials::fingerprint`] keys
//!   it and is what logs show);
//! - a per-credential token-bucket rate budget and Retry-After gate, shared by every clone of
//!   the client: one 429 pauses every call with the same credentials;
//! - bounded in-call retries with full-jitter [`Backoff`] for throttling, 5xx and network
//!   errors, and one drop-refresh-retry on 401;
//! - tolerant reading of Amazon's answers (wrapped or flat bodies, `"true"` booleans, unknown
//!   fields), and errors whose Display names Amazon's code and message, says what to do, and
//!   never contains a token, secret or authorization code.
//!
//! ```no_run
//! # async fn example() -> Result<(), alexa_skill_operator::alexa::AlexaError> {
//! use alexa_skill_operator::alexa::{AlexaClient, ClientConfig, LwaCredentials};
//! use alexa_skill_operator::crd::common::Stage;
//!
//! alexa_skill_operator::alexa::install_crypto_provider(); // once, in main (for kube)
//! let client = AlexaClient::new(ClientConfig::default())?;
//! let creds = LwaCredentials::new("amzn1.application-oa2-client.example", "secret", "Atzr|example");
//! match client.get_account_linking(&creds, "amzn1.ask.skill.example", Stage::Development).await {
//!     Ok(Some(current)) => println!("redirect URLs: {:?}", current.value.redirect_urls),
//!     Ok(None) => println!("not configured yet"),
//!     Err(err) if err.is_retryable() => println!("later: {err} ({:?})", err.retry_after()),
//!     Err(err) => println!("needs a human: {err}"),
//! }
//! # Ok(())
//! # }
//! ```

mod backoff;
mod client;
mod config;
mod credentials;
mod customer;
mod errors;
mod models;
mod observer;
mod throttle;
mod token_cache;
mod transport;

pub use backoff::Backoff;
pub use client::AlexaClient;
pub use config::{
    ClientConfig, DEFAULT_CUSTOMER_DISCOVERY_URL, DEFAULT_LWA_URL, DEFAULT_SMAPI_URL,
    FALLBACK_CUSTOMER_ENDPOINTS,
};
pub use credentials::{LwaCredentials, set_fingerprint_key};
pub use customer::EnableFailure;
pub use errors::{AlexaError, ApiError, DeferCause, Setting, Violation};
pub use models::{
    AccountLinkingInfo, AccountLinkingRequest, CustomerEnableRequest, CustomerEnablementStatus,
    CustomerLinkRequest, REQUEST_ONLY_FIELDS, Versioned,
};
pub use observer::{ApiObserver, Operation};
pub use secrecy::{ExposeSecret, SecretString};
pub use throttle::RateLimit;
pub use transport::{USER_AGENT, install_crypto_provider};
