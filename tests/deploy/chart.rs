//! The Helm chart (charts/alexa-skill-operator): `helm lint`, and `helm template` with the
//! default, namespaced and all-add-ons values, each checked like deploy/ (schema, RBAC,
//! Deployment) and compared object by object with what `kubectl kustomize` renders from deploy/,
//! so the chart and the kustomizations cannot drift apart. Needs helm (crate::tools).

use std::collections::BTreeSet;
use std::path::PathBuf;

use alexa_skill_operator::cli::Cli;
use clap::CommandFactory;
use serde_json::Value;

use crate::kustomize::{kubernetes_validate, structural_check};
use crate::rbac::{check_common_rbac, permissions};
use crate::tools::{report, run, tool};
use crate::workload::check_deployment;
use crate::{
    OPERATOR, OPERATOR_NAMESPACE, Rendered, object_key, parse_yaml_stream, read, render_all, repo,
};

const CHART: &str = "charts/alexa-skill-operator";
/// Labels Helm's conventions add on top of deploy/'s (stripped before comparing).
const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];
/// Values of the three documented set-ups.
const NAMESPACED: &[&str] = &["--set", "watchNamespaces={alexa-skills}"];
const ALL_ADDONS: &[&str] = &[
    "--set",
    "serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true",
    "--set",
    "networkPolicy.enabled=true,kubeStateMetrics.enabled=true",
];

fn helm() -> Option<PathBuf> {
    tool("helm")
}

/// `helm template` of the chart into the operator namespace; Err(output) when helm refuses.
fn template(helm: &PathBuf, extra: &[&str]) -> Result<String, String> {
    let mut args = vec!["template", "alexa-skill-operator", CHART];
    args.extend(["--namespace", OPERATOR_NAMESPACE]);
    args.extend(extra);
    let out = run(helm, &args);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("UTF-8"))
    } else {
        Err(report(&out))
    }
}

/// The chart rendered with `extra` values, Helm's own labels removed.
fn render(helm: &PathBuf, dir: &'static str, extra: &[&str]) -> Rendered {
    let text = template(helm, extra).unwrap_or_else(|e| panic!("{dir}: helm template: {e}"));
    let mut objects = parse_yaml_stream(&text, dir);
    // CRDs come verbatim from the chart's crds/ (compared with crds/ on their own).
    for o in objects
        .iter_mut()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
    {
        let labels = o["metadata"]["labels"].as_object_mut().expect("labels");
        for l in HELM_LABELS {
            assert!(
                labels.remove(l).is_some(),
                "{dir}: {:?} lacks {l}",
                object_key(o)
            );
        }
    }
    Rendered {
        dir,
        objects,
        text,
        stderr: String::new(),
    }
}

fn sorted(objects: &[Value]) -> Vec<&Value> {
    let mut v: Vec<&Value> = objects.iter().collect();
    v.sort_by_key(|o| object_key(o));
    v
}

/// Numbers compared by value: one renderer writes `1.0` where the other writes `1`.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Value::from(f as i64),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalized(v))).collect())
        }
        other => other.clone(),
    }
}

/// The path of the first difference between two values, with both sides there.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (p, q) = (x.get(k).cloned(), y.get(k).cloned());
                first_difference(
                    &p.unwrap_or_default(),
                    &q.unwrap_or_default(),
                    format!("{path}.{k}"),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: chart {a}, kustomize {b}")),
    }
}

/// Object by object equality, with the first differing object named.
fn assert_same(chart: &[Value], kustomize: &[&Value], what: &str) {
    let chart = sorted(chart);
    let mut kustomize = kustomize.to_vec();
    kustomize.sort_by_key(|o| object_key(o));
    let keys = |v: &[&Value]| v.iter().map(|o| object_key(o)).collect::<Vec<_>>();
    assert_eq!(keys(&chart), keys(&kustomize), "{what}: different objects");
    for (c, k) in chart.iter().zip(&kustomize) {
        if let Some(diff) = first_difference(&normalized(c), &normalized(k), String::new()) {
            panic!("{what}: {:?} differs at {diff}", object_key(c));
        }
    }
}

#[test]
fn helm_lint_passes_for_every_documented_setup() {
    let Some(helm) = helm() else { return };
    for extra in [&[][..], NAMESPACED, ALL_ADDONS] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend(extra);
        let out = run(&helm, &args);
        assert!(
            out.status.success(),
            "helm lint {extra:?}: {}",
            report(&out)
        );
    }
}

