//! The kustomizations under deploy/: each one listed and rendered, the CRD copies current, the
//! main install exactly the expected objects, every rendered object schema-checked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{
    KUSTOMIZATIONS, OPERATOR, OPERATOR_NAMESPACE, object_key, parse_yaml_stream, read, render_all,
    repo,
};

/// Kinds kubernetes-validate has no schema for, and that these tests check themselves.
const SELF_CHECKED_KINDS: [&str; 4] = [
    "PrometheusRule",
    "ServiceMonitor",
    "SkillAccountLinking",
    "SkillEnablement",
];
/// Oldest Kubernetes the manifests must validate against: CEL validation rules in CRDs
/// (x-kubernetes-validations with oldSelf) are GA from 1.29.
const OLDEST_KUBERNETES: &str = "1.29";

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
        "add new kustomizations to KUSTOMIZATIONS in tests/deploy/main.rs"
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
        (
            "CustomResourceDefinition",
            "",
            "alexacredentials.alexa.operator.dev",
        ),
        (
            "CustomResourceDefinition",
            "",
            "clusteralexacredentials.alexa.operator.dev",
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
        (
            "Role",
            OPERATOR_NAMESPACE,
            "alexa-skill-operator-digest-key",
        ),
        (
            "RoleBinding",
            OPERATOR_NAMESPACE,
            "alexa-skill-operator-digest-key",
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
pub(crate) fn structural_check(dir: &str, o: &Value) {
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
    if kind == "PrometheusRule" {
        assert_eq!(api_version, "monitoring.coreos.com/v1", "{what}");
        let groups = o["spec"]["groups"].as_array().expect("spec.groups");
        assert!(!groups.is_empty(), "{what}");
        for rule in groups
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules"))
        {
            assert!(
                rule["alert"].is_string() && rule["expr"].is_string(),
                "{what}: {rule}"
            );
        }
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
pub(crate) fn kubernetes_validate(files: &[PathBuf]) {
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
