//! The rules both kinds share, as pure functions: what a management policy allows, which event
//! a write earns, when an object counts as Ready before, what the Observe-mode report says, the
//! note a condition change gets, and when to look again. No I/O, no clock, no randomness: the
//! reconcile shell ([`super`]) feeds them and carries out the result.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::{Leftover, Note, Retry};
use crate::controller::conditions::{Outcome, Phase, Reason, ready_condition};
use crate::controller::context::Settings;
use crate::crd::common::{ManagementPolicy, RESYNC_PERIOD_ANNOTATION};

/// What the operator may do for one object, from its `spec.managementPolicy`. Every planner
/// takes one: Observe never writes to Amazon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Whether writes to Amazon are allowed (Manage) or only reads (Observe).
    pub may_write: bool,
}

impl Policy {
    /// Manage: read, compare and write.
    pub const MANAGE: Policy = Policy { may_write: true };
    /// Observe: read and compare; report differences, never write.
    pub const OBSERVE: Policy = Policy { may_write: false };

    /// The policy a spec's `managementPolicy` selects.
    pub fn of(policy: ManagementPolicy) -> Policy {
        match policy {
            ManagementPolicy::Manage => Policy::MANAGE,
            ManagementPolicy::Observe => Policy::OBSERVE,
        }
    }
}

/// What a write to Amazon did, as users see it in events: the first write, a spec change being
/// applied, or an out-of-band change on Amazon being undone (counted as a drift repair).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing was there before.
    Created,
    /// The spec (or a Secret) asked for something new.
    Updated,
    /// The object was Ready for this generation and Amazon changed behind the operator's back.
    DriftRepaired,
}

impl Change {
    /// Decides the kind of change: a create when nothing existed; a repair when the object was
    /// Ready for its current spec and the desired state did not change since (so Amazon moved);
    /// else an update.
    pub fn of(creating: bool, was_ready: bool, desired_unchanged: bool) -> Change {
        if creating {
            Change::Created
        } else if was_ready && desired_unchanged {
            Change::DriftRepaired
        } else {
            Change::Updated
        }
    }

    /// The event reason (`Created`, `Updated`, `DriftRepaired`).
    pub fn reason(self) -> &'static str {
        match self {
            Change::Created => "Created",
            Change::Updated => "Updated",
            Change::DriftRepaired => DRIFT_REPAIRED,
        }
    }
}

/// Event reason of a drift repair; the lifecycle counts the drift-repair metric from it, so a
/// kind only says what it did.
pub const DRIFT_REPAIRED: &str = "DriftRepaired";

/// Whether the object was Ready for its current generation before this reconcile.
pub fn was_ready(
    conditions: &[Condition],
    observed_generation: Option<i64>,
    generation: Option<i64>,
) -> bool {
    observed_generation == generation
        && ready_condition(conditions).is_some_and(|c| c.status == "True")
}

/// Observe mode's report of a difference: DriftDetected (Ready=False, neither reconciling nor
/// stalled), checked again at the next resync. `what` says what differs, e.g. "skill X stage Y
/// is not enabled", and `refrained` what the operator did not do ("not enabling it").
pub fn observed_drift(what: &str, refrained: &str) -> (Outcome, Retry) {
    (
        Outcome::idle(
            Reason::DriftDetected,
            format!("Observe mode: {what}; {refrained}"),
        ),
        Retry::Resync,
    )
}

/// The event a change of the Ready reason earns (`None` when the reason did not change):
/// Warning for Stalled and for waits users should notice, Normal otherwise.
pub fn transition_note(previous_reason: Option<&str>, outcome: &Outcome) -> Option<Note> {
    if previous_reason == Some(outcome.reason.as_str()) {
        return None;
    }
    let warning = outcome.phase == Phase::Stalled
        || matches!(
            outcome.reason,
            Reason::Throttled | Reason::ApiUnavailable | Reason::StageConflict
        );
    Some(Note {
        warning,
        reason: outcome.reason.as_str(),
        action: "Reconcile",
        message: outcome.message.clone(),
    })
}

/// What users read while a cleanup cannot finish: transient trouble reads as Deleting (with
/// the cause); anything that needs a human keeps its reason and says how to let go.
pub fn cleanup_pending(outcome: Outcome) -> Outcome {
    let mut outcome = outcome;
    if outcome.phase == Phase::Progressing {
        outcome.reason = Reason::Deleting;
    } else {
        outcome.message.push_str(
            "; to delete the object without touching Amazon, set spec.deletionPolicy: Orphan",
        );
    }
    outcome
}

