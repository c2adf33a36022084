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

/// What to do about a customer-mode SkillEnablement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerPlan {
    /// Enabled for the customer with the accounts linked.
    InSync,
    /// Observe mode: not enabled and linked; report it.
    ReportDrift,
    /// Enable and link with the customer's authorization code (see [`plan_link`]).
    Link,
}

/// Whether the customer's enablement counts as done: enabled and linked.
pub fn is_linked(s: &CustomerEnablementStatus) -> bool {
    s.is_enabled() && s.is_linked()
}

/// Decides customer mode from Amazon's answer (`None`: not enabled for the customer).
pub fn plan_customer(observed: Option<&CustomerEnablementStatus>, policy: Policy) -> CustomerPlan {
    match observed {
        Some(s) if is_linked(s) => CustomerPlan::InSync,
        _ if !policy.may_write => CustomerPlan::ReportDrift,
        _ => CustomerPlan::Link,
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
            ..Default::default()
        }
    }

    #[test]
    fn customer_plans() {
        let (manage, observe) = (Policy::MANAGE, Policy::OBSERVE);
        let linked = status(true, Some("LINKED"));
        let unlinked = status(true, Some("NOT_LINKED"));
        let disabled = status(false, None);
        // (observed, policy, expected)
        let cases = [
            (Some(&linked), manage, CustomerPlan::InSync),
            (Some(&linked), observe, CustomerPlan::InSync),
            (Some(&unlinked), manage, CustomerPlan::Link),
            (Some(&disabled), manage, CustomerPlan::Link),
            (None, manage, CustomerPlan::Link),
            (Some(&unlinked), observe, CustomerPlan::ReportDrift),
            (None, observe, CustomerPlan::ReportDrift),
        ];
        for (observed, policy, want) in cases {
            assert_eq!(
                plan_customer(observed, policy),
                want,
                "{observed:?} {policy:?}"
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
