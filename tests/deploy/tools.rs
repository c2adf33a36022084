//! helm, promtool and actionlint, built from their Go modules by tests/tools/build.sh (which
//! .ci/install runs) into a cache outside the repository, found through `ALEXA_TOOLS_DIR` or the
//! directory `build.sh --dir` names. Missing tools skip the checks loudly, except under CI
//! (`CI` set), where they fail.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::repo;

fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ALEXA_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let out = Command::new("bash")
        .arg(repo().join("tests/tools/build.sh"))
        .arg("--dir")
        .output()
        .expect("run tests/tools/build.sh --dir");
    assert!(out.status.success(), "tests/tools/build.sh --dir failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The tool's path, or None (after a loud message) when it is not built outside CI.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let path = tools_dir().join(name);
    if path.is_file() {
        return Some(path);
    }
    let hint = "build it with `bash tests/tools/build.sh` (needs Go; .ci/install runs it)";
    if std::env::var_os("CI").is_some() {
        panic!("{name} missing under CI at {}: {hint}", path.display());
    }
    eprintln!(
        "\n*** SKIPPING checks that need {name}: not at {}; {hint}. ***\n",
        path.display()
    );
    None
}

/// Runs a tool from the repository root.
pub(crate) fn run(tool: &PathBuf, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", tool.display()))
}

/// stdout and stderr of a finished tool, for assertion messages.
pub(crate) fn report(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
