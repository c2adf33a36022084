//! The release pipeline (.github/workflows/): every workflow passes actionlint, the release
//! builds both architectures from the Dockerfile, signs image, SBOM and chart, attaches the
//! rendered manifests, names no registry host, and CI runs `.ci/run` and the Dockerfile's own
//! cargo build. (Nothing here can run the workflow: no container engine, no cross targets.)

use crate::read;
use crate::tools::{report, run, tool};

const WORKFLOWS: [&str; 2] = [".github/workflows/ci.yml", ".github/workflows/release.yml"];

#[test]
fn every_workflow_passes_actionlint() {
    let listed: Vec<String> = std::fs::read_dir(crate::repo().join(".github/workflows"))
        .expect(".github/workflows")
        .map(|e| {
            format!(
                ".github/workflows/{}",
                e.expect("entry").file_name().to_string_lossy()
            )
        })
        .collect();
    for file in &listed {
        assert!(
            WORKFLOWS.contains(&file.as_str()),
            "add {file} to WORKFLOWS"
        );
    }
    let Some(actionlint) = tool("actionlint") else {
        return;
    };
    let mut args = vec!["-no-color", "-shellcheck=", "-pyflakes="];
    args.extend(WORKFLOWS);
    let out = run(&actionlint, &args);
    assert!(out.status.success(), "actionlint: {}", report(&out));
}

/// The `cargo build ...` line of the Dockerfile's build stage.
fn dockerfile_cargo_build() -> String {
    let dockerfile = read("Dockerfile");
    let start = dockerfile
        .find("cargo build")
        .expect("the Dockerfile runs cargo build");
    let mut command = String::new();
    for line in dockerfile[start..].lines() {
        let line = line.trim();
        let (part, more) = match line.strip_suffix('\\') {
            Some(p) => (p.trim(), true),
            None => (line, false),
        };
        let part = part.split("&&").next().unwrap_or_default().trim();
        command.push_str(part);
        command.push(' ');
        if !more || line.contains("&&") {
            break;
        }
    }
    command.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn ci_runs_the_suite_and_the_dockerfiles_own_build() {
    let ci = read(".github/workflows/ci.yml");
    assert!(ci.contains("run: bash .ci/run"), "CI runs exactly .ci/run");
    let build = dockerfile_cargo_build();
    assert!(
        build.starts_with("cargo build --release --locked"),
        "{build}"
    );
    assert!(
        ci.contains(&format!("run: {build}\n")),
        "ci.yml must run `{build}`"
    );
    // The toolchain CI uses is the Dockerfile's builder image's.
    let rust = read("Dockerfile")
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .and_then(|t| t.split('-').next())
        .expect("FROM rust:VERSION")
        .to_string();
    assert!(
        ci.contains(&format!("toolchain: {rust}\n")),
        "ci.yml toolchain must be {rust}"
    );
    assert!(ci.contains("workflow_call"), "release.yml reuses ci.yml");
}

#[test]
fn the_release_builds_signs_and_publishes_everything_the_readme_promises() {
    let release = read(".github/workflows/release.yml");
    for must in [
        "tags: ['v*.*.*']",
        "uses: ./.github/workflows/ci.yml",
        "file: Dockerfile",
        "platforms: linux/amd64,linux/arm64",
        "format: spdx-json",
        "cosign sign --yes \"$IMAGE@$DIGEST\"",
        "cosign attest --yes --type spdxjson",
        "cosign sign-blob",
        "helm\" push",
        "id-token: write",
        "assets/crds.yaml",
        "gh release create",
    ] {
        assert!(release.contains(must), "release.yml lacks `{must}`");
    }
    // Registries are named by variables only.
    for workflow in WORKFLOWS {
        let text = read(workflow);
        for host in ["ghcr.io", "docker.io", "quay.io", "gcr.io", "amazonaws.com"] {
            assert!(
                !text.contains(host),
                "{workflow} names {host}: use vars.IMAGE_REGISTRY"
            );
        }
    }
}
