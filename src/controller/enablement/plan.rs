//! The SkillEnablement planners, one per mode, plus the single-use authorization code rule.
//! Pure: no client, no clock, no I/O.

use crate::alexa::{AlexaError, CustomerEnablementStatus, EnableFailure};
use crate::controller::lifecycle::policy::Policy;
use crate::crd::enablement::AuthCodeState;

/// What owner mode observed: a conflicting object in the cache (then Amazon is not read), or
/// whether Amazon has the stage enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerObserved {
    /// An older object enables the other stage of the skill with the same credentials.
    Conflict {
        /// That object's name.
        other: String,
    },
    /// Amazon's answer for the stage.
    Stage {
        /// Whether the stage is enabled for the skill owner.
        enabled: bool,
    },
}

/// What to do about an owner-mode SkillEnablement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerPlan {
    /// Another object owns the skill's enablement: wait, never call Amazon.
    StageConflict {
        /// The older object's name.
        other: String,
    },
    /// The stage is enabled.
    InSync,
    /// Observe mode: the stage is not enabled; report it.
    ReportDrift,
    /// Enable the stage. `repair`: it was enabled and Ready before, so someone disabled it.
    Enable {
        /// Whether this undoes an out-of-band change (event DriftRepaired).
        repair: bool,
    },
}

/// Decides owner mode.
pub fn plan_owner(observed: &OwnerObserved, was_ready: bool, policy: Policy) -> OwnerPlan {
    match observed {
        OwnerObserved::Conflict { other } => OwnerPlan::StageConflict {
            other: other.clone(),
        },
        OwnerObserved::Stage { enabled: true } => OwnerPlan::InSync,
        OwnerObserved::Stage { enabled: false } if !policy.may_write => OwnerPlan::ReportDrift,
        OwnerObserved::Stage { enabled: false } => OwnerPlan::Enable { repair: was_ready },
    }
}

/// What to do about a customer-mode SkillEnablement. `wrong_stage`: Amazon has the skill
/// enabled and linked for the customer, but on another stage than the spec's (its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerPlan {
    /// Enabled for the customer on the spec's stage with the accounts linked.
    InSync,
    /// Observe mode: not enabled and linked on the spec's stage; report it.
    ReportDrift {
        /// The stage Amazon has instead, if that is the difference.
        wrong_stage: Option<String>,
    },
    /// Enable and link with the customer's authorization code (see [`plan_link`]).
    Link {
        /// The stage Amazon has instead, if that is the difference.
        wrong_stage: Option<String>,
    },
}

/// Whether the customer's enablement counts as done: enabled and linked.
pub fn is_linked(s: &CustomerEnablementStatus) -> bool {
    s.is_enabled() && s.is_linked()
}

/// The stage Amazon reports when it is not `stage` (compared without case; an answer without
/// `skill.stage` is taken to be the spec's stage, see docs/AMAZON.md).
pub fn other_stage(s: &CustomerEnablementStatus, stage: &str) -> Option<String> {
    s.stage
        .as_deref()
        .filter(|got| !got.eq_ignore_ascii_case(stage))
        .map(str::to_owned)
}

/// Decides customer mode from Amazon's answer (`None`: not enabled for the customer) and the
/// spec's stage.
pub fn plan_customer(
    observed: Option<&CustomerEnablementStatus>,
    stage: &str,
    policy: Policy,
) -> CustomerPlan {
    let wrong_stage = observed.and_then(|s| other_stage(s, stage));
    match observed {
        Some(s) if is_linked(s) && wrong_stage.is_none() => CustomerPlan::InSync,
        _ if !policy.may_write => CustomerPlan::ReportDrift { wrong_stage },
        _ => CustomerPlan::Link { wrong_stage },
    }
}

/// What status records about the last code the operator sent (or began sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRecord<'a> {
    /// Digest of that code.
    pub digest: &'a str,
    /// What is known about it.
    pub state: AuthCodeState,
}

