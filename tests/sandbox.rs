//! The newcomer sandbox, run exactly as the README says (`cargo run --example sandbox`), with
//! `--exit-after-demo` so it ends with the demo's verdict. Integration tests cannot depend on
//! examples, so each test spawns `cargo run --example sandbox` (cargo has normally built it
//! already as part of `cargo test`; otherwise it builds it first) and reads its output line by
//! line, which also proves progress is printed as it happens rather than at the end.
//!
//! What a newcomer would notice is asserted: every example object reaches Ready, the drift is
//! repaired and the DriftRepaired event shown, the missing Secret shows Stalled/SecretNotFound with
//! its message and then Ready, kubectl works with the printed kubeconfig, `--no-operator` prints a
//! command that really starts a working operator, and Ctrl-C stops the sandbox cleanly.

// Test code: a failed expectation should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Room for cargo to build the example first when `cargo test` did not (e.g. `--test sandbox`).
const STARTUP: Duration = Duration::from_secs(900);
/// The whole demo should take well under a minute; this only guards against hangs on a loaded
/// 2-core machine.
const DEMO: Duration = Duration::from_secs(180);

/// A running `cargo run --example sandbox -- ARGS`.
struct Sandbox {
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line so far.
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Sandbox {
    fn start(args: &[&str]) -> Sandbox {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["run", "--example", "sandbox"]);
        // Cargo gives this test process the package's variables (CARGO_PKG_NAME, ...). Build
        // scripts such as ring's declare `rerun-if-env-changed` on them, so passing them on
        // would make the inner cargo rebuild ring, rustls and kube, and the user's next build
        // rebuild them again. The user's own settings (CARGO_HOME, CARGO_TARGET_DIR, ...) stay.
        for (key, _) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_BIN_EXE_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_MANIFEST_LINKS",
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&key)
            {
                cmd.env_remove(key);
            }
        }
        // The target directory this test was built in (CARGO_TARGET_TMPDIR is <target>/tmp), so
        // a `--target-dir` given to `cargo test` does not make the inner cargo start from scratch.
        if let Some(target) = Path::new(env!("CARGO_TARGET_TMPDIR")).parent() {
            cmd.arg("--target-dir").arg(target);
        }
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let mut child = cmd
            .arg("--")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cargo run --example sandbox");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Sandbox {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads lines until one satisfies `matches`; fails with the output so far on timeout or
    /// when the sandbox exits first.
    fn expect(&mut self, what: &str, timeout: Duration, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    println!("sandbox| {line}");
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("timed out waiting for {what}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("the sandbox ended before {what}"))
                }
            }
        }
    }

    /// Reads the rest of the output and waits for the exit status.
    fn finish(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    println!("sandbox| {line}");
                    self.seen.push(line);
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail("timed out waiting for the sandbox to exit")
                }
            }
        }
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.fail("the sandbox closed stdout but did not exit")
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{why}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.seen.join("\n"),
            self.stderr.lock().unwrap()
        );
    }

    /// Index of the first line at or after `from` satisfying `matches`.
    fn position(&self, from: usize, matches: impl Fn(&str) -> bool) -> Option<usize> {
        self.seen
            .iter()
            .skip(from)
            .position(|l| matches(l))
            .map(|i| i + from)
    }

    fn assert_line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> usize {
        match self.position(0, matches) {
            Some(i) => i,
            None => self.fail(&format!("no line shows {what}")),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A progress line without its `[  1.2s] ` time prefix.
fn body(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, rest)| rest)
}

/// A table row of `name` with these READY and REASON columns.
fn row(name: &'static str, ready: &'static str, reason: &'static str) -> impl Fn(&str) -> bool {
    move |line: &str| {
        let words: Vec<&str> = body(line).split_whitespace().collect();
        words.first() == Some(&name) && words.ends_with(&[ready, reason])
    }
}

/// The kubeconfig path from the banner (`  kubeconfig       /path`).
fn kubeconfig_from(line: &str) -> PathBuf {
    PathBuf::from(line.trim().trim_start_matches("kubeconfig").trim())
}

fn kubectl_installed() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED the kubectl checks: kubectl is not installed (see .ci/install)");
    }
    found
}

/// `kubectl --kubeconfig <kubeconfig> ARGS` with a private cache directory.
fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--cache-dir={}", cache.display()))
        .args(args)
        .output()
        .expect("run kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubectl {args:?} failed: {text}");
    text
}

/// The `kubectl` and `export KUBECONFIG=` lines of the README's Quick start (inside its code
/// blocks), so the commands a newcomer copies are run against a real sandbox and cannot rot.
fn readme_quick_start_kubectl_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let Some(start) = readme.find("\n## Quick start") else {
        return Vec::new();
    };
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut in_code = false;
    let mut lines = Vec::new();
    for line in section.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if in_code
            && (line.trim_start().starts_with("kubectl ")
                || line.trim_start().starts_with("export KUBECONFIG="))
        {
            lines.push(line.trim().to_string());
        }
    }
    lines
}

