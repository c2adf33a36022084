//! kstatus-compatible conditions (`Ready`, `Reconciling`, `Stalled`) shared by both kinds, so
//! `kubectl wait --for=condition=Ready`, Flux and Argo CD read every object the same way.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition type that is True when Amazon's state matches the spec.
pub const READY: &str = "Ready";
/// Condition type that is True while the operator is still working towards the spec.
pub const RECONCILING: &str = "Reconciling";
/// Condition type that is True when progress needs a human.
pub const STALLED: &str = "Stalled";

/// Why an object is in its current state; the `reason` of its conditions (CamelCase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Amazon matches the spec.
    Synced,
    /// The configuration is being created on Amazon's side.
    Creating,
    /// The configuration on Amazon's side is being changed to match the spec.
    Updating,
    /// The configuration is being removed from Amazon before the object goes away.
    Deleting,
    /// The spec cannot be applied as written (rejected by the operator or by Amazon).
    InvalidSpec,
    /// A referenced Secret or key does not exist.
    SecretNotFound,
    /// Login with Amazon refused the credentials (invalid_grant, invalid_client, ...).
    CredentialsInvalid,
    /// A configured URL (LWA, SMAPI, discovery, endpoint override) answered with something that
    /// is not Amazon's API; the credentials were not judged.
    EndpointMisconfigured,
    /// Amazon refused the access token even after a refresh.
    Unauthorized,
    /// The credentials are not allowed to manage this skill.
    Forbidden,
    /// The skill or stage does not exist for these credentials.
    SkillNotFound,
    /// Amazon asked the operator to slow down; it is waiting before the next call.
    Throttled,
    /// Amazon answered with a server error or could not be reached; retrying with back-off.
    ApiUnavailable,
    /// Another object enables a different stage of the same skill with the same credentials.
    StageConflict,
    /// Amazon rejected the customer's authorization code; a new code is needed.
    AuthCodeInvalid,
    /// Amazon accepted writes but kept answering something else; writing stopped after 3.
    NotConverging,
    /// The paused annotation is set; the operator makes no calls to Amazon.
    Paused,
    /// Observe mode: Amazon's state differs from the spec and is only reported.
    DriftDetected,
    /// The AlexaCredentials or ClusterAlexaCredentials named in spec.credentialsRef does not
    /// exist.
    CredentialsNotFound,
    /// The ClusterAlexaCredentials' allowedNamespaces does not select the object's namespace.
    NamespaceNotAllowed,
    /// A credentials object's deletion waits until no object uses it.
    InUse,
    /// spec.exports names a ConfigMap this object does not own; the operator will not overwrite it.
    ExportConflict,
}

impl Reason {
    /// The CamelCase name written to conditions and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Synced => "Synced",
            Reason::Creating => "Creating",
            Reason::Updating => "Updating",
            Reason::Deleting => "Deleting",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::CredentialsInvalid => "CredentialsInvalid",
            Reason::EndpointMisconfigured => "EndpointMisconfigured",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::SkillNotFound => "SkillNotFound",
            Reason::Throttled => "Throttled",
            Reason::ApiUnavailable => "ApiUnavailable",
            Reason::StageConflict => "StageConflict",
            Reason::AuthCodeInvalid => "AuthCodeInvalid",
            Reason::NotConverging => "NotConverging",
            Reason::Paused => "Paused",
            Reason::DriftDetected => "DriftDetected",
            Reason::CredentialsNotFound => "CredentialsNotFound",
            Reason::NamespaceNotAllowed => "NamespaceNotAllowed",
            Reason::InUse => "InUse",
            Reason::ExportConflict => "ExportConflict",
        }
    }

    /// Every reason, for documentation and metric pre-registration.
    pub const ALL: [Reason; 22] = [
        Reason::Synced,
        Reason::Creating,
        Reason::Updating,
        Reason::Deleting,
        Reason::InvalidSpec,
        Reason::SecretNotFound,
        Reason::CredentialsInvalid,
        Reason::EndpointMisconfigured,
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::SkillNotFound,
        Reason::Throttled,
        Reason::ApiUnavailable,
        Reason::StageConflict,
        Reason::AuthCodeInvalid,
        Reason::NotConverging,
        Reason::Paused,
        Reason::DriftDetected,
        Reason::CredentialsNotFound,
        Reason::NamespaceNotAllowed,
        Reason::InUse,
        Reason::ExportConflict,
    ];
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three kstatus states an object can be in after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Ready=True, Reconciling=False, Stalled=False.
    Ready,
    /// Ready=False, Reconciling=True: the operator is working on it or retrying.
    Progressing,
    /// Ready=False, Stalled=True: a human has to change something.
    Stalled,
    /// Ready=False, Reconciling=False, Stalled=False: settled but not matching (paused, or
    /// Observe mode with drift).
    Idle,
}

