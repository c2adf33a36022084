//! Command-line interface: one binary, one subcommand per role. Every `run` flag has an
//! environment-variable fallback so the Deployment can be configured either way.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command as Process, ExitCode};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::crd::common::Stage;

/// Top-level command line of the `alexa-skill-operator` binary.
#[derive(Debug, Parser)]
#[command(name = "alexa-skill-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The binary's roles.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers (the operator itself).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML (what crds/ is generated from).
    Crd,
    /// Print YAML for objects (managementPolicy: Observe) that adopt a skill stage's current
    /// account linking and owner enablement on Amazon. Credentials come from the ASK CLI's
    /// environment variables (ASK_LWA_CLIENT_ID, ASK_LWA_CLIENT_CONFIRMATION,
    /// ASK_REFRESH_TOKEN) or from --credentials-secret; none is ever printed.
    Import(Box<ImportArgs>),
    /// Run the local Alexa API simulator (SMAPI, Skill Enablement, LWA) with fault injection:
    /// execs the `alexa-simulator` binary with ARGS (`simulate --help` shows its flags).
    #[command(disable_help_flag = true)]
    Simulate {
        /// Passed through unchanged to `alexa-simulator`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<OsString>,
    },
}

/// Configuration of `alexa-skill-operator import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// ID of the skill to import, e.g. amzn1.ask.skill.00000000-0000-0000-0000-000000000000.
    #[arg(long, value_parser = skill_id)]
    pub skill_id: String,

    /// Skill stage to import: development or live.
    #[arg(long, value_parser = stage)]
    pub stage: Stage,

    /// Read the LWA credentials from this Secret (NAMESPACE/NAME, keys client-id,
    /// client-secret, refresh-token) through the kubeconfig, instead of the ASK CLI's
    /// environment variables; the objects printed reference it and go to its namespace.
    #[arg(long, value_parser = secret_reference)]
    pub credentials_secret: Option<(String, String)>,

    /// Name of the objects printed (default: skill-<end of the skill ID>-<stage>).
    #[arg(long, value_parser = object_name)]
    pub name: Option<String>,

    /// Namespace of the objects printed (default: that of --credentials-secret, else none).
    #[arg(long, value_parser = namespace_name)]
    pub namespace: Option<String>,

    /// Base URL of the Skill Management API (SMAPI).
    #[arg(
        long,
        env = "ALEXA_SMAPI_URL",
        default_value = "https://api.amazonalexa.com",
        value_parser = base_url
    )]
    pub smapi_url: String,

    /// Login with Amazon token endpoint.
    #[arg(
        long,
        env = "ALEXA_LWA_URL",
        default_value = "https://api.amazon.com/auth/o2/token",
        value_parser = base_url
    )]
    pub lwa_url: String,
}

/// A skill ID: 1 to 255 characters, as the CRDs allow.
fn skill_id(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 255 || value.contains('/') {
        return Err("must be a skill ID of 1 to 255 characters without '/'".to_owned());
    }
    Ok(value.to_owned())
}

/// A skill stage.
fn stage(value: &str) -> Result<Stage, String> {
    match value.trim() {
        "development" => Ok(Stage::Development),
        "live" => Ok(Stage::Live),
        _ => Err("must be development or live".to_owned()),
    }
}

/// `NAMESPACE/NAME` of a Secret.
fn secret_reference(value: &str) -> Result<(String, String), String> {
    let (ns, name) = value
        .trim()
        .split_once('/')
        .ok_or_else(|| "must be NAMESPACE/NAME, e.g. skills/lwa-credentials".to_owned())?;
    Ok((namespace_name(ns)?, object_name(name)?))
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for terminals.
    Text,
}

