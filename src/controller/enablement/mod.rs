//! Reconciler of `SkillEnablement`, in two modes, each observe → plan → execute:
//! - owner ([`owner`]): the skill stage enabled for the skill owner's developer account (SMAPI);
//! - customer ([`customer`]): the skill enabled for a customer with their accounts linked
//!   (app-to-app account linking), through the customer's regional Alexa API endpoint.
//!
//! The planners are pure functions in [`plan`].

pub mod customer;
pub mod owner;
pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use parking_lot::RwLock;

use super::credentials::{CredentialsKey, key_of};
use super::lifecycle::{Checkpoint, Done, Failure, KindContext, Leftover, ManagedKind, Note};
use crate::crd::common::{DeletionPolicy, ManagementPolicy};
use crate::crd::enablement::{
    EnablementMode, SkillEnablement, SkillEnablementSpec, SkillEnablementStatus,
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
    let modes = [
        spec.credentials_secret_ref.is_some(),
        spec.credentials_ref.is_some(),
        spec.customer.is_some(),
    ];
    if modes.iter().filter(|set| **set).count() == 1 {
        Ok(())
    } else {
        Err("invalid spec: set exactly one of spec.credentialsSecretRef or spec.credentialsRef (skill owner mode) or spec.customer (customer mode)".to_string())
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

/// Whether `other` enables a different stage of the same skill with the same credentials (the
/// same Secret reference, or the same credentials object, in whatever namespace), so that
/// Amazon would flip between the two.
pub fn conflicts_with(this: &SkillEnablement, other: &SkillEnablement) -> bool {
    let (Some(mine), Some(theirs)) = (owner_key(this), owner_key(other)) else {
        return false;
    };
    this.uid() != other.uid()
        && mine == theirs
        && this.spec.skill_id == other.spec.skill_id
        && this.spec.stage != other.spec.stage
        && other.metadata.deletion_timestamp.is_none()
}

/// The owner-mode credentials of `obj` (`None` in customer mode).
fn owner_key(obj: &SkillEnablement) -> Option<CredentialsKey> {
    key_of(
        &obj.namespace().unwrap_or_default(),
        obj.spec.credentials_secret_ref.as_ref(),
        obj.spec.credentials_ref.as_ref(),
    )
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

/// The SkillEnablement controllers' caches (one per watched scope), for stage-conflict
/// detection without API calls. Kind state: only SkillEnablement needs it.
#[derive(Default)]
pub struct StageConflicts {
    stores: RwLock<Vec<Store<SkillEnablement>>>,
}

impl StageConflicts {
    /// Makes the caches of the running controllers visible (replacing an earlier term's).
    pub fn set(&self, stores: Vec<Store<SkillEnablement>>) {
        *self.stores.write() = stores;
    }

    /// Every cached SkillEnablement.
    pub fn all(&self) -> Vec<Arc<SkillEnablement>> {
        self.stores.read().iter().flat_map(|s| s.state()).collect()
    }
}

impl ManagedKind for SkillEnablement {
    type Status = SkillEnablementStatus;
    type State = StageConflicts;
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

    fn credentials_key(&self) -> Option<CredentialsKey> {
        owner_key(self)
    }

    fn validate(&self) -> Result<(), String> {
        validate_spec(&self.spec)
    }

    fn location(&self) -> String {
        format!("skill {} stage {}", self.spec.skill_id, self.spec.stage)
    }

    fn left_on_amazon(&self) -> Leftover {
        if self.spec.customer.is_none() {
            return Leftover {
                what: format!("the skill owner's enablement of {}", self.location()),
                remove_with: format!(
                    "`ask smapi delete-skill-enablement --skill-id {} --stage {}`",
                    self.spec.skill_id, self.spec.stage
                ),
            };
        }
        Leftover {
            what: format!(
                "the customer's enablement and account link of {}",
                self.location()
            ),
            remove_with: "the Alexa app (the customer disables the skill there)".into(),
        }
    }

    fn describe(&self, status: &mut Self::Status) {
        status.mode = Some(mode(&self.spec));
    }

    // Owner mode's effects can be read back from Amazon, so it needs no checkpoint. Customer
    // mode saves the code as Pending before sending it: a crash after sending must not resend it.
    async fn apply(
        &self,
        ctx: &KindContext<Self>,
        status: &mut Self::Status,
        checkpoint: &Checkpoint<'_, Self>,
    ) -> Result<Done, Failure> {
        match &self.spec.customer {
            None => self.apply_owner(ctx, status).await,
            Some(customer) => self.apply_customer(ctx, customer, status, checkpoint).await,
        }
    }

    async fn cleanup(
        &self,
        ctx: &KindContext<Self>,
        status: &Self::Status,
    ) -> Result<Vec<Note>, Failure> {
        match &self.spec.customer {
            None => self.cleanup_owner(ctx).await,
            Some(customer) => self.cleanup_customer(ctx, customer, status).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
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
