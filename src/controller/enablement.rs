//! Reconciler of `SkillEnablement`, in two modes:
//! - owner: the skill stage enabled for the skill owner's developer account (SMAPI);
//! - customer: the skill enabled for a customer with their accounts linked (app-to-app account
//!   linking), through the customer's regional Alexa API endpoint.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::conditions::{Outcome, Reason, ready_condition};
use super::context::Context;
use super::lifecycle::{Checkpoint, ManagedKind, Note, Retry, Step};
use super::outcomes::{for_alexa_error, for_secret_error};
use super::secrets::{hash_tag, read_credentials, read_key};
use crate::alexa::{
    AlexaError, CustomerEnableRequest, CustomerEnablementStatus, CustomerLinkRequest,
    LwaCredentials,
};
use crate::crd::common::{DeletionPolicy, ManagementPolicy};
use crate::crd::enablement::{
    CustomerEnablement, EnablementMode, SkillEnablement, SkillEnablementSpec, SkillEnablementStatus,
};

/// How often an object in StageConflict checks whether the conflict is gone. Cheap (the
/// controller's cache only; no calls to Amazon or the API server), so short: the newer object
/// takes over within seconds of the older one going away.
const CONFLICT_RECHECK: Duration = Duration::from_secs(5);

crate::impl_common_status!(SkillEnablementStatus);

/// Defence in depth: exactly one mode, sane skill ID.
pub fn validate_spec(spec: &SkillEnablementSpec) -> Result<(), String> {
    if spec.skill_id.is_empty() || spec.skill_id.len() > 255 {
        return Err("invalid spec: spec.skillId must be 1 to 255 characters".to_string());
    }
    match (&spec.credentials_secret_ref, &spec.customer) {
        (Some(_), None) | (None, Some(_)) => Ok(()),
        _ => Err("invalid spec: set exactly one of spec.credentialsSecretRef (skill owner mode) or spec.customer (customer mode)".to_string()),
    }
}

/// The mode a spec selects.
pub fn mode(spec: &SkillEnablementSpec) -> EnablementMode {
    if spec.customer.is_some() {
        EnablementMode::Customer
    } else {
        EnablementMode::Owner
    }
}

/// Whether `other` enables a different stage of the same skill with the same credentials, so
/// that Amazon would flip between the two.
pub fn conflicts_with(this: &SkillEnablement, other: &SkillEnablement) -> bool {
    let (Some(mine), Some(theirs)) = (
        &this.spec.credentials_secret_ref,
        &other.spec.credentials_secret_ref,
    ) else {
        return false;
    };
    this.uid() != other.uid()
        && this.namespace() == other.namespace()
        && mine.name == theirs.name
        && this.spec.skill_id == other.spec.skill_id
        && this.spec.stage != other.spec.stage
        && other.metadata.deletion_timestamp.is_none()
}

/// Whether `other` was there first (older creation time; name breaks ties), so `this` yields.
pub fn is_older(other: &SkillEnablement, this: &SkillEnablement) -> bool {
    let key = |o: &SkillEnablement| {
        (
            o.metadata.creation_timestamp.as_ref().map(|t| t.0),
            o.name_any(),
        )
    };
    key(other) < key(this)
}

fn location(obj: &SkillEnablement) -> String {
    format!("skill {} stage {}", obj.spec.skill_id, obj.spec.stage)
}

fn fail(
    status: SkillEnablementStatus,
    err: &AlexaError,
    what: &str,
) -> Step<SkillEnablementStatus> {
    let (outcome, retry) = for_alexa_error(err, what);
    Step::new(status, outcome, retry)
}

fn is_linked(s: &CustomerEnablementStatus) -> bool {
    s.is_enabled() && s.is_linked()
}

fn record_customer(
    status: &mut SkillEnablementStatus,
    endpoint: String,
    s: &CustomerEnablementStatus,
) {
    status.endpoint = Some(endpoint);
    status.user_id = s.user_id.clone();
    status.account_link_status = s.account_link_status.clone();
    status.enablement_status = s.status.clone();
    status.enabled = Some(s.is_enabled());
}

impl SkillEnablement {
    async fn read_creds(
        &self,
        ctx: &Context,
        secret: &str,
    ) -> Result<LwaCredentials, (Outcome, Retry)> {
        let ns = self.namespace().unwrap_or_default();
        read_credentials(&ctx.kube, &ns, secret)
            .await
            .map_err(|e| for_secret_error(&e))
    }

    /// The older owner-mode object this one conflicts with, from the controller's cache.
    fn conflicting_owner(&self, ctx: &Context) -> Option<String> {
        ctx.enablements()
            .into_iter()
            .filter(|other| conflicts_with(self, other) && is_older(other, self))
            .map(|other| other.name_any())
            .next()
    }

