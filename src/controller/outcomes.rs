//! Turns Alexa API and Secret failures into the condition and requeue policy a user sees.
//! One table for both kinds, so the same failure always reads and behaves the same.

use super::conditions::{Outcome, Reason};
use super::lifecycle::Retry;
use super::secrets::SecretError;
use crate::alexa::AlexaError;

/// Condition and requeue for a failed call to Amazon while doing `what` (e.g. "update the
/// account linking"). Messages carry Amazon's code and message, never secrets.
pub fn for_alexa_error(err: &AlexaError, what: &str) -> (Outcome, Retry) {
    let message = format!("cannot {what}: {err}");
    match err {
        AlexaError::InvalidRequest { .. } => (
            Outcome::stalled(Reason::InvalidSpec, message),
            Retry::AwaitChange,
        ),
        AlexaError::Credentials { .. } => (
            Outcome::stalled(Reason::CredentialsInvalid, message),
            Retry::Slow,
        ),
        AlexaError::Unauthorized { .. } => {
            (Outcome::stalled(Reason::Unauthorized, message), Retry::Slow)
        }
        AlexaError::Forbidden { .. } => (Outcome::stalled(Reason::Forbidden, message), Retry::Slow),
        AlexaError::NotFound { .. } => (
            Outcome::stalled(Reason::SkillNotFound, message),
            Retry::Slow,
        ),
        AlexaError::Throttled { retry_after } => (
            Outcome::progressing(Reason::Throttled, message),
            Retry::Backoff {
                retry_after: *retry_after,
            },
        ),
        AlexaError::PreconditionFailed { .. } => (
            Outcome::progressing(Reason::Updating, message),
            Retry::Backoff { retry_after: None },
        ),
        _ => (
            Outcome::progressing(Reason::ApiUnavailable, message),
            Retry::Backoff {
                retry_after: err.retry_after(),
            },
        ),
    }
}

/// Condition and requeue for a Secret problem.
pub fn for_secret_error(err: &SecretError) -> (Outcome, Retry) {
    match err {
        SecretError::NotFound { .. } | SecretError::MissingKey { .. } => (
            Outcome::stalled(Reason::SecretNotFound, err.to_string()),
            Retry::AwaitChange,
        ),
        SecretError::BadValue { .. } => (
            Outcome::stalled(Reason::InvalidSpec, err.to_string()),
            Retry::AwaitChange,
        ),
        SecretError::Api { .. } => (
            Outcome::progressing(Reason::ApiUnavailable, err.to_string()),
            Retry::Backoff { retry_after: None },
        ),
    }
}
