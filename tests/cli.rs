//! The `run` command line: every bad flag or environment variable exits 2 with one line naming
//! it and what is allowed, before anything is contacted (issue 12). Runs the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_alexa-skill-operator");

/// Runs `run ARGS` with only the given `ALEXA_*`/`RUST_LOG` variables and a kubeconfig that does
/// not exist, so a command line that passes validation fails at the kubeconfig step (exit 1).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("run").args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env(
        "KUBECONFIG",
        "/nonexistent/alexa-skill-operator-test/kubeconfig",
    );
    cmd.env("HOME", "/nonexistent/alexa-skill-operator-test");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the operator binary")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Each row: flags, and words the one error line must contain (the flag, and what is allowed).
const BAD_FLAGS: &[(&[&str], &[&str])] = &[
    (
        &["--resync-period", "0s"],
        &["--resync-period", "between 1s and 30days"],
    ),
    (
        &["--resync-period", "100years"],
        &["--resync-period", "between"],
    ),
    (
        &["--resync-period", "soon"],
        &["--resync-period", "duration such as"],
    ),
    (
        &["--backoff-base", "0s"],
        &["--backoff-base", "between 1ms and 1h"],
    ),
    (
        &["--backoff-base", "2s", "--backoff-max", "1s"],
        &["--backoff-max", "at least --backoff-base"],
    ),
    (&["--backoff-max", "2days"], &["--backoff-max", "between"]),
    (&["--http-timeout", "0s"], &["--http-timeout", "between"]),
    (
        &["--lease-duration", "1s"],
        &["--lease-duration", "between 3s and 1h"],
    ),
    (
        &["--shutdown-grace", "2h"],
        &["--shutdown-grace", "between 0s and 1h"],
    ),
    (&["--concurrency", "0"], &["--concurrency", "1..=1024"]),
    (&["--concurrency=-3"], &["--concurrency"]),
    (&["--concurrency", "100000"], &["--concurrency"]),
    (
        &["--api-rate-limit=-1"],
        &["--api-rate-limit", "between 0 (no limit) and 10000"],
    ),
    (
        &["--api-rate-limit", "NaN"],
        &["--api-rate-limit", "between"],
    ),
    (
        &["--api-rate-limit", "inf"],
        &["--api-rate-limit", "between"],
    ),
    (&["--api-burst", "0"], &["--api-burst", "1..=10000"]),
    (
        &["--smapi-url", "api.amazonalexa.com"],
        &["--smapi-url", "not an absolute URL"],
    ),
    (
        &["--smapi-url", "ftp://api.amazonalexa.com"],
        &["--smapi-url", "not http or https"],
    ),
    (
        &["--lwa-url", "https://api.amazon.com/auth/o2/token?x=1"],
        &["--lwa-url", "query"],
    ),
    (
        &["--customer-discovery-url", "http://"],
        &["--customer-discovery-url"],
    ),
    (
        &["--endpoint-override", "api.eu.amazonalexa.com"],
        &["--endpoint-override", "HOST=URL"],
    ),
    (
        &["--endpoint-override", "=http://127.0.0.1:1"],
        &["--endpoint-override", "not a host name"],
    ),
    (
        &["--endpoint-override", "api.eu.amazonalexa.com=notaurl"],
        &["--endpoint-override", "not an absolute URL"],
    ),
    (
        &["--watch-namespace", "Team_A"],
        &["--watch-namespace", "namespace name"],
    ),
    (
        &["--watch-namespace", "ok,-bad"],
        &["--watch-namespace", "namespace name"],
    ),
    (
        &["--metrics-addr", "localhost"],
        &["--metrics-addr", "IP:PORT"],
    ),
    (
        &["--lease-name", "Not A Name"],
        &["--lease-name", "object name"],
    ),
    (
        &["--log-format", "xml"],
        &["--log-format", "possible values: json, text"],
    ),
];

#[test]
fn every_bad_flag_exits_2_with_one_line_naming_it() {
    for (args, words) in BAD_FLAGS {
        let out = run(args, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got {err:?}"
        );
        for word in *words {
            assert!(err.contains(word), "{args:?}: {err:?} lacks {word:?}");
        }
        assert!(
            !err.contains("kubeconfig"),
            "{args:?} got past validation: {err}"
        );
    }
}

