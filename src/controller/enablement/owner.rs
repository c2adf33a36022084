//! Owner mode: the skill stage enabled for the skill owner's developer account (SMAPI).
//! observe (the conflict cache, then Amazon) → [`plan_owner`] → execute.

use kube::ResourceExt;

use super::plan::{OwnerObserved, OwnerPlan, plan_owner};
use super::{CONFLICT_RECHECK, conflicts_with, is_older};
use crate::alexa::LwaCredentials;
use crate::controller::conditions::{Outcome, Reason};
use crate::controller::credentials::owner_credentials;
use crate::controller::lifecycle::policy::{self, DRIFT_REPAIRED, Policy};
use crate::controller::lifecycle::{Doing, Done, Failure, KindContext, ManagedKind, Note, Retry};
use crate::crd::enablement::{SkillEnablement, SkillEnablementStatus};

impl SkillEnablement {
    /// The skill owner's credentials, from credentialsSecretRef or credentialsRef.
    async fn owner_credentials(&self, ctx: &KindContext<Self>) -> Result<LwaCredentials, Failure> {
        let ns = self.namespace().unwrap_or_default();
        let user = format!("SkillEnablement {ns}/{}", self.name_any());
        let uid = self.uid().unwrap_or_default();
        owner_credentials(
            ctx,
            (&ns, user, &uid),
            self.spec.credentials_secret_ref.as_ref(),
            self.spec.credentials_ref.as_ref(),
        )
        .await
    }

    /// The older owner-mode object this one conflicts with, from the controllers' caches.
    pub(super) fn conflicting_owner(&self, ctx: &KindContext<Self>) -> Option<String> {
        ctx.state
            .all()
            .into_iter()
            .filter(|other| conflicts_with(self, other) && is_older(other, self))
            .map(|other| match other.namespace() {
                // Shared credentials reach across namespaces: name the other one's.
                Some(ns) if other.namespace() != self.namespace() => {
                    format!("{ns}/{}", other.name_any())
                }
                _ => other.name_any(),
            })
            .next()
    }

    /// Owner mode's apply.
    pub(super) async fn apply_owner(
        &self,
        ctx: &KindContext<Self>,
        status: &mut SkillEnablementStatus,
    ) -> Result<Done, Failure> {
        let (observed, creds) = match self.conflicting_owner(ctx) {
            Some(other) => (OwnerObserved::Conflict { other }, None),
            None => {
                let creds = self.owner_credentials(ctx).await?;
                (self.observe_owner(ctx, &creds, status).await?, Some(creds))
            }
        };
        let was_ready = policy::was_ready(
            &status.conditions,
            status.observed_generation,
            self.metadata.generation,
        );
        let plan = plan_owner(
            &observed,
            was_ready,
            Policy::of(self.spec.management_policy),
        );
        self.execute_owner(ctx, creds, plan, status).await
    }

    async fn observe_owner(
        &self,
        ctx: &KindContext<Self>,
        creds: &LwaCredentials,
        status: &mut SkillEnablementStatus,
    ) -> Result<OwnerObserved, Failure> {
        let enabled = ctx
            .alexa
            .stage_enabled(creds, &self.spec.skill_id, self.spec.stage)
            .await
            .doing("read the stage enablement from Amazon")?;
        ctx.metrics.synced(Self::KIND);
        status.enabled = Some(enabled);
        Ok(OwnerObserved::Stage { enabled })
    }

    async fn execute_owner(
        &self,
        ctx: &KindContext<Self>,
        creds: Option<LwaCredentials>,
        plan: OwnerPlan,
        status: &mut SkillEnablementStatus,
    ) -> Result<Done, Failure> {
        let enabled = || format!("{} is enabled for the skill owner", self.location());
        match plan {
            OwnerPlan::StageConflict { other } => {
                let message = format!(
                    "SkillEnablement {other} enables stage {} of skill {} with the same credentials; Amazon enables one stage per account, so this object waits until that one is deleted or changed",
                    if self.spec.stage.as_str() == "live" {
                        "development"
                    } else {
                        "live"
                    },
                    self.spec.skill_id
                );
                Ok(Done::new(
                    Outcome::stalled(Reason::StageConflict, message),
                    Retry::After(CONFLICT_RECHECK),
                ))
            }
            OwnerPlan::InSync => {
                status.drift.clear();
                Ok(Done::ready(enabled()))
            }
            OwnerPlan::ReportDrift => {
                status.drift = vec!["spec.stage".to_string()];
                let (outcome, retry) = policy::observed_drift(
                    &format!("{} is not enabled", self.location()),
                    "not enabling it",
                );
                Ok(Done::new(outcome, retry))
            }
            OwnerPlan::Enable { repair } => {
                // Read during observe; only a plan that never observed would read them here.
                let creds = match creds {
                    Some(creds) => creds,
                    None => self.owner_credentials(ctx).await?,
                };
                ctx.alexa
                    .enable_stage(&creds, &self.spec.skill_id, self.spec.stage)
                    .await
                    .doing("enable the stage on Amazon")?;
                status.enabled = Some(true);
                status.drift.clear();
                let note = if repair {
                    Note::normal(
                        DRIFT_REPAIRED,
                        "EnableStage",
                        format!(
                            "re-enabled {} after it was disabled outside the operator",
                            self.location()
                        ),
                    )
                } else {
                    Note::normal(
                        "Enabled",
                        "EnableStage",
                        format!("enabled {} for the skill owner", self.location()),
                    )
                };
                Ok(Done::ready(enabled()).with_note(note))
            }
        }
    }

    /// Owner mode's cleanup: disable the stage, unless another object owns the enablement.
    pub(super) async fn cleanup_owner(
        &self,
        ctx: &KindContext<Self>,
    ) -> Result<Vec<Note>, Failure> {
        if self.conflicting_owner(ctx).is_some() {
            // This object never enabled anything; disabling would turn off the other stage's owner.
            return Ok(Vec::new());
        }
        let creds = self.owner_credentials(ctx).await?;
        match ctx
            .alexa
            .disable_stage(&creds, &self.spec.skill_id, self.spec.stage)
            .await
        {
            Ok(()) | Err(crate::alexa::AlexaError::NotFound(_)) => Ok(vec![Note::normal(
                "Disabled",
                "DisableStage",
                format!("disabled {} for the skill owner", self.location()),
            )]),
            Err(e) => Err(e).doing("disable the stage on Amazon"),
        }
    }
}
