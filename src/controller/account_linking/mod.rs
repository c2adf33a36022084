//! Reconciler of `SkillAccountLinking`: makes a skill stage's account linking on Amazon match
//! the spec, and keeps it matching.
//!
//! observe (Secrets, then Amazon's GET with its ETag) → [`plan::plan`] (pure) → execute (the
//! plan's status records, checkpoint, PUT with If-Match, read-back of the redirect URLs). A 412
//! (someone changed it since the GET) goes round observe → plan again, at most
//! [`PRECONDITION_RETRIES`] times.

pub mod exports;
pub mod plan;

use kube::ResourceExt;

use self::plan::{Desired, Observed, Plan, Recorded, Write};
use super::conditions::{Outcome, Reason, ready_condition};
use super::credentials::{CredentialsKey, key_of, owner_credentials};
use super::digest::Digester;
use super::lifecycle::policy::{self, Change, Policy};
use super::lifecycle::{
    Checkpoint, Doing, Done, Failure, KindContext, Leftover, ManagedKind, Note, Retry, requested_at,
};
use super::secrets::{hash_tag, read_key};
use crate::alexa::{
    AccountLinkingInfo, AccountLinkingRequest, AlexaError, LwaCredentials, REQUEST_ONLY_FIELDS,
};
use crate::crd::account_linking::{
    AccountLinkingSpec, AccountLinkingType, SkillAccountLinking, SkillAccountLinkingStatus,
};
use crate::crd::common::{DeletionPolicy, ManagementPolicy};

pub use self::plan::{drift, pending_write_landed};

/// How many times a PUT refused with 412 (stale ETag) is re-read and retried in one reconcile.
pub const PRECONDITION_RETRIES: u32 = 3;

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
/// `secret_hash` is the secret's plain tag; status records this keyed
/// ([`Digester::wrap`]), since the plain form would let readers test secrets offline.
pub fn request_hash(spec: &AccountLinkingSpec, secret_hash: Option<&str>) -> String {
    hash_tag(&format!(
        "{}|{}",
        serde_json::to_string(spec).unwrap_or_default(),
        secret_hash.unwrap_or("")
    ))
}

/// Digest of the request-only fields other than the secret, as applied (`None`: the spec does
/// not set `skipOnEnablement`, which a PUT without it sets to false).
pub fn request_only_hash(skip_on_enablement: Option<bool>) -> String {
    hash_tag(&format!(
        "skipOnEnablement={}",
        skip_on_enablement.unwrap_or(false)
    ))
}

