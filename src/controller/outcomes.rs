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
        // Not the credentials' fault: the URL is wrong. Slow retry (a fixed flag restarts the
        // pod anyway) rather than waiting for a spec change that would not help.
        AlexaError::WrongEndpoint { .. } => (
            Outcome::stalled(Reason::EndpointMisconfigured, message),
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
        AlexaError::Throttled { retry_after, .. } => (
            Outcome::progressing(Reason::Throttled, message),
            Retry::Backoff {
                retry_after: *retry_after,
            },
        ),
        // Nothing was sent and the object did nothing wrong: look again exactly when the
        // credential may send, without growing its back-off.
        AlexaError::Deferred { retry_after, .. } => (
            Outcome::progressing(Reason::Throttled, message),
            Retry::After(*retry_after),
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
        // The Secret watch brings the object back as soon as the Secret appears; the slow
        // retry covers a change missed while the watch was reconnecting.
        SecretError::NotFound { .. } | SecretError::MissingKey { .. } => (
            Outcome::stalled(Reason::SecretNotFound, err.to_string()),
            Retry::Slow,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alexa::ApiError;
    use crate::controller::conditions::Phase;

    #[test]
    fn every_error_class_maps_to_the_documented_reason_and_retry() {
        let cases = [
            (
                AlexaError::InvalidRequest(ApiError::message("m").with_code("BAD")),
                Reason::InvalidSpec,
                Phase::Stalled,
                Retry::AwaitChange,
            ),
            (
                AlexaError::Credentials {
                    error: "invalid_grant".into(),
                    description: None,
                },
                Reason::CredentialsInvalid,
                Phase::Stalled,
                Retry::Slow,
            ),
            (
                AlexaError::WrongEndpoint {
                    service: "a Login with Amazon token endpoint",
                    url: "http://127.0.0.1:1/auth/o2/token".into(),
                    setting: crate::alexa::Setting::LwaUrl,
                    answered: "HTTP 404 with an HTML page".into(),
                },
                Reason::EndpointMisconfigured,
                Phase::Stalled,
                Retry::Slow,
            ),
            (
                AlexaError::Unauthorized(ApiError::message("m")),
                Reason::Unauthorized,
                Phase::Stalled,
                Retry::Slow,
            ),
            (
                AlexaError::Forbidden(ApiError::message("m")),
                Reason::Forbidden,
                Phase::Stalled,
                Retry::Slow,
            ),
            (
                AlexaError::NotFound(ApiError::message("m")),
                Reason::SkillNotFound,
                Phase::Stalled,
                Retry::Slow,
            ),
            (
                AlexaError::Throttled {
                    answer: ApiError::message("Rate exceeded"),
                    retry_after: Some(Duration::from_secs(7)),
                },
                Reason::Throttled,
                Phase::Progressing,
                Retry::Backoff {
                    retry_after: Some(Duration::from_secs(7)),
                },
            ),
            (
                AlexaError::Deferred {
                    retry_after: Duration::from_secs(42),
                    cause: crate::alexa::DeferCause::RetryAfter,
                },
                Reason::Throttled,
                Phase::Progressing,
                Retry::After(Duration::from_secs(42)),
            ),
            (
                AlexaError::Unavailable {
                    status: 503,
                    message: "m".into(),
                },
                Reason::ApiUnavailable,
                Phase::Progressing,
                Retry::Backoff { retry_after: None },
            ),
            (
                AlexaError::Transport {
                    message: "reset".into(),
                },
                Reason::ApiUnavailable,
                Phase::Progressing,
                Retry::Backoff { retry_after: None },
            ),
        ];
        for (err, reason, phase, retry) in cases {
            let (outcome, got) = for_alexa_error(&err, "do it");
            assert_eq!(
                (outcome.reason, outcome.phase, got),
                (reason, phase, retry),
                "{err:?}"
            );
            assert!(
                outcome.message.starts_with("cannot do it: "),
                "{}",
                outcome.message
            );
        }
    }

    #[test]
    fn amazon_code_and_message_reach_the_condition() {
        let err = AlexaError::InvalidRequest(
            ApiError::message("authorizationUrl must use HTTPS").with_code("INVALID_URL"),
        );
        let (outcome, _) = for_alexa_error(&err, "update the account linking");
        assert!(
            outcome.message.contains("INVALID_URL") && outcome.message.contains("must use HTTPS"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn missing_secrets_stall_and_api_failures_retry() {
        let missing = SecretError::NotFound {
            namespace: "ns".into(),
            name: "lwa".into(),
        };
        let (outcome, retry) = for_secret_error(&missing);
        assert_eq!(
            (outcome.reason, retry),
            (Reason::SecretNotFound, Retry::Slow)
        );
        let bad = SecretError::BadValue {
            namespace: "ns".into(),
            name: "lwa".into(),
            key: "client-id".into(),
        };
        assert_eq!(for_secret_error(&bad).0.reason, Reason::InvalidSpec);
    }
}
