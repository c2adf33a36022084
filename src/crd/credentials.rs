//! `AlexaCredentials` and `ClusterAlexaCredentials`: a Login with Amazon credentials Secret
//! that many SkillAccountLinkings and SkillEnablements share through `spec.credentialsRef`,
//! so a refresh token lives in one Secret, rotates in one place, and every object using it
//! shares one rate budget and one view of stage conflicts.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretRef;

/// Finalizer that keeps a credentials object while objects still use it.
pub const IN_USE_FINALIZER: &str = "alexa.operator.dev/in-use";

/// How many users a credentials object's status names (the count covers all of them).
pub const MAX_NAMED_USERS: usize = 10;

/// A Login with Amazon credentials Secret in this namespace, shared by the objects of this
/// namespace that reference it.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "alexa.operator.dev",
    version = "v1alpha1",
    kind = "AlexaCredentials",
    plural = "alexacredentials",
    doc = "Login with Amazon credentials that objects of this namespace share through spec.credentialsRef.",
    namespaced,
    status = "CredentialsStatus",
    shortname = "alc",
    category = "alexa",
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secretRef.name"}"#,
    printcolumn = r#"{"name":"In use","type":"integer","jsonPath":".status.inUse.count"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlexaCredentialsSpec {
    /// Secret in this namespace with the keys client-id, client-secret and refresh-token.
    pub secret_ref: SecretRef,
}

/// Login with Amazon credentials shared across namespaces: only namespaces whose labels
/// `allowedNamespaces` selects may reference them.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "alexa.operator.dev",
    version = "v1alpha1",
    kind = "ClusterAlexaCredentials",
    plural = "clusteralexacredentials",
    doc = "Login with Amazon credentials that objects of the namespaces allowedNamespaces selects share through spec.credentialsRef.",
    status = "CredentialsStatus",
    shortname = "calc",
    category = "alexa",
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secretRef.name"}"#,
    printcolumn = r#"{"name":"In use","type":"integer","jsonPath":".status.inUse.count"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAlexaCredentialsSpec {
    /// Secret with the keys client-id, client-secret and refresh-token, in a namespace app
    /// teams need no access to (for example the operator's).
    pub secret_ref: NamespacedSecretRef,

    /// Label selector of the namespaces whose objects may use these credentials. Required, so
    /// nothing is shared by accident; `{}` selects every namespace.
    pub allowed_namespaces: LabelSelector,
}

/// A Secret by namespace and name (atomic for server-side apply, as [`SecretRef`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct NamespacedSecretRef {
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Which credentials object a SkillAccountLinking or SkillEnablement uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum CredentialsKind {
    /// An AlexaCredentials in the object's own namespace.
    AlexaCredentials,
    /// A ClusterAlexaCredentials whose allowedNamespaces selects the object's namespace.
    ClusterAlexaCredentials,
}

impl CredentialsKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialsKind::AlexaCredentials => "AlexaCredentials",
            CredentialsKind::ClusterAlexaCredentials => "ClusterAlexaCredentials",
        }
    }
}

/// Reference to a credentials object (atomic for server-side apply: switching kinds in Git
/// replaces it whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct CredentialsRef {
    /// AlexaCredentials (same namespace) or ClusterAlexaCredentials.
    pub kind: CredentialsKind,
    /// Name of the credentials object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// How many objects use a credentials object, and the first of them by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InUse {
    /// Number of SkillAccountLinkings and SkillEnablements referencing this object.
    pub count: u32,
    /// The first of them ("Kind namespace/name", at most 10, sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// Observed state of a credentials object, written only by the operator. Never holds a
/// secret, a token or a digest of one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Reconciling and Stalled conditions (kstatus conventions). Ready is True when
    /// Login with Amazon accepted the credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Objects using these credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<InUse>,

    /// resourceVersion of the Secret last checked with Login with Amazon (not its content), so
    /// objects using these credentials are reconciled again when the Secret changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_resource_version: Option<String>,
}
