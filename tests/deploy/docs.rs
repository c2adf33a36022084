//! The kind e2e script and the operations guide say what they must.

use std::process::Command;

use alexa_skill_operator::cli::Cli;
use clap::Parser;

use crate::{parse_yaml_stream, read, repo};

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
