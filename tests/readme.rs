//! The README cannot rot: every command it shows is checked here or run by `.ci/run`, every
//! flag, condition reason, annotation and CRD field is documented, and its YAML examples are
//! accepted by the CRD types.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use alexa_skill_operator::cli::Cli;
use alexa_skill_operator::controller::conditions::Reason;
use alexa_skill_operator::crd;
use clap::{CommandFactory, Parser};
use serde_json::Value;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// Code blocks of one language, in order.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l == format!("```{lang}") => current = Some(String::new()),
            (Some(_), "```") => out.extend(current.take()),
            (Some(buf), _) => {
                buf.push_str(line);
                buf.push('\n');
            }
            _ => {}
        }
    }
    out
}

fn commands(text: &str) -> Vec<String> {
    blocks(text, "sh")
        .iter()
        .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
        .map(|l| l.split(" #").next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn quick_start_has_exactly_the_sandbox_and_the_ci_test_command() {
    let text = readme();
    let quick = text
        .split("## Quick start")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("Quick start section");
    let first = blocks(quick, "sh")
        .into_iter()
        .next()
        .expect("a command block");
    assert_eq!(
        commands(&format!("```sh\n{first}```")),
        vec!["cargo run --example sandbox", "cargo test --workspace"]
    );
    let ci = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"))
        .expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test --workspace"),
        ".ci/run must run the README's test command"
    );
    // ... with a cargo home of its own, so a crate only this machine's cache holds fails CI.
    let home = ci
        .find("CARGO_HOME=\"$(mktemp -d)\"")
        .expect(".ci/run must give cargo an empty CARGO_HOME");
    let exported = ci.find("export CARGO_HOME").expect("CARGO_HOME exported");
    let test = ci.find("\ncargo test --workspace").expect("test command");
    assert!(
        home < test && exported < test,
        "the empty CARGO_HOME must come before the tests"
    );
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/sandbox.rs")
            .exists()
    );
}

#[test]
fn every_command_in_the_readme_is_known() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for command in commands(&readme()) {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["cargo", "test", "--workspace"]
            | ["cargo", "run", "--example", "sandbox"]
            | ["cargo", "build", "-p", "alexa-simulator"] => {}
            ["cargo", "run", "-p", "alexa-simulator", "--", rest @ ..] => {
                let mut argv = vec!["alexa-simulator"];
                argv.extend(rest.iter().filter(|w| **w != "--help"));
                alexa_simulator::SimulateArgs::try_parse_from(&argv)
                    .unwrap_or_else(|e| panic!("README command `{command}` does not parse: {e}"));
            }
            ["cargo", "run", "--", rest @ ..] => {
                let mut argv = vec!["alexa-skill-operator"];
                argv.extend(rest.iter().filter(|w| **w != "--help"));
                Cli::try_parse_from(&argv)
                    .unwrap_or_else(|e| panic!("README command `{command}` does not parse: {e}"));
            }
            ["alexa-skill-operator", ..] => {
                Cli::try_parse_from(&words)
                    .unwrap_or_else(|e| panic!("README command `{command}` does not parse: {e}"));
            }
            // Run against a live sandbox by tests/sandbox.rs.
            ["export", kubeconfig] if kubeconfig.starts_with("KUBECONFIG=") => {}
            ["kubectl", "get", "sal", "-w", ..] => {}
            ["kubectl", "apply", .., "-k", dir] | ["kubectl", "delete", "-k", dir] => {
                assert!(
                    root.join(dir).join("kustomization.yaml").exists(),
                    "README applies {dir}, which has no kustomization"
                );
            }
            ["kubectl", "apply", "-f", file] => {
                assert!(
                    root.join(file).exists(),
                    "README applies {file}, which does not exist"
                );
            }
            // Install with Helm: the chart in the repository or a released one.
            ["helm", "install", "alexa-skill-operator", chart, ..] => {
                assert!(
                    root.join(chart).join("Chart.yaml").exists()
                        || chart.starts_with("oci://REGISTRY/charts/alexa-skill-operator"),
                    "README installs {chart}, which is no chart"
                );
            }
            // Releases: verification of what release.yml signs keylessly.
            [
                "cosign",
                "verify" | "verify-attestation" | "verify-blob",
                ..,
            ] => {
                assert!(
                    command.contains("release.yml@refs/tags/v")
                        && command.contains(
                            "--certificate-oidc-issuer https://token.actions.githubusercontent.com"
                        ),
                    "README command `{command}` must pin the release workflow's identity"
                );
            }
            _ => panic!("README command `{command}` is not checked by any test; add it here"),
        }
    }
}