/// What the operator knows about the namespace of an object being deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespacePhase {
    /// The namespace is in use: a missing Secret may come back.
    Active,
    /// The namespace is being deleted (deletionTimestamp or phase Terminating) or already gone:
    /// its Secrets are being deleted and nothing new can be created in it.
    Terminating,
    /// The namespace could not be read (no RBAC for it, API error).
    Unknown,
}

impl NamespacePhase {
    /// The phase of a namespace as read from the API server (`None`: it does not exist).
    pub fn of(namespace: Option<&k8s_openapi::api::core::v1::Namespace>) -> NamespacePhase {
        let Some(namespace) = namespace else {
            return NamespacePhase::Terminating;
        };
        let phase = namespace.status.as_ref().and_then(|s| s.phase.as_deref());
        if namespace.metadata.deletion_timestamp.is_some() || phase == Some("Terminating") {
            NamespacePhase::Terminating
        } else {
            NamespacePhase::Active
        }
    }
}

/// What follows a failed cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailedCleanup {
    /// Keep the finalizer and try again (CleanupPending).
    Retry,
    /// Release the finalizer, leave Amazon's side in place and say so in a Warning event.
    Orphan,
}

/// Whether a failed cleanup orphans Amazon's side: only when the credentials it needs are gone
/// (Secret or key missing: reason `SecretNotFound`) and the namespace is being deleted. Then
/// they cannot come back (a terminating namespace accepts no new objects) and waiting would
/// keep the namespace Terminating forever. Anywhere else a Secret can be restored, so the
/// finalizer stays; a namespace the operator cannot read counts as not terminating.
pub fn after_failed_cleanup(reason: Reason, namespace: NamespacePhase) -> AfterFailedCleanup {
    match (reason, namespace) {
        (Reason::SecretNotFound, NamespacePhase::Terminating) => AfterFailedCleanup::Orphan,
        _ => AfterFailedCleanup::Retry,
    }
}

/// The Warning event of a cleanup given up because the namespace went with the credentials:
/// what stayed on Amazon, how to remove it, and how to avoid it. `object` is "Kind ns/name",
/// `why` the failure's message (names the Secret and key, never a value).
pub fn namespace_orphan_note(object: &str, namespace: &str, why: &str, left: &Leftover) -> Note {
    Note {
        warning: true,
        reason: ORPHANED_BY_NAMESPACE_DELETION,
        action: "Delete",
        message: format!(
            "{object}: namespace {namespace} is being deleted and its credentials are gone \
             ({why}), so {what} was left on Amazon; remove it with {how}. To avoid this, \
             delete these objects before their namespace",
            what = left.what,
            how = left.remove_with,
        ),
    }
}

/// Event reason of [`namespace_orphan_note`].
pub const ORPHANED_BY_NAMESPACE_DELETION: &str = "OrphanedByNamespaceDeletion";

/// How the per-object failure count changes with a retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failures {
    /// One more consecutive failure (back-off grows).
    Count,
    /// Back to zero.
    Reset,
}

/// The failure-count update a retry policy implies: only transient failures count.
pub fn failures_after(retry: Retry) -> Failures {
    match retry {
        Retry::Backoff { .. } => Failures::Count,
        _ => Failures::Reset,
    }
}

/// Shortest period the resync-period annotation may ask for: shorter would spend the
/// credential's shared rate budget on one object.
pub const MIN_OBJECT_RESYNC: Duration = Duration::from_secs(60);
/// Longest period the resync-period annotation may ask for: drift older than a day goes
/// unnoticed for too long.
pub const MAX_OBJECT_RESYNC: Duration = Duration::from_secs(24 * 3600);

/// What an object's `alexa.operator.dev/resync-period` annotation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncOverride {
    /// No annotation: `--resync-period` applies.
    Default,
    /// A valid period for this object.
    Period(Duration),
    /// Unusable (unparsable or out of range): `--resync-period` applies and users are told why.
    Invalid {
        /// The annotation's value as written.
        value: String,
        /// Why it is not used.
        why: String,
    },
}

impl ResyncOverride {
    /// Parses the annotation's value (`None`: not set), humantime style ("90s", "10m", "1h").
    pub fn parse(value: Option<&str>) -> ResyncOverride {
        let Some(value) = value else {
            return ResyncOverride::Default;
        };
        let invalid = |why: String| ResyncOverride::Invalid {
            value: value.to_owned(),
            why,
        };
        match humantime::parse_duration(value.trim()) {
            Err(e) => invalid(format!("{e}; use a duration such as 30m or 2h")),
            Ok(d) if d < MIN_OBJECT_RESYNC || d > MAX_OBJECT_RESYNC => invalid(format!(
                "must be between {} and {}",
                humantime::format_duration(MIN_OBJECT_RESYNC),
                humantime::format_duration(MAX_OBJECT_RESYNC)
            )),
            Ok(d) => ResyncOverride::Period(d),
        }
    }