/// Configuration of `alexa-skill-operator run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Base URL of the Skill Management API (SMAPI).
    #[arg(
        long,
        env = "ALEXA_SMAPI_URL",
        default_value = "https://api.amazonalexa.com",
        value_parser = base_url
    )]
    pub smapi_url: String,

    /// Login with Amazon token endpoint.
    #[arg(
        long,
        env = "ALEXA_LWA_URL",
        default_value = "https://api.amazon.com/auth/o2/token",
        value_parser = base_url
    )]
    pub lwa_url: String,

    /// Base URL used for customer endpoint discovery (`GET /v1/alexaApiEndpoint`).
    #[arg(
        long,
        env = "ALEXA_CUSTOMER_DISCOVERY_URL",
        default_value = "https://api.amazonalexa.com",
        value_parser = base_url
    )]
    pub customer_discovery_url: String,

    /// Map an Alexa host name returned by endpoint discovery to a base URL, as HOST=URL
    /// (repeatable or comma-separated). Unmapped hosts are called as https://HOST.
    #[arg(
        long = "endpoint-override",
        env = "ALEXA_ENDPOINT_OVERRIDES",
        value_delimiter = ',',
        value_parser = endpoint_override
    )]
    pub endpoint_overrides: Vec<EndpointOverride>,

    /// How often every object re-reads Amazon's state to detect drift (jittered by up to 10%).
    #[arg(long, env = "ALEXA_OPERATOR_RESYNC_PERIOD", default_value = "10m", value_parser = duration_in::<1_000, 2_592_000_000>)]
    pub resync_period: Duration,

    /// Maximum number of reconciles running at once, per kind.
    #[arg(long, env = "ALEXA_OPERATOR_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,

    /// Alexa API requests per second allowed per credential (0 disables the limit).
    #[arg(long, env = "ALEXA_OPERATOR_API_RATE_LIMIT", default_value_t = 5.0, value_parser = rate)]
    pub api_rate_limit: f64,

    /// Burst size of the per-credential rate limit.
    #[arg(long, env = "ALEXA_OPERATOR_API_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub api_burst: u32,

    /// First retry delay after a transient failure (doubles per failure, full jitter).
    #[arg(long, env = "ALEXA_OPERATOR_BACKOFF_BASE", default_value = "1s", value_parser = duration_in::<1, 3_600_000>)]
    pub backoff_base: Duration,

    /// Longest retry delay after repeated transient failures.
    #[arg(long, env = "ALEXA_OPERATOR_BACKOFF_MAX", default_value = "5m", value_parser = duration_in::<1, 86_400_000>)]
    pub backoff_max: Duration,

    /// Timeout for one HTTP request to Amazon.
    #[arg(long, env = "ALEXA_OPERATOR_HTTP_TIMEOUT", default_value = "30s", value_parser = duration_in::<1, 3_600_000>)]
    pub http_timeout: Duration,

    /// Namespaces to watch (repeatable or comma-separated); empty watches all namespaces.
    #[arg(
        long = "watch-namespace",
        env = "ALEXA_OPERATOR_WATCH_NAMESPACE",
        value_delimiter = ',',
        value_parser = namespace_name
    )]
    pub watch_namespaces: Vec<String>,

    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "ALEXA_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080",
        value_parser = listen_address
    )]
    pub metrics_addr: String,

    /// Elect a leader through a coordination.k8s.io Lease so only one replica reconciles.
    #[arg(long, env = "ALEXA_OPERATOR_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "ALEXA_OPERATOR_LEASE_NAME",
        default_value = "alexa-skill-operator",
        value_parser = object_name
    )]
    pub lease_name: String,

    /// Namespace of the leader-election Lease and of the digest key Secret (defaults to the
    /// pod's namespace).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "alexa-skill-operator-system",
        value_parser = namespace_name
    )]
    pub lease_namespace: String,

    /// How long a Lease stays valid without renewal; a standby takes over after this.
    #[arg(long, env = "ALEXA_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = duration_in::<3_000, 3_600_000>)]
    pub lease_duration: Duration,

    /// How long shutdown waits for in-flight reconciles before exiting.
    #[arg(long, env = "ALEXA_OPERATOR_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration_in::<0, 3_600_000>)]
    pub shutdown_grace: Duration,

    /// Log format.
    #[arg(long, env = "ALEXA_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl RunArgs {
    /// Rules that involve more than one flag (each flag's own range is checked while parsing).
    /// Returns the one line to print before exiting with status 2.
    pub fn validate(&self) -> Result<(), String> {
        if self.backoff_max < self.backoff_base {
            return Err(format!(
                "invalid value '{}' for '--backoff-max' (ALEXA_OPERATOR_BACKOFF_MAX): must be at least --backoff-base ({})",
                humantime::format_duration(self.backoff_max),
                humantime::format_duration(self.backoff_base)
            ));
        }
        Ok(())
    }
}

/// One `--endpoint-override` entry: calls to the Alexa host `host` go to `url` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOverride {
    /// The host name as endpoint discovery lists it, e.g. `api.eu.amazonalexa.com`.
    pub host: String,
    /// The base URL to call instead, without a trailing slash.
    pub url: String,
}

