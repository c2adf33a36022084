//! Checks of everything under deploy/ and of the Dockerfile, so a change that breaks an install,
//! widens the operator's permissions or weakens its pod fails here instead of in a cluster. One
//! test binary (`cargo test --test deploy`), one file per topic:
//!
//! - `kustomize`: every kustomization under deploy/ is rendered with `kubectl kustomize`
//!   (whichever kubectl is on PATH, or `$KUBECTL`; .ci/install installs Debian's kubectl 1.20,
//!   whose kustomize is v2.0.3, when none is there) and each rendered object passes the offline
//!   schema check of PyPI's kubernetes-validate (strict, for the oldest supported and the newest
//!   Kubernetes) plus structural checks. Without a kubectl the rendering tests are skipped with a
//!   loud message, except under CI (`CI` set), where they fail.
//! - `rbac`: least privilege: no wildcards, exactly the expected permissions, Secrets read-only,
//!   Leases only through a Role in the operator namespace, no cluster-wide rules at all in the
//!   namespaced variant.
//! - `workload`: the Deployment is hardened (restricted Pod Security, read-only root, probes on
//!   the named port) and its arguments parse with the operator's own command line; the Service
//!   and the add-ons select it.
//! - `samples`: the samples validate against the CRDs' openAPIV3Schema (with a small validator
//!   written for it, including the CEL rules the CRDs carry) and deserialize into the operator's
//!   types, and every Secret they reference exists with the keys the operator reads.
//! - `credentials`: nothing shipped holds a real-looking credential.
//! - `argocd`: the Argo CD health script (deploy/argocd/health.lua) is run with Lua 5.1 (mlua)
//!   on status objects built by the operator's own condition builder.
//! - `image`: the Dockerfile, the release binary's dependencies (read from the workspace
//!   manifests only, so the check needs no crate the test build did not fetch) and the binary
//!   itself on a read-only filesystem.
//! - `docs`: the kind e2e script and the operations guide.
//! - `chart`: the Helm chart (`helm lint`, `helm template` of the documented set-ups compared
//!   object by object with the kustomizations above and checked like them, values.schema.json,
//!   one value per flag, CRD copies).
//! - `monitoring`: alerts (`promtool test rules`), dashboard and kube-state-metrics
//!   configuration, their copies in deploy/addons/, metric names against a scraped /metrics.
//! - `release`: the workflows (actionlint) and the Dockerfile's build in CI.
//! - `tools`: where helm, promtool and actionlint are (tests/tools/build.sh builds them).

// A test binary: panicking with a message is how its checks fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod argocd;
mod chart;
mod credentials;
mod docs;
mod image;
mod kustomize;
mod monitoring;
mod rbac;
mod release;
mod samples;
mod tools;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use alexa_skill_operator::cli::{Cli, Command as CliCommand, RunArgs};
use clap::Parser;
use serde_json::Value;

/// Namespace the operator runs in (and holds its Lease in).
pub(crate) const OPERATOR_NAMESPACE: &str = "alexa-skill-operator-system";
/// Name of the operator's ServiceAccount, Deployment and roles.
pub(crate) const OPERATOR: &str = "alexa-skill-operator";
/// Every kustomization under deploy/, relative to the repository root. A new one must be added
/// here (see `kustomize::every_kustomization_is_tested`), so nothing ships untested.
pub(crate) const KUSTOMIZATIONS: [&str; 10] = [
    "deploy",
    "deploy/crds",
    "deploy/base",
    "deploy/rbac",
    "deploy/namespaced",
    "deploy/addons/monitoring",
    "deploy/addons/network-policy",
    "deploy/addons/kube-state-metrics",
    "deploy/overlays/production",
    "deploy/samples",
];

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

pub(crate) fn parse_yaml_stream(text: &str, what: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("parse YAML of {what}: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// The kubectl used to render, or None (after a loud message) when there is none outside CI.
fn kubectl() -> Option<PathBuf> {
    let candidate = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"));
    let works = Command::new(&candidate)
        .args(["version", "--client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if works {
        return Some(candidate);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "no working kubectl ({}) under CI: .ci/install must install one",
            candidate.display()
        );
    }
    eprintln!(
        "\n*** SKIPPING deploy/ rendering checks: no working kubectl ({}). Install one \
         (`apt-get install kubernetes-client` or run .ci/install) to run them. ***\n",
        candidate.display()
    );
    None
}

/// One rendered kustomization.
pub(crate) struct Rendered {
    pub(crate) dir: &'static str,
    pub(crate) objects: Vec<Value>,
    pub(crate) text: String,
    pub(crate) stderr: String,
}

impl Rendered {
    pub(crate) fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    pub(crate) fn one(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<&Value> = self
            .objects
            .iter()
            .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .collect();
        assert_eq!(found.len(), 1, "{}: want one {kind}/{name}", self.dir);
        found[0]
    }

    pub(crate) fn keys(&self) -> BTreeSet<(String, String, String)> {
        self.objects.iter().map(object_key).collect()
    }
}

pub(crate) fn object_key(o: &Value) -> (String, String, String) {
    (
        o["kind"].as_str().unwrap_or_default().to_string(),
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn render(kubectl: &Path, dir: &'static str) -> Rendered {
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .unwrap_or_else(|e| panic!("run {} kustomize {dir}: {e}", kubectl.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "`kubectl kustomize {dir}` failed: {stderr}"
    );
    let text = String::from_utf8(out.stdout).expect("kustomize output is UTF-8");
    let objects = parse_yaml_stream(&text, dir);
    assert!(!objects.is_empty(), "{dir} renders no objects");
    Rendered {
        dir,
        objects,
        text,
        stderr,
    }
}

/// Every kustomization rendered once per test run (tests share it), or None without kubectl.
pub(crate) fn render_all() -> Option<&'static BTreeMap<&'static str, Rendered>> {
    static RENDERED: OnceLock<Option<BTreeMap<&'static str, Rendered>>> = OnceLock::new();
    RENDERED
        .get_or_init(|| {
            let kubectl = kubectl()?;
            Some(
                KUSTOMIZATIONS
                    .iter()
                    .map(|dir| (*dir, render(&kubectl, dir)))
                    .collect(),
            )
        })
        .as_ref()
}

/// The Deployment's container arguments, parsed by the operator's own command line.
pub(crate) fn run_args(deployment: &Value) -> RunArgs {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut argv = vec!["alexa-skill-operator".to_string()];
    for a in container["args"].as_array().expect("args") {
        argv.push(a.as_str().expect("string arg").to_string());
    }
    assert!(container["command"].is_null(), "keep the image ENTRYPOINT");
    match Cli::try_parse_from(&argv) {
        Ok(Cli {
            command: CliCommand::Run(args),
        }) => *args,
        Ok(other) => panic!("Deployment args {argv:?} are not `run`: {other:?}"),
        Err(e) => panic!("Deployment args {argv:?} do not parse: {e}"),
    }
}

/// The objects of deploy/samples, read from the files its kustomization lists.
pub(crate) fn samples() -> Vec<Value> {
    // Rendered samples when a kubectl exists; the files themselves otherwise, so the schema
    // checks run everywhere.
    let mut out = Vec::new();
    for line in read("deploy/samples/kustomization.yaml").lines() {
        if let Some(file) = line.trim().strip_prefix("- ") {
            out.extend(parse_yaml_stream(
                &read(&format!("deploy/samples/{file}")),
                file,
            ));
        }
    }
    out
}
