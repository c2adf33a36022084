//! `SkillAccountLinking`: the declared account linking of one skill stage.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, ManagementPolicy, SecretKeyRef, SecretRef, Stage};
use super::credentials::CredentialsRef;

/// Desired account linking of one Alexa skill stage.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "alexa.operator.dev",
    version = "v1alpha1",
    kind = "SkillAccountLinking",
    doc = "Keeps the account linking of one Alexa skill stage as declared.",
    namespaced,
    status = "SkillAccountLinkingStatus",
    shortname = "sal",
    category = "alexa",
    printcolumn = r#"{"name":"Skill","type":"string","jsonPath":".spec.skillId"}"#,
    printcolumn = r#"{"name":"Stage","type":"string","jsonPath":".spec.stage"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("has(self.credentialsSecretRef) != has(self.credentialsRef)").message("set exactly one of credentialsSecretRef (a Secret in this namespace) or credentialsRef (an AlexaCredentials or ClusterAlexaCredentials)"))]
#[serde(rename_all = "camelCase")]
pub struct SkillAccountLinkingSpec {
    /// ID of the skill, for example amzn1.ask.skill.00000000-0000-0000-0000-000000000000.
    /// Immutable.
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("skillId is immutable; create a new object instead"))]
    pub skill_id: String,

    /// Skill stage whose account linking this object manages: development or live. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("stage is immutable; create a new object instead"))]
    pub stage: Stage,

    /// Secret in this namespace holding the Login with Amazon credentials used to call the Skill
    /// Management API, under the keys client-id, client-secret and refresh-token. Set this or
    /// credentialsRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,

    /// Shared credentials: an AlexaCredentials in this namespace or a ClusterAlexaCredentials
    /// that allows this namespace. Set this or credentialsSecretRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<CredentialsRef>,

    /// What happens to Amazon's account linking when this object is deleted: Delete removes it,
    /// Orphan leaves it in place.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Manage makes Amazon match the spec; Observe only reads and reports differences in
    /// status.drift.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// The account linking configuration, as in Amazon's accountLinkingRequest.
    pub account_linking: AccountLinkingSpec,

    /// Outputs the operator keeps in Kubernetes for other tools to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exports: Option<Exports>,
}

/// Where the operator publishes what Amazon decided (the redirect URLs to allow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exports {
    /// ConfigMap in this namespace that the operator creates and keeps (owned by this object, so
    /// it is deleted with it) with keys redirect-urls (one URL per line) and redirect-urls.json (a
    /// JSON array). A ConfigMap of that name not owned by this object is never overwritten
    /// (reason ExportConflict).
    #[schemars(length(min = 1, max = 253))]
    pub config_map_name: String,
}

/// OAuth 2.0 grant Alexa uses with your authorization server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountLinkingType {
    /// Authorization code grant (needs accessTokenUrl and accessTokenScheme; this operator also
    /// requires clientSecretRef, see docs/AMAZON.md).
    AuthCode,
    /// Implicit grant.
    Implicit,
}

/// How Alexa sends the client credentials to your token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessTokenScheme {
    /// Credentials in an HTTP Basic Authorization header.
    HttpBasic,
    /// Credentials in the request body.
    RequestBodyCredentials,
}

/// Whether users can link accounts by voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VoiceForwardAccountLinking {
    /// Voice-forward account linking is on.
    Enabled,
    /// Voice-forward account linking is off (Amazon's default).
    Disabled,
}

/// Mobile platform of a platform-specific authorization URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum PlatformType {
    /// Apple iOS.
    #[serde(rename = "iOS")]
    Ios,
    /// Google Android.
    Android,
}

/// An authorization URL used instead of the default one on one mobile platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformAuthorizationUrl {
    /// Platform this URL applies to: iOS or Android.
    pub platform_type: PlatformType,
    /// Authorization URL for that platform (app-to-app account linking).
    #[schemars(length(min = 1, max = 2048))]
    pub platform_authorization_url: String,
}

/// Account linking configuration of a skill stage.
#[derive(KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'AUTH_CODE' || (has(self.accessTokenUrl) && has(self.accessTokenScheme) && has(self.clientSecretRef))").message("type AUTH_CODE requires accessTokenUrl, accessTokenScheme and clientSecretRef"),
    validation = Rule::new("self.type == 'AUTH_CODE' || !has(self.defaultTokenExpirationInSeconds)").message("defaultTokenExpirationInSeconds applies only to type AUTH_CODE")
)]
pub struct AccountLinkingSpec {
    /// OAuth grant type: AUTH_CODE or IMPLICIT.
    #[serde(rename = "type")]
    pub type_: AccountLinkingType,