impl<'a> CodeRecord<'a> {
    /// The record in status; a digest without a state (written before states existed) is
    /// Spent, which is what it meant then.
    pub fn of(digest: Option<&'a str>, state: Option<AuthCodeState>) -> Option<CodeRecord<'a>> {
        digest.map(|digest| CodeRecord {
            digest,
            state: state.unwrap_or(AuthCodeState::Spent),
        })
    }
}

/// What to do with the code in the Secret when Amazon (read at the start of this reconcile)
/// does not show the skill linked on the spec's stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPlan {
    /// A code never sent: record it as Pending (saved to the API server first), then send it.
    Send,
    /// This code was spent (linked, refused, or outcome unknown): wait for a new one.
    CodeAlreadySent,
    /// This code was sent and its outcome never became known (a crash or lost answer after
    /// sending), and Amazon does not show it linked: it counts as spent now; never resent.
    OutcomeUnknown,
    /// Amazon accepted this code and linking has not completed yet: poll, never resend.
    AwaitLinking,
}

/// Decides whether the code with digest `code_digest` may be sent, given the record in status.
pub fn plan_link(recorded: Option<CodeRecord<'_>>, code_digest: &str) -> LinkPlan {
    match recorded {
        Some(r) if r.digest == code_digest => match r.state {
            AuthCodeState::Spent => LinkPlan::CodeAlreadySent,
            AuthCodeState::Pending => LinkPlan::OutcomeUnknown,
            AuthCodeState::Accepted => LinkPlan::AwaitLinking,
        },
        _ => LinkPlan::Send,
    }
}

/// What the enable request carrying the code came to, as far as the code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx and Amazon reports the accounts linked on the spec's stage.
    Linked,
    /// 2xx, but Amazon does not (yet) report them linked on the spec's stage: poll.
    Accepted,
    /// Nothing carrying the code was sent, or Amazon certainly did not process it (401, 403,
    /// 404, 429, an answer that was not Amazon's): the code is unused; send it later.
    NotProcessed,
    /// Amazon refused the request (400 or another 4xx): consumed or invalid; never resend.
    Rejected,
    /// Sent, no usable answer (timeout, reset, 5xx, unreadable answer): read Amazon's status,
    /// never resend.
    Unknown,
}

/// Classifies the enable's result (see docs/AMAZON.md for the 4xx reading).
pub fn delivery(
    result: Result<&CustomerEnablementStatus, &EnableFailure>,
    stage: &str,
) -> Delivery {
    let failure = match result {
        Ok(s) if is_linked(s) && other_stage(s, stage).is_none() => return Delivery::Linked,
        Ok(_) => return Delivery::Accepted,
        Err(failure) => failure,
    };
    if !failure.sent {
        return Delivery::NotProcessed;
    }
    match failure.error {
        AlexaError::Unauthorized(_)
        | AlexaError::Forbidden(_)
        | AlexaError::NotFound(_)
        | AlexaError::Throttled { .. }
        | AlexaError::Deferred { .. }
        | AlexaError::Credentials { .. }
        | AlexaError::WrongEndpoint { .. }
        | AlexaError::Config { .. } => Delivery::NotProcessed,
        AlexaError::InvalidRequest(_) | AlexaError::PreconditionFailed(_) => Delivery::Rejected,
        AlexaError::Unavailable { .. }
        | AlexaError::Overloaded { .. }
        | AlexaError::Transport { .. }
        | AlexaError::Decode { .. } => Delivery::Unknown,
    }
}

/// The code's state after the enable (`None`: restore the record from before it was marked
/// Pending, the code was never used).
pub fn state_after(delivery: Delivery) -> Option<AuthCodeState> {
    match delivery {
        Delivery::Linked | Delivery::Rejected => Some(AuthCodeState::Spent),
        Delivery::Accepted => Some(AuthCodeState::Accepted),
        Delivery::Unknown => Some(AuthCodeState::Pending),
        Delivery::NotProcessed => None,
    }
}

