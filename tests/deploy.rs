//! Checks of everything under deploy/ and of the Dockerfile, so a change that breaks an install,
//! widens the operator's permissions or weakens its pod fails here instead of in a cluster.
//!
//! - Every kustomization under deploy/ is rendered with `kubectl kustomize` (whichever kubectl
//!   is on PATH, or `$KUBECTL`; .ci/install installs Debian's kubectl 1.20, whose kustomize is
//!   v2.0.3, when none is there) and each rendered object passes the offline schema check of
//!   PyPI's kubernetes-validate (strict, for the oldest supported and the newest Kubernetes)
//!   plus the structural checks below. Without a kubectl the rendering tests are skipped with a
//!   loud message, except under CI (`CI` set), where they fail.
//! - RBAC is least privilege: no wildcards, exactly the expected permissions, Secrets read-only,
//!   Leases only through a Role in the operator namespace, no cluster-wide rules at all in the
//!   namespaced variant.
//! - The Deployment is hardened (restricted Pod Security, read-only root, probes on the named
//!   port) and its arguments parse with the operator's own command line.
//! - The samples validate against the CRDs' openAPIV3Schema (with a small validator written for
//!   it, including the CEL rules the CRDs carry) and deserialize into the operator's types, and
//!   every Secret they reference exists with the keys the operator reads.
//! - The Argo CD health script (deploy/argocd/health.lua) is run with Lua 5.1 (mlua) on status
//!   objects built by the operator's own condition builder.

// A test binary: panicking with a message is how its checks fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use alexa_skill_operator::cli::{Cli, Command as CliCommand, RunArgs};
use alexa_skill_operator::controller::conditions::{self, Outcome, Phase, Reason};
use alexa_skill_operator::controller::secrets::{
    CLIENT_ID_KEY, CLIENT_SECRET_KEY, REFRESH_TOKEN_KEY,
};
use alexa_skill_operator::crd::{
    SkillAccountLinking, SkillAccountLinkingStatus, SkillEnablement, SkillEnablementStatus,
};
use clap::{CommandFactory, Parser};
use serde_json::{Value, json};

/// Namespace the operator runs in (and holds its Lease in).
const OPERATOR_NAMESPACE: &str = "alexa-skill-operator-system";
/// Name of the operator's ServiceAccount, Deployment and roles.
const OPERATOR: &str = "alexa-skill-operator";
/// Kinds kubernetes-validate has no schema for, and that this file checks itself.
const SELF_CHECKED_KINDS: [&str; 3] = ["ServiceMonitor", "SkillAccountLinking", "SkillEnablement"];
/// Oldest Kubernetes the manifests must validate against: CEL validation rules in CRDs
/// (x-kubernetes-validations with oldSelf) are GA from 1.29.
const OLDEST_KUBERNETES: &str = "1.29";

/// Every kustomization under deploy/, relative to the repository root. A new one must be added
/// here (see `every_kustomization_is_tested`), so nothing ships untested.
const KUSTOMIZATIONS: [&str; 9] = [
    "deploy",
    "deploy/crds",
    "deploy/base",
    "deploy/rbac",
    "deploy/namespaced",
    "deploy/addons/monitoring",
    "deploy/addons/network-policy",
    "deploy/overlays/production",
    "deploy/samples",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn parse_yaml_stream(text: &str, what: &str) -> Vec<Value> {
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
struct Rendered {
    dir: &'static str,
    objects: Vec<Value>,
    text: String,
    stderr: String,
}

impl Rendered {
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    fn one(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<&Value> = self
            .objects
            .iter()
            .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .collect();
        assert_eq!(found.len(), 1, "{}: want one {kind}/{name}", self.dir);
        found[0]
    }

    fn keys(&self) -> BTreeSet<(String, String, String)> {
        self.objects.iter().map(object_key).collect()
    }
}

fn object_key(o: &Value) -> (String, String, String) {
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
fn render_all() -> Option<&'static BTreeMap<&'static str, Rendered>> {
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

// ---------------------------------------------------------------------------------------------
// Layout and rendering
// ---------------------------------------------------------------------------------------------

fn kustomizations_on_disk(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read deploy dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            kustomizations_on_disk(&path, out);
        } else if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            let rel = path
                .parent()
                .expect("has parent")
                .strip_prefix(repo())
                .expect("under repo")
                .to_string_lossy()
                .into_owned();
            out.insert(rel);
        }
    }
}

#[test]
fn every_kustomization_is_tested() {
    let mut found = BTreeSet::new();
    kustomizations_on_disk(&repo().join("deploy"), &mut found);
    let listed: BTreeSet<String> = KUSTOMIZATIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        found, listed,
        "add new kustomizations to KUSTOMIZATIONS in tests/deploy.rs"
    );
}

