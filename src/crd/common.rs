//! Types and names both custom resources share, so the two kinds cannot drift apart.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kind this operator owns.
pub const GROUP: &str = "alexa.operator.dev";

/// Finalizer that lets the operator clean up Amazon's side before an object disappears.
pub const FINALIZER: &str = "alexa.operator.dev/cleanup";

/// Annotation that stops all calls to Amazon for one object while set to `"true"`.
pub const PAUSED_ANNOTATION: &str = "alexa.operator.dev/paused";

/// Annotation whose every new value forces one reconcile (acknowledged in
/// `status.lastHandledReconcileAt`), like `kubectl annotate --overwrite ... =$(date)`.
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "alexa.operator.dev/reconcile-requested-at";

/// Annotation that overrides `--resync-period` for one object (a duration from 1m to 24h, e.g.
/// `30m`); out of range or unparsable values earn a Warning event and the default is used.
pub const RESYNC_PERIOD_ANNOTATION: &str = "alexa.operator.dev/resync-period";

/// Skill stage as it appears in Amazon's URL paths.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The in-development version of the skill.
    Development,
    /// The certified, published version of the skill.
    Live,
}

impl Stage {
    /// Lower-case name used on the wire and in paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Development => "development",
            Stage::Live => "live",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens on Amazon's side when the object is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Remove the configuration from Amazon, then let the object go.
    #[default]
    Delete,
    /// Leave Amazon's state as it is; only the Kubernetes object is removed.
    Orphan,
}

/// Whether the operator may write to Amazon for this object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Read, compare and repair: Amazon is made to match the spec.
    #[default]
    Manage,
    /// Read and compare only: differences are reported in status.drift, never written.
    Observe,
}

/// Reference to a Secret in the object's own namespace. Atomic (like Kubernetes'
/// `SecretKeySelector`): server-side apply owns and removes it as a whole, so a GitOps tool can
/// drop it without leaving a `null` behind (kubernetes#117447).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct SecretRef {
    /// Name of the Secret, in the same namespace as this object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Reference to one key of a Secret in the object's own namespace (atomic, as [`SecretRef`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as this object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}