#[test]
fn every_flag_reason_and_annotation_is_documented() {
    let text = readme();
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("run subcommand");
    for arg in run.get_arguments() {
        if let Some(long) = arg.get_long() {
            if long == "help" {
                continue;
            }
            assert!(
                text.contains(&format!("`--{long}")),
                "flag --{long} is not in the README"
            );
            if let Some(env) = arg.get_env() {
                assert!(
                    text.contains(&format!("`{}`", env.to_string_lossy())),
                    "env {env:?} is not in the README"
                );
            }
        }
    }
    let import = cli.find_subcommand("import").expect("import subcommand");
    for long in import.get_arguments().filter_map(|a| a.get_long()) {
        assert!(
            long == "help" || text.contains(&format!("`--{long}")),
            "import flag --{long} is not in the README"
        );
    }
    for env in alexa_skill_operator::import::ASK_ENV {
        assert!(
            text.contains(&format!("`{env}`")),
            "{env} is not in the README"
        );
    }
    for reason in Reason::ALL {
        assert!(
            text.contains(&format!("`{}`", reason.as_str())),
            "reason {reason} is not in the README"
        );
    }
    for annotation in [
        crd::common::PAUSED_ANNOTATION,
        crd::common::RECONCILE_REQUESTED_ANNOTATION,
        crd::common::RESYNC_PERIOD_ANNOTATION,
        crd::common::FINALIZER,
    ] {
        assert!(
            text.contains(annotation),
            "{annotation} is not in the README"
        );
    }
}

fn spec_fields(schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let path = format!("{prefix}.{name}");
            out.insert(path.clone());
            spec_fields(sub, &path, out);
        }
    }
    if let Some(items) = schema.get("items") {
        spec_fields(items, prefix, out);
    }
}

#[test]
fn every_spec_field_is_documented() {
    let text = readme();
    for definition in crd::all() {
        let schema = serde_json::to_value(&definition.spec.versions[0].schema).expect("schema");
        let mut fields = BTreeSet::new();
        spec_fields(
            &schema["openAPIV3Schema"]["properties"]["spec"],
            "spec",
            &mut fields,
        );
        for field in fields {
            let leaf = field.rsplit('.').next().unwrap_or(&field);
            assert!(
                text.contains(&format!("`{field}"))
                    || text.contains(&format!(".{leaf}`"))
                    || text.contains(&format!("{leaf}:")),
                "{} field {field} is not documented in the README",
                definition.spec.names.kind
            );
        }
    }
}

#[test]
fn readme_yaml_examples_are_valid_objects() {
    let mut seen = 0;
    for block in blocks(&readme(), "yaml") {
        for doc in block.split("\n---\n") {
            let value: Value = serde_saphyr::from_str(doc).expect("README YAML parses");
            match value["kind"].as_str() {
                Some("SkillAccountLinking") => {
                    let obj: crd::SkillAccountLinking =
                        serde_json::from_value(value.clone()).expect("valid SkillAccountLinking");
                    alexa_skill_operator::controller::account_linking::validate_spec(
                        &obj.spec.account_linking,
                        &obj.spec.skill_id,
                    )
                    .expect("passes the operator's validation");
                    seen += 1;
                }
                Some("SkillEnablement") => {
                    let obj: crd::SkillEnablement =
                        serde_json::from_value(value.clone()).expect("valid SkillEnablement");
                    alexa_skill_operator::controller::enablement::validate_spec(&obj.spec)
                        .expect("passes the operator's validation");
                    seen += 1;
                }
                Some("AlexaCredentials") => {
                    let _: crd::AlexaCredentials =
                        serde_json::from_value(value.clone()).expect("valid AlexaCredentials");
                    seen += 1;
                }
                Some("ClusterAlexaCredentials") => {
                    let obj: crd::ClusterAlexaCredentials = serde_json::from_value(value.clone())
                        .expect("valid ClusterAlexaCredentials");
                    let selector = obj.spec.allowed_namespaces;
                    assert!(
                        kube::core::Selector::try_from(selector).is_ok(),
                        "README allowedNamespaces is a usable selector"
                    );
                    seen += 1;
                }
                Some("Secret") => seen += 1,
                // An alert rule on kube-state-metrics' per-object series (Observability): the
                // series it queries is the one charts/.../files/kube-state-metrics.yaml defines.
                None if value[0]["alert"].is_string() => {
                    let expr = value[0]["expr"].as_str().expect("expr");
                    assert!(expr.starts_with("kube_alexa_status_condition{"), "{expr}");
                    let ksm = std::fs::read_to_string(
                        Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("charts/alexa-skill-operator/files/kube-state-metrics.yaml"),
                    )
                    .expect("kube-state-metrics configuration");
                    assert!(
                        ksm.contains("metricNamePrefix: kube_alexa")
                            && ksm.contains("- name: status_condition"),
                        "the README's example alert queries a series the configuration does not define"
                    );
                }
                other => panic!("unexpected README YAML kind {other:?}"),
            }
        }
    }
    assert!(
        seen >= 6,
        "expected the README's example objects, found {seen}"
    );
}
