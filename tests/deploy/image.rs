//! The container image: the Dockerfile, what the release binary links, and the binary on a
//! read-only filesystem.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use crate::{read, repo};

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
    assert!(
        last_stage.contains(&"ENV MIMALLOC_ARENA_EAGER_COMMIT=0"),
        "the image's allocator setting, which the benchmark measures (examples/bench/proc.rs)"
    );
    let bench = read("examples/bench/proc.rs");
    assert!(bench.contains(r#".env("MIMALLOC_ARENA_EAGER_COMMIT", "0")"#));
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