    async fn apply_owner(
        &self,
        ctx: &Context,
        secret: &str,
        mut status: SkillEnablementStatus,
    ) -> Step<SkillEnablementStatus> {
        if let Some(other) = self.conflicting_owner(ctx) {
            let message = format!(
                "SkillEnablement {other} enables stage {} of skill {} with the same credentials; Amazon enables one stage per account, so this object waits until that one is deleted or changed",
                if self.spec.stage.as_str() == "live" {
                    "development"
                } else {
                    "live"
                },
                self.spec.skill_id
            );
            return Step::new(
                status,
                Outcome::stalled(Reason::StageConflict, message),
                Retry::After(CONFLICT_RECHECK),
            );
        }
        let creds = match self.read_creds(ctx, secret).await {
            Ok(c) => c,
            Err((o, r)) => return Step::new(status, o, r),
        };
        let (skill, stage) = (self.spec.skill_id.as_str(), self.spec.stage);
        let enabled = match ctx.alexa.stage_enabled(&creds, skill, stage).await {
            Ok(e) => e,
            Err(e) => return fail(status, &e, "read the stage enablement from Amazon"),
        };
        status.last_sync_time = Some(Time(Timestamp::now()));
        status.enabled = Some(enabled);
        if enabled {
            status.drift.clear();
            return Step::new(
                status,
                Outcome::ready(format!("{} is enabled for the skill owner", location(self))),
                Retry::Resync,
            );
        }
        if self.spec.management_policy == ManagementPolicy::Observe {
            status.drift = vec!["spec.stage".to_string()];
            let message = format!(
                "Observe mode: {} is not enabled; not enabling it",
                location(self)
            );
            return Step::new(
                status,
                Outcome::idle(Reason::DriftDetected, message),
                Retry::Resync,
            );
        }
        let was_ready = ready_condition(&status.conditions).is_some_and(|c| c.status == "True")
            && status.observed_generation == self.metadata.generation;
        if let Err(e) = ctx.alexa.enable_stage(&creds, skill, stage).await {
            return fail(status, &e, "enable the stage on Amazon");
        }
        status.enabled = Some(true);
        status.drift.clear();
        let note = if was_ready {
            ctx.metrics
                .drift_repairs
                .get_or_create(&crate::metrics::KindLabels {
                    kind: Self::KIND.to_string(),
                })
                .inc();
            Note::normal(
                "DriftRepaired",
                "EnableStage",
                format!(
                    "re-enabled {} after it was disabled outside the operator",
                    location(self)
                ),
            )
        } else {
            Note::normal(
                "Enabled",
                "EnableStage",
                format!("enabled {} for the skill owner", location(self)),
            )
        };
        let mut step = Step::new(
            status,
            Outcome::ready(format!("{} is enabled for the skill owner", location(self))),
            Retry::Resync,
        );
        step.notes.push(note);
        step
    }