#[test]
fn crd_copies_in_deploy_match_the_generated_crds() {
    let generated: BTreeSet<String> = std::fs::read_dir(repo().join("crds"))
        .expect("crds/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    let copies: BTreeSet<String> = std::fs::read_dir(repo().join("deploy/crds"))
        .expect("deploy/crds/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(
        generated, copies,
        "deploy/crds/ must hold one copy of each file in crds/"
    );
    for name in &generated {
        assert_eq!(
            read(&format!("crds/{name}")),
            read(&format!("deploy/crds/{name}")),
            "deploy/crds/{name} is stale: run `cp crds/*.yaml deploy/crds/`"
        );
    }
    // Both the CRD-only install and the full install list every CRD.
    let crds_kustomization = read("deploy/crds/kustomization.yaml");
    let full_kustomization = read("deploy/kustomization.yaml");
    for name in &generated {
        assert!(
            crds_kustomization.contains(&format!("- {name}")),
            "deploy/crds/kustomization.yaml misses {name}"
        );
        assert!(
            full_kustomization.contains(&format!("- crds/{name}")),
            "deploy/kustomization.yaml misses crds/{name}"
        );
    }
    // The base/ files the full install lists are exactly base/kustomization.yaml's.
    let base_files = |text: &str, prefix: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("- "))
            .filter_map(|f| f.strip_prefix(prefix))
            .filter(|f| f.ends_with(".yaml"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        base_files(&full_kustomization, "base/"),
        base_files(&read("deploy/base/kustomization.yaml"), ""),
        "deploy/kustomization.yaml and deploy/base/kustomization.yaml list different base files"
    );
}

#[test]
fn the_main_install_renders_exactly_the_expected_objects_without_warnings() {
    let Some(all) = render_all() else { return };
    let full = &all["deploy"];
    let want: BTreeSet<(String, String, String)> = [
        (
            "CustomResourceDefinition",
            "",
            "skillaccountlinkings.alexa.operator.dev",
        ),
        (
            "CustomResourceDefinition",
            "",
            "skillenablements.alexa.operator.dev",
        ),
        ("Namespace", "", OPERATOR_NAMESPACE),
        ("ServiceAccount", OPERATOR_NAMESPACE, OPERATOR),
        (
            "Role",
            OPERATOR_NAMESPACE,
            "alexa-skill-operator-leader-election",
        ),
        (
            "RoleBinding",
            OPERATOR_NAMESPACE,
            "alexa-skill-operator-leader-election",
        ),
        ("ClusterRole", "", OPERATOR),
        ("ClusterRoleBinding", "", OPERATOR),
        ("Deployment", OPERATOR_NAMESPACE, OPERATOR),
        (
            "Service",
            OPERATOR_NAMESPACE,
            "alexa-skill-operator-metrics",
        ),
    ]
    .into_iter()
    .map(|(k, n, m)| (k.to_string(), n.to_string(), m.to_string()))
    .collect();
    assert_eq!(full.keys(), want);
    assert_eq!(
        full.objects.len(),
        want.len(),
        "duplicate objects in deploy/"
    );
    // The paths users type most print no deprecation warnings with any kustomize.
    for dir in [
        "deploy",
        "deploy/crds",
        "deploy/samples",
        "deploy/addons/monitoring",
        "deploy/addons/network-policy",
    ] {
        assert!(
            !all[dir].stderr.to_lowercase().contains("warning"),
            "{dir} renders with warnings: {}",
            all[dir].stderr
        );
    }
    // The CRD-only install is exactly the CRDs, identical to what the full install applies.
    let crds = &all["deploy/crds"];
    assert!(
        crds.objects
            .iter()
            .all(|o| o["kind"] == "CustomResourceDefinition")
    );
    for crd in &crds.objects {
        let name = crd["metadata"]["name"].as_str().expect("name");
        assert_eq!(full.one("CustomResourceDefinition", name), crd);
    }
}

#[test]
fn the_production_overlay_is_the_main_install_plus_the_addons() {
    let Some(all) = render_all() else { return };
    let mut want: Vec<&Value> = all["deploy"].objects.iter().collect();
    want.extend(&all["deploy/addons/monitoring"].objects);
    want.extend(&all["deploy/addons/network-policy"].objects);
    let key = |o: &&Value| object_key(o);
    want.sort_by_key(key);
    let mut have: Vec<&Value> = all["deploy/overlays/production"].objects.iter().collect();
    have.sort_by_key(key);
    assert_eq!(have, want);
}

#[test]
fn every_rendered_object_passes_the_schema_checks() {
    let Some(all) = render_all() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for rendered in all.values() {
        for object in &rendered.objects {
            structural_check(rendered.dir, object);
        }
        let file = dir
            .path()
            .join(format!("{}.yaml", rendered.dir.replace('/', "_")));
        std::fs::write(&file, &rendered.text).expect("write rendered");
        files.push(file);
    }
    // The Argo CD patch is not a kustomization but is applied as it is.
    let argocd = repo().join("deploy/argocd/argocd-cm-patch.yaml");
    for object in parse_yaml_stream(&read("deploy/argocd/argocd-cm-patch.yaml"), "argocd") {
        structural_check("deploy/argocd", &object);
    }
    files.push(argocd);
    kubernetes_validate(&files);
}

/// Checks every object's identity fields, whatever its kind, so the test is useful even where
/// kubernetes-validate is missing.
fn structural_check(dir: &str, o: &Value) {
    let what = format!("{dir}: {:?}", object_key(o));
    let api_version = o["apiVersion"].as_str().unwrap_or_default();
    assert!(!api_version.is_empty(), "{what}: no apiVersion");
    assert!(
        o["kind"].as_str().is_some_and(|k| !k.is_empty()),
        "{what}: no kind"
    );
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    assert!(
        !name.is_empty() && name.len() <= 253,
        "{what}: bad metadata.name"
    );
    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    let kind = o["kind"].as_str().unwrap_or_default();
    let namespace = o["metadata"]["namespace"].as_str();
    if cluster_scoped.contains(&kind) {
        assert!(
            namespace.is_none(),
            "{what}: cluster-scoped object with a namespace"
        );
    } else if dir == "deploy/samples" {
        assert!(
            namespace.is_none(),
            "{what}: samples carry no namespace so `kubectl apply -n NS` places them"
        );
    } else {
        assert!(
            namespace.is_some(),
            "{what}: namespaced object without namespace"
        );
    }
    if kind == "ServiceMonitor" {
        assert_eq!(api_version, "monitoring.coreos.com/v1", "{what}");
        assert!(o["spec"]["selector"]["matchLabels"].is_object(), "{what}");
        let endpoints = o["spec"]["endpoints"].as_array().expect("endpoints");
        assert!(!endpoints.is_empty(), "{what}");
        for e in endpoints {
            assert!(
                e["port"].is_string() && e["path"] == "/metrics",
                "{what}: {e}"
            );
        }
    }
}

/// Runs PyPI's kubernetes-validate (schemas ship inside the package: no network) in strict mode
/// on the rendered files, for the oldest supported and the newest Kubernetes it knows.
fn kubernetes_validate(files: &[PathBuf]) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let available = Command::new(&python)
        .args(["-m", "kubernetes_validate", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !available {
        if std::env::var_os("CI").is_some() {
            panic!("kubernetes-validate missing under CI: .ci/install must install it");
        }
        eprintln!(
            "\n*** SKIPPING kubernetes-validate schema check: `{python} -m kubernetes_validate` \
             does not run (pip install kubernetes-validate). Structural checks still ran. ***\n"
        );
        return;
    }
    for version in [Some(OLDEST_KUBERNETES), None] {
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "kubernetes_validate", "--strict", "--quiet"]);
        if let Some(v) = version {
            cmd.args(["-k", v]);
        }
        let out = cmd.args(files).output().expect("run kubernetes-validate");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut problems = Vec::new();
        for line in report.lines().filter(|l| !l.trim().is_empty()) {
            let self_checked = line.starts_with("WARN")
                && line.contains("Couldn't find schema for kind")
                && SELF_CHECKED_KINDS
                    .iter()
                    .any(|k| line.contains(&format!("kind {k} ")));
            if !self_checked && !line.starts_with("INFO") {
                problems.push(line.to_string());
            }
        }
        assert!(
            out.status.success() && problems.is_empty(),
            "kubernetes-validate (k8s {}) found problems:\n{}",
            version.unwrap_or("latest"),
            problems.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------

/// One permission: (apiGroup, resource, verb).
type Permission = (String, String, String);

fn permissions(role: &Value) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let list = |field: &str| -> Vec<String> {
            rule[field]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().expect("string").to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        for field in [
            "apiGroups",
            "resources",
            "verbs",
            "resourceNames",
            "nonResourceURLs",
        ] {
            for value in list(field) {
                assert!(!value.contains('*'), "wildcard in {field}: {rule}");
            }
        }
        assert!(
            list("nonResourceURLs").is_empty(),
            "the operator needs no non-resource URLs: {rule}"
        );
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

fn perms(list: &[(&str, &[&str], &[&str])]) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in list {
        for resource in *resources {
            for verb in *verbs {
                out.insert((group.to_string(), resource.to_string(), verb.to_string()));
            }
        }
    }
    out
}

/// What the controllers use in the namespaces they watch, and nothing more.
fn workload_permissions() -> BTreeSet<Permission> {
    perms(&[
        (
            "alexa.operator.dev",
            &["skillaccountlinkings", "skillenablements"],
            &["get", "list", "watch", "patch"],
        ),
        (
            "alexa.operator.dev",
            &["skillaccountlinkings/status", "skillenablements/status"],
            &["patch"],
        ),
        (
            "alexa.operator.dev",
            &[
                "skillaccountlinkings/finalizers",
                "skillenablements/finalizers",
            ],
            &["update"],
        ),
        ("", &["secrets"], &["get", "list", "watch"]),
        ("events.k8s.io", &["events"], &["create"]),
    ])
}

fn leader_election_permissions() -> BTreeSet<Permission> {
    perms(&[(
        "coordination.k8s.io",
        &["leases"],
        &["get", "create", "patch"],
    )])
}

/// Checks that hold for every variant: no wildcards, Secrets read-only, Leases only in the
/// operator namespace, every binding names an existing role and only the operator's account.
fn check_common_rbac(r: &Rendered) {
    let roles: Vec<&Value> = r
        .objects
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
        .collect();
    for role in &roles {
        let what = format!("{}: {:?}", r.dir, object_key(role));
        for (group, resource, verb) in permissions(role) {
            if group.is_empty() && resource.starts_with("secrets") {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str()),
                    "{what}: Secrets verb {verb} (only get/list/watch allowed)"
                );
            }
            if resource.starts_with("leases") {
                assert!(
                    role["kind"] == "Role" && role["metadata"]["namespace"] == OPERATOR_NAMESPACE,
                    "{what}: Leases may only be granted in the operator namespace"
                );
            }
        }
    }
    for binding in r
        .objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let what = format!("{}: {:?}", r.dir, object_key(binding));
        let role_kind = binding["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role_name = &binding["roleRef"]["name"];
        let target = roles.iter().find(|role| {
            role["kind"] == role_kind
                && &role["metadata"]["name"] == role_name
                && (role_kind == "ClusterRole"
                    || role["metadata"]["namespace"] == binding["metadata"]["namespace"])
        });
        assert!(
            target.is_some(),
            "{what}: binds a role this variant does not ship"
        );
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": OPERATOR, "namespace": OPERATOR_NAMESPACE}]),
            "{what}: must bind only the operator's ServiceAccount"
        );
    }
}