/// An `export KUBECONFIG=...` line of the README, run in the repository root, names the
/// directory the sandbox writes its kubeconfig to (unless the target directory was moved).
fn check_readme_export(line: &str, kubeconfig: &Path) {
    let default_target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    if Path::new(env!("CARGO_TARGET_TMPDIR")).parent() != Some(default_target.as_path()) {
        return;
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{line}\nprintf %s \"$KUBECONFIG\""))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run sh");
    let exported = PathBuf::from(String::from_utf8_lossy(&out.stdout).to_string());
    assert_eq!(
        exported
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .as_deref(),
        kubeconfig.parent(),
        "README Quick start line `{line}` does not point where the sandbox writes its kubeconfig"
    );
}

/// Runs one README kubectl line through `sh` with the sandbox's kubeconfig and expects it to
/// list the sample account linking (a `-w` line keeps running: it is stopped once it has).
fn run_readme_kubectl(line: &str, kubeconfig: &Path, cache: &Path) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {line}"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sh");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&l);
            text.push('\n');
            let _ = tx.send(text.clone());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while Instant::now() < deadline && !seen.contains("sandbox-skill-development") {
        if let Ok(text) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = text;
        } else if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(
        seen.contains("sandbox-skill-development"),
        "README Quick start line `{line}` did not list the sample object:\n{seen}{err}"
    );
    println!("README line works: {line}\n{seen}");
}

#[test]
fn demo_reaches_ready_repairs_drift_recovers_from_a_missing_secret_and_shares_credentials() {
    let mut sb = Sandbox::start(&["--exit-after-demo"]);
    let kubeconfig = kubeconfig_from(&sb.expect("the kubeconfig path", STARTUP, |l| {
        l.trim_start().starts_with("kubeconfig ")
    }));
    assert!(
        kubeconfig.is_absolute() && kubeconfig.exists(),
        "{kubeconfig:?}"
    );
    sb.expect("the export line", DEMO, |l| {
        l.trim() == format!("export KUBECONFIG={}", kubeconfig.display())
    });
    let started = Instant::now();

    // kubectl works against the running sandbox while the demo waits for the drift repair.
    sb.expect("step 2", DEMO, |l| l.contains("== 2/4"));
    if kubectl_installed() {
        let cache = tempfile::tempdir().unwrap();
        for line in readme_quick_start_kubectl_lines() {
            if line.starts_with("export ") {
                check_readme_export(&line, &kubeconfig);
            } else {
                run_readme_kubectl(&line, &kubeconfig, cache.path());
            }
        }
        let out = kubectl(
            &kubeconfig,
            cache.path(),
            &[
                "get",
                "sal",
                "-o",
                "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type==\"Ready\")].status",
            ],
        );
        assert!(
            out.lines().any(|l| l
                .split_whitespace()
                .eq(["sandbox-skill-development", "True"])),
            "{out}"
        );
    }

    let status = sb.finish(DEMO);
    let took = started.elapsed();
    println!("demo took {took:?}");
    assert!(status.success(), "exit status {status}");
    sb.assert_line("the end of the demo", |l| {
        l.contains("demo complete: every step worked")
    });
    assert!(took < Duration::from_secs(120), "the demo took {took:?}");

    // 1. The example objects, shown as they change, each reaching Ready; redirect URLs shown.
    let first_row = sb.assert_line("the table header", |l| {
        body(l)
            .split_whitespace()
            .eq(["NAME", "SKILL", "STAGE", "MODE", "READY", "REASON"])
    });
    for name in [
        "sal/sandbox-skill-development",
        "sen/sandbox-skill-owner",
        "sen/sandbox-skill-na-customer",
    ] {
        let ready = sb.assert_line(&format!("{name} Ready"), row(name, "True", "Synced"));
        assert!(ready > first_row);
        sb.assert_line(&format!("{name} before it was Ready"), row(name, "-", "-"));
    }
    sb.assert_line("the redirect URLs", |l| {
        l.contains("redirect URLs") && l.contains("https://pitangui.amazon.com/api/skill/link/")
    });
    sb.assert_line("the exported ConfigMap", |l| {
        l.contains("OK   ConfigMap sandbox-skill-redirect-urls (spec.exports")
            && l.contains("https://pitangui.amazon.com/api/skill/link/")
    });
    sb.assert_line("the owner mode", |l| {
        l.contains("sen/sandbox-skill-owner") && l.contains(" Owner ")
    });
    sb.assert_line("the customer mode", |l| {
        l.contains("sen/sandbox-skill-na-customer") && l.contains(" Customer ")
    });

    // 2. The out-of-band change is announced, then repaired with a DriftRepaired event.
    let changed = sb.assert_line("the out-of-band change", |l| {
        l.contains("a colleague edits")
    });
    let event = sb.assert_line("the DriftRepaired event", |l| {
        l.contains("event sal/sandbox-skill-development Normal DriftRepaired")
            && l.contains("spec.accountLinking.clientId")
    });
    assert!(event > changed);
    sb.assert_line("the repaired state", |l| {
        l.contains("OK   drift repaired") && l.contains("\"alexa-skill\"")
    });

    // 3. Stalled with SecretNotFound and its message, then Ready once the Secret exists.
    let stalled = sb.assert_line(
        "missing-secret-demo Stalled",
        row("sal/missing-secret-demo", "False", "SecretNotFound"),
    );
    sb.assert_line("the SecretNotFound message", |l| {
        l.contains("Stalled: Secret default/oauth-client-v2 not found")
    });
    let fixed = sb.assert_line("the Secret being created", |l| {
        l.contains("secret/oauth-client-v2 created")
    });
    let ready = sb
        .position(stalled, row("sal/missing-secret-demo", "True", "Synced"))
        .unwrap_or_else(|| sb.fail("missing-secret-demo never became Ready"));
    assert!(ready > fixed && fixed > stalled);

    // 4. Shared credentials: refused naming the selector, then Ready once the namespace is
    // labelled, without a Secret of its own.
    let refused = sb.assert_line(
        "shared-credentials-demo refused",
        row(
            "sen/shared-credentials-demo",
            "False",
            "NamespaceNotAllowed",
        ),
    );
    sb.assert_line("the selector in the message", |l| {
        l.contains("ClusterAlexaCredentials sandbox-owner does not allow namespace default")
            && l.contains("alexa.operator.dev/skills=true")
    });
    let shared = sb
        .position(
            refused,
            row("sen/shared-credentials-demo", "True", "Synced"),
        )
        .unwrap_or_else(|| sb.fail("shared-credentials-demo never became Ready"));
    assert!(shared > refused);
    sb.assert_line("the in-use count", |l| {
        l.contains("clusteralexacredentials/sandbox-owner is used by 1 object(s)")
    });

    assert!(
        !kubeconfig.exists(),
        "the kubeconfig of a stopped sandbox is removed"
    );
}

