//! Customer mode: the skill enabled for a customer with their accounts linked (app-to-app
//! account linking), through the customer's regional Alexa API endpoint.
//! observe (Amazon's enablement for the customer) → [`plan_customer`] → execute; linking reads
//! the single-use authorization code and asks [`plan_link`] whether it may be sent.

use kube::ResourceExt;

use std::time::Duration;

use super::plan::{
    CodeRecord, CustomerPlan, Delivery, LinkPlan, delivery, is_linked, other_stage, plan_customer,
    plan_link, state_after, state_when_linked,
};
use crate::alexa::{
    AlexaError, CustomerEnableRequest, CustomerEnablementStatus, CustomerLinkRequest,
    EnableFailure, LwaCredentials,
};
use crate::controller::conditions::{Outcome, Reason, ready_condition};
use crate::controller::lifecycle::policy::{self, Policy};
use crate::controller::lifecycle::{
    Checkpoint, Doing, Done, Failure, KindContext, ManagedKind, Note, Retry,
};
use crate::controller::secrets::{read_credentials, read_key};
use crate::crd::common::SecretKeyRef;
use crate::crd::enablement::{
    AuthCodeState, CustomerEnablement, SkillEnablement, SkillEnablementStatus,
};

/// What linking needs besides the object and its status.
struct Link<'a> {
    creds: &'a LwaCredentials,
    customer: &'a CustomerEnablement,
    /// The stage Amazon has the skill linked on instead of the spec's, if that is the difference.
    wrong_stage: Option<String>,
    checkpoint: &'a Checkpoint<'a, SkillEnablement>,
}

/// The code was sent, its outcome is unknown and Amazon does not show it linked: it counts as
/// spent (it may have been consumed), so only a new code can link. Amazon's status is re-read
/// slowly (never the code resent): if the link completed after all, the object turns Ready.
fn outcome_unknown(where_: &str, why: &str) -> Failure {
    Failure::new(
        Outcome::stalled(
            Reason::AuthCodeInvalid,
            format!(
                "the outcome of sending the authorization code from {where_} is unknown ({why}) and Amazon does not report the accounts linked; the code may have been consumed and is never sent twice: put a new code in that Secret"
            ),
        ),
        Retry::Slow,
    )
}

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

/// Shortest wait between status reads while Amazon has accepted a code but does not report the
/// accounts linked yet; the per-object back-off stretches it up to `--backoff-max`.
pub const LINK_POLL: Duration = Duration::from_secs(5);

/// The Secret key a code comes from, for messages ("Secret ns/name key \"k\"").
fn code_source(ns: &str, code_ref: &SecretKeyRef) -> String {
    format!("Secret {ns}/{} key {:?}", code_ref.name, code_ref.key)
}