/// "field: spec X, Amazon Y" for each differing field, from both sides' JSON (the request-only
/// fields, which include the client secret, are never shown: they are not compared).
pub fn describe_differences(
    info: &AccountLinkingInfo,
    request: &AccountLinkingRequest,
    fields: &[String],
) -> String {
    let amazon = serde_json::to_value(info).unwrap_or_default();
    let spec = serde_json::to_value(request)
        .map(|v| v["accountLinkingRequest"].clone())
        .unwrap_or_default();
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "unset".to_string(),
        other => other.to_string(),
    };
    fields
        .iter()
        .map(|field| {
            let key = field.trim_start_matches("spec.accountLinking.");
            if REQUEST_ONLY_FIELDS.contains(&key) || key.ends_with("Ref") {
                return format!("{key}: not readable from Amazon");
            }
            format!(
                "{key}: spec {}, Amazon {}",
                show(&spec[key]),
                show(&amazon[key])
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The outcome of carrying out a plan: done, or Amazon refused the write because it changed
/// since it was read (412), so observe and plan again.
enum Executed {
    Done(Done),
    Conflict(AlexaError),
}

impl SkillAccountLinking {
    /// The skill owner's credentials, from credentialsSecretRef or credentialsRef.
    async fn owner_credentials(&self, ctx: &KindContext<Self>) -> Result<LwaCredentials, Failure> {
        let ns = self.namespace().unwrap_or_default();
        let user = format!("SkillAccountLinking {ns}/{}", self.name_any());
        let uid = self.uid().unwrap_or_default();
        owner_credentials(
            ctx,
            (&ns, user, &uid),
            self.spec.credentials_secret_ref.as_ref(),
            self.spec.credentials_ref.as_ref(),
        )
        .await
    }

    /// Reads the credentials and the client secret, and builds the desired request.
    async fn desired(&self, ctx: &KindContext<Self>) -> Result<(LwaCredentials, Desired), Failure> {
        let ns = self.namespace().unwrap_or_default();
        let creds = self.owner_credentials(ctx).await?;
        let spec = &self.spec.account_linking;
        let client_secret = match &spec.client_secret_ref {
            Some(r) => Some(read_key(&ctx.secrets, &ns, &r.name, &r.key).await?),
            None => None,
        };
        // The plain tag never leaves memory: status gets keyed digests (controller::digest).
        let secret_tag = client_secret.as_deref().map(hash_tag);
        let secret_hash = secret_tag.as_deref().map(|t| ctx.digester.wrap(t));
        let mut unverifiable = Vec::new();
        if secret_hash.is_some() {
            unverifiable.push("clientSecret");
        }
        if spec.skip_on_enablement.is_some() {
            unverifiable.push("skipOnEnablement");
        }
        let desired = Desired {
            request_hash: ctx
                .digester
                .wrap(&request_hash(spec, secret_tag.as_deref())),
            request: AccountLinkingRequest::from_spec(spec, client_secret.map(Into::into)),
            secret_hash,
            request_only_hash: request_only_hash(spec.skip_on_enablement),
            unverifiable,
        };
        Ok((creds, desired))
    }

    /// Reads Amazon's account linking and records what status shows of it.
    async fn observe(
        &self,
        ctx: &KindContext<Self>,
        creds: &LwaCredentials,
        status: &mut SkillAccountLinkingStatus,
    ) -> Result<Observed, Failure> {
        let current = ctx
            .alexa
            .get_account_linking(creds, &self.spec.skill_id, self.spec.stage)
            .await
            .doing("read the account linking from Amazon")?;
        ctx.metrics.synced(Self::KIND);
        if let Some(v) = &current {
            status.etag = v.etag.clone();
            status.redirect_urls = v.value.redirect_urls.clone();
        }
        Ok(Observed { current })
    }

    /// Carries out `plan`: status records for the answers that need no call, else the write.
    async fn execute(
        &self,
        ctx: &KindContext<Self>,
        creds: &LwaCredentials,
        desired: &Desired,
        (observed, plan): (&Observed, Plan),
        status: &mut SkillAccountLinkingStatus,
        checkpoint: &Checkpoint<'_, Self>,
    ) -> Result<Executed, Failure> {
        let (fields, base_etag, write, change) = match plan {
            Plan::InSync { unverifiable } => {
                return Ok(Executed::Done(self.in_sync(&unverifiable, status)));
            }
            Plan::NotConverging { fields } => {
                let info = observed
                    .current
                    .as_ref()
                    .map(|v| v.value.clone())
                    .unwrap_or_default();
                return Ok(Executed::Done(
                    self.not_converging(&info, desired, &fields, status),
                ));
            }
            Plan::EarlierWriteConfirmed => {
                status.client_secret_hash = desired.secret_hash.clone();
                status.request_only_hash = Some(desired.request_only_hash.clone());
                let note = Note::normal(
                    "Confirmed",
                    "UpdateAccountLinking",
                    format!(
                        "an update of {} sent before the operator restarted had reached Amazon; not sending it again",
                        self.location()
                    ),
                );
                return Ok(Executed::Done(self.in_sync(&[], status).with_note(note)));
            }
            Plan::ReportDrift { fields } => {
                return Ok(Executed::Done(self.report_drift(fields, status)));
            }
            Plan::RejectedUnchanged => {
                let previous = ready_condition(&status.conditions)
                    .map(|c| c.message.clone())
                    .unwrap_or_else(|| "Amazon rejected this account linking as invalid".into());
                let outcome = Outcome::stalled(Reason::InvalidSpec, previous);
                return Ok(Executed::Done(Done::new(outcome, Retry::AwaitChange)));
            }
            Plan::Create(write) => (
                vec!["spec.accountLinking".to_string()],
                None,
                write,
                Change::Created,
            ),
            Plan::Update {
                fields,
                base_etag,
                write,
                change,
            } => (fields, base_etag, write, change),
        };
        self.write(
            ctx,
            creds,
            desired,
            (fields, base_etag, write, change),
            status,
            checkpoint,
        )
        .await
    }

    /// Amazon matches: forget the records of earlier writes and drift.
    fn in_sync(&self, unverifiable: &[&str], status: &mut SkillAccountLinkingStatus) -> Done {
        clear_records(status);
        let why = if unverifiable.is_empty() {
            String::new()
        } else {
            format!(
                " (Observe mode cannot compare {}: Amazon never returns them)",
                unverifiable.join(", ")
            )
        };
        Done::ready(format!(
            "account linking of {} matches the spec{why}",
            self.location()
        ))
    }

    /// Amazon accepted writes and kept answering otherwise: stop writing, say what differs.
    /// Resyncs go on reading, and clear this when Amazon comes to agree.
    fn not_converging(
        &self,
        info: &AccountLinkingInfo,
        desired: &Desired,
        fields: &[String],
        status: &mut SkillAccountLinkingStatus,
    ) -> Done {
        status.drift = fields.to_vec();
        let message = format!(
            "Amazon accepted {} writes of the account linking of {} but still answers differently ({}); stopped writing. Check the values Amazon normalises or ignores, then change the spec, or set the alexa.operator.dev/reconcile-requested-at annotation to try once more",
            plan::MAX_UNCONVERGED_WRITES,
            self.location(),
            describe_differences(info, &desired.request, fields)
        );
        Done::new(
            Outcome::stalled(Reason::NotConverging, message),
            Retry::Resync,
        )
    }

    /// Observe mode: record and report the fields that differ.
    fn report_drift(&self, fields: Vec<String>, status: &mut SkillAccountLinkingStatus) -> Done {
        let what = format!(
            "Amazon's account linking of {} differs from the spec in {}",
            self.location(),
            fields.join(", ")
        );
        status.drift = fields;
        let (outcome, retry) = policy::observed_drift(&what, "not changing it");
        Done::new(outcome, retry)
    }

    /// The PUT: records a pending write first when it carries the client secret, then sends it
    /// (If-Match the ETag read), records the result and reads the redirect URLs back.
    async fn write(
        &self,
        ctx: &KindContext<Self>,
        creds: &LwaCredentials,
        desired: &Desired,
        (fields, base_etag, write, change): (Vec<String>, Option<String>, Write, Change),
        status: &mut SkillAccountLinkingStatus,
        checkpoint: &Checkpoint<'_, Self>,
    ) -> Result<Executed, Failure> {
        self.record_pending(write, change, &fields, status, checkpoint)
            .await?;
        let (skill, stage) = (self.spec.skill_id.as_str(), self.spec.stage);
        let sent = ctx
            .alexa
            .update_account_linking(creds, skill, stage, &desired.request, base_etag.as_deref())
            .await;
        match sent {
            Ok(new_etag) => {
                status.client_secret_hash = desired.secret_hash.clone();
                status.request_only_hash = Some(desired.request_only_hash.clone());
                PendingWrite::record(status, None);
                status.drift.clear();
                status.rejected_request_hash = None;
                if let Some(tag) = new_etag {
                    status.etag = Some(tag);
                }
                let note = Note::normal(
                    change.reason(),
                    "UpdateAccountLinking",
                    self.describe_change(change, &fields),
                );
                let done = self.read_back(ctx, creds, desired, status).await;
                Ok(Executed::Done(done.with_notes(vec![note])))
            }
            Err(err @ AlexaError::PreconditionFailed(_)) => Ok(Executed::Conflict(err)),
            Err(err) => {
                if matches!(err, AlexaError::InvalidRequest(_)) {
                    // Refused outright: nothing reached Amazon. Other failures may have (a
                    // dropped connection after Amazon applied it), so the record stays.
                    status.rejected_request_hash = Some(desired.request_hash.clone());
                    PendingWrite::record(status, None);
                }
                status.drift = fields;
                Err(err).doing("update the account linking on Amazon")
            }
        }
    }

    /// Amazon never returns the client secret, so only a record made before the PUT can tell a
    /// restarted operator that it was applied: saved now, with the in-flight condition.
    async fn record_pending(
        &self,
        write: Write,
        change: Change,
        fields: &[String],
        status: &mut SkillAccountLinkingStatus,
        checkpoint: &Checkpoint<'_, Self>,
    ) -> Result<(), Failure> {
        let Some(pending) = write.pending else {
            return Ok(());
        };
        PendingWrite::record(status, Some(pending));
        if !write.save_first {
            return Ok(());
        }
        let (reason, message) = match change {
            Change::Created => (
                Reason::Creating,
                format!(
                    "creating the account linking of {} on Amazon",
                    self.location()
                ),
            ),
            _ => (
                Reason::Updating,
                format!("updating {} on Amazon", fields.join(", ")),
            ),
        };
        if let Err(err) = checkpoint
            .save(status, &Outcome::progressing(reason, message))
            .await
        {
            PendingWrite::record(status, None);
            return Err(Failure::new(
                Outcome::progressing(
                    reason,
                    format!(
                        "could not record the update of {} in status before sending it ({err}); retrying",
                        self.location()
                    ),
                ),
                Retry::Backoff { retry_after: None },
            ));
        }
        Ok(())
    }

    fn describe_change(&self, change: Change, fields: &[String]) -> String {
        match change {
            Change::Created => format!(
                "created the account linking of {} on Amazon",
                self.location()
            ),
            Change::DriftRepaired => format!(
                "undid an out-of-band change on Amazon to {}",
                fields.join(", ")
            ),
            Change::Updated => format!("updated {} on Amazon", fields.join(", ")),
        }
    }

    /// Reads the account linking back after a write: Amazon fills in the redirect URLs users
    /// must allow, and a write it accepted but did not apply shows up here.
    async fn read_back(
        &self,
        ctx: &KindContext<Self>,
        creds: &LwaCredentials,
        desired: &Desired,
        status: &mut SkillAccountLinkingStatus,
    ) -> Done {
        let updating = |message: String| {
            Done::new(
                Outcome::progressing(Reason::Updating, message),
                Retry::Backoff { retry_after: None },
            )
        };
        match ctx
            .alexa
            .get_account_linking(creds, &self.spec.skill_id, self.spec.stage)
            .await
        {
            Ok(Some(v)) => {
                status.etag = v.etag.clone();
                status.redirect_urls = v.value.redirect_urls.clone();
                let remaining = drift(&v.value, &desired.request);
                if remaining.is_empty() {
                    clear_unconverged(status);
                    return Done::ready(format!(
                        "account linking of {} matches the spec",
                        self.location()
                    ));
                }
                let writes = count_unconverged(status, &desired.request_hash);
                if writes >= plan::MAX_UNCONVERGED_WRITES {
                    return self.not_converging(&v.value, desired, &remaining, status);
                }
                status.drift = remaining.clone();
                updating(format!(
                    "Amazon accepted the update of {} but still differs in {} (write {writes} of at most {})",
                    self.location(),
                    remaining.join(", "),
                    plan::MAX_UNCONVERGED_WRITES
                ))
            }
            Ok(None) | Err(_) => updating(format!(
                "updated the account linking of {}; reading it back failed, retrying",
                self.location()
            )),
        }
    }
}

/// Replaces legacy plain digests in status with the keyed digests of the same values, so an
/// object recorded by an earlier version stays in sync and nothing is resent to Amazon.
fn upgrade_records(digester: &Digester, status: &mut SkillAccountLinkingStatus) {
    for record in [
        &mut status.client_secret_hash,
        &mut status.pending_request_hash,
        &mut status.rejected_request_hash,
        &mut status.unconverged_request_hash,
    ] {
        digester.upgrade(record);
    }
}

/// Forgets the pending write, the drift report, the rejected request and writes that did not
/// take: Amazon matches.
fn clear_records(status: &mut SkillAccountLinkingStatus) {
    PendingWrite::record(status, None);
    status.drift.clear();
    status.rejected_request_hash = None;
    clear_unconverged(status);
}

fn clear_unconverged(status: &mut SkillAccountLinkingStatus) {
    status.unconverged_request_hash = None;
    status.unconverged_writes = None;
}

/// Counts one more accepted write of `request_hash` whose read-back differed (a different
/// request starts again at one) and returns the count.
fn count_unconverged(status: &mut SkillAccountLinkingStatus, request_hash: &str) -> u32 {
    let writes = unconverged_writes(status, request_hash).saturating_add(1);
    status.unconverged_request_hash = Some(request_hash.to_owned());
    status.unconverged_writes = Some(writes);
    writes
}

/// The writes of the desired request that Amazon accepted without agreeing (0 for another request).
fn unconverged_writes(status: &SkillAccountLinkingStatus, request_hash: &str) -> u32 {
    match status.unconverged_request_hash.as_deref() {
        Some(hash) if hash == request_hash => status.unconverged_writes.unwrap_or(0),
        _ => 0,
    }
}

impl SkillAccountLinking {
    /// Whether the reconcile-requested-at annotation holds a value not acted on yet (one more
    /// attempt after NotConverging).
    fn retry_requested(&self, status: &SkillAccountLinkingStatus) -> bool {
        let requested = requested_at(self);
        requested.is_some() && requested.as_deref() != status.last_handled_reconcile_at.as_deref()
    }
}

impl ManagedKind for SkillAccountLinking {
    type Status = SkillAccountLinkingStatus;
    type State = ();
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
        let mut names: Vec<String> = self
            .spec
            .credentials_secret_ref
            .iter()
            .map(|r| r.name.clone())
            .collect();
        if let Some(r) = &self.spec.account_linking.client_secret_ref {
            names.push(r.name.clone());
        }
        names
    }

    fn credentials_key(&self) -> Option<CredentialsKey> {
        key_of(
            &self.namespace().unwrap_or_default(),
            self.spec.credentials_secret_ref.as_ref(),
            self.spec.credentials_ref.as_ref(),
        )
    }

    fn validate(&self) -> Result<(), String> {
        validate_spec(&self.spec.account_linking, &self.spec.skill_id)?;
        match &self.spec.exports {
            Some(e) => exports::validate_name(&e.config_map_name),
            None => Ok(()),
        }
    }

    fn location(&self) -> String {
        format!("skill {} stage {}", self.spec.skill_id, self.spec.stage)
    }

    fn left_on_amazon(&self) -> Leftover {
        Leftover {
            what: format!("the account linking of {}", self.location()),
            remove_with: format!(
                "`ask smapi delete-account-linking-info --skill-id {} --stage {}`",
                self.spec.skill_id, self.spec.stage
            ),
        }
    }

    async fn apply(
        &self,
        ctx: &KindContext<Self>,
        status: &mut Self::Status,
        checkpoint: &Checkpoint<'_, Self>,
    ) -> Result<Done, Failure> {
        upgrade_records(&ctx.digester, status);
        let (creds, desired) = self.desired(ctx).await?;
        let policy = Policy::of(self.spec.management_policy);
        let mut conflicts = 0;
        loop {
            let observed = self.observe(ctx, &creds, status).await?;
            let recorded = Recorded {
                client_secret_hash: status.client_secret_hash.clone(),
                pending: PendingWrite::of(status),
                rejected_request_hash: status.rejected_request_hash.clone(),
                request_only_hash: status
                    .request_only_hash
                    .clone()
                    .unwrap_or_else(|| request_only_hash(None)),
                unconverged_writes: unconverged_writes(status, &desired.request_hash),
                retry_requested: self.retry_requested(status),
                was_ready: policy::was_ready(
                    &status.conditions,
                    status.observed_generation,
                    self.metadata.generation,
                ),
            };
            let plan = plan::plan(&observed, &desired, &recorded, policy);
            match self
                .execute(ctx, &creds, &desired, (&observed, plan), status, checkpoint)
                .await?
            {
                Executed::Done(done) => {
                    let export = exports::sync(&ctx.kube, self, &status.redirect_urls).await;
                    return Ok(exports::combine(done, export.map_err(Failure::from)));
                }
                Executed::Conflict(_) if conflicts < PRECONDITION_RETRIES => conflicts += 1,
                Executed::Conflict(err) => {
                    return Err(err).doing("update the account linking on Amazon");
                }
            }
        }
    }

    async fn cleanup(
        &self,
        ctx: &KindContext<Self>,
        _status: &Self::Status,
    ) -> Result<Vec<Note>, Failure> {
        let creds = self.owner_credentials(ctx).await?;
        match ctx
            .alexa
            .delete_account_linking(&creds, &self.spec.skill_id, self.spec.stage)
            .await
        {
            Ok(()) | Err(AlexaError::NotFound(_)) => Ok(vec![Note::normal(
                "Deleted",
                "DeleteAccountLinking",
                format!(
                    "deleted the account linking of {} on Amazon",
                    self.location()
                ),
            )]),
            Err(e) => Err(e).doing("delete the account linking on Amazon"),
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
}