    async fn apply_customer(
        &self,
        ctx: &Context,
        customer: &CustomerEnablement,
        mut status: SkillEnablementStatus,
    ) -> Step<SkillEnablementStatus> {
        let creds = match self.read_creds(ctx, &customer.token_secret_ref.name).await {
            Ok(c) => c,
            Err((o, r)) => return Step::new(status, o, r),
        };
        let skill = self.spec.skill_id.as_str();
        let hint = status.endpoint.clone();
        let current = match ctx
            .alexa
            .customer_status(&creds, hint.as_deref(), skill)
            .await
        {
            Ok((endpoint, current)) => {
                status.endpoint = Some(endpoint);
                current
            }
            Err(e) => {
                status.endpoint = None; // re-discover next time
                return fail(
                    status,
                    &e,
                    "read the customer's skill enablement from Amazon",
                );
            }
        };
        status.last_sync_time = Some(Time(Timestamp::now()));
        if let Some(s) = &current {
            let endpoint = status.endpoint.clone().unwrap_or_default();
            record_customer(&mut status, endpoint, s);
            if is_linked(s) {
                status.drift.clear();
                let message = format!(
                    "{} is enabled for the customer and the accounts are linked",
                    location(self)
                );
                return Step::new(status, Outcome::ready(message), Retry::Resync);
            }
        } else {
            status.enabled = Some(false);
            status.account_link_status = None;
            status.enablement_status = None;
        }
        if self.spec.management_policy == ManagementPolicy::Observe {
            status.drift = vec!["spec.customer".to_string()];
            let message = format!(
                "Observe mode: {} is not enabled and linked for the customer; not changing it",
                location(self)
            );
            return Step::new(
                status,
                Outcome::idle(Reason::DriftDetected, message),
                Retry::Resync,
            );
        }

        let ns = self.namespace().unwrap_or_default();
        let link = &customer.account_link_request;
        let code = match read_key(
            &ctx.kube,
            &ns,
            &link.auth_code_secret_ref.name,
            &link.auth_code_secret_ref.key,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                let (o, r) = for_secret_error(&e);
                return Step::new(status, o, r);
            }
        };
        let code_hash = hash_tag(&code);
        if status.auth_code_hash.as_deref() == Some(code_hash.as_str()) {
            let message = format!(
                "the authorization code in Secret {}/{} key {:?} was already sent to Amazon and codes are single-use; put a new code in that Secret to link again",
                ns, link.auth_code_secret_ref.name, link.auth_code_secret_ref.key
            );
            let reason = ready_condition(&status.conditions)
                .filter(|c| c.reason == Reason::AuthCodeInvalid.as_str())
                .map(|c| c.message.clone())
                .unwrap_or(message);
            return Step::new(
                status,
                Outcome::stalled(Reason::AuthCodeInvalid, reason),
                Retry::AwaitChange,
            );
        }
        let verifier = match &link.code_verifier_secret_ref {
            None => None,
            Some(r) => match read_key(&ctx.kube, &ns, &r.name, &r.key).await {
                Ok(v) => Some(v),
                Err(e) => {
                    let (o, r) = for_secret_error(&e);
                    return Step::new(status, o, r);
                }
            },
        };
        let request = CustomerEnableRequest {
            stage: self.spec.stage,
            account_link_request: CustomerLinkRequest {
                type_: link.type_,
                redirect_uri: link.redirect_uri.clone(),
                auth_code: code.into(),
                code_verifier: verifier.map(Into::into),
            },
        };
        match ctx
            .alexa
            .customer_enable(&creds, status.endpoint.clone().as_deref(), skill, &request)
            .await
        {
            Ok((endpoint, s)) => {
                status.auth_code_hash = Some(code_hash);
                record_customer(&mut status, endpoint, &s);
                status.drift.clear();
                let mut step = if is_linked(&s) {
                    Step::new(
                        status,
                        Outcome::ready(format!(
                            "{} is enabled for the customer and the accounts are linked",
                            location(self)
                        )),
                        Retry::Resync,
                    )
                } else {
                    let message = format!(
                        "Amazon accepted the enablement of {} but reports status {} and account link {}",
                        location(self),
                        s.status.as_deref().unwrap_or("unknown"),
                        s.account_link_status.as_deref().unwrap_or("unknown")
                    );
                    Step::new(
                        status,
                        Outcome::progressing(Reason::Creating, message),
                        Retry::Backoff { retry_after: None },
                    )
                };
                step.notes.push(Note::normal(
                    "Linked",
                    "EnableSkillForCustomer",
                    format!(
                        "enabled {} for the customer and linked the accounts",
                        location(self)
                    ),
                ));
                step
            }
            Err(e @ AlexaError::InvalidRequest { .. }) => {
                // Amazon consumed or refused the code: never send it again.
                status.auth_code_hash = Some(code_hash);
                let message = format!(
                    "Amazon rejected the authorization code from Secret {}/{} key {:?}: {e}; put a new code in that Secret",
                    ns, link.auth_code_secret_ref.name, link.auth_code_secret_ref.key
                );
                Step::new(
                    status,
                    Outcome::stalled(Reason::AuthCodeInvalid, message),
                    Retry::AwaitChange,
                )
            }
            Err(e) => {
                if !e.is_retryable() {
                    status.auth_code_hash = Some(code_hash);
                }
                status.endpoint = None;
                fail(status, &e, "enable the skill for the customer")
            }
        }
    }
}