impl SkillEnablement {
    /// Customer mode's apply.
    pub(super) async fn apply_customer(
        &self,
        ctx: &KindContext<Self>,
        customer: &CustomerEnablement,
        status: &mut SkillEnablementStatus,
        checkpoint: &Checkpoint<'_, Self>,
    ) -> Result<Done, Failure> {
        let ns = self.namespace().unwrap_or_default();
        ctx.digester.upgrade(&mut status.auth_code_hash);
        let creds = read_credentials(&ctx.secrets, &ns, &customer.token_secret_ref.name).await?;
        let observed = self.observe_customer(ctx, &creds, status).await?;
        let policy = Policy::of(self.spec.management_policy);
        match plan_customer(observed.as_ref(), self.spec.stage.as_str(), policy) {
            CustomerPlan::InSync => {
                status.drift.clear();
                status.auth_code_state = state_when_linked(status.auth_code_state);
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
                let link = Link {
                    creds: &creds,
                    customer,
                    wrong_stage,
                    checkpoint,
                };
                self.link(ctx, link, status).await
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
        ctx.metrics.synced(Self::KIND);
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
    /// as [`plan_link`] allows: a code is sent at most once.
    async fn link(
        &self,
        ctx: &KindContext<Self>,
        link: Link<'_>,
        status: &mut SkillEnablementStatus,
    ) -> Result<Done, Failure> {
        let ns = self.namespace().unwrap_or_default();
        let request = &link.customer.account_link_request;
        let code_ref = &request.auth_code_secret_ref;
        let code = read_key(&ctx.secrets, &ns, &code_ref.name, &code_ref.key).await?;
        let digest = ctx.digester.digest(&code);
        let where_ = code_source(&ns, code_ref);
        // A record made under another digest key counts as this code's: never risk it twice.
        let recorded_hash = ctx
            .digester
            .recorded_code(status.auth_code_hash.as_deref(), &code);
        let recorded = CodeRecord::of(recorded_hash.as_deref(), status.auth_code_state);
        match plan_link(recorded, &digest) {
            LinkPlan::Send => {}
            LinkPlan::CodeAlreadySent => {
                return Err(self.code_spent(&where_, link.wrong_stage.as_deref(), status));
            }
            LinkPlan::OutcomeUnknown => {
                status.auth_code_state = Some(AuthCodeState::Spent);
                return Err(outcome_unknown(
                    &where_,
                    "the operator stopped or lost the answer",
                ));
            }
            LinkPlan::AwaitLinking => return Ok(self.awaiting_link(status)),
        }
        let verifier = match &request.code_verifier_secret_ref {
            Some(r) => Some(read_key(&ctx.secrets, &ns, &r.name, &r.key).await?),
            None => None,
        };
        let body = CustomerEnableRequest {
            stage: self.spec.stage,
            account_link_request: CustomerLinkRequest {
                type_: request.type_,
                redirect_uri: request.redirect_uri.clone(),
                auth_code: code.into(),
                code_verifier: verifier.map(Into::into),
            },
        };
        let before = (status.auth_code_hash.clone(), status.auth_code_state);
        self.record_pending(digest, link.checkpoint, status).await?;
        let sent = ctx
            .alexa
            .customer_enable(
                link.creds,
                status.endpoint.clone().as_deref(),
                &self.spec.skill_id,
                &body,
            )
            .await;
        self.after_send(ctx, link.creds, sent, before, &where_, status)
            .await
    }

    /// Marks the code Pending and saves status before it is sent, so a crash after sending
    /// cannot make the operator send it again. Not saved: not sent.
    async fn record_pending(
        &self,
        digest: String,
        checkpoint: &Checkpoint<'_, Self>,
        status: &mut SkillEnablementStatus,
    ) -> Result<(), Failure> {
        let before = (status.auth_code_hash.clone(), status.auth_code_state);
        status.auth_code_hash = Some(digest);
        status.auth_code_state = Some(AuthCodeState::Pending);
        let message = format!(
            "sending the authorization code to enable {} for the customer",
            self.location()
        );
        let saved = checkpoint
            .save(status, &Outcome::progressing(Reason::Creating, message))
            .await;
        if let Err(err) = saved {
            (status.auth_code_hash, status.auth_code_state) = before;
            return Err(Failure::new(
                Outcome::progressing(
                    Reason::Creating,
                    format!(
                        "could not record the authorization code as pending in status before sending it ({err}); it was not sent, retrying"
                    ),
                ),
                Retry::Backoff { retry_after: None },
            ));
        }
        Ok(())
    }

    /// Records what sending the code did (see [`delivery`]): an unknown outcome is settled by
    /// reading Amazon's status, never by sending the code again.
    async fn after_send(
        &self,
        ctx: &KindContext<Self>,
        creds: &LwaCredentials,
        sent: Result<(String, CustomerEnablementStatus), EnableFailure>,
        before: (Option<String>, Option<AuthCodeState>),
        where_: &str,
        status: &mut SkillEnablementStatus,
    ) -> Result<Done, Failure> {
        let stage = self.spec.stage.as_str();
        let delivered = delivery(sent.as_ref().map(|(_, s)| s), stage);
        match state_after(delivered) {
            Some(state) => status.auth_code_state = Some(state),
            None => (status.auth_code_hash, status.auth_code_state) = before,
        }
        let failure = match sent {
            Ok((endpoint, s)) => {
                record_customer(status, endpoint, &s);
                status.drift.clear();
                let done = match delivered {
                    Delivery::Linked => Done::ready(self.linked_message()),
                    _ => self.awaiting_link(status),
                };
                return Ok(done.with_note(Note::normal(
                    "Linked",
                    "EnableSkillForCustomer",
                    format!(
                        "sent the authorization code: Amazon enabled {} for the customer",
                        self.location()
                    ),
                )));
            }
            Err(failure) => failure,
        };
        if failure.sent {
            status.endpoint = None;
        }
        match delivered {
            Delivery::Rejected => Err(Failure::new(
                Outcome::stalled(
                    Reason::AuthCodeInvalid,
                    format!(
                        "Amazon rejected the authorization code from {where_}: {}; put a new code in that Secret",
                        failure.error
                    ),
                ),
                Retry::Slow,
            )),
            Delivery::Unknown => {
                self.settle_unknown(ctx, creds, failure.error, where_, status)
                    .await
            }
            _ => Err(failure.error).doing("enable the skill for the customer"),
        }
    }

    /// After a lost answer: Amazon's status decides. Linked on the spec's stage → Ready;
    /// otherwise the code counts as spent. If the status cannot be read either, the code stays
    /// Pending and the next reconcile decides the same way.
    async fn settle_unknown(
        &self,
        ctx: &KindContext<Self>,
        creds: &LwaCredentials,
        error: AlexaError,
        where_: &str,
        status: &mut SkillEnablementStatus,
    ) -> Result<Done, Failure> {
        let observed = self.observe_customer(ctx, creds, status).await?;
        let linked = observed
            .as_ref()
            .is_some_and(|s| is_linked(s) && other_stage(s, self.spec.stage.as_str()).is_none());
        status.auth_code_state = Some(AuthCodeState::Spent);
        if linked {
            status.drift.clear();
            return Ok(Done::ready(self.linked_message()));
        }
        Err(outcome_unknown(where_, &error.to_string()))
    }

    /// Waiting for Amazon to report the accounts linked after it accepted the code.
    fn awaiting_link(&self, status: &SkillEnablementStatus) -> Done {
        let message = format!(
            "Amazon accepted the authorization code for {} but reports status {} and account link {}; checking again (every {} s at first) until it reports LINKED",
            self.location(),
            status.enablement_status.as_deref().unwrap_or("unknown"),
            status.account_link_status.as_deref().unwrap_or("unknown"),
            LINK_POLL.as_secs()
        );
        Done::new(
            Outcome::progressing(Reason::Creating, message),
            Retry::Backoff {
                retry_after: Some(LINK_POLL),
            },
        )
    }

    /// The code in the Secret was spent before: wait for a new one.
    fn code_spent(
        &self,
        where_: &str,
        wrong_stage: Option<&str>,
        status: &SkillEnablementStatus,
    ) -> Failure {
        let message = match wrong_stage {
            Some(other) => format!(
                "the skill is enabled for the customer on stage {other}, not {}; enabling it on {} needs a new authorization code: the one in {where_} was already sent and codes are single-use",
                self.spec.stage, self.spec.stage
            ),
            None => format!(
                "the authorization code in {where_} was already sent to Amazon and codes are single-use; put a new code in that Secret to link again"
            ),
        };
        // Keep the first reason (Amazon's rejection, an unknown outcome) the code was spent.
        let message = ready_condition(&status.conditions)
            .filter(|c| c.reason == Reason::AuthCodeInvalid.as_str() && wrong_stage.is_none())
            .map(|c| c.message.clone())
            .unwrap_or(message);
        Failure::new(
            Outcome::stalled(Reason::AuthCodeInvalid, message),
            Retry::Slow,
        )
    }

    /// Customer mode's cleanup: disable the skill for the customer (which unlinks).
    pub(super) async fn cleanup_customer(
        &self,
        ctx: &KindContext<Self>,
        customer: &CustomerEnablement,
        status: &SkillEnablementStatus,
    ) -> Result<Vec<Note>, Failure> {
        let ns = self.namespace().unwrap_or_default();
        let creds = read_credentials(&ctx.secrets, &ns, &customer.token_secret_ref.name).await?;
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
