//! Reconciler of `SkillAccountLinking`: makes a skill stage's account linking on Amazon match
//! the spec, and keeps it matching.
//!
//! Pipeline: read Secrets → build the desired request (pure) → GET Amazon's state → diff (pure)
//! → PUT with If-Match only when something differs → read back redirect URLs and ETag → status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::conditions::{Outcome, Reason};
use super::context::Context;
use super::lifecycle::{Checkpoint, ManagedKind, Note, Retry, Step};
use super::outcomes::{for_alexa_error, for_secret_error};
use super::secrets::{hash_tag, read_credentials, read_key};
use crate::alexa::{AccountLinkingInfo, AccountLinkingRequest, AlexaError, LwaCredentials};
use crate::crd::account_linking::{
    AccountLinkingSpec, AccountLinkingType, SkillAccountLinking, SkillAccountLinkingStatus,
};
use crate::crd::common::{DeletionPolicy, ManagementPolicy};

/// How many times a PUT refused with 412 (stale ETag) is re-read and retried in one reconcile.
const PRECONDITION_RETRIES: u32 = 3;

crate::impl_common_status!(SkillAccountLinkingStatus);

/// Defence in depth: the rules the CRD schema enforces, checked again before calling Amazon.
pub fn validate_spec(spec: &AccountLinkingSpec, skill_id: &str) -> Result<(), String> {
    let mut problems = Vec::new();
    if skill_id.is_empty() || skill_id.len() > 255 {
        problems.push("spec.skillId must be 1 to 255 characters".to_string());
    }
    if spec.domains.len() > 15 {
        problems.push(format!(
            "spec.accountLinking.domains has {} entries; at most 15 are allowed",
            spec.domains.len()
        ));
    }
    if spec.scopes.len() > 15 {
        problems.push(format!(
            "spec.accountLinking.scopes has {} entries; at most 15 are allowed",
            spec.scopes.len()
        ));
    }
    if spec.type_ == AccountLinkingType::AuthCode {
        for (missing, name) in [
            (spec.access_token_url.is_none(), "accessTokenUrl"),
            (spec.access_token_scheme.is_none(), "accessTokenScheme"),
            (spec.client_secret_ref.is_none(), "clientSecretRef"),
        ] {
            if missing {
                problems.push(format!(
                    "spec.accountLinking.{name} is required when type is AUTH_CODE"
                ));
            }
        }
    } else if spec.default_token_expiration_in_seconds.is_some() {
        problems.push(
            "spec.accountLinking.defaultTokenExpirationInSeconds applies only to type AUTH_CODE"
                .to_string(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid spec: {}", problems.join("; ")))
    }
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

/// An account linking update carrying the client secret, recorded in status before it is sent
/// (`status.pendingRequestHash`, `status.pendingBaseEtag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    /// [`request_hash`] of the update.
    pub request_hash: String,
    /// Amazon's ETag before the update; `None` when the update creates the account linking.
    pub base_etag: Option<String>,
}

impl PendingWrite {
    /// The pending write recorded in `status`, if any.
    pub fn of(status: &SkillAccountLinkingStatus) -> Option<PendingWrite> {
        status
            .pending_request_hash
            .as_ref()
            .map(|request_hash| PendingWrite {
                request_hash: request_hash.clone(),
                base_etag: status.pending_base_etag.clone(),
            })
    }

    /// Records `pending` in `status` (`None` clears it).
    pub fn record(status: &mut SkillAccountLinkingStatus, pending: Option<PendingWrite>) {
        let (hash, etag) = pending.map_or((None, None), |p| (Some(p.request_hash), p.base_etag));
        status.pending_request_hash = hash;
        status.pending_base_etag = etag;
    }
}

/// Identity of the request a spec and client secret produce (hashes only, never the secret):
/// a request Amazon rejected is not resent, and a pending write is recognised after a restart.
pub fn request_hash(spec: &AccountLinkingSpec, secret_hash: Option<&str>) -> String {
    hash_tag(&format!(
        "{}|{}",
        serde_json::to_string(spec).unwrap_or_default(),
        secret_hash.unwrap_or("")
    ))
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

fn location(obj: &SkillAccountLinking) -> String {
    format!("skill {} stage {}", obj.spec.skill_id, obj.spec.stage)
}

fn fail(
    status: SkillAccountLinkingStatus,
    err: &AlexaError,
    what: &str,
) -> Step<SkillAccountLinkingStatus> {
    let (outcome, retry) = for_alexa_error(err, what);
    Step::new(status, outcome, retry)
}

impl SkillAccountLinking {
    async fn credentials(&self, ctx: &Context) -> Result<LwaCredentials, (Outcome, Retry)> {
        let ns = self.namespace().unwrap_or_default();
        read_credentials(&ctx.kube, &ns, &self.spec.credentials_secret_ref.name)
            .await
            .map_err(|e| for_secret_error(&e))
    }

    async fn client_secret(&self, ctx: &Context) -> Result<Option<String>, (Outcome, Retry)> {
        let Some(reference) = &self.spec.account_linking.client_secret_ref else {
            return Ok(None);
        };
        let ns = self.namespace().unwrap_or_default();
        read_key(&ctx.kube, &ns, &reference.name, &reference.key)
            .await
            .map(Some)
            .map_err(|e| for_secret_error(&e))
    }
}

impl ManagedKind for SkillAccountLinking {
    type Status = SkillAccountLinkingStatus;
    const KIND: &'static str = "SkillAccountLinking";

    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy
    }

    fn management_policy(&self) -> ManagementPolicy {
        self.spec.management_policy
    }

    fn secret_names(&self) -> Vec<String> {
        let mut names = vec![self.spec.credentials_secret_ref.name.clone()];
        if let Some(r) = &self.spec.account_linking.client_secret_ref {
            names.push(r.name.clone());
        }
        names
    }

    fn validate(&self) -> Result<(), String> {
        validate_spec(&self.spec.account_linking, &self.spec.skill_id)
    }

    async fn apply(
        &self,
        ctx: &Context,
        status: Self::Status,
        checkpoint: &Checkpoint<'_, Self>,
    ) -> Step<Self::Status> {
        let mut status = status;
        let creds = match self.credentials(ctx).await {
            Ok(c) => c,
            Err((outcome, retry)) => return Step::new(status, outcome, retry),
        };
        let client_secret = match self.client_secret(ctx).await {
            Ok(s) => s,
            Err((outcome, retry)) => return Step::new(status, outcome, retry),
        };
        let secret_hash = client_secret.as_deref().map(hash_tag);
        let spec = &self.spec.account_linking;
        // Identity of the request the spec asks for, so a request Amazon rejected is not resent.
        let request_hash = request_hash(spec, secret_hash.as_deref());
        let desired = AccountLinkingRequest::from_spec(spec, client_secret.map(Into::into));
        let observe_only = self.spec.management_policy == ManagementPolicy::Observe;
        let (skill, stage) = (self.spec.skill_id.as_str(), self.spec.stage);
        let mut notes = Vec::new();

        let mut attempt = 0;
        loop {
            let observed = match ctx.alexa.get_account_linking(&creds, skill, stage).await {
                Ok(v) => v,
                Err(e) => return fail(status, &e, "read the account linking from Amazon"),
            };
            status.last_sync_time = Some(Time(Timestamp::now()));
            let mut fields = match &observed {
                None => vec!["spec.accountLinking".to_string()],
                Some(v) => {
                    status.etag = v.etag.clone();
                    status.redirect_urls = v.value.redirect_urls.clone();
                    drift(&v.value, &desired)
                }
            };
            // Amazon never returns the client secret: only a secret this operator applied (its
            // hash in status) can be compared. Observe mode never applies one, so it cannot
            // tell and does not report the secret as drift.
            if secret_hash.is_some()
                && secret_hash != status.client_secret_hash
                && observed.is_some()
                && !observe_only
            {
                let landed = pending_write_landed(
                    PendingWrite::of(&status).as_ref(),
                    &request_hash,
                    observed.as_ref().and_then(|v| v.etag.as_deref()),
                    fields.is_empty(),
                );
                if landed {
                    // Sent by an earlier run that stopped before recording it: the secret is
                    // on Amazon already, and sending it again would be a duplicate write.
                    status.client_secret_hash = secret_hash.clone();
                    notes.push(Note::normal(
                        "Confirmed",
                        "UpdateAccountLinking",
                        format!(
                            "an update of {} sent before the operator restarted had reached Amazon; not sending it again",
                            location(self)
                        ),
                    ));
                } else {
                    fields.push("spec.accountLinking.clientSecretRef".to_string());
                }
            }
            if fields.is_empty() {
                PendingWrite::record(&mut status, None);
                status.drift.clear();
                status.rejected_request_hash = None;
                let unverified = if observe_only && secret_hash.is_some() {
                    " (Observe mode cannot compare the client secret: Amazon never returns it)"
                } else {
                    ""
                };
                let mut step = Step::new(
                    status,
                    Outcome::ready(format!(
                        "account linking of {} matches the spec{unverified}",
                        location(self)
                    )),
                    Retry::Resync,
                );
                step.notes = notes;
                return step;
            }
            if observe_only {
                status.drift = fields.clone();
                let message = format!(
                    "Observe mode: Amazon's account linking of {} differs from the spec in {}; not changing it",
                    location(self),
                    fields.join(", ")
                );
                return Step::new(
                    status,
                    Outcome::idle(Reason::DriftDetected, message),
                    Retry::Resync,
                );
            }
            if status.rejected_request_hash.as_deref() == Some(request_hash.as_str()) {
                let previous = super::conditions::ready_condition(&status.conditions)
                    .map(|c| c.message.clone())
                    .unwrap_or_else(|| {
                        "Amazon rejected this account linking as invalid".to_string()
                    });
                return Step::new(
                    status,
                    Outcome::stalled(Reason::InvalidSpec, previous),
                    Retry::AwaitChange,
                );
            }

            let creating = observed.is_none();
            let etag = observed.as_ref().and_then(|v| v.etag.clone());
            if secret_hash.is_some() {
                // Amazon never returns the client secret, so only a record made before the PUT
                // can tell a restarted operator that it was applied.
                let pending = PendingWrite {
                    request_hash: request_hash.clone(),
                    base_etag: etag.clone(),
                };
                if PendingWrite::of(&status).as_ref() != Some(&pending) {
                    PendingWrite::record(&mut status, Some(pending));
                    let (reason, message) = if creating {
                        (
                            Reason::Creating,
                            format!(
                                "creating the account linking of {} on Amazon",
                                location(self)
                            ),
                        )
                    } else {
                        (
                            Reason::Updating,
                            format!("updating {} on Amazon", fields.join(", ")),
                        )
                    };
                    let in_flight = Outcome::progressing(reason, message);
                    if let Err(err) = checkpoint.save(&status, &in_flight).await {
                        PendingWrite::record(&mut status, None);
                        return Step::new(
                            status,
                            Outcome::progressing(
                                reason,
                                format!(
                                    "could not record the update of {} in status before sending it ({err}); retrying",
                                    location(self)
                                ),
                            ),
                            Retry::Backoff { retry_after: None },
                        );
                    }
                }
            }
            match ctx
                .alexa
                .update_account_linking(&creds, skill, stage, &desired, etag.as_deref())
                .await
            {
                Ok(new_etag) => {
                    let out_of_band = !creating
                        && status.observed_generation == self.metadata.generation
                        && super::conditions::ready_condition(&status.conditions)
                            .is_some_and(|c| c.status == "True")
                        && secret_hash == status.client_secret_hash;
                    status.client_secret_hash = secret_hash.clone();
                    PendingWrite::record(&mut status, None);
                    status.rejected_request_hash = None;
                    status.drift.clear();
                    if let Some(tag) = new_etag {
                        status.etag = Some(tag);
                    }
                    let note = if creating {
                        Note::normal(
                            "Created",
                            "UpdateAccountLinking",
                            format!(
                                "created the account linking of {} on Amazon",
                                location(self)
                            ),
                        )
                    } else if out_of_band {
                        ctx.metrics
                            .drift_repairs
                            .get_or_create(&crate::metrics::KindLabels {
                                kind: Self::KIND.to_string(),
                            })
                            .inc();
                        Note::normal(
                            "DriftRepaired",
                            "UpdateAccountLinking",
                            format!(
                                "undid an out-of-band change on Amazon to {}",
                                fields.join(", ")
                            ),
                        )
                    } else {
                        Note::normal(
                            "Updated",
                            "UpdateAccountLinking",
                            format!("updated {} on Amazon", fields.join(", ")),
                        )
                    };
                    notes.push(note);
                    // Read back: Amazon fills in the redirect URLs users must allow.
                    match ctx.alexa.get_account_linking(&creds, skill, stage).await {
                        Ok(Some(v)) => {
                            status.etag = v.etag.clone();
                            status.redirect_urls = v.value.redirect_urls.clone();
                            let remaining = drift(&v.value, &desired);
                            if !remaining.is_empty() {
                                let message = format!(
                                    "Amazon accepted the update of {} but still differs in {}",
                                    location(self),
                                    remaining.join(", ")
                                );
                                let mut step = Step::new(
                                    status,
                                    Outcome::progressing(Reason::Updating, message),
                                    Retry::Backoff { retry_after: None },
                                );
                                step.notes = notes;
                                return step;
                            }
                        }
                        Ok(None) | Err(_) => {
                            let message = format!(
                                "updated the account linking of {}; reading it back failed, retrying",
                                location(self)
                            );
                            let mut step = Step::new(
                                status,
                                Outcome::progressing(Reason::Updating, message),
                                Retry::Backoff { retry_after: None },
                            );
                            step.notes = notes;
                            return step;
                        }
                    }
                    let mut step = Step::new(
                        status,
                        Outcome::ready(format!(
                            "account linking of {} matches the spec",
                            location(self)
                        )),
                        Retry::Resync,
                    );
                    step.notes = notes;
                    return step;
                }
                Err(AlexaError::PreconditionFailed { .. }) if attempt < PRECONDITION_RETRIES => {
                    attempt += 1;
                    continue;
                }
                Err(e) => {
                    if matches!(e, AlexaError::InvalidRequest { .. }) {
                        // Refused outright: nothing reached Amazon. Other failures may have
                        // (a dropped connection after Amazon applied it), so the record stays.
                        status.rejected_request_hash = Some(request_hash);
                        PendingWrite::record(&mut status, None);
                    }
                    status.drift = fields.clone();
                    return fail(status, &e, "update the account linking on Amazon");
                }
            }
        }
    }

    async fn cleanup(
        &self,
        ctx: &Context,
        status: Self::Status,
    ) -> Result<Vec<Note>, Step<Self::Status>> {
        let hint =
            "; to delete the object without touching Amazon, set spec.deletionPolicy: Orphan";
        let creds = match self.credentials(ctx).await {
            Ok(c) => c,
            Err((mut outcome, retry)) => {
                outcome.message.push_str(hint);
                return Err(Step::new(status, outcome, retry));
            }
        };
        match ctx
            .alexa
            .delete_account_linking(&creds, &self.spec.skill_id, self.spec.stage)
            .await
        {
            Ok(()) | Err(AlexaError::NotFound { .. }) => Ok(vec![Note::normal(
                "Deleted",
                "DeleteAccountLinking",
                format!(
                    "deleted the account linking of {} on Amazon",
                    location(self)
                ),
            )]),
            Err(e) => {
                let (mut outcome, retry) =
                    for_alexa_error(&e, "delete the account linking on Amazon");
                if outcome.reason != Reason::Throttled && outcome.reason != Reason::ApiUnavailable {
                    outcome.message.push_str(hint);
                }
                Err(Step::new(status, outcome, retry))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> AccountLinkingSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_pending_write_landed_only_when_amazon_moved_on_to_the_same_content() {
        let pending = |base: Option<&str>| PendingWrite {
            request_hash: "sha256:req".into(),
            base_etag: base.map(Into::into),
        };
        let updated = pending(Some("e1"));
        assert!(pending_write_landed(
            Some(&updated),
            "sha256:req",
            Some("e2"),
            true
        ));
        assert!(
            !pending_write_landed(Some(&updated), "sha256:req", Some("e1"), true),
            "same ETag: the update never reached Amazon"
        );
        assert!(
            !pending_write_landed(Some(&updated), "sha256:other", Some("e2"), true),
            "the spec or Secret changed since: a different request"
        );
        assert!(
            !pending_write_landed(Some(&updated), "sha256:req", Some("e2"), false),
            "someone else wrote something else"
        );
        assert!(
            !pending_write_landed(Some(&updated), "sha256:req", None, true),
            "no ETag: cannot tell, resend"
        );
        assert!(!pending_write_landed(None, "sha256:req", Some("e2"), true));
        let created = pending(None);
        assert!(
            pending_write_landed(Some(&created), "sha256:req", Some("e1"), true),
            "a create landed: the account linking exists now"
        );
    }

    #[test]
    fn auth_code_needs_token_url_scheme_and_secret() {
        let s = spec(
            serde_json::json!({"type": "AUTH_CODE", "authorizationUrl": "https://a", "clientId": "c"}),
        );
        let err = validate_spec(&s, "skill").unwrap_err();
        for field in ["accessTokenUrl", "accessTokenScheme", "clientSecretRef"] {
            assert!(err.contains(field), "{err}");
        }
        let ok = spec(
            serde_json::json!({"type": "IMPLICIT", "authorizationUrl": "https://a", "clientId": "c"}),
        );
        assert!(validate_spec(&ok, "skill").is_ok());
        assert!(validate_spec(&ok, "").is_err());
        let mut many = ok.clone();
        many.scopes = (0..16).map(|i| i.to_string()).collect();
        assert!(
            validate_spec(&many, "skill")
                .unwrap_err()
                .contains("scopes")
        );
    }

    #[test]
    fn drift_names_spec_paths_and_ignores_amazon_defaults() {
        let s = spec(
            serde_json::json!({"type": "IMPLICIT", "authorizationUrl": "https://a", "clientId": "c", "scopes": ["b", "a"]}),
        );
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
