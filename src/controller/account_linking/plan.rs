//! The SkillAccountLinking planner: what to do, decided from what was observed, what the spec
//! and Secrets ask for, and what status recorded. Pure: no client, no clock, no I/O; every
//! outcome is a [`Plan`] variant that can be printed, compared and tested.

use super::PendingWrite;
use crate::alexa::{AccountLinkingInfo, AccountLinkingRequest, Versioned};
use crate::controller::lifecycle::policy::{Change, Policy};

/// What the operator read: Amazon's account linking of the stage (`None`: not configured).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Amazon's account linking and its ETag.
    pub current: Option<Versioned<AccountLinkingInfo>>,
}

/// What the spec and its Secrets ask for.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The request a write would send (the client secret inside is never printed).
    pub request: AccountLinkingRequest,
    /// Identity of that request ([`super::request_hash`]).
    pub request_hash: String,
    /// Hash of the client secret, when the spec references one.
    pub secret_hash: Option<String>,
    /// Digest of the other request-only fields ([`super::request_only_hash`]).
    pub request_only_hash: String,
    /// The request-only fields the spec sets: Amazon never returns them, so Observe mode cannot
    /// compare them.
    pub unverifiable: Vec<&'static str>,
}

/// Writes Amazon may accept without its read-back agreeing before the operator stops writing.
pub const MAX_UNCONVERGED_WRITES: u32 = 3;

/// What earlier reconciles recorded in status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Hash of the client secret last applied (Amazon never returns it).
    pub client_secret_hash: Option<String>,
    /// A write carrying the client secret that was recorded before it was sent.
    pub pending: Option<PendingWrite>,
    /// The request Amazon last rejected as invalid.
    pub rejected_request_hash: Option<String>,
    /// Digest of the non-secret request-only fields last applied (of their defaults when
    /// nothing was recorded: a PUT without them sets the defaults).
    pub request_only_hash: String,
    /// Writes of the desired request Amazon accepted while its read-back kept differing.
    pub unconverged_writes: u32,
    /// The reconcile-requested-at annotation asks for a new attempt.
    pub retry_requested: bool,
    /// Ready for the current generation before this reconcile.
    pub was_ready: bool,
}

/// A write to Amazon's account linking (PUT), with what must be recorded first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The record of a write carrying the client secret (`None` without a secret).
    pub pending: Option<PendingWrite>,
    /// Whether that record must be saved to status before the PUT (it is not there yet), so a
    /// restart right after the PUT does not send the secret again.
    pub save_first: bool,
}

/// What to do about one SkillAccountLinking, decided by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Amazon matches the spec. `unverifiable`: request-only fields Observe mode could not
    /// compare (Amazon never returns them).
    InSync {
        /// Request-only fields set in the spec that could not be compared.
        unverifiable: Vec<&'static str>,
    },
    /// A write recorded as pending before a restart reached Amazon: record the secret as
    /// applied, send nothing.
    EarlierWriteConfirmed,
    /// Observe mode: Amazon differs in these spec fields; report, never write.
    ReportDrift {
        /// Spec field paths that differ.
        fields: Vec<String>,
    },
    /// Amazon rejected exactly this request before; wait for a spec or Secret change.
    RejectedUnchanged,
    /// Amazon accepted [`MAX_UNCONVERGED_WRITES`] writes of this request and still differs in
    /// `fields`: stop writing until something changes (resync reads go on).
    NotConverging {
        /// Spec field paths that still differ.
        fields: Vec<String>,
    },
    /// Nothing is configured on Amazon: create it.
    Create(Write),
    /// Amazon differs in `fields`: update it, conditional on `base_etag`.
    Update {
        /// Spec field paths that differ.
        fields: Vec<String>,
        /// The ETag read, sent as `If-Match`.
        base_etag: Option<String>,
        /// The write.
        write: Write,
        /// How users see it: a spec change or a drift repair.
        change: Change,
    },
}

/// Spec field paths whose value differs from Amazon's (normalised as
/// [`AccountLinkingInfo::differences_from`] describes; the write-only client secret is compared
/// separately, through its hash).
pub fn drift(observed: &AccountLinkingInfo, desired: &AccountLinkingRequest) -> Vec<String> {
    observed
        .differences_from(desired)
        .into_iter()
        .map(|field| format!("spec.accountLinking.{field}"))
        .collect()
}