/// What one reconcile concluded, before it is turned into conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Which kstatus state the object is in.
    pub phase: Phase,
    /// Machine-readable why.
    pub reason: Reason,
    /// Human sentence; includes Amazon's code and message, never a secret.
    pub message: String,
}

impl Outcome {
    /// Amazon matches the spec.
    pub fn ready(message: impl Into<String>) -> Self {
        Self {
            phase: Phase::Ready,
            reason: Reason::Synced,
            message: message.into(),
        }
    }

    /// Work in progress or a transient failure being retried.
    pub fn progressing(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            phase: Phase::Progressing,
            reason,
            message: message.into(),
        }
    }

    /// A human has to act.
    pub fn stalled(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            phase: Phase::Stalled,
            reason,
            message: message.into(),
        }
    }

    /// Not matching, but deliberately not acting (paused, observe-only drift).
    pub fn idle(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            phase: Phase::Idle,
            reason,
            message: message.into(),
        }
    }

    /// Whether the Ready condition is True.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }
}

/// Builds the full condition list for `outcome`, keeping `lastTransitionTime` of conditions
/// whose status did not change (so `kubectl describe` shows when a state really began).
pub fn build(
    previous: &[Condition],
    outcome: &Outcome,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let (ready, reconciling, stalled) = match outcome.phase {
        Phase::Ready => (true, false, false),
        Phase::Progressing => (false, true, false),
        Phase::Stalled => (false, false, true),
        Phase::Idle => (false, false, false),
    };
    let make = |type_: &str, status: bool, reason: &str, message: &str| {
        let status = if status { "True" } else { "False" }.to_string();
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation: generation,
            last_transition_time,
        }
    };
    let reason = outcome.reason.as_str();
    let message = bound_message(&outcome.message);
    let message = message.as_str();
    vec![
        make(READY, ready, reason, message),
        if reconciling {
            make(RECONCILING, true, reason, message)
        } else {
            make(RECONCILING, false, reason, "")
        },
        if stalled {
            make(STALLED, true, reason, message)
        } else {
            make(STALLED, false, reason, "")
        },
    ]
}

/// Most bytes of a condition message or event note (events.k8s.io refuses notes over 1 KiB;
/// conditions get the same bound so a huge violations list cannot push status towards etcd's
/// object size limit).
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Ends a message cut to [`MAX_MESSAGE_BYTES`].
pub const TRUNCATED: &str = "… [truncated]";

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] bytes, on a character boundary, ending with
/// [`TRUNCATED`] when cut. The last step before a condition or an event is made, so no path
/// escapes it; secrets were redacted before anything was cut.
pub fn bound_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_BYTES - TRUNCATED.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATED}", &message[..end])
}

