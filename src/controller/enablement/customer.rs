//! Customer mode: the skill enabled for a customer with their accounts linked (app-to-app
//! account linking), through the customer's regional Alexa API endpoint.
//! observe (Amazon's enablement for the customer) → [`plan_customer`] → execute; linking reads
//! the single-use authorization code and asks [`plan_link`] whether it may be sent.

use kube::ResourceExt;

use super::plan::{CustomerPlan, LinkPlan, is_linked, other_stage, plan_customer, plan_link};
use crate::alexa::{
    AlexaError, CustomerEnableRequest, CustomerEnablementStatus, CustomerLinkRequest,
    LwaCredentials,
};
use crate::controller::conditions::{Outcome, Reason, ready_condition};
use crate::controller::lifecycle::policy::{self, Policy};
use crate::controller::lifecycle::{Doing, Done, Failure, KindContext, ManagedKind, Note, Retry};
use crate::controller::secrets::{read_credentials, read_key};
use crate::crd::enablement::{CustomerEnablement, SkillEnablement, SkillEnablementStatus};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Records Amazon's view of the customer's enablement in status.
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
    /// Customer mode's apply.
    pub(super) async fn apply_customer(
        &self,
        ctx: &KindContext<Self>,
        customer: &CustomerEnablement,
        status: &mut SkillEnablementStatus,
    ) -> Result<Done, Failure> {
        let ns = self.namespace().unwrap_or_default();
        ctx.digester.upgrade(&mut status.auth_code_hash);
        let creds = read_credentials(&ctx.kube, &ns, &customer.token_secret_ref.name).await?;
        let observed = self.observe_customer(ctx, &creds, status).await?;
        let policy = Policy::of(self.spec.management_policy);
        match plan_customer(observed.as_ref(), self.spec.stage.as_str(), policy) {
            CustomerPlan::InSync => {
                status.drift.clear();
                Ok(Done::ready(self.linked_message()))
            }
            CustomerPlan::ReportDrift { wrong_stage } => {
                status.drift = vec![match wrong_stage {
                    Some(_) => "spec.stage".to_string(),
                    None => "spec.customer".to_string(),
                }];
                let what = match wrong_stage {
                    Some(other) => format!(
                        "the skill {} is enabled for the customer on stage {other}, not {}",
                        self.spec.skill_id, self.spec.stage
                    ),
                    None => format!(
                        "{} is not enabled and linked for the customer",
                        self.location()
                    ),
                };
                let (outcome, retry) = policy::observed_drift(&what, "not changing it");
                Ok(Done::new(outcome, retry))
            }
            CustomerPlan::Link { wrong_stage } => {
                self.link(ctx, &creds, (customer, wrong_stage), status)
                    .await
            }
        }
    }

    fn linked_message(&self) -> String {
        format!(
            "{} is enabled for the customer and the accounts are linked",
            self.location()
        )
    }

    /// Reads the customer's enablement (discovering the endpoint when status has none) and
    /// records it. `None`: not enabled for the customer.
    async fn observe_customer(
        &self,
        ctx: &KindContext<Self>,
        creds: &LwaCredentials,
        status: &mut SkillEnablementStatus,
    ) -> Result<Option<CustomerEnablementStatus>, Failure> {
        let hint = status.endpoint.clone();
        let answer = ctx
            .alexa
            .customer_status(creds, hint.as_deref(), &self.spec.skill_id)
            .await;
        let (endpoint, current) = match answer {
            Ok(found) => found,
            Err(err) => {
                status.endpoint = None; // re-discover next time
                return Err(err).doing("read the customer's skill enablement from Amazon");
            }
        };
        status.last_sync_time = Some(Time(Timestamp::now()));
        match &current {
            Some(s) => record_customer(status, endpoint, s),
            None => {
                status.endpoint = Some(endpoint);
                status.enabled = Some(false);
                status.account_link_status = None;
                status.enablement_status = None;
            }
        }
        Ok(current)
    }

    /// Enables the skill for the customer and links the accounts with the code in the Secret,
    /// unless that code was sent before (codes are single-use).
    async fn link(
        &self,
        ctx: &KindContext<Self>,
        creds: &LwaCredentials,
        (customer, wrong_stage): (&CustomerEnablement, Option<String>),
        status: &mut SkillEnablementStatus,
    ) -> Result<Done, Failure> {
        let ns = self.namespace().unwrap_or_default();
        let link = &customer.account_link_request;
        let code_ref = &link.auth_code_secret_ref;
        let code = read_key(&ctx.kube, &ns, &code_ref.name, &code_ref.key).await?;
        let code_hash = ctx.digester.digest(&code);
        let recorded = ctx
            .digester
            .recorded_code(status.auth_code_hash.as_deref(), &code);
        let where_ = format!("Secret {ns}/{} key {:?}", code_ref.name, code_ref.key);
        if plan_link(recorded.as_deref(), &code_hash) == LinkPlan::CodeAlreadySent {
            let message = match &wrong_stage {
                Some(other) => format!(
                    "the skill is enabled for the customer on stage {other}, not {}; enabling it on {} needs a new authorization code: the one in {where_} was already sent and codes are single-use",
                    self.spec.stage, self.spec.stage
                ),
                None => format!(
                    "the authorization code in {where_} was already sent to Amazon and codes are single-use; put a new code in that Secret to link again"
                ),
            };
            // Keep Amazon's rejection when that is why the code was spent.
            let message = ready_condition(&status.conditions)
                .filter(|c| c.reason == Reason::AuthCodeInvalid.as_str() && wrong_stage.is_none())
                .map(|c| c.message.clone())
                .unwrap_or(message);
            return Err(Failure::new(
                Outcome::stalled(Reason::AuthCodeInvalid, message),
                Retry::AwaitChange,
            ));
        }
        let verifier = match &link.code_verifier_secret_ref {
            Some(r) => Some(read_key(&ctx.kube, &ns, &r.name, &r.key).await?),
            None => None,
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
        let sent = ctx
            .alexa
            .customer_enable(
                creds,
                status.endpoint.clone().as_deref(),
                &self.spec.skill_id,
                &request,
            )
            .await;
        self.after_send(sent, code_hash, &where_, status)
    }

    /// Records what sending the code did: the code counts as spent unless the failure says it
    /// may not have been processed (retryable), so it is never sent twice.
    fn after_send(
        &self,
        sent: Result<(String, CustomerEnablementStatus), AlexaError>,
        code_hash: String,
        where_: &str,
        status: &mut SkillEnablementStatus,
    ) -> Result<Done, Failure> {
        match sent {
            Ok((endpoint, s)) => {
                status.auth_code_hash = Some(code_hash);
                record_customer(status, endpoint, &s);
                status.drift.clear();
                let done = if is_linked(&s) && other_stage(&s, self.spec.stage.as_str()).is_none() {
                    Done::ready(self.linked_message())
                } else {
                    let message = format!(
                        "Amazon accepted the enablement of {} but reports status {} and account link {}",
                        self.location(),
                        s.status.as_deref().unwrap_or("unknown"),
                        s.account_link_status.as_deref().unwrap_or("unknown")
                    );
                    Done::new(
                        Outcome::progressing(Reason::Creating, message),
                        Retry::Backoff { retry_after: None },
                    )
                };
                Ok(done.with_note(Note::normal(
                    "Linked",
                    "EnableSkillForCustomer",
                    format!(
                        "enabled {} for the customer and linked the accounts",
                        self.location()
                    ),
                )))
            }
            Err(e @ AlexaError::InvalidRequest(_)) => {
                // Amazon consumed or refused the code: never send it again.
                status.auth_code_hash = Some(code_hash);
                let message = format!(
                    "Amazon rejected the authorization code from {where_}: {e}; put a new code in that Secret"
                );
                Err(Failure::new(
                    Outcome::stalled(Reason::AuthCodeInvalid, message),
                    Retry::AwaitChange,
                ))
            }
            Err(e) => {
                if !e.is_retryable() {
                    status.auth_code_hash = Some(code_hash);
                }
                status.endpoint = None;
                Err(e).doing("enable the skill for the customer")
            }
        }
    }

    /// Customer mode's cleanup: disable the skill for the customer (which unlinks).
    pub(super) async fn cleanup_customer(
        &self,
        ctx: &KindContext<Self>,
        customer: &CustomerEnablement,
        status: &SkillEnablementStatus,
    ) -> Result<Vec<Note>, Failure> {
        let ns = self.namespace().unwrap_or_default();
        let creds = read_credentials(&ctx.kube, &ns, &customer.token_secret_ref.name).await?;
        match ctx
            .alexa
            .customer_disable(&creds, status.endpoint.as_deref(), &self.spec.skill_id)
            .await
        {
            Ok(_) | Err(AlexaError::NotFound(_)) => Ok(vec![Note::normal(
                "Unlinked",
                "DisableSkillForCustomer",
                format!(
                    "disabled {} for the customer and unlinked the accounts",
                    self.location()
                ),
            )]),
            Err(e) => Err(e).doing("disable the skill for the customer"),
        }
    }
}