#[test]
fn cluster_wide_rbac_grants_exactly_what_the_operator_uses() {
    let Some(all) = render_all() else { return };
    let full = &all["deploy"];
    check_common_rbac(full);
    assert_eq!(
        permissions(full.one("ClusterRole", OPERATOR)),
        workload_permissions()
    );
    assert_eq!(
        permissions(full.one("Role", "alexa-skill-operator-leader-election")),
        leader_election_permissions()
    );
    assert_eq!(full.of_kind("ClusterRole").count(), 1);
    assert_eq!(full.of_kind("Role").count(), 1);
    check_common_rbac(&all["deploy/overlays/production"]);
}

#[test]
fn namespaced_rbac_has_no_cluster_wide_rules_and_matches_the_watched_namespaces() {
    let Some(all) = render_all() else { return };
    let ns = &all["deploy/namespaced"];
    check_common_rbac(ns);
    assert_eq!(
        ns.of_kind("ClusterRole").count(),
        0,
        "namespaced variant: no ClusterRole"
    );
    assert_eq!(ns.of_kind("ClusterRoleBinding").count(), 0);
    assert_eq!(
        ns.of_kind("CustomResourceDefinition").count(),
        0,
        "CRDs are installed separately"
    );
    let mut role_namespaces = BTreeSet::new();
    for role in ns.of_kind("Role") {
        let namespace = role["metadata"]["namespace"].as_str().expect("namespace");
        if role["metadata"]["name"] == "alexa-skill-operator-leader-election" {
            assert_eq!(namespace, OPERATOR_NAMESPACE);
            assert_eq!(permissions(role), leader_election_permissions());
        } else {
            assert_eq!(
                permissions(role),
                workload_permissions(),
                "Role in {namespace}"
            );
            role_namespaces.insert(namespace.to_string());
            let bound = ns.of_kind("RoleBinding").any(|b| {
                b["metadata"]["namespace"] == namespace
                    && b["roleRef"]["name"] == role["metadata"]["name"]
            });
            assert!(bound, "Role in {namespace} has no RoleBinding");
        }
    }
    let args = run_args(ns.one("Deployment", OPERATOR));
    let watched: BTreeSet<String> = args.watch_namespaces.iter().cloned().collect();
    assert!(
        !watched.is_empty(),
        "namespaced variant must pass --watch-namespace"
    );
    assert_eq!(
        watched, role_namespaces,
        "--watch-namespace and the namespaces holding Roles must agree"
    );
    // Everything else is the same Deployment as the cluster-wide one.
    let mut cluster = all["deploy"].one("Deployment", OPERATOR).clone();
    let mut namespaced = ns.one("Deployment", OPERATOR).clone();
    for d in [&mut cluster, &mut namespaced] {
        d["spec"]["template"]["spec"]["containers"][0]["args"] = Value::Null;
    }
    assert_eq!(cluster, namespaced);
    assert!(
        run_args(all["deploy"].one("Deployment", OPERATOR))
            .watch_namespaces
            .is_empty()
    );
}

#[test]
fn rbac_checks_catch_wildcards_and_secret_writes() {
    // The checks above must fail on the mistakes they exist for.
    let wildcard = json!({"kind": "ClusterRole", "metadata": {"name": "x"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]});
    assert!(std::panic::catch_unwind(|| permissions(&wildcard)).is_err());
    let write = Rendered {
        dir: "synthetic",
        objects: vec![json!({"kind": "ClusterRole", "metadata": {"name": "x"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "update"]}]})],
        text: String::new(),
        stderr: String::new(),
    };
    assert!(std::panic::catch_unwind(|| check_common_rbac(&write)).is_err());
    let lease = Rendered {
        dir: "synthetic",
        objects: vec![json!({"kind": "ClusterRole", "metadata": {"name": "x"},
            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}]})],
        text: String::new(),
        stderr: String::new(),
    };
    assert!(std::panic::catch_unwind(|| check_common_rbac(&lease)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Deployment, Service, Namespace, add-ons
// ---------------------------------------------------------------------------------------------

/// The Deployment's container arguments, parsed by the operator's own command line.
fn run_args(deployment: &Value) -> RunArgs {
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

fn check_deployment(r: &Rendered) {
    let d = r.one("Deployment", OPERATOR);
    let what = r.dir;
    assert_eq!(d["metadata"]["namespace"], OPERATOR_NAMESPACE);
    assert_eq!(d["spec"]["replicas"], 2, "{what}: leader + standby");
    let pod = &d["spec"]["template"]["spec"];
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    for (k, v) in d["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(&labels[k], v, "{what}: selector must match the pod labels");
    }
    assert_eq!(pod["serviceAccountName"], OPERATOR);
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "{what}: the operator needs its token"
    );
    assert_eq!(
        r.one("ServiceAccount", OPERATOR)["automountServiceAccountToken"],
        false
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{what}: one container");
    assert!(pod["initContainers"].is_null() && pod["hostNetwork"].is_null());
    let c = &containers[0];

    // Effective security context: container fields override pod fields.
    let effective = |field: &str| -> Value {
        let own = &c["securityContext"][field];
        if own.is_null() {
            pod["securityContext"][field].clone()
        } else {
            own.clone()
        }
    };
    assert_eq!(effective("runAsNonRoot"), true, "{what}");
    assert_eq!(effective("runAsUser"), 65532, "{what}");
    assert_eq!(
        effective("seccompProfile"),
        json!({"type": "RuntimeDefault"}),
        "{what}"
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"], false,
        "{what}"
    );
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"], true,
        "{what}"
    );
    assert_eq!(
        c["securityContext"]["capabilities"],
        json!({"drop": ["ALL"]}),
        "{what}"
    );
    assert!(effective("privileged").is_null() || effective("privileged") == false);

    // /tmp is the only writable path.
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    assert_eq!(mounts.len(), 1, "{what}: only /tmp is mounted");
    assert_eq!(mounts[0]["mountPath"], "/tmp");
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mounts[0]["name"])
        .expect("tmp volume");
    assert!(
        volume["emptyDir"].is_object(),
        "{what}: /tmp is an emptyDir"
    );

    for (kind, resource) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "cpu"),
        ("limits", "memory"),
    ] {
        assert!(
            c["resources"][kind][resource].is_string(),
            "{what}: resources.{kind}.{resource}"
        );
    }

    // The metrics/health port is named, matches --metrics-addr, and both probes use it.
    let args = run_args(d);
    assert!(
        args.leader_election,
        "{what}: --leader-election with 2 replicas"
    );
    let port: u16 = args
        .metrics_addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("metrics port");
    assert_eq!(
        c["ports"],
        json!([{"name": "http-metrics", "containerPort": port, "protocol": "TCP"}]),
        "{what}"
    );
    assert_eq!(port, 8080);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            c[probe]["httpGet"]["path"], path,
            "{what}: {probe} must call {path}"
        );
        assert_eq!(
            c[probe]["httpGet"]["port"], "http-metrics",
            "{what}: {probe} port"
        );
    }

    // Environment: downward API for the Lease; every other variable is one `run` reads.
    let env = c["env"].as_array().expect("env");
    let from_field = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(
        from_field("POD_NAMESPACE"),
        Some(json!("metadata.namespace"))
    );
    assert_eq!(from_field("POD_NAME"), Some(json!("metadata.name")));
    let known = run_env_vars();
    for e in env {
        let name = e["name"].as_str().expect("env name");
        assert!(
            known.contains(name) || name == "POD_NAME",
            "{what}: env {name} is read by no `run` flag"
        );
    }

    // Image: the crate's version (bump both together), pulled only when missing.
    let image = c["image"].as_str().expect("image");
    assert_eq!(
        image,
        format!("alexa-skill-operator:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");

    // Graceful shutdown fits inside the termination grace period.
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        grace > args.shutdown_grace.as_secs(),
        "{what}: terminationGracePeriodSeconds {grace} must exceed --shutdown-grace"
    );
}

