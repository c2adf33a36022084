//! Alerts, dashboard and the kube-state-metrics configuration: one source each under
//! charts/alexa-skill-operator/files/, copied into deploy/addons/ (regenerate with
//! `UPDATE_DEPLOY=1 cargo test --test deploy monitoring`); every alert tested with
//! `promtool test rules` (tests/deploy/testdata/alerts.test.yaml); every metric the alerts and
//! the dashboard query exported by a running operator's /metrics; every alert documented.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use alexa_skill_operator::alexa::{ApiObserver, Operation};
use alexa_skill_operator::metrics::{ErrorLabels, KindLabels, Metrics};
use alexa_skill_operator::server::{Health, bind};
use serde_json::Value;

use crate::tools::{report, run, tool};
use crate::{parse_yaml_stream, read, repo};

const FILES: &str = "charts/alexa-skill-operator/files";
const HEADER: &str = "# GENERATED from charts/alexa-skill-operator/files/";

fn labels(extra: &str) -> String {
    format!(
        "  labels:\n    app.kubernetes.io/name: alexa-skill-operator\n    app.kubernetes.io/part-of: alexa-skill-operator\n{extra}"
    )
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.trim_end()
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// deploy/ files generated from the chart's files: (path, content).
fn generated() -> [(&'static str, String); 3] {
    let edit =
        "; edit that file, then run\n# `UPDATE_DEPLOY=1 cargo test --test deploy monitoring`.\n";
    let rule = format!(
        "{HEADER}alerts.yaml{edit}apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: alexa-skill-operator\n  namespace: alexa-skill-operator-system\n{}spec:\n{}\n",
        labels(""),
        indent(&read(&format!("{FILES}/alerts.yaml")), 2)
    );
    let dashboard = format!(
        "{HEADER}dashboard.json{edit}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alexa-skill-operator-dashboard\n  namespace: alexa-skill-operator-system\n{}data:\n  alexa-skill-operator.json: |-\n{}\n",
        labels("    grafana_dashboard: \"1\"\n"),
        indent(&read(&format!("{FILES}/dashboard.json")), 4)
    );
    let ksm = format!(
        "{HEADER}kube-state-metrics.yaml{edit}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alexa-skill-operator-kube-state-metrics\n  namespace: alexa-skill-operator-system\n{}data:\n  custom-resource-state.yaml: |-\n{}\n",
        labels(""),
        indent(&read(&format!("{FILES}/kube-state-metrics.yaml")), 4)
    );
    [
        ("deploy/addons/monitoring/prometheusrule.yaml", rule),
        ("deploy/addons/monitoring/grafana-dashboard.yaml", dashboard),
        ("deploy/addons/kube-state-metrics/configmap.yaml", ksm),
    ]
}

#[test]
fn the_deploy_monitoring_files_are_generated_from_the_chart() {
    let update = std::env::var_os("UPDATE_DEPLOY").is_some();
    for (path, want) in generated() {
        if update {
            std::fs::write(repo().join(path), &want).expect("write");
        }
        assert_eq!(
            std::fs::read_to_string(repo().join(path)).unwrap_or_default(),
            want,
            "{path} is stale: run `UPDATE_DEPLOY=1 cargo test --test deploy monitoring`"
        );
    }
}

#[test]
fn every_alert_passes_its_promtool_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let out = run(
        &promtool,
        &["check", "rules", &format!("{FILES}/alerts.yaml")],
    );
    assert!(
        out.status.success(),
        "promtool check rules: {}",
        report(&out)
    );
    let out = run(
        &promtool,
        &["test", "rules", "tests/deploy/testdata/alerts.test.yaml"],
    );
    assert!(
        out.status.success(),
        "promtool test rules: {}",
        report(&out)
    );
}

fn alerts() -> Vec<Value> {
    let doc = &parse_yaml_stream(&read(&format!("{FILES}/alerts.yaml")), "alerts")[0];
    doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

/// Every alert has a promtool test that expects it to fire and one where it stays quiet.
#[test]
fn every_alert_is_tested_firing_and_quiet() {
    let tests = &parse_yaml_stream(&read("tests/deploy/testdata/alerts.test.yaml"), "tests")[0];
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in tests["tests"].as_array().expect("tests") {
        for case in t["alert_rule_test"].as_array().expect("alert_rule_test") {
            let name = case["alertname"].as_str().expect("alertname").to_string();
            if case["exp_alerts"].as_array().is_some_and(|a| a.is_empty()) {
                quiet.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    for alert in alerts() {
        let name = alert["alert"].as_str().expect("alert").to_string();
        assert!(fires.contains(&name), "{name}: no test where it fires");
        assert!(
            quiet.contains(&name),
            "{name}: no test where it stays quiet"
        );
    }
}

/// The operator's metrics after one of each event it records, through its public recording
/// API (a family shows on /metrics once it has a series).
fn exercised_metrics() -> Metrics {
    let m = Metrics::new();
    m.reconciled("SkillEnablement", "ready", 0.2);
    m.object_state("SkillEnablement", "uid-1", true, "Synced", Some(3.0));
    m.request(
        Operation::GetAccountLinking,
        Some(200),
        Duration::from_millis(40),
    );
    m.token_refresh(false);
    m.throttled(Duration::from_millis(500));
    m.retry_after_gate(Duration::from_secs(30));
    let kind = KindLabels {
        kind: "SkillEnablement".into(),
    };
    m.drift_repairs.get_or_create(&kind).inc();
    m.not_converging.get_or_create(&kind).inc();
    m.reconcile_errors
        .get_or_create(&ErrorLabels {
            kind: "SkillEnablement".into(),
            category: "credentials".into(),
        })
        .inc();
    m
}

/// Metric names exported by a running operator's HTTP server (/metrics), sample names included
/// (counters' _total, histograms' _bucket/_sum/_count).
async fn scraped_metric_names() -> BTreeSet<String> {
    alexa_skill_operator::alexa::install_crypto_provider();
    let (addr, serve) = bind(
        "127.0.0.1:0".into(),
        Arc::new(exercised_metrics()),
        Arc::new(Health::default()),
        std::future::pending::<()>(),
    )
    .await
    .expect("bind");
    let server = tokio::spawn(serve);
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    server.abort();
    let mut names = BTreeSet::new();
    for line in body.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        }
    }
    names
}

/// Words in `text` that name one of the operator's metrics (alexa_operator_...).
fn metric_names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("alexa_operator_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_alerts_and_the_dashboard_query_only_metrics_the_operator_exports() {
    let exported = scraped_metric_names().await;
    assert!(
        exported.contains("alexa_operator_reconciles_total"),
        "{exported:?}"
    );
    let dashboard: Value =
        serde_json::from_str(&read(&format!("{FILES}/dashboard.json"))).expect("dashboard JSON");
    let mut queries = String::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            queries.push_str(target["expr"].as_str().expect("expr"));
            queries.push('\n');
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        queries.push_str(var["query"].as_str().unwrap_or_default());
        queries.push('\n');
    }
    let exprs: String = alerts()
        .iter()
        .map(|a| format!("{}\n", a["expr"].as_str().expect("expr")))
        .collect();
    for (what, text) in [("dashboard.json", &queries), ("alerts.yaml", &exprs)] {
        let used = metric_names_in(text);
        assert!(used.len() >= 5, "{what} queries too few metrics: {used:?}");
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{what} queries metrics /metrics does not export: {unknown:?}"
        );
    }
    // The dashboard shows what the issue asks for.
    for metric in [
        "alexa_operator_objects",
        "alexa_operator_reconciles_total",
        "alexa_operator_reconcile_duration_seconds_bucket",
        "alexa_operator_api_requests_total",
        "alexa_operator_token_refreshes_total",
        "alexa_operator_throttled_wait_seconds_total",
        "alexa_operator_drift_repairs_total",
    ] {
        assert!(
            metric_names_in(&queries).contains(metric),
            "dashboard lacks {metric}"
        );
    }
}

#[test]
fn the_metric_name_check_catches_an_unknown_metric() {
    let used = metric_names_in("sum(rate(alexa_operator_reconcile_total[5m])) / up");
    assert_eq!(
        used,
        BTreeSet::from(["alexa_operator_reconcile_total".to_string()])
    );
}

/// Every alert has a runbook paragraph (its anchor in docs/RUNBOOK.md) and a README line.
#[test]
fn every_alert_has_a_runbook_paragraph_and_a_readme_line() {
    let runbook = read("docs/RUNBOOK.md");
    let readme = read("README.md");
    for alert in alerts() {
        let name = alert["alert"].as_str().expect("alert");
        let url = alert["annotations"]["runbook_url"]
            .as_str()
            .expect("runbook_url");
        assert!(
            url.ends_with(&format!("docs/RUNBOOK.md#{}", name.to_lowercase())),
            "{name}: runbook_url {url}"
        );
        assert!(
            runbook.contains(&format!("\n## {name}\n")),
            "docs/RUNBOOK.md lacks `## {name}`"
        );
        assert!(
            readme.contains(&format!("`{name}`")),
            "README lacks `{name}`"
        );
        for field in ["summary", "description"] {
            assert!(
                alert["annotations"][field].is_string(),
                "{name}: no {field}"
            );
        }
        assert!(
            alert["labels"]["severity"].is_string(),
            "{name}: no severity"
        );
    }
}
