//! RBAC is least privilege in both the cluster-wide and the namespaced variant.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::{OPERATOR, OPERATOR_NAMESPACE, Rendered, object_key, render_all, run_args};

/// One permission: (apiGroup, resource, verb).
type Permission = (String, String, String);

pub(crate) fn permissions(role: &Value) -> BTreeSet<Permission> {
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

/// What the controllers use in the namespaces they watch, and nothing more: the cluster-wide
/// install also follows ClusterAlexaCredentials, which a Role cannot grant.
fn workload_permissions(cluster: bool) -> BTreeSet<Permission> {
    let mut kinds = vec![
        "skillaccountlinkings",
        "skillenablements",
        "alexacredentials",
    ];
    if cluster {
        kinds.push("clusteralexacredentials");
    }
    let sub =
        |suffix: &str| -> Vec<String> { kinds.iter().map(|k| format!("{k}/{suffix}")).collect() };
    let (status, finalizers) = (sub("status"), sub("finalizers"));
    let status: Vec<&str> = status.iter().map(String::as_str).collect();
    let finalizers: Vec<&str> = finalizers.iter().map(String::as_str).collect();
    perms(&[
        (
            "alexa.operator.dev",
            &kinds,
            &["get", "list", "watch", "patch"],
        ),
        ("alexa.operator.dev", &status, &["patch"]),
        ("alexa.operator.dev", &finalizers, &["update"]),
        ("", &["secrets"], &["get", "list", "watch"]),
        ("events.k8s.io", &["events"], &["create"]),
        ("", &["namespaces"], &["get"]),
        // spec.exports.configMapName: read by name, created, updated when the URLs change.
        ("", &["configmaps"], &["get", "create", "patch"]),
    ])
}

/// The digest key Role: read its one Secret, create it on first start.
const DIGEST_KEY_ROLE: &str = "alexa-skill-operator-digest-key";

fn digest_key_permissions() -> BTreeSet<Permission> {
    perms(&[("", &["secrets"], &["get", "create"])])
}

/// The digest key Role reads only its own Secret (resourceNames), and `create` (which
/// Kubernetes cannot limit by name) is granted in the operator namespace only.
fn check_digest_key_role(role: &Value) {
    assert_eq!(role["kind"], "Role");
    assert_eq!(role["metadata"]["namespace"], OPERATOR_NAMESPACE);
    assert_eq!(permissions(role), digest_key_permissions());
    for rule in role["rules"].as_array().expect("rules") {
        let verbs = rule["verbs"].as_array().expect("verbs");
        if verbs.iter().any(|v| v != "create") {
            assert_eq!(
                rule["resourceNames"],
                json!([alexa_skill_operator::controller::digest::KEY_SECRET_NAME]),
                "reading Secrets must name the key Secret: {rule}"
            );
        }
    }
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
pub(crate) fn check_common_rbac(r: &Rendered) {
    let roles: Vec<&Value> = r
        .objects
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
        .collect();
    for role in &roles {
        let what = format!("{}: {:?}", r.dir, object_key(role));
        for (group, resource, verb) in permissions(role) {
            let digest_key_role = role["kind"] == "Role"
                && role["metadata"]["name"] == DIGEST_KEY_ROLE
                && role["metadata"]["namespace"] == OPERATOR_NAMESPACE;
            if group.is_empty() && resource.starts_with("secrets") {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str())
                        || (verb == "create" && digest_key_role),
                    "{what}: Secrets verb {verb} (only get/list/watch allowed, and create of the digest key in the operator namespace)"
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
        workload_permissions(true)
    );
    assert_eq!(
        permissions(full.one("Role", "alexa-skill-operator-leader-election")),
        leader_election_permissions()
    );
    check_digest_key_role(full.one("Role", DIGEST_KEY_ROLE));
    assert_eq!(full.of_kind("ClusterRole").count(), 1);
    assert_eq!(full.of_kind("Role").count(), 2);
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
        } else if role["metadata"]["name"] == DIGEST_KEY_ROLE {
            check_digest_key_role(role);
        } else {
            assert_eq!(
                permissions(role),
                workload_permissions(false),
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
    // The checks above must fail on the mistakes they exist for: (mistake, one rule of a
    // ClusterRole).
    let mistakes = [
        (
            "a wildcard verb (on a resource nothing else forbids)",
            json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}),
        ),
        (
            "writing Secrets",
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "update"]}),
        ),
        (
            "creating Secrets cluster-wide",
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}),
        ),
        (
            "Leases cluster-wide",
            json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}),
        ),
    ];
    for (mistake, rule) in mistakes {
        let role = json!({"kind": "ClusterRole", "metadata": {"name": "x"}, "rules": [rule]});
        let rendered = Rendered {
            dir: "synthetic",
            objects: vec![role],
            text: String::new(),
            stderr: String::new(),
        };
        assert!(
            std::panic::catch_unwind(|| check_common_rbac(&rendered)).is_err(),
            "the RBAC checks accept {mistake}"
        );
    }
}