/// Environment variables `alexa-skill-operator run` reads, from its clap definition.
fn run_env_vars() -> BTreeSet<String> {
    let cli = Cli::command();
    let run = cli
        .get_subcommands()
        .find(|s| s.get_name() == "run")
        .expect("run subcommand");
    run.get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn deployments_are_hardened_and_configured_through_real_flags() {
    let Some(all) = render_all() else { return };
    for dir in ["deploy", "deploy/namespaced", "deploy/overlays/production"] {
        let r = &all[dir];
        check_deployment(r);
        let ns = r.one("Namespace", OPERATOR_NAMESPACE);
        assert_eq!(
            ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
            "{dir}: the operator namespace enforces restricted Pod Security"
        );
        let service = r.one("Service", "alexa-skill-operator-metrics");
        let pod_labels = &r.one("Deployment", OPERATOR)["spec"]["template"]["metadata"]["labels"];
        for (k, v) in service["spec"]["selector"].as_object().expect("selector") {
            assert_eq!(
                &pod_labels[k], v,
                "{dir}: Service selector must match the pods"
            );
        }
        assert_eq!(
            service["spec"]["ports"],
            json!([{"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}])
        );
    }
}

#[test]
fn addons_select_the_operator() {
    let Some(all) = render_all() else { return };
    let full = &all["deploy"];
    let service = full.one("Service", "alexa-skill-operator-metrics");
    let pod_labels = &full.one("Deployment", OPERATOR)["spec"]["template"]["metadata"]["labels"];
    let monitor = all["deploy/addons/monitoring"].one("ServiceMonitor", OPERATOR);
    assert_eq!(monitor["metadata"]["namespace"], OPERATOR_NAMESPACE);
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "ServiceMonitor must select the Service"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    let policy = all["deploy/addons/network-policy"].one("NetworkPolicy", OPERATOR);
    assert_eq!(policy["metadata"]["namespace"], OPERATOR_NAMESPACE);
    for (k, v) in policy["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .expect("podSelector")
    {
        assert_eq!(
            &pod_labels[k], v,
            "NetworkPolicy must select the operator pods"
        );
    }
    assert_eq!(
        policy["spec"]["ingress"][0]["ports"][0]["port"],
        "http-metrics"
    );
    let egress_ports: BTreeSet<i64> = policy["spec"]["egress"]
        .as_array()
        .expect("egress")
        .iter()
        .flat_map(|rule| rule["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(
        egress_ports,
        BTreeSet::from([53, 443, 6443]),
        "DNS, HTTPS, API server"
    );
}

// ---------------------------------------------------------------------------------------------
// Samples against the CRD schemas
// ---------------------------------------------------------------------------------------------

/// The openAPIV3Schema of the CRD for `kind`, from crds/.
fn crd_schema(kind: &str) -> Value {
    for entry in std::fs::read_dir(repo().join("crds")).expect("crds/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read CRD");
        for crd in parse_yaml_stream(&text, "CRD") {
            if crd["spec"]["names"]["kind"] == kind {
                let versions = crd["spec"]["versions"].as_array().expect("versions");
                let served = versions
                    .iter()
                    .find(|v| v["storage"] == true)
                    .unwrap_or(&versions[0]);
                return served["schema"]["openAPIV3Schema"].clone();
            }
        }
    }
    panic!("no CRD for kind {kind} in crds/");
}

/// CEL rules the CRDs carry, evaluated by hand for objects being created. A rule not listed
/// here makes validation fail, so a new rule in the CRDs cannot go unchecked.
fn eval_cel(rule: &str, this: &Value) -> Result<bool, String> {
    let has = |field: &str| this.get(field).is_some_and(|v| !v.is_null());
    let normalized = rule.split_whitespace().collect::<Vec<_>>().join(" ");
    match normalized.as_str() {
        // Transition rules apply to updates only.
        "self == oldSelf" => Ok(true),
        "self.type != 'AUTH_CODE' || (has(self.accessTokenUrl) && has(self.accessTokenScheme) && has(self.clientSecretRef))" => {
            Ok(this["type"] != "AUTH_CODE"
                || (has("accessTokenUrl") && has("accessTokenScheme") && has("clientSecretRef")))
        }
        "self.type == 'AUTH_CODE' || !has(self.defaultTokenExpirationInSeconds)" => {
            Ok(this["type"] == "AUTH_CODE" || !has("defaultTokenExpirationInSeconds"))
        }
        "has(self.credentialsSecretRef) != has(self.customer)" => {
            Ok(has("credentialsSecretRef") != has("customer"))
        }
        other => Err(format!(
            "CEL rule `{other}` is not known to tests/deploy.rs: add it to eval_cel"
        )),
    }
}

/// Whether `n` is above the bound `schema[key]` (bounds may be written as `15` or `15.0`).
fn exceeds(n: usize, schema: &Value, key: &str) -> bool {
    schema[key].as_f64().is_some_and(|m| n as f64 > m)
}

/// Whether `n` is below the bound `schema[key]`.
fn falls_short(n: usize, schema: &Value, key: &str) -> bool {
    schema[key].as_f64().is_some_and(|m| (n as f64) < m)
}

/// Validates `value` against a structural schema the way the API server does on create, and
/// stricter: unknown fields are errors (the API server would silently prune them).
fn validate_schema(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        if schema["nullable"] != true {
            errors.push(format!("{path}: null is not allowed"));
        }
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(map) = value.as_object() else {
                errors.push(format!("{path}: want an object, got {value}"));
                return;
            };
            let properties = schema["properties"].as_object();
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if let Some(sub) = properties.and_then(|p| p.get(key)) {
                    validate_schema(sub, child, &child_path, errors);
                } else if schema["additionalProperties"].is_object() {
                    validate_schema(&schema["additionalProperties"], child, &child_path, errors);
                } else if schema["x-kubernetes-preserve-unknown-fields"] != true {
                    errors.push(format!("{child_path}: unknown field"));
                }
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let key = required.as_str().expect("required name");
                if !map.contains_key(key) {
                    errors.push(format!("{path}.{key}: required"));
                }
            }
            let count = map.len();
            if exceeds(count, schema, "maxProperties") {
                errors.push(format!("{path}: too many properties"));
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                errors.push(format!("{path}: want an array, got {value}"));
                return;
            };
            let n = items.len();
            if exceeds(n, schema, "maxItems") {
                errors.push(format!(
                    "{path}: {n} items, at most {} allowed",
                    schema["maxItems"]
                ));
            }
            if falls_short(n, schema, "minItems") {
                errors.push(format!(
                    "{path}: {n} items, at least {} needed",
                    schema["minItems"]
                ));
            }
            for (i, item) in items.iter().enumerate() {
                validate_schema(&schema["items"], item, &format!("{path}[{i}]"), errors);
            }
        }
        Some("string") => {
            let Some(s) = value.as_str() else {
                errors.push(format!("{path}: want a string, got {value}"));
                return;
            };
            let n = s.chars().count();
            if exceeds(n, schema, "maxLength") {
                errors.push(format!("{path}: longer than {}", schema["maxLength"]));
            }
            if falls_short(n, schema, "minLength") {
                errors.push(format!("{path}: shorter than {}", schema["minLength"]));
            }
            if schema["pattern"].is_string() {
                errors.push(format!(
                    "{path}: schema pattern not supported by this validator"
                ));
            }
        }
        Some("integer") => match value.as_i64() {
            Some(n) => {
                // Bounds may be written as floats (`minimum: 1.0`); integers in a CR stay far
                // below 2^53, so comparing as f64 is exact.
                let n_float = n as f64;
                if schema["minimum"].as_f64().is_some_and(|m| n_float < m) {
                    errors.push(format!("{path}: below minimum {}", schema["minimum"]));
                }
                if schema["maximum"].as_f64().is_some_and(|m| n_float > m) {
                    errors.push(format!("{path}: above maximum {}", schema["maximum"]));
                }
                if schema["format"] == "int32" && i32::try_from(n).is_err() {
                    errors.push(format!("{path}: out of int32 range"));
                }
            }
            None => errors.push(format!("{path}: want an integer, got {value}")),
        },
        Some("number") if !value.is_number() => {
            errors.push(format!("{path}: want a number, got {value}"))
        }
        Some("boolean") if !value.is_boolean() => {
            errors.push(format!("{path}: want a boolean, got {value}"))
        }
        Some("number" | "boolean") => {}
        None if schema["x-kubernetes-int-or-string"] == true => {}
        other => errors.push(format!("{path}: schema type {other:?} not supported")),
    }
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = rule["rule"].as_str().expect("rule text");
        match eval_cel(text, value) {
            Ok(true) => {}
            Ok(false) => errors.push(format!("{path}: {}", rule["message"])),
            Err(e) => errors.push(format!("{path}: {e}")),
        }
    }
}

/// Errors of one custom resource against its CRD (apiVersion, kind and metadata are checked
/// by the API server itself and skipped here).
fn validate_custom_resource(object: &Value) -> Vec<String> {
    let kind = object["kind"].as_str().expect("kind");
    let schema = crd_schema(kind);
    let mut body = object.clone();
    let map = body.as_object_mut().expect("object");
    let mut errors = Vec::new();
    if map.remove("apiVersion") != Some(json!("alexa.operator.dev/v1alpha1")) {
        errors.push("apiVersion must be alexa.operator.dev/v1alpha1".to_string());
    }
    map.remove("kind");
    map.remove("metadata");
    validate_schema(&schema, &body, kind, &mut errors);
    errors
}

fn samples() -> Vec<Value> {
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

#[test]
fn samples_match_the_crd_schemas_and_the_operator_types() {
    let samples = samples();
    let secrets: BTreeMap<String, BTreeSet<String>> = samples
        .iter()
        .filter(|o| o["kind"] == "Secret")
        .map(|s| {
            assert!(
                s["data"].is_null(),
                "sample Secrets use readable stringData"
            );
            let keys = s["stringData"]
                .as_object()
                .expect("stringData")
                .keys()
                .cloned()
                .collect();
            (
                s["metadata"]["name"].as_str().expect("name").to_string(),
                keys,
            )
        })
        .collect();
    let credential_keys: BTreeSet<String> = [CLIENT_ID_KEY, CLIENT_SECRET_KEY, REFRESH_TOKEN_KEY]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let has_credentials = |name: &str| {
        assert!(
            secrets
                .get(name)
                .is_some_and(|k| credential_keys.is_subset(k)),
            "sample Secret {name} with keys {credential_keys:?} is missing"
        );
    };
    let has_key = |name: &str, key: &str| {
        assert!(
            secrets.get(name).is_some_and(|k| k.contains(key)),
            "sample Secret {name} with key {key} is missing"
        );
    };
    let (mut linkings, mut owner_mode, mut customer_mode) = (0, 0, 0);
    for object in &samples {
        let kind = object["kind"].as_str().expect("kind");
        if kind == "Secret" {
            continue;
        }
        let errors = validate_custom_resource(object);
        assert!(errors.is_empty(), "{:?}: {errors:#?}", object_key(object));
        match kind {
            "SkillAccountLinking" => {
                let sal: SkillAccountLinking =
                    serde_json::from_value(object.clone()).expect("sample deserializes");
                has_credentials(&sal.spec.credentials_secret_ref.name);
                let r = sal
                    .spec
                    .account_linking
                    .client_secret_ref
                    .expect("AUTH_CODE sample");
                has_key(&r.name, &r.key);
                linkings += 1;
            }
            "SkillEnablement" => {
                let sen: SkillEnablement =
                    serde_json::from_value(object.clone()).expect("sample deserializes");
                if let Some(r) = &sen.spec.credentials_secret_ref {
                    has_credentials(&r.name);
                    owner_mode += 1;
                }
                if let Some(c) = &sen.spec.customer {
                    has_credentials(&c.token_secret_ref.name);
                    let code = &c.account_link_request.auth_code_secret_ref;
                    has_key(&code.name, &code.key);
                    customer_mode += 1;
                }
            }
            other => panic!("unexpected kind {other} in deploy/samples"),
        }
        let skill = object["spec"]["skillId"].as_str().expect("skillId");
        assert!(
            skill.starts_with("amzn1.ask.skill.00000000-0000-0000-0000-"),
            "samples use the simulator's placeholder skill IDs, not {skill}"
        );
    }
    assert_eq!(
        (linkings, owner_mode, customer_mode),
        (1, 1, 1),
        "one sample per kind and mode"
    );
}

#[test]
fn rendered_samples_equal_the_sample_files() {
    let Some(all) = render_all() else { return };
    let key = |o: &&Value| object_key(o);
    let files = samples();
    let mut want: Vec<&Value> = files.iter().collect();
    want.sort_by_key(key);
    let mut have: Vec<&Value> = all["deploy/samples"].objects.iter().collect();
    have.sort_by_key(key);
    assert_eq!(
        have, want,
        "kustomize changed the samples (e.g. a value's YAML type)"
    );
}

#[test]
fn the_schema_validator_rejects_what_the_api_server_rejects() {
    let samples = samples();
    let sal = samples
        .iter()
        .find(|o| o["kind"] == "SkillAccountLinking")
        .expect("SAL sample");
    let owner = samples
        .iter()
        .find(|o| o["kind"] == "SkillEnablement" && o["spec"]["customer"].is_null())
        .expect("owner sample");
    let customer = samples
        .iter()
        .find(|o| o["kind"] == "SkillEnablement" && o["spec"]["customer"].is_object())
        .expect("customer sample");
    let broken = |base: &Value, edit: &dyn Fn(&mut Value)| {
        let mut o = base.clone();
        edit(&mut o);
        validate_custom_resource(&o)
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "bad enum",
            broken(sal, &|o| o["spec"]["stage"] = json!("beta")),
        ),
        (
            "missing required",
            broken(sal, &|o| {
                o["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("credentialsSecretRef");
            }),
        ),
        (
            "unknown field",
            broken(sal, &|o| o["spec"]["colour"] = json!("blue")),
        ),
        (
            "wrong type",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]["defaultTokenExpirationInSeconds"] = json!("3600");
            }),
        ),
        (
            "too many items",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]["scopes"] = json!(vec!["s"; 16]);
            }),
        ),
        (
            "too long",
            broken(sal, &|o| o["spec"]["skillId"] = json!("x".repeat(256))),
        ),
        (
            "empty string",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]["clientId"] = json!("")
            }),
        ),
        (
            "below minimum",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]["defaultTokenExpirationInSeconds"] = json!(0);
            }),
        ),
        (
            "AUTH_CODE without token URL",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]
                    .as_object_mut()
                    .unwrap()
                    .remove("accessTokenUrl");
            }),
        ),
        (
            "both modes",
            broken(owner, &|o| {
                o["spec"]["customer"] = customer["spec"]["customer"].clone()
            }),
        ),
        (
            "neither mode",
            broken(owner, &|o| {
                o["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("credentialsSecretRef");
            }),
        ),
        (
            "bad deletionPolicy",
            broken(customer, &|o| o["spec"]["deletionPolicy"] = json!("Keep")),
        ),
    ];
    for (name, errors) in cases {
        assert!(
            !errors.is_empty(),
            "validator accepted a sample with {name}"
        );
    }
    assert!(
        eval_cel("self.size() > 0", &json!({})).is_err(),
        "unknown rules must fail"
    );
}