#[test]
fn no_operator_prints_a_run_command_that_drives_the_demo() {
    let mut sb = Sandbox::start(&["--no-operator", "--exit-after-demo"]);
    let command = sb.expect("the run command", STARTUP, |l| {
        l.trim_start().starts_with("KUBECONFIG=") && l.contains(" alexa-skill-operator run ")
    });
    // KUBECONFIG=<path> alexa-skill-operator run --flag value ... (nothing needs quoting here).
    let words: Vec<&str> = command.split_whitespace().collect();
    assert!(!command.contains('\''), "{command}");
    let kubeconfig = PathBuf::from(words[0].trim_start_matches("KUBECONFIG="));
    assert_eq!(&words[1..3], ["alexa-skill-operator", "run"]);
    for flag in [
        "--smapi-url",
        "--lwa-url",
        "--customer-discovery-url",
        "--endpoint-override",
        "--resync-period",
        "--metrics-addr",
    ] {
        assert!(words.contains(&flag), "{flag} missing from {command}");
    }
    sb.assert_line("the cargo variant", |l| {
        l.trim_start().starts_with("KUBECONFIG=") && l.contains(" cargo run -- run ")
    });
    sb.expect("the objects applied", DEMO, |l| {
        l.contains("waiting for an operator")
    });

    if kubectl_installed() {
        let cache = tempfile::tempdir().unwrap();
        let out = kubectl(&kubeconfig, cache.path(), &["get", "sal,sen"]);
        for name in [
            "sandbox-skill-development",
            "sandbox-skill-owner",
            "sandbox-skill-na-customer",
        ] {
            assert!(out.contains(name), "{out}");
        }
    }

    // Start the real binary exactly as printed; the demo must then run to completion.
    let mut operator = Command::new(env!("CARGO_BIN_EXE_alexa-skill-operator"))
        .args(&words[2..])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start alexa-skill-operator");
    let status = sb.finish(DEMO);
    let _ = operator.kill();
    let _ = operator.wait();
    assert!(status.success(), "exit status {status}");
    for name in [
        "sal/sandbox-skill-development",
        "sen/sandbox-skill-owner",
        "sen/sandbox-skill-na-customer",
        "sal/missing-secret-demo",
    ] {
        sb.assert_line(&format!("{name} Ready"), row(name, "True", "Synced"));
    }
    sb.assert_line("the DriftRepaired event", |l| l.contains("DriftRepaired"));
    sb.assert_line("the end of the demo", |l| {
        l.contains("demo complete: every step worked")
    });
}

#[cfg(unix)]
#[test]
fn keeps_running_after_the_demo_until_interrupted() {
    let mut sb = Sandbox::start(&[]);
    sb.expect("the summary", STARTUP + DEMO, |l| {
        l.contains("The sandbox keeps running; Ctrl-C stops it")
    });
    sb.expect("the metrics hint", DEMO, |l| l.contains("/metrics"));
    // `cargo run` replaces itself with the example on Unix, so this is the sandbox's pid.
    let sent = Command::new("kill")
        .args(["-INT", &sb.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let status = sb.finish(Duration::from_secs(30));
    assert!(status.success(), "exit status after Ctrl-C: {status}");
    sb.assert_line("the shutdown", |l| l.ends_with("] stopped"));
}