#[test]
fn the_default_chart_renders_exactly_deploy() {
    let Some(helm) = helm() else { return };
    let Some(all) = render_all() else { return };
    let chart = render(
        &helm,
        "chart",
        &["--include-crds", "--set", "namespace.create=true"],
    );
    let want: Vec<&Value> = all["deploy"].objects.iter().collect();
    assert_same(&chart.objects, &want, "chart vs deploy/");
}

#[test]
fn the_namespaced_chart_renders_exactly_deploy_namespaced() {
    let Some(helm) = helm() else { return };
    let Some(all) = render_all() else { return };
    let mut extra = NAMESPACED.to_vec();
    extra.extend(["--set", "namespace.create=true"]);
    let chart = render(&helm, "chart namespaced", &extra);
    let want: Vec<&Value> = all["deploy/namespaced"].objects.iter().collect();
    assert_same(
        &chart.objects,
        &want,
        "namespaced chart vs deploy/namespaced/",
    );
}

#[test]
fn the_chart_with_every_addon_renders_the_production_overlay_and_the_kube_state_metrics_addon() {
    let Some(helm) = helm() else { return };
    let Some(all) = render_all() else { return };
    let mut extra = ALL_ADDONS.to_vec();
    extra.extend(["--include-crds", "--set", "namespace.create=true"]);
    let chart = render(&helm, "chart all add-ons", &extra);
    let mut want: Vec<&Value> = all["deploy/overlays/production"].objects.iter().collect();
    want.extend(&all["deploy/addons/kube-state-metrics"].objects);
    assert_same(
        &chart.objects,
        &want,
        "chart with add-ons vs deploy/ with add-ons",
    );
}

/// What `helm install` applies by default (no Namespace object): the same RBAC rules and
/// Deployment security settings as `kubectl apply -k deploy/`, named explicitly so a drift says
/// which rule or setting moved.
#[test]
fn helm_install_grants_the_same_rbac_and_security_settings_as_deploy() {
    let Some(helm) = helm() else { return };
    let Some(all) = render_all() else { return };
    let chart = render(&helm, "chart install", &[]);
    let deploy = &all["deploy"];
    let roles = |r: &Rendered| -> BTreeSet<(String, String, String, String, String)> {
        r.objects
            .iter()
            .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
            .flat_map(|o| {
                let (kind, ns, name) = object_key(o);
                permissions(o).into_iter().map(move |(g, res, v)| {
                    (format!("{kind}/{ns}/{name}"), g, res, v, String::new())
                })
            })
            .collect()
    };
    assert_eq!(
        roles(&chart),
        roles(deploy),
        "RBAC rules differ between the chart and deploy/ (left: chart): run \
         `cargo test --test deploy chart` after syncing charts/alexa-skill-operator/templates"
    );
    for kind in ["Role", "ClusterRole"] {
        for o in deploy.of_kind(kind) {
            let name = o["metadata"]["name"].as_str().expect("name");
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            let theirs = chart
                .objects
                .iter()
                .find(|c| object_key(c) == object_key(o))
                .unwrap_or_else(|| panic!("chart lacks {kind} {ns}/{name}"));
            assert_eq!(
                theirs["rules"], o["rules"],
                "{kind} {ns}/{name}: rules (incl. resourceNames)"
            );
        }
    }
    let pod = |r: &Rendered| r.one("Deployment", OPERATOR)["spec"]["template"]["spec"].clone();
    let (c, d) = (pod(&chart), pod(deploy));
    for field in [
        "securityContext",
        "automountServiceAccountToken",
        "serviceAccountName",
        "volumes",
    ] {
        assert_eq!(c[field], d[field], "pod {field}");
    }
    for field in [
        "securityContext",
        "volumeMounts",
        "resources",
        "ports",
        "livenessProbe",
        "readinessProbe",
    ] {
        assert_eq!(
            c["containers"][0][field], d["containers"][0][field],
            "container {field}"
        );
    }
    assert!(
        chart.of_kind("Namespace").next().is_none(),
        "helm install does not own its namespace"
    );
}

