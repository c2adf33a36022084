//! How the workspace's crates relate. The Alexa API simulator (crates/alexa-simulator) plays
//! Amazon: the operator only tests against it, never calls it, and the two share no code, so the
//! few definitions both need are copies that these tests keep in step.

#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cargo metadata` of the workspace's own packages (no dependency resolution, so no registry
/// access beyond what the build already did).
fn workspace_packages() -> Vec<Value> {
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
    meta["packages"].as_array().expect("packages").clone()
}

/// The kinds ("normal", "dev", "build") under which `package` lists `dependency`.
fn dependency_kinds(packages: &[Value], package: &str, dependency: &str) -> Vec<String> {
    let found = packages
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("package {package} not in the workspace"));
    found["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter(|d| d["name"] == dependency)
        .map(|d| d["kind"].as_str().unwrap_or("normal").to_string())
        .collect()
}

#[test]
fn the_simulator_is_only_a_dev_dependency_and_depends_on_nothing_of_the_operator() {
    let packages = workspace_packages();
    assert_eq!(
        dependency_kinds(&packages, "alexa-skill-operator", "alexa-simulator"),
        ["dev"],
        "the operator may use the simulator in tests, examples and the benchmark only"
    );
    assert!(
        dependency_kinds(&packages, "alexa-simulator", "alexa-skill-operator").is_empty(),
        "the simulator plays Amazon and must not share the operator's code"
    );
}

#[test]
fn the_operator_binary_links_no_simulator_code() {
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_alexa-skill-operator")).expect("read binary");
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"alexa_skill_operator"),
        "symbols expected in the test build"
    );
    assert!(
        !contains(b"alexa_simulator"),
        "crates/alexa-simulator code is linked into the operator binary"
    );
}

/// The simulator's name for each operation the operator's client performs. The simulator calls
/// the Login with Amazon token endpoint `Token` (its admin API and request log use that name);
/// every other name is the operator's snake_case name in CamelCase.
fn simulator_name(operator_name: &str) -> String {
    if operator_name == "lwa_token" {
        return "Token".to_string();
    }
    operator_name
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn the_operator_and_the_simulator_list_the_same_alexa_operations() {
    use alexa_simulator::Operation as Sim;
    use alexa_skill_operator::alexa::Operation as Client;
    let from_client: Vec<String> = Client::ALL
        .iter()
        .map(|op| simulator_name(op.as_str()))
        .collect();
    // Admin (`/__sim/`) and Unknown are the simulator's own bookkeeping, not Amazon operations.
    let from_simulator: Vec<String> = Sim::ALL
        .iter()
        .filter(|op| !matches!(op, Sim::Admin | Sim::Unknown))
        .map(|op| op.as_str().to_string())
        .collect();
    assert_eq!(from_client, from_simulator);
    for name in &from_client {
        assert!(Sim::parse(name).is_some(), "simulator cannot parse {name}");
    }
}

/// A directory under cargo's per-test scratch space, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("workspace-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The operator binary placed in `dir` (hard link when possible: it is large), so that its
/// "beside the executable" is `dir`.
#[cfg(unix)]
fn operator_in(dir: &Path) -> PathBuf {
    let source = env!("CARGO_BIN_EXE_alexa-skill-operator");
    let target = dir.join("alexa-skill-operator");
    if std::fs::hard_link(source, &target).is_err() {
        std::fs::copy(source, &target).expect("copy operator binary");
    }
    target
}

/// A stand-in `alexa-simulator` that records its arguments (one a line) next to itself and
/// exits with 7, so a test sees what `simulate` passed and that the exit status comes through.
#[cfg(unix)]
fn fake_simulator_in(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("alexa-simulator");
    std::fs::write(
        &path,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$0.args\"\nexit 7\n",
    )
    .expect("write fake simulator");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[cfg(unix)]
#[test]
fn simulate_execs_the_simulator_beside_the_binary_or_on_path_or_says_how_to_build_it() {
    enum Place {
        Beside,
        OnPath,
        Nowhere,
    }
    let args = ["--listen", "127.0.0.1:0", "--help", "--state", "a b.yaml"];
    for (name, place) in [
        ("beside", Place::Beside),
        ("on-path", Place::OnPath),
        ("nowhere", Place::Nowhere),
    ] {
        let dir = scratch(name);
        let path_dir = scratch(&format!("{name}-path"));
        let operator = operator_in(&dir);
        let simulator = match place {
            Place::Beside => Some(fake_simulator_in(&dir)),
            Place::OnPath => Some(fake_simulator_in(&path_dir)),
            Place::Nowhere => None,
        };
        let out = Command::new(&operator)
            .arg("simulate")
            .args(args)
            .env("PATH", &path_dir)
            .output()
            .expect("run operator");
        let stderr = String::from_utf8_lossy(&out.stderr);
        match simulator {
            Some(simulator) => {
                assert_eq!(out.status.code(), Some(7), "{name}: {stderr}");
                let passed = std::fs::read_to_string(simulator.with_extension("args"))
                    .expect("the fake simulator ran");
                assert_eq!(passed.lines().collect::<Vec<_>>(), args, "{name}");
            }
            None => {
                assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
                assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
                assert!(
                    stderr.contains("`cargo build -p alexa-simulator`"),
                    "{stderr}"
                );
            }
        }
    }
}
