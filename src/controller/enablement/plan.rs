//! The SkillEnablement planners, one per mode, plus the single-use authorization code rule.
//! Pure: no client, no clock, no I/O.

use crate::alexa::CustomerEnablementStatus;
use crate::controller::lifecycle::policy::Policy;

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

/// Whether the authorization code in the Secret may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPlan {
    /// This code was sent before; codes are single-use, so wait for a new one.
    CodeAlreadySent,
    /// A code never sent: send it.
    Send,
}

/// Decides whether to send the code whose hash is `code_hash`, given the hash of the last code
/// sent (recorded in status).
pub fn plan_link(recorded_code_hash: Option<&str>, code_hash: &str) -> LinkPlan {
    if recorded_code_hash == Some(code_hash) {
        LinkPlan::CodeAlreadySent
    } else {
        LinkPlan::Send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let cases = [
            (None, "sha256:a", LinkPlan::Send),
            (Some("sha256:a"), "sha256:a", LinkPlan::CodeAlreadySent),
            (Some("sha256:a"), "sha256:b", LinkPlan::Send),
        ];
        for (recorded, code, want) in cases {
            assert_eq!(plan_link(recorded, code), want, "{recorded:?} {code}");
        }
    }
}
