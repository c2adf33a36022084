//! Command-line interface: one binary, one subcommand per role. Every `run` flag has an
//! environment-variable fallback so the Deployment can be configured either way.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command as Process, ExitCode};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Run the local Alexa API simulator (SMAPI, Skill Enablement, LWA) with fault injection:
    /// execs the `alexa-simulator` binary with ARGS (`simulate --help` shows its flags).
    #[command(disable_help_flag = true)]
    Simulate {
        /// Passed through unchanged to `alexa-simulator`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<OsString>,
    },
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
        default_value = "https://api.amazonalexa.com"
    )]
    pub smapi_url: String,

    /// Login with Amazon token endpoint.
    #[arg(
        long,
        env = "ALEXA_LWA_URL",
        default_value = "https://api.amazon.com/auth/o2/token"
    )]
    pub lwa_url: String,

    /// Base URL used for customer endpoint discovery (`GET /v1/alexaApiEndpoint`).
    #[arg(
        long,
        env = "ALEXA_CUSTOMER_DISCOVERY_URL",
        default_value = "https://api.amazonalexa.com"
    )]
    pub customer_discovery_url: String,

    /// Map an Alexa host name returned by endpoint discovery to a base URL, as HOST=URL
    /// (repeatable or comma-separated). Unmapped hosts are called as https://HOST.
    #[arg(
        long = "endpoint-override",
        env = "ALEXA_ENDPOINT_OVERRIDES",
        value_delimiter = ','
    )]
    pub endpoint_overrides: Vec<String>,

    /// How often every object re-reads Amazon's state to detect drift (jittered by up to 10%).
    #[arg(long, env = "ALEXA_OPERATOR_RESYNC_PERIOD", default_value = "10m", value_parser = humantime::parse_duration)]
    pub resync_period: Duration,

    /// Maximum number of reconciles running at once, per kind.
    #[arg(long, env = "ALEXA_OPERATOR_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Alexa API requests per second allowed per credential (0 disables the limit).
    #[arg(long, env = "ALEXA_OPERATOR_API_RATE_LIMIT", default_value_t = 5.0)]
    pub api_rate_limit: f64,

    /// Burst size of the per-credential rate limit.
    #[arg(long, env = "ALEXA_OPERATOR_API_BURST", default_value_t = 10)]
    pub api_burst: u32,

    /// First retry delay after a transient failure (doubles per failure, full jitter).
    #[arg(long, env = "ALEXA_OPERATOR_BACKOFF_BASE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backoff_base: Duration,

    /// Longest retry delay after repeated transient failures.
    #[arg(long, env = "ALEXA_OPERATOR_BACKOFF_MAX", default_value = "5m", value_parser = humantime::parse_duration)]
    pub backoff_max: Duration,

    /// Timeout for one HTTP request to Amazon.
    #[arg(long, env = "ALEXA_OPERATOR_HTTP_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http_timeout: Duration,

    /// Namespaces to watch (repeatable or comma-separated); empty watches all namespaces.
    #[arg(
        long = "watch-namespace",
        env = "ALEXA_OPERATOR_WATCH_NAMESPACE",
        value_delimiter = ','
    )]
    pub watch_namespaces: Vec<String>,

    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "ALEXA_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: String,

    /// Elect a leader through a coordination.k8s.io Lease so only one replica reconciles.
    #[arg(long, env = "ALEXA_OPERATOR_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "ALEXA_OPERATOR_LEASE_NAME",
        default_value = "alexa-skill-operator"
    )]
    pub lease_name: String,

    /// Namespace of the leader-election Lease (defaults to the pod's namespace).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "alexa-skill-operator-system"
    )]
    pub lease_namespace: String,

    /// How long a Lease stays valid without renewal; a standby takes over after this.
    #[arg(long, env = "ALEXA_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// How long shutdown waits for in-flight reconciles before exiting.
    #[arg(long, env = "ALEXA_OPERATOR_SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Log format.
    #[arg(long, env = "ALEXA_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
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