/// A duration between `MIN_MS` and `MAX_MS` milliseconds: zero where a positive value is needed
/// and years (whose arithmetic could overflow) are refused while parsing.
fn duration_in<const MIN_MS: u64, const MAX_MS: u64>(value: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(value.trim())
        .map_err(|e| format!("{e}; use a duration such as 30s, 5m or 1h"))?;
    let (min, max) = (Duration::from_millis(MIN_MS), Duration::from_millis(MAX_MS));
    if parsed < min || parsed > max {
        return Err(format!(
            "must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(parsed)
}

/// Requests per second: a finite number from 0 (no limit) to 10000.
fn rate(value: &str) -> Result<f64, String> {
    let parsed: f64 = value
        .trim()
        .parse()
        .map_err(|_| "must be a number of requests per second".to_owned())?;
    if !parsed.is_finite() || !(0.0..=10_000.0).contains(&parsed) {
        return Err("must be between 0 (no limit) and 10000".to_owned());
    }
    Ok(parsed)
}

/// An absolute http(s) URL with a host and without user info, query or fragment (credentials
/// come from Secrets, never from a URL).
fn base_url(value: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(value.trim())
        .map_err(|e| format!("not an absolute URL ({e}); use e.g. https://api.amazonalexa.com"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("user info is not allowed in the URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a query or fragment is not allowed in the URL".to_owned());
    }
    Ok(value.trim().to_owned())
}

/// `HOST=URL`: a bare host name (no scheme, path or port separator confusion) and a base URL.
fn endpoint_override(value: &str) -> Result<EndpointOverride, String> {
    let (host, url) = value.trim().split_once('=').ok_or_else(|| {
        "must be HOST=URL, e.g. api.eu.amazonalexa.com=http://127.0.0.1:9000".to_owned()
    })?;
    let host = host.trim();
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid_host {
        return Err(format!("{host:?} is not a host name (HOST=URL)"));
    }
    let url = base_url(url)?;
    Ok(EndpointOverride {
        host: host.to_owned(),
        url: url.trim_end_matches('/').to_owned(),
    })
}

/// A Kubernetes namespace name: an RFC 1123 label.
fn namespace_name(value: &str) -> Result<String, String> {
    let value = value.trim();
    if is_dns_label(value) {
        Ok(value.to_owned())
    } else {
        Err("must be a namespace name: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit".to_owned())
    }
}

/// A Kubernetes object name: an RFC 1123 subdomain.
fn object_name(value: &str) -> Result<String, String> {
    let value = value.trim();
    if !value.is_empty() && value.len() <= 253 && value.split('.').all(is_dns_label) {
        Ok(value.to_owned())
    } else {
        Err("must be a Kubernetes object name: lower-case letters, digits, '-' and '.', at most 253 characters".to_owned())
    }
}

fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// `HOST:PORT` to listen on: an IP address and port (a name would need a lookup at start-up).
fn listen_address(value: &str) -> Result<String, String> {
    value
        .trim()
        .parse::<std::net::SocketAddr>()
        .map(|_| value.trim().to_owned())
        .map_err(|_| "must be IP:PORT, e.g. 0.0.0.0:8080 or 127.0.0.1:0".to_owned())
}

/// File name of the simulator binary (its own workspace crate, crates/alexa-simulator).
pub const SIMULATOR_BINARY: &str = "alexa-simulator";

/// Where `simulate` finds the simulator: beside the running executable (the container image and
/// `cargo build` put both binaries in one directory), else the first match on `PATH`.
pub fn find_simulator() -> Option<PathBuf> {
    let name = format!("{SIMULATOR_BINARY}{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(&name));
    beside
        .into_iter()
        .chain(on_path)
        .find(|path| path.is_file())
}

/// `alexa-skill-operator simulate ARGS`: replaces this process with `alexa-simulator ARGS`. The
/// simulator is not part of the operator (the operator's code cannot call it), so this is only a
/// convenience; when the binary is missing it says how to build it and exits with 2.
pub fn run_simulator(args: Vec<OsString>) -> ExitCode {
    let Some(path) = find_simulator() else {
        eprintln!(
            "error: {SIMULATOR_BINARY} is neither beside this executable nor on PATH; build it \
             with `cargo build -p alexa-simulator` (or run `cargo run -p alexa-simulator -- ARGS`)"
        );
        return ExitCode::from(2);
    };
    let mut command = Process::new(&path);
    command.args(args);
    #[cfg(unix)]
    let error = {
        use std::os::unix::process::CommandExt;
        command.exec()
    };
    #[cfg(not(unix))]
    let error = match command.status() {
        Ok(status) => {
            return status
                .code()
                .and_then(|code| u8::try_from(code).ok())
                .map_or(ExitCode::FAILURE, ExitCode::from);
        }
        Err(error) => error,
    };
    eprintln!("error: cannot run {}: {error}", path.display());
    ExitCode::FAILURE
}