    /// The settings to requeue with: `settings` with this object's resync period, if any.
    pub fn apply(&self, settings: &Settings) -> Settings {
        let mut out = settings.clone();
        if let ResyncOverride::Period(period) = self {
            out.resync_period = *period;
        }
        out
    }

    /// The Warning event of an unusable value, naming the default used instead.
    pub fn warning(&self, default: Duration) -> Option<Note> {
        let ResyncOverride::Invalid { value, why } = self else {
            return None;
        };
        Some(Note {
            warning: true,
            reason: INVALID_RESYNC_PERIOD,
            action: "Reconcile",
            message: format!(
                "annotation {RESYNC_PERIOD_ANNOTATION}: {value:?} {why}; resyncing every {} (--resync-period) instead",
                humantime::format_duration(default)
            ),
        })
    }
}

/// Event reason of [`ResyncOverride::warning`].
pub const INVALID_RESYNC_PERIOD: &str = "InvalidResyncPeriod";

/// Whether to publish the warning about an unusable annotation `value`: once per value and
/// object, so a bad value does not earn an event on every reconcile. `last_warned` is the
/// value last warned about (kept in memory).
pub fn warn_about(value: &str, last_warned: Option<&str>) -> bool {
    last_warned != Some(value)
}

/// When to look at the object again (`None`: wait for a change to it or its Secrets).
/// `failures` is the consecutive-failure count including this one (used by back-off only);
/// `jitter` in [0, 1) spreads resyncs by ±10% so objects created together do not resync
/// together. Never sooner than a `Retry-After` Amazon sent.
pub fn requeue_after(
    retry: Retry,
    failures: u32,
    settings: &Settings,
    jitter: f64,
) -> Option<Duration> {
    match retry {
        Retry::Resync => Some(settings.resync_with(jitter)),
        Retry::Backoff { retry_after } => Some(
            settings
                .backoff
                .delay_at(failures, jitter)
                .max(retry_after.unwrap_or_default()),
        ),
        Retry::Slow => Some(settings.stalled_retry),
        Retry::After(delay) => Some(delay),
        Retry::AwaitChange => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alexa::Backoff;

    fn settings() -> Settings {
        Settings {
            resync_period: Duration::from_secs(600),
            stalled_retry: Duration::from_secs(300),
            backoff: Backoff {
                base: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(60),
            },
        }
    }

    #[test]
    fn requeue_after_each_retry_policy() {
        let s = settings();
        let secs = Duration::from_secs;
        let backoff = |retry_after| Retry::Backoff { retry_after };
        // (retry, failures, jitter, expected)
        let cases: [(Retry, u32, f64, Option<Duration>); 10] = [
            (Retry::Resync, 0, 0.5, Some(secs(600))),
            (Retry::Resync, 0, 0.0, Some(secs(540))),
            (Retry::Resync, 0, 1.0, Some(secs(660))),
            (backoff(None), 1, 1.0, Some(secs(1))),
            (backoff(None), 3, 1.0, Some(secs(4))),
            (backoff(None), 3, 0.5, Some(secs(2))),
            (backoff(None), 30, 1.0, Some(secs(60))),
            // Amazon's Retry-After wins over a shorter back-off.
            (backoff(Some(secs(7))), 1, 1.0, Some(secs(7))),
            (Retry::Slow, 5, 0.3, Some(secs(300))),
            (Retry::AwaitChange, 5, 0.3, None),
        ];
        for (retry, failures, jitter, want) in cases {
            assert_eq!(
                requeue_after(retry, failures, &s, jitter),
                want,
                "{retry:?} after {failures} failures, jitter {jitter}"
            );
        }
        assert_eq!(
            requeue_after(Retry::After(secs(5)), 9, &s, 0.9),
            Some(secs(5))
        );
    }

    #[test]
    fn the_resync_period_annotation_is_bounded_and_overrides_the_flag() {
        let s = settings();
        let mins = |m: u64| Duration::from_secs(m * 60);
        // (annotation, expected resync period before jitter, expects a warning)
        let cases: [(Option<&str>, Duration, bool); 10] = [
            (None, mins(10), false),
            (Some("30m"), mins(30), false),
            (Some(" 1h "), mins(60), false),
            (Some("1m"), mins(1), false),
            (Some("24h"), mins(24 * 60), false),
            (Some("90s"), Duration::from_secs(90), false),
            (Some("59s"), mins(10), true),
            (Some("25h"), mins(10), true),
            (Some("soon"), mins(10), true),
            (Some(""), mins(10), true),
        ];
        for (value, want, warns) in cases {
            let parsed = ResyncOverride::parse(value);
            let used = parsed.apply(&s);
            assert_eq!(used.resync_period, want, "{value:?}");
            assert_eq!(
                requeue_after(Retry::Resync, 0, &used, 0.5),
                Some(want),
                "{value:?}"
            );
            // Only the resync period changes: back-off and slow retries stay.
            assert_eq!(used.stalled_retry, s.stalled_retry);
            let note = parsed.warning(s.resync_period);
            assert_eq!(note.is_some(), warns, "{value:?}");
            if let Some(note) = note {
                assert!(note.warning);
                assert_eq!(note.reason, INVALID_RESYNC_PERIOD);
                assert!(
                    note.message.contains(RESYNC_PERIOD_ANNOTATION) && note.message.contains("10m"),
                    "{}",
                    note.message
                );
            }
        }
    }

    #[test]
    fn a_bad_resync_period_is_warned_about_once_per_value() {
        let cases = [
            ("5s", None, true),
            ("5s", Some("5s"), false),
            ("6s", Some("5s"), true),
        ];
        for (value, last, want) in cases {
            assert_eq!(warn_about(value, last), want, "{value} after {last:?}");
        }
    }

    #[test]
    fn only_transient_failures_count() {
        let cases = [
            (Retry::Backoff { retry_after: None }, Failures::Count),
            (
                Retry::Backoff {
                    retry_after: Some(Duration::from_secs(1)),
                },
                Failures::Count,
            ),
            (Retry::Resync, Failures::Reset),
            (Retry::Slow, Failures::Reset),
            (Retry::After(Duration::from_secs(5)), Failures::Reset),
            (Retry::AwaitChange, Failures::Reset),
        ];
        for (retry, want) in cases {
            assert_eq!(failures_after(retry), want, "{retry:?}");
        }
    }

    #[test]
    fn change_kinds() {
        // (creating, was_ready, desired_unchanged, expected)
        let cases = [
            (true, false, false, Change::Created),
            (true, true, true, Change::Created),
            (false, true, true, Change::DriftRepaired),
            (false, true, false, Change::Updated),
            (false, false, true, Change::Updated),
            (false, false, false, Change::Updated),
        ];
        for (creating, was_ready, unchanged, want) in cases {
            assert_eq!(
                Change::of(creating, was_ready, unchanged),
                want,
                "creating {creating}, was ready {was_ready}, desired unchanged {unchanged}"
            );
        }
        assert_eq!(Change::DriftRepaired.reason(), "DriftRepaired");
    }

    fn ready(status: &str) -> Vec<Condition> {
        vec![Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: "Synced".into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }]
    }

    #[test]
    fn was_ready_needs_ready_true_for_the_current_generation() {
        let cases = [
            (ready("True"), Some(2), Some(2), true),
            (ready("True"), Some(1), Some(2), false),
            (ready("False"), Some(2), Some(2), false),
            (Vec::new(), Some(2), Some(2), false),
        ];
        for (conditions, observed, generation, want) in cases {
            assert_eq!(
                was_ready(&conditions, observed, generation),
                want,
                "{conditions:?} observed {observed:?} generation {generation:?}"
            );
        }
    }

    #[test]
    fn transition_notes() {
        let stalled = Outcome::stalled(Reason::SecretNotFound, "no Secret lwa");
        let throttled = Outcome::progressing(Reason::Throttled, "429");
        let updating = Outcome::progressing(Reason::Updating, "updating");
        let synced = Outcome::ready("fine");
        // (previous reason, outcome, expected Some(warning) or None)
        let cases = [
            (Some("Synced"), &synced, None),
            (None, &synced, Some(false)),
            (Some("Updating"), &synced, Some(false)),
            (Some("Synced"), &stalled, Some(true)),
            (Some("SecretNotFound"), &stalled, None),
            (Some("Synced"), &throttled, Some(true)),
            (Some("Synced"), &updating, Some(false)),
        ];
        for (previous, outcome, want) in cases {
            let note = transition_note(previous, outcome);
            assert_eq!(
                note.as_ref().map(|n| n.warning),
                want,
                "{previous:?} → {outcome:?}"
            );
            if let Some(note) = note {
                assert_eq!(note.reason, outcome.reason.as_str());
                assert_eq!(note.message, outcome.message);
            }
        }
    }

    #[test]
    fn cleanup_pending_reads_deleting_or_says_how_to_let_go() {
        let transient = cleanup_pending(Outcome::progressing(Reason::ApiUnavailable, "503"));
        assert_eq!(transient.reason, Reason::Deleting);
        assert!(!transient.message.contains("Orphan"));
        let human = cleanup_pending(Outcome::stalled(Reason::SecretNotFound, "no Secret lwa"));
        assert_eq!(human.reason, Reason::SecretNotFound);
        assert!(
            human.message.contains("spec.deletionPolicy: Orphan"),
            "{}",
            human.message
        );
    }

    fn namespace(deleting: bool, phase: Option<&str>) -> k8s_openapi::api::core::v1::Namespace {
        let mut ns = k8s_openapi::api::core::v1::Namespace::default();
        if deleting {
            ns.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ));
        }
        ns.status = phase.map(|p| k8s_openapi::api::core::v1::NamespaceStatus {
            phase: Some(p.into()),
            ..Default::default()
        });
        ns
    }

    #[test]
    fn namespace_phases() {
        use NamespacePhase::*;
        let cases = [
            (Some(namespace(false, Some("Active"))), Active),
            (Some(namespace(false, None)), Active),
            (Some(namespace(true, Some("Active"))), Terminating),
            (Some(namespace(false, Some("Terminating"))), Terminating),
            (Some(namespace(true, Some("Terminating"))), Terminating),
            // Gone already: its Secrets are gone for good too.
            (None, Terminating),
        ];
        for (ns, want) in cases {
            assert_eq!(NamespacePhase::of(ns.as_ref()), want, "{ns:?}");
        }
    }

    #[test]
    fn only_missing_credentials_in_a_terminating_namespace_orphan() {
        use AfterFailedCleanup::{Orphan, Retry};
        use NamespacePhase::*;
        // (reason of the failed cleanup, namespace, expected)
        let cases = [
            (Reason::SecretNotFound, Terminating, Orphan),
            (Reason::SecretNotFound, Active, Retry),
            (Reason::SecretNotFound, Unknown, Retry),
            // Credentials there but refused, Amazon down, a bad Secret value: never orphaned,
            // even while the namespace goes.
            (Reason::CredentialsInvalid, Terminating, Retry),
            (Reason::ApiUnavailable, Terminating, Retry),
            (Reason::Throttled, Terminating, Retry),
            (Reason::InvalidSpec, Terminating, Retry),
            (Reason::Forbidden, Terminating, Retry),
            (Reason::Unauthorized, Terminating, Retry),
        ];
        for (reason, namespace, want) in cases {
            assert_eq!(
                after_failed_cleanup(reason, namespace),
                want,
                "{reason:?} in a {namespace:?} namespace"
            );
        }
    }

    #[test]
    fn the_namespace_orphan_note_says_what_is_left_and_how_to_remove_it() {
        let left = Leftover {
            what: "the account linking of skill s stage development".into(),
            remove_with: "`ask smapi delete-account-linking-info --skill-id s --stage development`"
                .into(),
        };
        let note = namespace_orphan_note(
            "SkillAccountLinking team/weather",
            "team",
            "Secret team/lwa not found",
            &left,
        );
        assert!(note.warning);
        assert_eq!(note.reason, ORPHANED_BY_NAMESPACE_DELETION);
        assert_eq!(
            note.message,
            "SkillAccountLinking team/weather: namespace team is being deleted and its \
             credentials are gone (Secret team/lwa not found), so the account linking of skill \
             s stage development was left on Amazon; remove it with `ask smapi \
             delete-account-linking-info --skill-id s --stage development`. To avoid this, \
             delete these objects before their namespace"
        );
    }

    #[test]
    fn observe_mode_reports_and_never_writes() {
        assert!(!Policy::of(ManagementPolicy::Observe).may_write);
        assert!(Policy::of(ManagementPolicy::Manage).may_write);
        let (outcome, retry) =
            observed_drift("skill s stage live is not enabled", "not enabling it");
        assert_eq!(
            (outcome.reason, outcome.phase, retry),
            (Reason::DriftDetected, Phase::Idle, Retry::Resync)
        );
        assert_eq!(
            outcome.message,
            "Observe mode: skill s stage live is not enabled; not enabling it"
        );
    }
}