    /// URL of your authorization server's login page, where Alexa sends users to link.
    #[schemars(length(min = 1, max = 2048))]
    pub authorization_url: String,

    /// Domains the login page loads content from (at most 15).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 15))]
    pub domains: Vec<String>,

    /// Client ID your authorization server issued to Alexa.
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,

    /// OAuth scopes Alexa requests (at most 15).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 15))]
    pub scopes: Vec<String>,

    /// Token endpoint of your authorization server. Required for AUTH_CODE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub access_token_url: Option<String>,

    /// Secret key holding the client secret Alexa uses at your token endpoint. Required for
    /// AUTH_CODE by this operator (Amazon's pages do not require it; see docs/AMAZON.md). Amazon
    /// never returns it, so only a keyed digest is recorded, in status.clientSecretHash; the secret
    /// is never stored in the object or its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,

    /// How Alexa authenticates at your token endpoint: HTTP_BASIC or REQUEST_BODY_CREDENTIALS.
    /// Required for AUTH_CODE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_scheme: Option<AccessTokenScheme>,

    /// Access token lifetime in seconds (AUTH_CODE only). Per Amazon's schema page it overrides the
    /// expires_in of your token response; optional here although Amazon's management page lists it
    /// as required for AUTH_CODE (see docs/AMAZON.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub default_token_expiration_in_seconds: Option<i32>,

    /// Redirect URLs to send to Amazon (at most 15). Amazon's pages disagree on whether they can be
    /// set (see docs/AMAZON.md): leave empty to use Amazon's fixed ones. The ones in effect are
    /// shown in status.redirectUrls; if Amazon ignores these, the object ends in NotConverging.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 15))]
    pub redirect_urls: Vec<String>,

    /// Platform-specific authorization URLs for app-to-app account linking (at most 2, one per
    /// platform: this operator's cap, see docs/AMAZON.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub authorization_urls_by_platform: Vec<PlatformAuthorizationUrl>,

    /// Let users enable the skill without linking first. Amazon's GET does not return it, so the
    /// operator records what it applied (status.requestOnlyHash) instead of comparing it; unset is
    /// not sent (see docs/AMAZON.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_on_enablement: Option<bool>,

    /// Voice-forward account linking: ENABLED or DISABLED (Amazon's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_forward_account_linking: Option<VoiceForwardAccountLinking>,
}

/// Observed state of a SkillAccountLinking, written only by the operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillAccountLinkingStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Reconciling and Stalled conditions (kstatus conventions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// ETag of Amazon's account linking as last read or written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,

    /// Alexa redirect URLs in effect: allow these in your authorization server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_urls: Vec<String>,

    /// Keyed digest of the client secret last applied ("hmac-sha256:<keyid>:<hex>", under the
    /// operator's digest key; see the README's security section); tells when the Secret changed
    /// without storing it or anything a reader could test guesses against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_hash: Option<String>,

    /// SHA-256 of the request-only fields other than the secret (`skipOnEnablement`) last
    /// applied. Amazon's GET does not return them (see docs/AMAZON.md), so they are rewritten
    /// only when the spec asks for something else than what this records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_only_hash: Option<String>,

    /// Keyed identity of the request whose writes Amazon accepted but whose read-back still
    /// differed, and how many such writes were sent (`unconvergedWrites`). After 3 the operator
    /// stops writing (reason NotConverging) until the spec or a Secret changes, the
    /// reconcile-requested-at annotation asks for one more attempt, or Amazon comes to agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconverged_request_hash: Option<String>,

    /// Writes of `unconvergedRequestHash` that Amazon accepted without its read-back agreeing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconverged_writes: Option<u32>,

    /// Keyed identity (spec and client secret digest) of an update carrying the client secret
    /// that was sent but whose outcome is not recorded yet. If the operator stops before
    /// recording it, the next reconcile sees from Amazon's ETag that the update landed and does
    /// not send the secret again. Flat scalars rather than an object, so that server-side apply
    /// removes them cleanly once the update is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_request_hash: Option<String>,

    /// Amazon's ETag the pending update was based on (absent when it creates the account
    /// linking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_base_etag: Option<String>,

    /// Keyed identity of the last account linking request Amazon rejected as invalid (400). The same
    /// request is not sent again; a change to the spec or a referenced Secret produces a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_request_hash: Option<String>,

    /// Spec field paths that differ from Amazon's state (filled in Observe mode, and while a
    /// repair is pending).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,

    /// Last value of the reconcile-requested-at annotation that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}
