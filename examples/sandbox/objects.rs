//! The objects the sandbox applies. The first demo applies `deploy/samples/` unchanged (the same
//! files a user applies to a cluster, so the sandbox shows what they will get); the failure demo
//! and the shared-credentials demo add their own files from `examples/sandbox/`. All are compiled in, so the demo does not
//! depend on the current directory.

use alexa_skill_operator::crd::{ClusterAlexaCredentials, SkillAccountLinking, SkillEnablement};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::Res;

/// Namespace of the demo objects: the kubeconfig's default, so plain `kubectl get sal` shows them.
pub const NAMESPACE: &str = "default";

/// Field manager of the sandbox's server-side applies: the one `kubectl apply --server-side`
/// uses, so a user re-applying an edited sample owns the same fields and gets no conflict.
const FIELD_MANAGER: &str = "kubectl";

/// One YAML file shipped with the repository.
pub struct Manifest {
    /// Path relative to the repository root, as printed.
    pub path: &'static str,
    text: &'static str,
}

macro_rules! manifest {
    ($path:literal) => {
        Manifest {
            path: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)),
        }
    };
}

/// `deploy/samples/` in `kubectl apply -k` order: Secrets before the objects that need them.
pub const SAMPLES: [Manifest; 6] = [
    manifest!("deploy/samples/lwa-credentials-secret.yaml"),
    manifest!("deploy/samples/oauth-client-secret.yaml"),
    manifest!("deploy/samples/customer-secrets.yaml"),
    manifest!("deploy/samples/skillaccountlinking.yaml"),
    manifest!("deploy/samples/skillenablement-owner.yaml"),
    manifest!("deploy/samples/skillenablement-customer.yaml"),
];

/// A SkillAccountLinking whose clientSecretRef names a Secret that does not exist.
pub const MISSING_SECRET: Manifest = manifest!("examples/sandbox/missing-secret.yaml");
/// The Secret that fixes it.
pub const MISSING_SECRET_FIX: Manifest = manifest!("examples/sandbox/missing-secret-fix.yaml");
/// A ClusterAlexaCredentials over the sample Secret and a SkillEnablement using it.
pub const SHARED_CREDENTIALS: Manifest = manifest!("examples/sandbox/shared-credentials.yaml");

/// Names of the sample objects the first demo waits for, as the table shows them.
pub const SAL: &str = "sal/sandbox-skill-development";
/// The ConfigMap the sample SkillAccountLinking exports its redirect URLs to (spec.exports).
pub const EXPORTED_CONFIG_MAP: &str = "sandbox-skill-redirect-urls";
pub const SEN_OWNER: &str = "sen/sandbox-skill-owner";
pub const SEN_CUSTOMER: &str = "sen/sandbox-skill-na-customer";
pub const SAL_MISSING_SECRET: &str = "sal/missing-secret-demo";
pub const SEN_SHARED: &str = "sen/shared-credentials-demo";

/// Server-side applies every document of `manifest` in [`NAMESPACE`] and returns kubectl-style
/// lines (`secret/lwa-credentials created`).
pub async fn apply(client: &kube::Client, manifest: &Manifest) -> Res<Vec<String>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(manifest.text)
        .map_err(|e| format!("{}: {e}", manifest.path))?;
    let mut lines = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        lines.push(apply_one(client, manifest.path, &doc).await?);
    }
    Ok(lines)
}

async fn apply_one(client: &kube::Client, path: &str, doc: &Value) -> Res<String> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let (resource, shown) = match kind {
        "Secret" => (ApiResource::erase::<Secret>(&()), "secret"),
        "SkillAccountLinking" => (
            ApiResource::erase::<SkillAccountLinking>(&()),
            "skillaccountlinking.alexa.operator.dev",
        ),
        "SkillEnablement" => (
            ApiResource::erase::<SkillEnablement>(&()),
            "skillenablement.alexa.operator.dev",
        ),
        "ClusterAlexaCredentials" => (
            ApiResource::erase::<ClusterAlexaCredentials>(&()),
            "clusteralexacredentials.alexa.operator.dev",
        ),
        other => return Err(format!("{path}: unexpected kind {other:?}").into()),
    };
    let name = doc["metadata"]["name"]
        .as_str()
        .ok_or_else(|| format!("{path}: a {kind} without metadata.name"))?;
    let api: Api<DynamicObject> = if kind == "ClusterAlexaCredentials" {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), NAMESPACE, &resource)
    };
    let existed = api.get_opt(name).await?.is_some();
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(doc),
    )
    .await
    .map_err(|e| format!("applying {path} ({kind} {name}): {e}"))?;
    let verb = if existed { "configured" } else { "created" };
    Ok(format!("{shown}/{name} {verb}"))
}

/// Sets a label on [`NAMESPACE`] (`kubectl label namespace`).
pub async fn label_namespace(client: &kube::Client, key: &str, value: &str) -> Res<()> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
    api.patch(NAMESPACE, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Sets the reconcile-requested-at annotation of SkillEnablement `name` to a new value.
pub async fn request_reconcile(client: &kube::Client, name: &str) -> Res<()> {
    let api: Api<SkillEnablement> = Api::namespaced(client.clone(), NAMESPACE);
    let value = format!("{:?}", std::time::SystemTime::now());
    let patch = serde_json::json!({"metadata": {"annotations": {
        alexa_skill_operator::crd::common::RECONCILE_REQUESTED_ANNOTATION: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// How many objects a ClusterAlexaCredentials reports in use, once it reports any.
pub async fn credentials_in_use(client: &kube::Client, name: &str) -> Res<u32> {
    let api: Api<ClusterAlexaCredentials> = Api::all(client.clone());
    for _ in 0..600 {
        let count = api
            .get(name)
            .await?
            .status
            .and_then(|s| s.in_use)
            .map_or(0, |u| u.count);
        if count > 0 {
            return Ok(count);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(format!("clusteralexacredentials/{name} never reported a user").into())
}