/// The Ready condition of a list, if present.
pub fn ready_condition(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == READY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn find<'a>(list: &'a [Condition], type_: &str) -> &'a Condition {
        list.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn ready_outcome_sets_kstatus_triplet() {
        let list = build(&[], &Outcome::ready("in sync"), Some(3), at(10));
        assert_eq!(find(&list, READY).status, "True");
        assert_eq!(find(&list, READY).reason, "Synced");
        assert_eq!(find(&list, RECONCILING).status, "False");
        assert_eq!(find(&list, STALLED).status, "False");
        assert!(list.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn stalled_outcome_carries_message_on_ready_and_stalled() {
        let outcome = Outcome::stalled(Reason::SecretNotFound, "Secret skills/lwa not found");
        let list = build(&[], &outcome, Some(1), at(10));
        assert_eq!(find(&list, READY).status, "False");
        assert_eq!(find(&list, READY).message, "Secret skills/lwa not found");
        assert_eq!(find(&list, STALLED).status, "True");
        assert_eq!(find(&list, STALLED).reason, "SecretNotFound");
        assert_eq!(find(&list, RECONCILING).status, "False");
    }

    #[test]
    fn transition_time_kept_while_status_unchanged_and_moved_on_change() {
        let first = build(
            &[],
            &Outcome::progressing(Reason::Creating, "creating"),
            Some(1),
            at(10),
        );
        let second = build(
            &first,
            &Outcome::progressing(Reason::Throttled, "waiting"),
            Some(1),
            at(20),
        );
        assert_eq!(find(&second, READY).last_transition_time, Time(at(10)));
        assert_eq!(
            find(&second, RECONCILING).last_transition_time,
            Time(at(10))
        );
        let third = build(&second, &Outcome::ready("ok"), Some(1), at(30));
        assert_eq!(find(&third, READY).last_transition_time, Time(at(30)));
        assert_eq!(find(&third, RECONCILING).last_transition_time, Time(at(30)));
        assert_eq!(find(&third, STALLED).last_transition_time, Time(at(10)));
    }

    #[test]
    fn idle_outcome_is_neither_reconciling_nor_stalled() {
        let list = build(&[], &Outcome::idle(Reason::Paused, "paused"), None, at(1));
        assert_eq!(find(&list, READY).status, "False");
        assert_eq!(find(&list, READY).reason, "Paused");
        assert_eq!(find(&list, RECONCILING).status, "False");
        assert_eq!(find(&list, STALLED).status, "False");
    }

    #[test]
    fn messages_are_bounded_to_one_kib_on_a_character_boundary() {
        let violations: String = (0..5_000)
            .map(|i| format!("INVALID_FIELD: field {i} is wrong; "))
            .collect();
        assert!(violations.len() > 100_000);
        // (message, expect a cut)
        let cases = [
            ("short".to_string(), false),
            ("x".repeat(MAX_MESSAGE_BYTES), false),
            ("x".repeat(MAX_MESSAGE_BYTES + 1), true),
            ("é".repeat(MAX_MESSAGE_BYTES), true), // 2-byte characters across the cut
            ("€".repeat(MAX_MESSAGE_BYTES), true), // 3-byte characters across the cut
            (violations, true),
        ];
        for (message, cut) in cases {
            let outcome = Outcome::stalled(Reason::InvalidSpec, message.clone());
            for c in build(&[], &outcome, None, at(1))
                .iter()
                .filter(|c| !c.message.is_empty())
            {
                assert!(
                    c.message.len() <= MAX_MESSAGE_BYTES,
                    "{} bytes",
                    c.message.len()
                );
                assert_eq!(c.message.ends_with(TRUNCATED), cut);
                let kept = c.message.trim_end_matches(TRUNCATED);
                assert!(message.starts_with(kept));
                if cut {
                    assert!(
                        kept.len() + TRUNCATED.len() > MAX_MESSAGE_BYTES - 4,
                        "cut as late as possible"
                    );
                }
            }
        }
    }

    #[test]
    fn every_reason_name_is_camel_case_and_unique() {
        let names: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for name in names {
            assert!(name.chars().next().unwrap().is_ascii_uppercase(), "{name}");
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
        }
    }
}