impl ManagedKind for SkillEnablement {
    type Status = SkillEnablementStatus;
    const KIND: &'static str = "SkillEnablement";

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
        let mut names = Vec::new();
        if let Some(r) = &self.spec.credentials_secret_ref {
            names.push(r.name.clone());
        }
        if let Some(c) = &self.spec.customer {
            names.push(c.token_secret_ref.name.clone());
            names.push(c.account_link_request.auth_code_secret_ref.name.clone());
            if let Some(v) = &c.account_link_request.code_verifier_secret_ref {
                names.push(v.name.clone());
            }
        }
        names
    }

    fn validate(&self) -> Result<(), String> {
        validate_spec(&self.spec)
    }

    fn describe(&self, status: &mut Self::Status) {
        status.mode = Some(mode(&self.spec));
    }

    // Every effect of an enablement call can be read back from Amazon (GET enablement or
    // status), so a crash after a call never makes the operator resend it: no checkpoint.
    async fn apply(
        &self,
        ctx: &Context,
        status: Self::Status,
        _checkpoint: &Checkpoint<'_, Self>,
    ) -> Step<Self::Status> {
        match (&self.spec.credentials_secret_ref, &self.spec.customer) {
            (Some(secret), _) => self.apply_owner(ctx, &secret.name, status).await,
            (None, Some(customer)) => self.apply_customer(ctx, customer, status).await,
            (None, None) => Step::new(
                status,
                Outcome::stalled(Reason::InvalidSpec, "no mode selected"),
                Retry::AwaitChange,
            ),
        }
    }

    async fn cleanup(
        &self,
        ctx: &Context,
        status: Self::Status,
    ) -> Result<Vec<Note>, Step<Self::Status>> {
        let hint =
            "; to delete the object without touching Amazon, set spec.deletionPolicy: Orphan";
        let with_hint = |(mut o, r): (Outcome, Retry)| {
            o.message.push_str(hint);
            Step::new(status.clone(), o, r)
        };
        if let Some(secret) = &self.spec.credentials_secret_ref {
            if self.conflicting_owner(ctx).is_some() {
                // This object never enabled anything; disabling would turn off the other stage's owner.
                return Ok(Vec::new());
            }
            let creds = self
                .read_creds(ctx, &secret.name)
                .await
                .map_err(with_hint)?;
            return match ctx
                .alexa
                .disable_stage(&creds, &self.spec.skill_id, self.spec.stage)
                .await
            {
                Ok(()) | Err(AlexaError::NotFound { .. }) => Ok(vec![Note::normal(
                    "Disabled",
                    "DisableStage",
                    format!("disabled {} for the skill owner", location(self)),
                )]),
                Err(e) => Err(with_hint(for_alexa_error(
                    &e,
                    "disable the stage on Amazon",
                ))),
            };
        }
        if let Some(customer) = &self.spec.customer {
            let creds = self
                .read_creds(ctx, &customer.token_secret_ref.name)
                .await
                .map_err(with_hint)?;
            return match ctx
                .alexa
                .customer_disable(&creds, status.endpoint.as_deref(), &self.spec.skill_id)
                .await
            {
                Ok(_) | Err(AlexaError::NotFound { .. }) => Ok(vec![Note::normal(
                    "Unlinked",
                    "DisableSkillForCustomer",
                    format!(
                        "disabled {} for the customer and unlinked the accounts",
                        location(self)
                    ),
                )]),
                Err(e) => Err(with_hint(for_alexa_error(
                    &e,
                    "disable the skill for the customer",
                ))),
            };
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn owner(name: &str, uid: &str, stage: &str, created: i64) -> SkillEnablement {
        let mut obj: SkillEnablement = serde_json::from_value(serde_json::json!({
            "apiVersion": "alexa.operator.dev/v1alpha1",
            "kind": "SkillEnablement",
            "metadata": {"name": name, "namespace": "skills", "uid": uid},
            "spec": {"skillId": "amzn1.ask.skill.x", "stage": stage, "credentialsSecretRef": {"name": "lwa"}}
        }))
        .unwrap();
        obj.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        obj
    }

    #[test]
    fn different_stages_with_the_same_credentials_conflict_and_the_older_wins() {
        let older = owner("a", "1", "development", 10);
        let newer = owner("b", "2", "live", 20);
        assert!(conflicts_with(&newer, &older) && conflicts_with(&older, &newer));
        assert!(is_older(&older, &newer) && !is_older(&newer, &older));
        let same_stage = owner("c", "3", "development", 30);
        assert!(
            !conflicts_with(&same_stage, &older),
            "same stage twice is harmless"
        );
        let mut other_creds = owner("d", "4", "live", 40);
        other_creds.spec.credentials_secret_ref = Some(crate::crd::common::SecretRef {
            name: "other".into(),
        });
        assert!(!conflicts_with(&other_creds, &older));
        let mut deleting = owner("e", "5", "live", 5);
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(50).unwrap()));
        assert!(
            !conflicts_with(&older, &deleting),
            "an object being deleted no longer counts"
        );
    }

    #[test]
    fn exactly_one_mode_is_valid() {
        let mut spec = owner("a", "1", "live", 1).spec;
        assert!(validate_spec(&spec).is_ok());
        spec.credentials_secret_ref = None;
        assert!(validate_spec(&spec).unwrap_err().contains("exactly one"));
    }
}