/// The same rules for the environment variables a Deployment sets; the line names the variable.
#[test]
fn every_bad_environment_variable_exits_2_naming_it() {
    let rows: &[(&str, &str)] = &[
        ("ALEXA_OPERATOR_RESYNC_PERIOD", "0s"),
        ("ALEXA_OPERATOR_CONCURRENCY", "0"),
        ("ALEXA_OPERATOR_API_RATE_LIMIT", "-5"),
        ("ALEXA_LWA_URL", "not a url"),
        ("ALEXA_ENDPOINT_OVERRIDES", "api.amazonalexa.com"),
        ("ALEXA_OPERATOR_WATCH_NAMESPACE", "UPPER"),
    ];
    for (var, value) in rows {
        let out = run(&[], &[(var, value)]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{var}: {err:?}");
        assert!(err.contains(var), "{var}: {err:?}");
    }
    let out = run(&[], &[("RUST_LOG", "foo=[")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("RUST_LOG"), "{}", stderr(&out));
}

/// A password in a URL is never echoed back.
#[test]
fn user_info_in_a_refused_url_is_not_printed() {
    let out = run(
        &[
            "--lwa-url",
            "https://client:hunter2secret@api.amazon.com/auth/o2/token",
        ],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("user info"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
}

/// Valid edge values pass validation and fail only at the next step (no kubeconfig): exit 1.
#[test]
fn valid_values_get_past_validation() {
    let rows: &[&[&str]] = &[
        &[],
        &[
            "--resync-period",
            "1s",
            "--backoff-base",
            "1ms",
            "--backoff-max",
            "1ms",
        ],
        &[
            "--resync-period",
            "30days",
            "--lease-duration",
            "3s",
            "--shutdown-grace",
            "0s",
        ],
        &[
            "--concurrency",
            "1024",
            "--api-rate-limit",
            "0",
            "--api-burst",
            "1",
        ],
        &[
            "--endpoint-override",
            "api.eu.amazonalexa.com=http://127.0.0.1:9000/eu,api.fe.amazonalexa.com=https://proxy.example",
        ],
        &[
            "--watch-namespace",
            "team-a,team-b",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ],
        &[
            "--smapi-url",
            "http://127.0.0.1:8443/",
            "--lwa-url",
            "http://[::1]:9/auth/o2/token",
        ],
    ];
    for args in rows {
        let out = run(args, &[("RUST_LOG", "info,kube=warn")]);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn help_exits_0() {
    let out = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--resync-period"));
}

/// Runs `import ARGS` with only the given environment variables (no kubeconfig).
fn import(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("import").args(args).env_clear();
    cmd.env(
        "KUBECONFIG",
        "/nonexistent/alexa-skill-operator-test/kubeconfig",
    );
    cmd.env("HOME", "/nonexistent/alexa-skill-operator-test");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the operator binary")
}

/// Arguments, environment, and the words the one error line must contain.
type ImportCase = (
    Vec<&'static str>,
    Vec<(&'static str, &'static str)>,
    Vec<&'static str>,
);

#[test]
fn import_refuses_bad_flags_and_missing_credentials_with_exit_2_and_one_line() {
    let skill = ["--skill-id", "amzn1.ask.skill.x", "--stage", "live"];
    let with = |extra: &[&'static str]| {
        let mut args = skill.to_vec();
        args.extend_from_slice(extra);
        args
    };
    // (args, environment, words the one error line must contain)
    let cases: Vec<ImportCase> = vec![
        (
            vec!["--skill-id", "s", "--stage", "prod"],
            vec![],
            vec!["--stage", "development or live"],
        ),
        (
            vec!["--skill-id", "", "--stage", "live"],
            vec![],
            vec!["--skill-id", "1 to 255"],
        ),
        (vec!["--stage", "live"], vec![], vec!["--skill-id"]),
        (
            with(&["--credentials-secret", "lwa"]),
            vec![],
            vec!["--credentials-secret", "NAMESPACE/NAME"],
        ),
        (
            with(&["--smapi-url", "ftp://x"]),
            vec![],
            vec!["--smapi-url", "ALEXA_SMAPI_URL"],
        ),
        (
            with(&[]),
            vec![("ASK_REFRESH_TOKEN", "Atzr|do-not-print")],
            vec![
                "ASK_LWA_CLIENT_ID, ASK_LWA_CLIENT_CONFIRMATION",
                "--credentials-secret",
            ],
        ),
    ];
    for (args, env, words) in cases {
        let out = import(&args, &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        for word in words {
            assert!(err.contains(word), "{args:?}: {word:?} missing in {err}");
        }
        assert!(!err.contains("do-not-print"), "{err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn import_with_unreachable_amazon_exits_1_without_printing_a_credential() {
    let out = import(
        &[
            "--skill-id",
            "amzn1.ask.skill.x",
            "--stage",
            "development",
            "--lwa-url",
            "http://127.0.0.1:9/token",
        ],
        &[
            ("ASK_LWA_CLIENT_ID", "client-do-not-print"),
            ("ASK_LWA_CLIENT_CONFIRMATION", "confirmation-do-not-print"),
            ("ASK_REFRESH_TOKEN", "Atzr|token-do-not-print"),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: cannot read the account linking"),
        "{err}"
    );
    assert!(!err.contains("do-not-print"), "{err}");
    assert!(out.stdout.is_empty());
}
