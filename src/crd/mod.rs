//! Custom resource types: one file per kind, plus the pieces both kinds share.

pub mod account_linking;
pub mod common;
pub mod credentials;
pub mod enablement;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use account_linking::{
    SkillAccountLinking, SkillAccountLinkingSpec, SkillAccountLinkingStatus,
};
pub use credentials::{
    AlexaCredentials, ClusterAlexaCredentials, CredentialsKind, CredentialsRef, CredentialsStatus,
};
pub use enablement::{SkillEnablement, SkillEnablementSpec, SkillEnablementStatus};

/// Every CRD this operator owns, in the order they are installed.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        SkillAccountLinking::crd(),
        SkillEnablement::crd(),
        AlexaCredentials::crd(),
        ClusterAlexaCredentials::crd(),
    ]
}

/// Error turning a CRD into YAML.
#[derive(Debug, thiserror::Error)]
#[error("failed to render CRD {name} as YAML: {source}")]
pub struct RenderError {
    name: String,
    #[source]
    source: serde_saphyr::SerializeError,
}

/// Renders one CRD as the YAML file stored in `crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, RenderError> {
    serde_saphyr::to_string(crd).map_err(|source| RenderError {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source,
    })
}

/// File name of a CRD under `crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// Prints every CRD as one YAML stream (what `crds/` is generated from).
pub fn print_all() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    print!("{out}");
    Ok(())
}