/// Whether an update recorded as pending before a restart reached Amazon: it asked for the
/// same request, Amazon's content matches it, and Amazon's ETag moved on from the one the
/// update was based on. Without an ETag nothing can be concluded, and the update is resent.
pub fn pending_write_landed(
    pending: Option<&PendingWrite>,
    request_hash: &str,
    observed_etag: Option<&str>,
    content_matches: bool,
) -> bool {
    match (pending, observed_etag) {
        (Some(p), Some(etag)) => {
            content_matches
                && p.request_hash == request_hash
                && p.base_etag.as_deref() != Some(etag)
        }
        _ => false,
    }
}

/// Decides what to do. Amazon never returns the request-only fields (the client secret,
/// `skipOnEnablement`), so they count as different only when what the spec asks for differs
/// from what status records as applied, and Observe mode (which never applied them) cannot tell.
pub fn plan(observed: &Observed, desired: &Desired, recorded: &Recorded, policy: Policy) -> Plan {
    let etag = observed.current.as_ref().and_then(|v| v.etag.clone());
    let mut fields = match &observed.current {
        None => vec!["spec.accountLinking".to_string()],
        Some(v) => drift(&v.value, &desired.request),
    };
    let exists = observed.current.is_some() && policy.may_write;
    if exists && desired.request_only_hash != recorded.request_only_hash {
        fields.push("spec.accountLinking.skipOnEnablement".to_string());
    }
    let secret_differs = exists
        && desired.secret_hash.is_some()
        && desired.secret_hash != recorded.client_secret_hash;
    let mut confirmed = false;
    if secret_differs {
        if pending_write_landed(
            recorded.pending.as_ref(),
            &desired.request_hash,
            etag.as_deref(),
            fields.is_empty(),
        ) {
            confirmed = true;
        } else {
            fields.push("spec.accountLinking.clientSecretRef".to_string());
        }
    }
    if fields.is_empty() {
        return if confirmed {
            Plan::EarlierWriteConfirmed
        } else {
            Plan::InSync {
                unverifiable: if policy.may_write {
                    Vec::new()
                } else {
                    desired.unverifiable.clone()
                },
            }
        };
    }
    if !policy.may_write {
        return Plan::ReportDrift { fields };
    }
    if recorded.rejected_request_hash.as_deref() == Some(desired.request_hash.as_str()) {
        return Plan::RejectedUnchanged;
    }
    if recorded.unconverged_writes >= MAX_UNCONVERGED_WRITES && !recorded.retry_requested {
        return Plan::NotConverging { fields };
    }
    let pending = desired.secret_hash.as_ref().map(|_| PendingWrite {
        request_hash: desired.request_hash.clone(),
        base_etag: etag.clone(),
    });
    let write = Write {
        save_first: pending.is_some() && recorded.pending != pending,
        pending,
    };
    if observed.current.is_none() {
        return Plan::Create(write);
    }
    let desired_unchanged = desired.secret_hash == recorded.client_secret_hash
        && desired.request_only_hash == recorded.request_only_hash;
    Plan::Update {
        fields,
        base_etag: etag,
        write,
        change: Change::of(false, recorded.was_ready, desired_unchanged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::account_linking::AccountLinkingSpec;

    fn spec() -> AccountLinkingSpec {
        serde_json::from_value(serde_json::json!({
            "type": "AUTH_CODE", "authorizationUrl": "https://a", "clientId": "c",
            "accessTokenUrl": "https://t", "accessTokenScheme": "HTTP_BASIC",
            "clientSecretRef": {"name": "oauth", "key": "client-secret"}
        }))
        .unwrap()
    }

    fn desired(secret: Option<&str>) -> Desired {
        desired_skip(secret, None)
    }

    /// The spec with a client secret and `skipOnEnablement` (request-only: never compared).
    fn desired_skip(secret: Option<&str>, skip: Option<bool>) -> Desired {
        let mut spec = spec();
        spec.skip_on_enablement = skip;
        let mut unverifiable = Vec::new();
        if secret.is_some() {
            unverifiable.push("clientSecret");
        }
        if skip.is_some() {
            unverifiable.push("skipOnEnablement");
        }
        Desired {
            request: AccountLinkingRequest::from_spec(&spec, secret.map(|s| s.to_owned().into())),
            request_hash: format!("req-{}-{skip:?}", secret.unwrap_or("none")),
            secret_hash: secret.map(|s| format!("hash-{s}")),
            request_only_hash: format!("skip-{}", skip.unwrap_or(false)),
            unverifiable,
        }
    }

    /// Amazon's state: the desired content (or with another clientId), with an ETag.
    fn amazon(client_id: &str, etag: Option<&str>) -> Observed {
        Observed {
            current: Some(Versioned {
                value: AccountLinkingInfo::from_value(serde_json::json!({
                    "type": "AUTH_CODE", "authorizationUrl": "https://a", "clientId": client_id,
                    "accessTokenUrl": "https://t", "accessTokenScheme": "HTTP_BASIC"
                }))
                .unwrap(),
                etag: etag.map(Into::into),
            }),
        }
    }

    fn nothing() -> Observed {
        Observed { current: None }
    }

    fn recorded(secret: Option<&str>, was_ready: bool) -> Recorded {
        Recorded {
            client_secret_hash: secret.map(|s| format!("hash-{s}")),
            pending: None,
            rejected_request_hash: None,
            request_only_hash: "skip-false".into(),
            unconverged_writes: 0,
            retry_requested: false,
            was_ready,
        }
    }

    fn pending(secret: &str, base: Option<&str>) -> Option<PendingWrite> {
        Some(PendingWrite {
            request_hash: format!("req-{secret}-None"),
            base_etag: base.map(Into::into),
        })
    }

    fn write(secret: &str, base: Option<&str>, save_first: bool) -> Write {
        Write {
            pending: pending(secret, base),
            save_first,
        }
    }

    fn update(fields: &[&str], etag: &str, write: Write, change: Change) -> Plan {
        Plan::Update {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            base_etag: Some(etag.into()),
            write,
            change,
        }
    }

    #[test]
    fn plans() {
        use Change::*;
        let manage = Policy::MANAGE;
        let observe = Policy::OBSERVE;
        let secret_field = "spec.accountLinking.clientSecretRef";
        let id_field = "spec.accountLinking.clientId";
        let with_pending = |r: Recorded, p: Option<PendingWrite>| Recorded { pending: p, ..r };
        let rejected = |r: Recorded, hash: &str| Recorded {
            rejected_request_hash: Some(hash.into()),
            ..r
        };
        let skip_applied = |r: Recorded| Recorded {
            request_only_hash: "skip-true".into(),
            ..r
        };
        let unconverged = |r: Recorded, writes: u32, retry_requested: bool| Recorded {
            unconverged_writes: writes,
            retry_requested,
            ..r
        };
        let skip_field = "spec.accountLinking.skipOnEnablement";
        // (what the row shows, observed, desired, recorded, policy, expected plan)
        let cases: Vec<(&str, Observed, Desired, Recorded, Policy, Plan)> = vec![
            (
                "matches, secret applied",
                amazon("c", Some("e1")),
                desired(Some("s1")),
                recorded(Some("s1"), true),
                manage,
                Plan::InSync {
                    unverifiable: vec![],
                },
            ),
            (
                "no secret in the spec",
                amazon("c", Some("e1")),
                desired(None),
                recorded(None, true),
                manage,
                Plan::InSync {
                    unverifiable: vec![],
                },
            ),
            (
                "nothing on Amazon: create, recording the secret first",
                nothing(),
                desired(Some("s1")),
                recorded(None, false),
                manage,
                Plan::Create(write("s1", None, true)),
            ),
            (
                "create without a secret: nothing to record",
                nothing(),
                desired(None),
                recorded(None, false),
                manage,
                Plan::Create(Write {
                    pending: None,
                    save_first: false,
                }),
            ),
            (
                "rotated secret: update it",
                amazon("c", Some("e1")),
                desired(Some("s2")),
                recorded(Some("s1"), true),
                manage,
                update(
                    &[secret_field],
                    "e1",
                    write("s2", Some("e1"), true),
                    Updated,
                ),
            ),
            (
                "out-of-band change while Ready: a repair",
                amazon("other", Some("e1")),
                desired(Some("s1")),
                recorded(Some("s1"), true),
                manage,
                update(
                    &[id_field],
                    "e1",
                    write("s1", Some("e1"), true),
                    DriftRepaired,
                ),
            ),
            (
                "difference before ever being Ready: an update",
                amazon("other", Some("e1")),
                desired(Some("s1")),
                recorded(Some("s1"), false),
                manage,
                update(&[id_field], "e1", write("s1", Some("e1"), true), Updated),
            ),
            (
                "pending record already saved: not saved twice",
                amazon("other", Some("e1")),
                desired(Some("s1")),
                with_pending(recorded(Some("s1"), false), pending("s1", Some("e1"))),
                manage,
                update(&[id_field], "e1", write("s1", Some("e1"), false), Updated),
            ),
            (
                "an earlier write landed before a restart",
                amazon("c", Some("e2")),
                desired(Some("s2")),
                with_pending(recorded(Some("s1"), true), pending("s2", Some("e1"))),
                manage,
                Plan::EarlierWriteConfirmed,
            ),
            (
                "pending write never reached Amazon (same ETag): send it",
                amazon("c", Some("e1")),
                desired(Some("s2")),
                with_pending(recorded(Some("s1"), true), pending("s2", Some("e1"))),
                manage,
                update(
                    &[secret_field],
                    "e1",
                    write("s2", Some("e1"), false),
                    Updated,
                ),
            ),
            (
                "rejected request unchanged: wait",
                amazon("other", Some("e1")),
                desired(Some("s1")),
                rejected(recorded(Some("s1"), false), "req-s1-None"),
                manage,
                Plan::RejectedUnchanged,
            ),
            (
                "rejected request, then the spec changed: write",
                amazon("other", Some("e1")),
                desired(Some("s2")),
                rejected(recorded(Some("s1"), false), "req-s1-None"),
                manage,
                update(
                    &[id_field, secret_field],
                    "e1",
                    write("s2", Some("e1"), true),
                    Updated,
                ),
            ),
            (
                "Observe: a difference is reported",
                amazon("other", Some("e1")),
                desired(None),
                recorded(None, false),
                observe,
                Plan::ReportDrift {
                    fields: vec![id_field.into()],
                },
            ),
            (
                "Observe: nothing on Amazon is reported",
                nothing(),
                desired(None),
                recorded(None, false),
                observe,
                Plan::ReportDrift {
                    fields: vec!["spec.accountLinking".into()],
                },
            ),
            (
                "Observe: the secret cannot be compared",
                amazon("c", Some("e1")),
                desired(Some("s1")),
                recorded(None, false),
                observe,
                Plan::InSync {
                    unverifiable: vec!["clientSecret"],
                },
            ),
            (
                "Observe never writes, even when rejected before",
                amazon("other", None),
                desired(None),
                rejected(recorded(None, false), "req-none-None"),
                observe,
                Plan::ReportDrift {
                    fields: vec![id_field.into()],
                },
            ),
            (
                "skipOnEnablement asked for, not applied yet: written once",
                amazon("c", Some("e1")),
                desired_skip(Some("s1"), Some(true)),
                recorded(Some("s1"), true),
                manage,
                update(
                    &[skip_field],
                    "e1",
                    Write {
                        pending: Some(PendingWrite {
                            request_hash: "req-s1-Some(true)".into(),
                            base_etag: Some("e1".into()),
                        }),
                        save_first: true,
                    },
                    Updated,
                ),
            ),
            (
                "skipOnEnablement applied: in sync though GET never returns it",
                amazon("c", Some("e2")),
                desired_skip(Some("s1"), Some(true)),
                skip_applied(recorded(Some("s1"), true)),
                manage,
                Plan::InSync {
                    unverifiable: vec![],
                },
            ),
            (
                "skipOnEnablement: false and nothing recorded: the default, in sync",
                amazon("c", Some("e1")),
                desired_skip(None, Some(false)),
                recorded(None, true),
                manage,
                Plan::InSync {
                    unverifiable: vec![],
                },
            ),
            (
                "Observe names every request-only field it cannot compare",
                amazon("c", Some("e1")),
                desired_skip(Some("s1"), Some(true)),
                recorded(None, false),
                observe,
                Plan::InSync {
                    unverifiable: vec!["clientSecret", "skipOnEnablement"],
                },
            ),
            (
                "3 writes that did not take: stop writing",
                amazon("other", Some("e4")),
                desired(None),
                unconverged(recorded(None, false), 3, false),
                manage,
                Plan::NotConverging {
                    fields: vec![id_field.into()],
                },
            ),
            (
                "2 writes that did not take: one more",
                amazon("other", Some("e3")),
                desired(None),
                unconverged(recorded(None, false), 2, false),
                manage,
                update(
                    &[id_field],
                    "e3",
                    Write {
                        pending: None,
                        save_first: false,
                    },
                    Updated,
                ),
            ),
            (
                "stopped, then reconcile-requested-at: one more attempt",
                amazon("other", Some("e4")),
                desired(None),
                unconverged(recorded(None, false), 3, true),
                manage,
                update(
                    &[id_field],
                    "e4",
                    Write {
                        pending: None,
                        save_first: false,
                    },
                    Updated,
                ),
            ),
            (
                "stopped, then Amazon came to agree: in sync",
                amazon("c", Some("e5")),
                desired(None),
                unconverged(recorded(None, false), 3, false),
                manage,
                Plan::InSync {
                    unverifiable: vec![],
                },
            ),
        ];
        for (row, observed, desired, recorded, policy, want) in cases {
            assert_eq!(plan(&observed, &desired, &recorded, policy), want, "{row}");
        }
    }

    #[test]
    fn a_pending_write_landed_only_when_amazon_moved_on_to_the_same_content() {
        let p = |base: Option<&str>| PendingWrite {
            request_hash: "sha256:req".into(),
            base_etag: base.map(Into::into),
        };
        // (pending, request, observed ETag, content matches, landed)
        let cases = [
            (Some(p(Some("e1"))), "sha256:req", Some("e2"), true, true),
            (Some(p(Some("e1"))), "sha256:req", Some("e1"), true, false),
            (Some(p(Some("e1"))), "sha256:other", Some("e2"), true, false),
            (Some(p(Some("e1"))), "sha256:req", Some("e2"), false, false),
            (Some(p(Some("e1"))), "sha256:req", None, true, false),
            (None, "sha256:req", Some("e2"), true, false),
            (Some(p(None)), "sha256:req", Some("e1"), true, true),
        ];
        for (pending, request, etag, matches, want) in cases {
            assert_eq!(
                pending_write_landed(pending.as_ref(), request, etag, matches),
                want,
                "{pending:?} {request} {etag:?} {matches}"
            );
        }
    }

    #[test]
    fn drift_names_spec_paths_and_ignores_amazon_defaults() {
        let s: AccountLinkingSpec = serde_json::from_value(
            serde_json::json!({"type": "IMPLICIT", "authorizationUrl": "https://a", "clientId": "c", "scopes": ["b", "a"]}),
        )
        .unwrap();
        let desired = AccountLinkingRequest::from_spec(&s, None);
        let same = AccountLinkingInfo::from_value(serde_json::json!({
            "type": "IMPLICIT", "authorizationUrl": "https://a", "clientId": "c", "scopes": ["a", "b"],
            "redirectUrls": ["https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId=V"],
            "voiceForwardAccountLinking": "DISABLED"
        }))
        .unwrap();
        assert!(
            drift(&same, &desired).is_empty(),
            "{:?}",
            drift(&same, &desired)
        );
        let changed = AccountLinkingInfo::from_value(serde_json::json!({"type": "IMPLICIT", "authorizationUrl": "https://a", "clientId": "other", "scopes": ["a", "b"]})).unwrap();
        assert_eq!(
            drift(&changed, &desired),
            vec!["spec.accountLinking.clientId".to_string()]
        );
    }
}