#[test]
fn every_chart_rendering_passes_the_deploy_checks() {
    let Some(helm) = helm() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    let setups: [(&'static str, Vec<&str>); 3] = [
        (
            "chart default",
            vec!["--include-crds", "--set", "namespace.create=true"],
        ),
        (
            "chart namespaced",
            [NAMESPACED, &["--set", "namespace.create=true"]].concat(),
        ),
        (
            "chart all add-ons",
            [ALL_ADDONS, &["--include-crds"]].concat(),
        ),
    ];
    for (what, extra) in setups {
        let r = render(&helm, what, &extra);
        for o in &r.objects {
            structural_check(what, o);
        }
        check_common_rbac(&r);
        check_deployment(&r);
        let file = dir.path().join(format!("{}.yaml", what.replace(' ', "_")));
        std::fs::write(&file, &r.text).expect("write");
        files.push(file);
    }
    kubernetes_validate(&files);
}

#[test]
fn the_values_schema_refuses_wrong_values_at_install() {
    let Some(helm) = helm() else { return };
    let refused: [(&str, &str); 8] = [
        ("replicas=0", "replicas"),
        ("replicaz=2", "replicaz"),
        ("operator.logFormat=xml", "logFormat"),
        ("operator.concurrency=0", "concurrency"),
        ("operator.resyncPeriod=ten minutes", "resyncPeriod"),
        ("watchNamespaces={Not_A_Namespace}", "watchNamespaces"),
        ("image.digest=latest", "digest"),
        ("leaderElection.enabled=false", "leaderElection"),
    ];
    for (set, mentions) in refused {
        match template(&helm, &["--set", set]) {
            Ok(_) => panic!("--set {set} was accepted"),
            Err(e) => assert!(e.contains(mentions), "--set {set}: {e}"),
        }
    }
    // One replica without leader election is a valid set-up.
    template(&helm, &["--set", "replicas=1,leaderElection.enabled=false"]).expect("single replica");
}

/// Every `run` flag has a chart value: the all-flags values file sets each one, and the
/// rendered arguments name every flag and parse with the operator's own command line.
#[test]
fn every_operator_flag_is_a_chart_value() {
    let Some(helm) = helm() else { return };
    let values = repo().join("tests/deploy/testdata/all-flags-values.yaml");
    let text = template(&helm, &["-f", values.to_str().expect("path")]).expect("render");
    let objects = parse_yaml_stream(&text, "all flags");
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("Deployment");
    let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string"))
        .collect();
    let cli = Cli::command();
    let run_cmd = cli
        .get_subcommands()
        .find(|s| s.get_name() == "run")
        .expect("run");
    for arg in run_cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" {
            continue;
        }
        assert!(
            args.iter()
                .any(|a| *a == format!("--{long}") || a.starts_with(&format!("--{long}="))),
            "--{long} has no value in charts/alexa-skill-operator/values.yaml (or is not set in \
             tests/deploy/testdata/all-flags-values.yaml): {args:?}"
        );
    }
    let parsed = crate::run_args(deployment);
    assert_eq!(parsed.concurrency, 4);
    assert_eq!(parsed.endpoint_overrides.len(), 2);
    assert_eq!(parsed.watch_namespaces, ["team-a", "team-b"]);
}

#[test]
fn the_chart_crds_are_the_generated_crds() {
    let names = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(repo().join(dir))
            .expect(dir)
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect()
    };
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let fix = "run `UPDATE_CRDS=1 cargo test --test deploy chart_crds` and commit";
    if update {
        for name in names(&format!("{CHART}/crds")) {
            std::fs::remove_file(repo().join(format!("{CHART}/crds/{name}"))).expect("remove");
        }
        for name in names("crds") {
            std::fs::write(
                repo().join(format!("{CHART}/crds/{name}")),
                read(&format!("crds/{name}")),
            )
            .expect("write");
        }
    }
    assert_eq!(
        names("crds"),
        names(&format!("{CHART}/crds")),
        "chart crds/ differs: {fix}"
    );
    for name in names("crds") {
        assert_eq!(
            read(&format!("crds/{name}")),
            read(&format!("{CHART}/crds/{name}")),
            "{CHART}/crds/{name} is stale: {fix}"
        );
    }
}

#[test]
fn the_chart_version_is_the_operators() {
    let chart: Value =
        serde_saphyr::from_str(&read(&format!("{CHART}/Chart.yaml"))).expect("Chart.yaml");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["appVersion"], version);
    assert_eq!(chart["version"], version);
    assert!(
        read("deploy/base/deployment.yaml")
            .contains(&format!("image: alexa-skill-operator:{version}")),
        "deploy/ and the chart name the same image"
    );
}