/// The code's state once Amazon shows the accounts linked: a Pending or Accepted code was used.
pub fn state_when_linked(state: Option<AuthCodeState>) -> Option<AuthCodeState> {
    match state {
        Some(AuthCodeState::Pending | AuthCodeState::Accepted) => Some(AuthCodeState::Spent),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alexa::ApiError;

    #[test]
    fn owner_plans() {
        let conflict = OwnerObserved::Conflict {
            other: "older".into(),
        };
        let on = OwnerObserved::Stage { enabled: true };
        let off = OwnerObserved::Stage { enabled: false };
        let (manage, observe) = (Policy::MANAGE, Policy::OBSERVE);
        // (observed, was ready, policy, expected)
        let cases = [
            (
                &conflict,
                true,
                manage,
                OwnerPlan::StageConflict {
                    other: "older".into(),
                },
            ),
            (
                &conflict,
                false,
                observe,
                OwnerPlan::StageConflict {
                    other: "older".into(),
                },
            ),
            (&on, false, manage, OwnerPlan::InSync),
            (&on, true, observe, OwnerPlan::InSync),
            (&off, false, manage, OwnerPlan::Enable { repair: false }),
            (&off, true, manage, OwnerPlan::Enable { repair: true }),
            (&off, false, observe, OwnerPlan::ReportDrift),
            (&off, true, observe, OwnerPlan::ReportDrift),
        ];
        for (observed, was_ready, policy, want) in cases {
            assert_eq!(
                plan_owner(observed, was_ready, policy),
                want,
                "{observed:?} was ready {was_ready} {policy:?}"
            );
        }
    }

    fn status(enabled: bool, link: Option<&str>) -> CustomerEnablementStatus {
        CustomerEnablementStatus {
            status: Some(if enabled { "ENABLED" } else { "DISABLED" }.into()),
            account_link_status: link.map(Into::into),
            stage: Some("development".into()),
            ..Default::default()
        }
    }

    #[test]
    fn customer_plans() {
        let (manage, observe) = (Policy::MANAGE, Policy::OBSERVE);
        let linked = status(true, Some("LINKED"));
        let unlinked = status(true, Some("NOT_LINKED"));
        let disabled = status(false, None);
        let live = CustomerEnablementStatus {
            stage: Some("LIVE".into()),
            ..linked.clone()
        };
        let no_stage = CustomerEnablementStatus {
            stage: None,
            ..linked.clone()
        };
        let link = |wrong: Option<&str>| CustomerPlan::Link {
            wrong_stage: wrong.map(Into::into),
        };
        let report = |wrong: Option<&str>| CustomerPlan::ReportDrift {
            wrong_stage: wrong.map(Into::into),
        };
        // (observed, spec's stage, policy, expected)
        let cases = [
            (Some(&linked), "development", manage, CustomerPlan::InSync),
            (Some(&linked), "DEVELOPMENT", observe, CustomerPlan::InSync),
            (Some(&no_stage), "live", manage, CustomerPlan::InSync),
            (Some(&unlinked), "development", manage, link(None)),
            (Some(&disabled), "development", manage, link(None)),
            (None, "development", manage, link(None)),
            (Some(&unlinked), "development", observe, report(None)),
            (None, "development", observe, report(None)),
            (Some(&linked), "live", manage, link(Some("development"))),
            (Some(&live), "development", observe, report(Some("LIVE"))),
        ];
        for (observed, stage, policy, want) in cases {
            assert_eq!(
                plan_customer(observed, stage, policy),
                want,
                "{observed:?} {stage} {policy:?}"
            );
        }
    }

    #[test]
    fn a_code_is_sent_once() {
        use AuthCodeState::{Accepted, Pending, Spent};
        let record = |digest, state| CodeRecord::of(Some(digest), state);
        // (recorded digest and state, code in the Secret, expected)
        let cases = [
            (None, "sha256:a", LinkPlan::Send),
            (
                record("sha256:a", Some(Spent)),
                "sha256:a",
                LinkPlan::CodeAlreadySent,
            ),
            // Written before states existed: the hash meant "sent".
            (
                record("sha256:a", None),
                "sha256:a",
                LinkPlan::CodeAlreadySent,
            ),
            (
                record("sha256:a", Some(Pending)),
                "sha256:a",
                LinkPlan::OutcomeUnknown,
            ),
            (
                record("sha256:a", Some(Accepted)),
                "sha256:a",
                LinkPlan::AwaitLinking,
            ),
            (record("sha256:a", Some(Spent)), "sha256:b", LinkPlan::Send),
            (
                record("sha256:a", Some(Pending)),
                "sha256:b",
                LinkPlan::Send,
            ),
            (
                record("sha256:a", Some(Accepted)),
                "sha256:b",
                LinkPlan::Send,
            ),
        ];
        for (recorded, code, want) in cases {
            assert_eq!(plan_link(recorded, code), want, "{recorded:?} {code}");
        }
    }

    #[test]
    fn what_a_sent_code_came_to() {
        let answer = || ApiError::message("x");
        let sent = |error| EnableFailure { error, sent: true };
        let unsent = |error| EnableFailure { error, sent: false };
        let transport = || AlexaError::Transport {
            message: "reset".into(),
        };
        let unavailable = AlexaError::Unavailable {
            status: 503,
            message: "x".into(),
        };
        let throttled = AlexaError::Throttled {
            answer: answer(),
            retry_after: None,
        };
        let decode = AlexaError::Decode {
            operation: crate::alexa::Operation::CustomerEnable,
            message: "x".into(),
        };
        let credentials = AlexaError::Credentials {
            error: "invalid_grant".into(),
            description: None,
        };
        let linked = status(true, Some("LINKED"));
        let not_yet = status(true, Some("NOT_LINKED"));
        let empty = CustomerEnablementStatus::default();
        use Delivery::*;
        // (result, expected delivery); the spec's stage is "development" except where noted
        let cases: Vec<(Result<&CustomerEnablementStatus, EnableFailure>, Delivery)> = vec![
            (Ok(&linked), Linked),
            (Ok(&not_yet), Accepted),
            // Linked, but on another stage than the spec's ("live", see `stages`).
            (Ok(&linked), Accepted),
            (Ok(&empty), Accepted),
            // Before anything carrying the code left: LWA refresh, discovery, the throttle,
            // a connection that could not be opened.
            (Err(unsent(credentials.clone())), NotProcessed),
            (Err(unsent(transport())), NotProcessed),
            (Err(unsent(unavailable.clone())), NotProcessed),
            (Err(unsent(decode.clone())), NotProcessed),
            (Err(unsent(throttled.clone())), NotProcessed),
            (Err(sent(throttled)), NotProcessed),
            (Err(sent(AlexaError::Unauthorized(answer()))), NotProcessed),
            (Err(sent(AlexaError::Forbidden(answer()))), NotProcessed),
            (Err(sent(AlexaError::NotFound(answer()))), NotProcessed),
            (Err(sent(AlexaError::InvalidRequest(answer()))), Rejected),
            (Err(sent(transport())), Unknown),
            (Err(sent(unavailable)), Unknown),
            (Err(sent(decode)), Unknown),
        ];
        let stages = ["development", "development", "live"];
        for (i, (result, want)) in cases.iter().enumerate() {
            let stage = stages.get(i).copied().unwrap_or("development");
            assert_eq!(
                delivery(result.as_ref().map(|s| *s), stage),
                *want,
                "{result:?} on {stage}"
            );
        }
        let after = [
            (Linked, Some(AuthCodeState::Spent)),
            (Rejected, Some(AuthCodeState::Spent)),
            (Accepted, Some(AuthCodeState::Accepted)),
            (Unknown, Some(AuthCodeState::Pending)),
            (NotProcessed, None),
        ];
        for (delivery, want) in after {
            assert_eq!(state_after(delivery), want, "{delivery:?}");
        }
        let linked_now = [
            (None, None),
            (Some(AuthCodeState::Pending), Some(AuthCodeState::Spent)),
            (Some(AuthCodeState::Accepted), Some(AuthCodeState::Spent)),
            (Some(AuthCodeState::Spent), Some(AuthCodeState::Spent)),
        ];
        for (state, want) in linked_now {
            assert_eq!(state_when_linked(state), want, "{state:?}");
        }
    }
}
