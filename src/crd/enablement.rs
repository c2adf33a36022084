//! `SkillEnablement`: a skill stage enabled for the skill owner's developer account, or for a
//! customer with their accounts linked (app-to-app account linking).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, ManagementPolicy, SecretKeyRef, SecretRef, Stage};
use super::credentials::CredentialsRef;

/// Desired enablement of one Alexa skill stage, in one of two modes: skill owner
/// (credentialsSecretRef or credentialsRef) or customer (customer).
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "alexa.operator.dev",
    version = "v1alpha1",
    kind = "SkillEnablement",
    doc = "Keeps one Alexa skill stage enabled for the skill owner or for a customer with linked accounts.",
    namespaced,
    status = "SkillEnablementStatus",
    shortname = "sen",
    category = "alexa",
    printcolumn = r#"{"name":"Skill","type":"string","jsonPath":".spec.skillId"}"#,
    printcolumn = r#"{"name":"Stage","type":"string","jsonPath":".spec.stage"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".status.mode"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("(has(self.credentialsSecretRef) ? 1 : 0) + (has(self.credentialsRef) ? 1 : 0) + (has(self.customer) ? 1 : 0) == 1").message("set exactly one of credentialsSecretRef or credentialsRef (skill owner mode) or customer (customer mode)"))]
#[serde(rename_all = "camelCase")]
pub struct SkillEnablementSpec {
    /// ID of the skill to enable. Immutable.
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("skillId is immutable; create a new object instead"))]
    pub skill_id: String,

    /// Skill stage to enable: development or live. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("stage is immutable; create a new object instead"))]
    pub stage: Stage,

    /// Skill owner mode: Secret in this namespace with the skill owner's Login with Amazon
    /// credentials (keys client-id, client-secret, refresh-token). Enables the stage for the
    /// developer account. Enabling one stage disables the other stage for that account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,

    /// Skill owner mode with shared credentials: an AlexaCredentials in this namespace or a
    /// ClusterAlexaCredentials that allows this namespace, instead of credentialsSecretRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<CredentialsRef>,

    /// Customer mode (app-to-app account linking): enables the skill for a customer and links
    /// the customer's account in your service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerEnablement>,

    /// What happens on Amazon's side when this object is deleted: Delete disables the skill
    /// (and unlinks, in customer mode); Orphan leaves it enabled.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Manage makes Amazon match the spec; Observe only reads and reports.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

/// The customer whose skill enablement and account link this object manages. Atomic for
/// server-side apply: switching to owner mode in Git removes it whole instead of leaving a
/// `null` the exactly-one-mode rule would trip over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct CustomerEnablement {
    /// Secret in this namespace with the customer's Login with Amazon credentials (keys
    /// client-id, client-secret, refresh-token; scope alexa::skills:account_linking).
    pub token_secret_ref: SecretRef,

    /// How to link the customer's account in your service.
    pub account_link_request: AccountLinkRequest,
}

/// Grant type of the customer's account link request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountLinkRequestType {
    /// Authorization code from your authorization server (the only value Amazon's example shows;
    /// its list of valid values is lost, see docs/AMAZON.md).
    AuthCode,
}

/// Account link request sent with the customer's enablement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountLinkRequest {
    /// Grant type; AUTH_CODE is the only value this operator accepts (see docs/AMAZON.md).
    #[serde(rename = "type")]
    pub type_: AccountLinkRequestType,

    /// Redirect URI your authorization server issued the code for.
    #[schemars(length(min = 1, max = 2048))]
    pub redirect_uri: String,

    /// Secret key holding your authorization server's authorization code for this customer.
    /// Codes are single-use: after a rejection the operator waits for this Secret to change.
    pub auth_code_secret_ref: SecretKeyRef,

    /// Secret key holding the PKCE code verifier, when your authorization server uses PKCE. Sent as
    /// accountLinkRequest.codeVerifier: Amazon's page lost the property's name (see
    /// docs/AMAZON.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier_secret_ref: Option<SecretKeyRef>,
}

/// Which mode a SkillEnablement runs in (shown in `kubectl get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum EnablementMode {
    /// Skill owner's developer account.
    Owner,
    /// A customer, with account linking.
    Customer,
}

/// Customer mode: what is known about the code in authCodeHash. Pending: saved before it was
/// sent, outcome not known yet (Amazon's status decides; never resent). Accepted: Amazon
/// answered 2xx, linking not completed yet (polled). Spent: linked, refused, or its outcome
/// stayed unknown (a new code is needed). Absent with authCodeHash set means Spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum AuthCodeState {
    /// Recorded in status before the request carrying it was sent; outcome not known yet.
    Pending,
    /// Amazon answered 2xx but does not report the accounts linked yet.
    Accepted,
    /// Linked, refused, or its outcome stayed unknown: never sent again.
    Spent,
}

/// Observed state of a SkillEnablement, written only by the operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillEnablementStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Reconciling and Stalled conditions (kstatus conventions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Owner or Customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<EnablementMode>,

    /// Whether the stage is enabled, as last read from Amazon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Customer mode: Amazon's user ID of the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,

    /// Customer mode: account link status reported by Amazon (for example LINKED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_link_status: Option<String>,

    /// Customer mode: enablement status reported by Amazon (for example ENABLED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enablement_status: Option<String>,

    /// Customer mode: regional Alexa API endpoint that answered for this customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Customer mode: keyed digest of the last authorization code the operator sent or is about
    /// to send ("hmac-sha256:<keyid>:<hex>", under the operator's digest key), so a single-use
    /// code is never sent twice. One made under another key counts as the current code's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code_hash: Option<String>,

    /// Customer mode: what is known about the code in authCodeHash. Pending: recorded before
    /// it was sent, outcome not known yet (after a crash or a lost answer Amazon's status
    /// decides, the code is never resent); Accepted: Amazon answered 2xx and linking has not
    /// completed yet (polled); Spent: linked, refused, or its outcome stayed unknown (a new
    /// code is needed to link again). Absent with authCodeHash set means Spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code_state: Option<AuthCodeState>,

    /// Differences from the spec found in Observe mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,

    /// Last value of the reconcile-requested-at annotation that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}