// ---------------------------------------------------------------------------------------------
// No real credentials anywhere we ship
// ---------------------------------------------------------------------------------------------

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn shipped_files_hold_only_placeholder_credentials() {
    let mut files = Vec::new();
    files_under(&repo().join("deploy"), &mut files);
    for extra in ["Dockerfile", "docs/OPERATIONS.md", "tests/e2e-kind.sh"] {
        files.push(repo().join(extra));
    }
    // Shapes of real Login with Amazon values: client IDs, client secrets, refresh and access
    // tokens. Placeholders never look like these.
    let real_shapes = [
        "amzn1.application-oa2-client.",
        "amzn1.oa2-cs.",
        "Atzr|IwEB",
        "Atza|",
    ];
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for shape in real_shapes {
            assert!(
                !text.contains(shape),
                "{} contains something shaped like a real LWA credential ({shape}…)",
                file.display()
            );
        }
    }
    for secret in samples().iter().filter(|o| o["kind"] == "Secret") {
        for (key, value) in secret["stringData"].as_object().expect("stringData") {
            let value = value.as_str().expect("string value");
            let placeholder = value.contains("sandbox")
                || value.contains("example")
                || value.ends_with(|c: char| c.is_ascii_digit())
                    && value.contains("-partner-code-");
            assert!(
                placeholder,
                "sample Secret {}: {key} must be an obvious placeholder, not {value:?}",
                secret["metadata"]["name"]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Argo CD health
// ---------------------------------------------------------------------------------------------

/// Runs deploy/argocd/health.lua on `object` as Argo CD would: the object as global `obj`,
/// the script's return value a table with `status` and `message`.
fn argo_health(object: &Value) -> (String, String) {
    use mlua::LuaSerdeExt;
    let lua = mlua::Lua::new();
    // JSON null becomes nil, as in Argo CD's conversion of the object.
    let options = mlua::SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua.to_value_with(object, options).expect("object to Lua");
    lua.globals().set("obj", obj).expect("set obj");
    let hs: mlua::Table = lua
        .load(read("deploy/argocd/health.lua"))
        .set_name("health.lua")
        .eval()
        .expect("health.lua runs");
    (
        hs.get::<String>("status").expect("status"),
        hs.get::<String>("message").expect("message"),
    )
}

/// The SkillAccountLinking sample with the status the operator writes for `outcome`.
fn with_status(kind: &str, outcome: &Outcome, generation: i64, observed: Option<i64>) -> Value {
    let conditions = conditions::build(&[], outcome, observed, k8s_openapi::jiff::Timestamp::now());
    let status = match kind {
        "SkillAccountLinking" => serde_json::to_value(SkillAccountLinkingStatus {
            observed_generation: observed,
            conditions,
            ..Default::default()
        }),
        _ => serde_json::to_value(SkillEnablementStatus {
            observed_generation: observed,
            conditions,
            ..Default::default()
        }),
    }
    .expect("status to JSON");
    let mut object = samples()
        .into_iter()
        .find(|o| o["kind"] == kind)
        .expect("sample of kind");
    object["metadata"]["generation"] = json!(generation);
    object["status"] = status;
    object
}

#[test]
fn argo_cd_health_maps_every_state() {
    for kind in ["SkillAccountLinking", "SkillEnablement"] {
        let mut no_status = with_status(kind, &Outcome::ready("x"), 1, Some(1));
        no_status.as_object_mut().unwrap().remove("status");
        assert_eq!(
            argo_health(&no_status).0,
            "Progressing",
            "{kind}: no status yet"
        );

        let mut empty = no_status.clone();
        empty["status"] = json!({"conditions": []});
        assert_eq!(argo_health(&empty).0, "Progressing", "{kind}: empty status");

        let ready = Outcome::ready("Account linking matches the spec.");
        assert_eq!(
            argo_health(&with_status(kind, &ready, 2, Some(2))),
            (
                "Healthy".to_string(),
                "Account linking matches the spec.".to_string()
            )
        );
        let stale = argo_health(&with_status(kind, &ready, 3, Some(2)));
        assert_eq!(
            stale.0, "Progressing",
            "{kind}: spec changed, not yet observed"
        );
        assert!(stale.1.contains("generation 3"), "{stale:?}");

        let paused = Outcome::idle(
            Reason::Paused,
            "Paused by annotation alexa.operator.dev/paused.",
        );
        assert_eq!(
            argo_health(&with_status(kind, &paused, 2, Some(2))),
            ("Suspended".to_string(), paused.message.clone())
        );

        let stalled = Outcome::stalled(
            Reason::CredentialsInvalid,
            "LWA refused the refresh token (invalid_grant).",
        );
        assert_eq!(
            argo_health(&with_status(kind, &stalled, 2, Some(2))),
            ("Degraded".to_string(), stalled.message.clone())
        );

        let drift = Outcome::idle(
            Reason::DriftDetected,
            "Observe mode: accountLinking.scopes differ from Amazon.",
        );
        assert_eq!(
            argo_health(&with_status(kind, &drift, 2, Some(2))),
            ("Degraded".to_string(), drift.message.clone())
        );

        let throttled = Outcome::progressing(Reason::Throttled, "Amazon asked to retry after 30s.");
        assert_eq!(
            argo_health(&with_status(kind, &throttled, 2, Some(2))),
            ("Progressing".to_string(), throttled.message.clone())
        );
    }
}

#[test]
fn argo_cd_health_follows_the_kstatus_phase_for_every_reason() {
    for reason in Reason::ALL {
        for phase in [
            Phase::Ready,
            Phase::Progressing,
            Phase::Stalled,
            Phase::Idle,
        ] {
            let outcome = Outcome {
                phase,
                reason,
                message: format!("{reason} in {phase:?}"),
            };
            let want = match (phase, reason) {
                (Phase::Ready, _) => "Healthy",
                (_, Reason::Paused) => "Suspended",
                // Drift being repaired (Reconciling=True) is progress, not degradation.
                (Phase::Stalled, _) | (Phase::Idle, Reason::DriftDetected) => "Degraded",
                _ => "Progressing",
            };
            let (status, message) =
                argo_health(&with_status("SkillAccountLinking", &outcome, 4, Some(4)));
            assert_eq!(status, want, "{reason} in {phase:?}");
            assert_eq!(
                message, outcome.message,
                "message comes from the Ready condition"
            );
        }
    }
}

/// Header of deploy/argocd/argocd-cm-patch.yaml; the data keys follow, generated.
const ARGOCD_PATCH_HEADER: &str = "\
# Argo CD resource health for the operator's kinds, as a patch of argocd-cm. Apply with
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file deploy/argocd/argocd-cm-patch.yaml
# (or add it to the kustomization that installs Argo CD). Both values are deploy/argocd/health.lua
# verbatim: edit that file, then regenerate this one with
#   UPDATE_DEPLOY=1 cargo test --test deploy argo_cd_configmap
# (tests/deploy.rs fails when they differ). Argo CD then shows these objects as Healthy,
# Progressing, Suspended (paused) or Degraded (stalled, or drifted in Observe mode), and a sync
# that waits for health waits for Ready.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
";

/// The argocd-cm patch as it must be: one key per kind, each holding health.lua.
fn argocd_patch(script: &str) -> String {
    let mut out = ARGOCD_PATCH_HEADER.to_string();
    for crd in alexa_skill_operator::crd::all() {
        out.push_str(&format!(
            "  resource.customizations.health.{}_{}: |\n",
            crd.spec.group, crd.spec.names.kind
        ));
        for line in script.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

#[test]
fn argo_cd_configmap_patch_embeds_the_health_script_for_both_kinds() {
    let script = read("deploy/argocd/health.lua");
    let want_text = argocd_patch(&script);
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::write(
            repo().join("deploy/argocd/argocd-cm-patch.yaml"),
            &want_text,
        )
        .expect("write argocd-cm-patch.yaml");
    }
    assert_eq!(
        read("deploy/argocd/argocd-cm-patch.yaml"),
        want_text,
        "deploy/argocd/argocd-cm-patch.yaml is stale: \
         UPDATE_DEPLOY=1 cargo test --test deploy argo_cd_configmap"
    );
    let patch = parse_yaml_stream(&read("deploy/argocd/argocd-cm-patch.yaml"), "argocd-cm");
    assert_eq!(patch.len(), 1);
    let cm = &patch[0];
    assert_eq!(
        (cm["kind"].as_str(), cm["metadata"]["name"].as_str()),
        (Some("ConfigMap"), Some("argocd-cm"))
    );
    let data = cm["data"].as_object().expect("data");
    let want: BTreeSet<String> = alexa_skill_operator::crd::all()
        .iter()
        .map(|c| {
            format!(
                "resource.customizations.health.{}_{}",
                c.spec.group, c.spec.names.kind
            )
        })
        .collect();
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), want);
    for (key, value) in data {
        assert_eq!(
            value.as_str(),
            Some(script.as_str()),
            "{key} differs from health.lua"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Dockerfile, e2e script, docs
// ---------------------------------------------------------------------------------------------

#[test]
fn dockerfile_builds_only_the_operator_into_a_pinned_non_root_distroless_image() {
    let dockerfile = read("Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = instructions
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "multi-stage: builder + runtime");
    for from in &froms {
        let image = from.split_whitespace().next().expect("image");
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
        assert!(!tag.is_empty() && tag != "latest", "pin {image} by tag");
    }
    assert!(
        froms[0].starts_with("rust:1.") && froms[0].contains("bookworm"),
        "{}",
        froms[0]
    );
    assert_eq!(froms[1], "gcr.io/distroless/cc-debian12:nonroot");
    assert!(dockerfile.contains("cargo build --release --locked --bin alexa-skill-operator"));
    let last_stage = &instructions[instructions
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("FROM")..];
    assert!(
        last_stage.contains(&"USER 65532:65532"),
        "non-root in the final stage"
    );
    assert!(last_stage.contains(&r#"ENTRYPOINT ["/alexa-skill-operator"]"#));
    assert!(last_stage.contains(&r#"CMD ["run"]"#));
    assert!(
        !last_stage.iter().any(|l| l.starts_with("RUN ")),
        "the runtime stage has no shell to RUN with"
    );
    let dockerignore = read(".dockerignore");
    let ignore: Vec<&str> = dockerignore.lines().map(str::trim).collect();
    for must in ["target/", ".git/"] {
        assert!(ignore.contains(&must), ".dockerignore must exclude {must}");
    }
    for needed in [
        "src",
        "src/",
        "crates",
        "crates/",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        assert!(
            !ignore.contains(&needed),
            ".dockerignore must not exclude {needed}"
        );
    }
}

/// Dependencies of one workspace package as its manifest declares them: (name, kind), the kind
/// being "normal", "dev" or "build".
fn declared_dependencies(package: &Value) -> Vec<(String, String)> {
    package["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .map(|d| {
            let name = d["name"].as_str().expect("dependency name").to_string();
            let kind = d["kind"].as_str().unwrap_or("normal").to_string();
            (name, kind)
        })
        .collect()
}

/// Reads only the workspace's own manifests (`--no-deps`): nothing to download, no lock file
/// to satisfy, so it works on a fresh machine whose cargo cache holds only what `cargo test`
/// fetched (the full graph would need every platform's crates from Cargo.lock).
#[test]
fn the_test_server_crate_is_only_a_dev_dependency() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(repo())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let workspace: BTreeMap<String, Vec<(String, String)>> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("package name").to_string();
            (name, declared_dependencies(p))
        })
        .collect();
    assert!(
        workspace.contains_key("kube-test-server"),
        "kube-test-server is a workspace member: {:?}",
        workspace.keys()
    );
    let operator = &workspace["alexa-skill-operator"];
    let kinds: Vec<&str> = operator
        .iter()
        .filter(|(name, _)| name == "kube-test-server")
        .map(|(_, kind)| kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        ["dev"],
        "kube-test-server must be only a dev-dependency of the operator"
    );
    // Nor may it arrive through another workspace crate the operator ships with: walk the
    // workspace members reachable over normal and build dependencies (a crate from a registry
    // cannot depend on kube-test-server, which is never published).
    let mut shipped = vec!["alexa-skill-operator".to_string()];
    let mut seen = BTreeSet::new();
    while let Some(package) = shipped.pop() {
        if !seen.insert(package.clone()) {
            continue;
        }
        for (name, kind) in &workspace[&package] {
            if kind == "dev" || !workspace.contains_key(name) {
                continue;
            }
            assert_ne!(
                name, "kube-test-server",
                "{package} ({kind} dependency) pulls kube-test-server into the release binary"
            );
            shipped.push(name.clone());
        }
    }
}

/// The operator binary cargo built for this test run (same code as the release build, with
/// symbols: the release profile strips them).
const BINARY: &str = env!("CARGO_BIN_EXE_alexa-skill-operator");

#[test]
fn the_binary_links_no_test_server_code() {
    let bytes = std::fs::read(BINARY).expect("read binary");
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"alexa_skill_operator"),
        "symbols expected in the test build"
    );
    assert!(
        !contains(b"kube_test_server"),
        "crates/kube-test-server code is linked into the operator binary"
    );
}

/// What the container does: the binary started from an empty working directory, with the
/// whole filesystem read-only except a fresh /tmp and no HOME. Uses a private mount namespace
/// (`unshare`, root); where that is not allowed the read-only part is skipped loudly.
#[test]
fn the_binary_runs_from_an_empty_directory_on_a_read_only_filesystem() {
    let empty = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    // The checkout may itself live under /tmp (CI clones anywhere), and the fresh tmpfs on /tmp
    // would hide it: enter the working directory and open the binary first, then run it
    // through its file descriptor.
    let script = r#"set -e
mount --bind / / && mount -o remount,bind,ro /
mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"
cd "$1"
exec 3<"$2"
mount -t tmpfs -o size=16m tmpfs /tmp
if touch probe 2>/dev/null; then echo "working directory is writable" >&2; exit 97; fi
exec env -i PATH=/usr/bin:/bin TMPDIR=/tmp /proc/self/fd/3 crd"#;
    let namespaces_work = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind / / && mount -o remount,bind,ro / && mount -t tmpfs tmpfs /tmp")
        .output()
        .is_ok_and(|o| o.status.success());
    let out = if namespaces_work {
        let out = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(empty.path())
            .arg(BINARY)
            .output()
            .expect("run unshare");
        assert_ne!(
            out.status.code(),
            Some(97),
            "read-only mount did not take effect"
        );
        out
    } else {
        eprintln!(
            "\n*** read-only filesystem part SKIPPED: no private mount namespace here \
             (needs root and unshare); running from an empty directory only ***\n"
        );
        Command::new(BINARY)
            .arg("crd")
            .current_dir(empty.path())
            .env_clear()
            .env("TMPDIR", "/tmp")
            .output()
            .expect("run binary")
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = String::new();
    for crd in alexa_skill_operator::crd::all() {
        want.push_str("---\n");
        want.push_str(&alexa_skill_operator::crd::to_yaml(&crd).expect("yaml"));
    }
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert!(
        std::fs::read_dir(empty.path())
            .expect("read dir")
            .next()
            .is_none(),
        "the binary wrote into its working directory"
    );
}

#[test]
fn the_kind_e2e_script_is_valid_bash_and_says_where_it_runs() {
    let path = repo().join("tests/e2e-kind.sh");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash -n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = read("tests/e2e-kind.sh");
    let header: String = script.lines().take(15).collect::<Vec<_>>().join("\n");
    assert!(
        header.contains("cannot run in this project's CI"),
        "say so at the top"
    );
    for needed in [
        "kind create cluster",
        "kind load docker-image",
        "args: [simulate, --listen, 0.0.0.0:9100, --allow-remote]",
        "--smapi-url=http://alexa-simulator:9100",
        "--lwa-url=http://alexa-simulator:9100/auth/o2/token",
        "--customer-discovery-url=http://alexa-simulator:9100",
        "kubectl wait --for=condition=Ready",
    ] {
        assert!(
            script.contains(needed),
            "e2e-kind.sh must contain `{needed}`"
        );
    }
    // The flags it passes exist.
    let flags = [
        "--smapi-url=http://alexa-simulator:9100",
        "--lwa-url=http://alexa-simulator:9100/auth/o2/token",
        "--customer-discovery-url=http://alexa-simulator:9100",
        "--endpoint-override=api.amazonalexa.com=http://alexa-simulator:9100",
    ];
    let argv = ["alexa-skill-operator", "run", "--leader-election"]
        .into_iter()
        .chain(flags);
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!("flags used by e2e-kind.sh do not parse: {e}");
    }
}

#[test]
fn operations_guide_covers_install_upgrade_uninstall_gitops_and_security() {
    let doc = read("docs/OPERATIONS.md");
    for heading in [
        "## Install",
        "## Upgrading",
        "## Uninstalling",
        "## GitOps",
        "## Security",
    ] {
        assert!(
            doc.contains(heading),
            "docs/OPERATIONS.md lacks `{heading}`"
        );
    }
    for needed in [
        "kubectl apply -k deploy/",
        "kubectl apply -k deploy/crds/",
        "kubectl apply -k deploy/namespaced/",
        "kubectl wait --for=condition=Ready",
        "deletionPolicy: Orphan",
        "healthChecks",
        "resource.customizations.health.alexa.operator.dev_SkillAccountLinking",
    ] {
        assert!(
            doc.contains(needed),
            "docs/OPERATIONS.md must mention `{needed}`"
        );
    }
    // Every flag and environment variable the manifests set is documented. (All of `run`'s
    // flags are in the table today; only these are enforced, so a new flag elsewhere in the
    // project does not fail this file's tests.)
    let deployment = &parse_yaml_stream(&read("deploy/base/deployment.yaml"), "deployment")[0];
    let patch = &parse_yaml_stream(&read("deploy/namespaced/deployment-patch.yaml"), "patch")[0];
    for d in [deployment, patch] {
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        for arg in c["args"].as_array().expect("args").iter().skip(1) {
            let flag = arg.as_str().expect("arg").split('=').next().expect("flag");
            assert!(
                doc.contains(&format!("`{flag}`")),
                "docs/OPERATIONS.md must document {flag}"
            );
        }
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().expect("env name");
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/OPERATIONS.md must document {name}"
            );
        }
    }
}
