//! The `alexa-simulator` binary: flags, startup banner (URLs, host mapping, sandbox state) and
//! running until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::faults::{
    DiscoveryMode, Divergences, FaultConfig, PutAnswer, RateLimit, ThrottleWindow,
};
use crate::{GetShape, Region, SimConfig, SimState, Simulator, SimulatorError, TlsConfig};

/// Flags of the `alexa-simulator` binary (also reached as `alexa-skill-operator simulate`, which
/// execs it). See docs/SIMULATOR.md for the full story.
#[derive(Debug, Clone, Parser)]
#[command(name = "alexa-simulator", version, about)]
pub struct SimulateArgs {
    /// Main listener: SMAPI, LWA (/auth/o2/token), the NA customer API, discovery and /__sim/.
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,

    /// Listener of a region's customer API as REGION=ADDR (eu or fe; repeatable). Defaults to
    /// the main port + 1 (EU) and + 2 (FE) on the same address (ephemeral if the main port is 0).
    #[arg(long = "region-listen", value_parser = parse_region_listen)]
    pub region_listen: Vec<(Region, SocketAddr)>,

    /// Allow listening on non-loopback addresses (the simulator has no real authentication).
    #[arg(long)]
    pub allow_remote: bool,

    /// Also serve the main API over HTTPS on this address (needs --tls-cert and --tls-key).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,

    /// PEM certificate chain for --tls-listen.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-listen.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,

    /// YAML state file replacing the sandbox state (format: docs/SIMULATOR.md,
    /// crates/alexa-simulator/examples/sim-state.yaml).
    #[arg(long, env = "SIM_STATE")]
    pub state: Option<PathBuf>,

    /// Shape of GET account-linking bodies: flat (as the seed) or wrapped in
    /// accountLinkingResponse (as Amazon's live docs).
    #[arg(long, value_enum, default_value_t = GetShape::Flat)]
    pub get_shape: GetShape,

    /// Lifetime of issued access tokens.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub token_lifetime: Duration,

    /// Per-client rate limit in requests per second (429 when exceeded); off when absent.
    #[arg(long)]
    pub rate_limit: Option<f64>,

    /// Burst size of --rate-limit.
    #[arg(long, default_value_t = 10)]
    pub burst: u32,

    /// Retry-After sent with 429 (rounded up to whole seconds; 0s omits the header).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_after: Duration,

    /// Probability (0..1) of answering 500 or 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,

    /// Latency added to every API request.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,

    /// Probability (0..1) of closing the connection without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,

    /// Answer 412 to every account-linking PUT that carries If-Match.
    #[arg(long)]
    pub stale_etag: bool,

    /// Customer linking completes late: the enable answers NOT_LINKED and the first N status
    /// reads of that enablement too; 0 links at once.
    #[arg(long, default_value_t = 0)]
    pub link_after_reads: u32,

    /// Behaviour of GET /v1/alexaApiEndpoint.
    #[arg(long, value_enum, default_value_t = DiscoveryMode::Normal)]
    pub discovery: DiscoveryMode,

    /// Answer every API request of one LWA client 429 for a while, from start-up:
    /// CLIENT_ID=RETRY_AFTER/DURATION, e.g. `amzn1.application-oa2-client.noisy=60s/2m`
    /// (repeatable; the noisy neighbour of a shared operator).
    #[arg(long = "throttle-client", value_parser = parse_throttle_client)]
    pub throttle_clients: Vec<ThrottleWindow>,

    /// Apply rate limit, error rate, latency and drops to the LWA token endpoint too.
    #[arg(long)]
    pub fault_lwa: bool,

    /// Answer to a successful account-linking PUT: 204 No Content, or 200 OK with the ETag and
    /// no body (the seed documents both).
    #[arg(long, value_enum, default_value_t = PutAnswer::NoContent)]
    pub put_answer: PutAnswer,

    /// Divergence from the seeds: GET echoes the request-only skipOnEnablement.
    #[arg(long)]
    pub echo_skip_on_enablement: bool,

    /// Divergence from the seeds: GET returns domains, scopes and redirectUrls reversed.
    #[arg(long)]
    pub reverse_lists: bool,

    /// Divergence from the seeds: PUT stores authorizationUrl and accessTokenUrl with scheme and
    /// host lower-cased and a trailing slash.
    #[arg(long)]
    pub normalize_urls: bool,

    /// Divergence from the seeds: PUT accepts but does not store this field (repeatable, e.g.
    /// defaultTokenExpirationInSeconds).
    #[arg(long = "drop-field")]
    pub drop_fields: Vec<String>,

    /// Status of a customer call sent to the wrong region's listener (401 or 404).
    #[arg(long, default_value_t = 401)]
    pub wrong_region_status: u16,

    /// Most request-log entries kept in memory (counts stay exact beyond it).
    #[arg(long, default_value_t = 1_000_000)]
    pub log_capacity: usize,

    /// Do not print the state at startup.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_region_listen(text: &str) -> Result<(Region, SocketAddr), String> {
    let (region, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("expected REGION=ADDR, got {text}"))?;
    let region = match region.to_ascii_lowercase().as_str() {
        "na" => Region::Na,
        "eu" => Region::Eu,
        "fe" => Region::Fe,
        other => return Err(format!("unknown region {other} (na, eu, fe)")),
    };
    let addr = addr
        .parse()
        .map_err(|err| format!("invalid address {addr}: {err}"))?;
    Ok((region, addr))
}

fn offset_port(addr: SocketAddr, offset: u16) -> SocketAddr {
    let port = if addr.port() == 0 {
        0
    } else {
        addr.port().saturating_add(offset)
    };
    SocketAddr::new(addr.ip(), port)
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, SimulatorError> {
    std::fs::read(path).map_err(|err| SimulatorError::Tls(format!("{}: {err}", path.display())))
}

/// Turns the flags into a [`SimConfig`] (reads the state and TLS files).
pub(crate) fn config_from_args(args: &SimulateArgs) -> Result<SimConfig, SimulatorError> {
    let state = match &args.state {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|err| SimulatorError::StateFile {
                path: path.display().to_string(),
                reason: err.to_string(),
            })?;
            SimState::from_yaml(&text).map_err(|reason| SimulatorError::StateFile {
                path: path.display().to_string(),
                reason,
            })?
        }
        None => SimState::sandbox(),
    };
    let mut eu_listen = offset_port(args.listen, 1);
    let mut fe_listen = offset_port(args.listen, 2);
    for (region, addr) in &args.region_listen {
        match region {
            Region::Eu => eu_listen = *addr,
            Region::Fe => fe_listen = *addr,
            Region::Na => {
                return Err(SimulatorError::InvalidSetting(
                    "NA is served by --listen; use --region-listen only for eu and fe".to_string(),
                ));
            }
        }
    }
    let tls = match (&args.tls_listen, &args.tls_cert, &args.tls_key) {
        (Some(listen), Some(cert), Some(key)) => Some(TlsConfig {
            listen: *listen,
            cert_pem: read_file(cert)?,
            key_pem: read_file(key)?,
        }),
        (None, _, _) => None,
        _ => {
            return Err(SimulatorError::InvalidSetting(
                "--tls-listen needs --tls-cert and --tls-key".to_string(),
            ));
        }
    };
    let faults = FaultConfig {
        rate_limit: args.rate_limit.map(|per_second| RateLimit {
            per_second,
            burst: args.burst,
            retry_after: args.retry_after,
        }),
        error_rate: args.error_rate,
        latency: args.latency,
        drop_rate: args.drop_rate,
        stale_etag: args.stale_etag,
        discovery: args.discovery,
        include_lwa: args.fault_lwa,
        put_answer: args.put_answer,
        throttle_clients: args.throttle_clients.clone(),
        link_after_reads: args.link_after_reads,
        divergences: Divergences {
            echo_skip_on_enablement: args.echo_skip_on_enablement,
            reverse_lists: args.reverse_lists,
            normalize_urls: args.normalize_urls,
            drop_fields: args.drop_fields.clone(),
        },
    };
    faults.validate().map_err(SimulatorError::InvalidSetting)?;
    Ok(SimConfig {
        listen: args.listen,
        eu_listen,
        fe_listen,
        tls,
        allow_remote: args.allow_remote,
        state,
        get_shape: args.get_shape,
        token_lifetime: args.token_lifetime,
        faults,
        wrong_region_status: args.wrong_region_status,
        log_capacity: args.log_capacity,
        ..SimConfig::default()
    })
}

/// `CLIENT_ID=RETRY_AFTER/DURATION` (humantime durations).
fn parse_throttle_client(value: &str) -> Result<ThrottleWindow, String> {
    let usage =
        || format!("expected CLIENT_ID=RETRY_AFTER/DURATION (e.g. client=60s/2m), got {value:?}");
    let (client_id, times) = value.rsplit_once('=').ok_or_else(usage)?;
    let (retry_after, duration) = times.split_once('/').ok_or_else(usage)?;
    let parse =
        |d: &str| humantime::parse_duration(d.trim()).map_err(|e| format!("{e}: {}", usage()));
    if client_id.trim().is_empty() {
        return Err(usage());
    }
    Ok(ThrottleWindow {
        client_id: client_id.trim().to_string(),
        retry_after: parse(retry_after)?,
        duration: parse(duration)?,
    })
}

fn banner(sim: &Simulator, sandbox: bool, state: &SimState) -> String {
    let mut out = String::new();
    out.push_str("Alexa API simulator listening\n");
    out.push_str(&format!("  SMAPI + NA customer API: {}\n", sim.url()));
    out.push_str(&format!(
        "  LWA token endpoint:      {}\n",
        sim.lwa_token_url()
    ));
    if let Some(tls) = sim.tls_url() {
        out.push_str(&format!("  HTTPS (same API):        {tls}\n"));
    }
    out.push_str(&format!(
        "  admin:                   {}/__sim/\n",
        sim.url()
    ));
    out.push_str("  customer hosts (operator: --endpoint-override HOST=URL):\n");
    for (host, url) in sim.endpoint_overrides() {
        out.push_str(&format!("    {host}={url}\n"));
    }
    if sandbox {
        out.push_str("\nSandbox state (replace with --state FILE):\n");
        match state.to_yaml() {
            Ok(yaml) => out.push_str(&yaml),
            Err(err) => out.push_str(&format!("  (cannot render: {err})\n")),
        }
    } else {
        let skills: usize = state.vendors.iter().map(|v| v.skills.len()).sum();
        out.push_str(&format!(
            "\nState from file: {} vendors, {skills} skills, {} LWA clients, {} customers\n",
            state.vendors.len(),
            state.lwa_clients.len(),
            state.customers.len()
        ));
    }
    out
}

/// Runs the simulator until Ctrl-C or SIGTERM.
pub async fn serve_cli(args: SimulateArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let config = config_from_args(&args)?;
    let state = config.state.clone();
    let sim = Simulator::start(config).await?;
    if !args.quiet {
        println!("{}", banner(&sim, args.state.is_none(), &state));
    } else {
        println!("Alexa API simulator listening on {}", sim.url());
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::{SimulateArgs, config_from_args};
    use clap::Parser;

    #[test]
    fn region_ports_follow_the_main_port() {
        let args = SimulateArgs::parse_from(["sim", "--listen", "127.0.0.1:9200"]);
        let config = config_from_args(&args).unwrap();
        assert_eq!(config.eu_listen.port(), 9201);
        assert_eq!(config.fe_listen.port(), 9202);
        let args = SimulateArgs::parse_from(["sim", "--region-listen", "eu=127.0.0.1:9300"]);
        assert_eq!(config_from_args(&args).unwrap().eu_listen.port(), 9300);
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        let args = SimulateArgs::parse_from(["sim", "--error-rate", "1.5"]);
        assert!(config_from_args(&args).is_err());
    }

    #[test]
    fn throttle_client_windows_parse() {
        let args = SimulateArgs::parse_from(["sim", "--throttle-client", "noisy=60s/2m"]);
        let config = config_from_args(&args).unwrap();
        let window = &config.faults.throttle_clients[0];
        assert_eq!(window.client_id, "noisy");
        assert_eq!(window.retry_after, std::time::Duration::from_secs(60));
        assert_eq!(window.duration, std::time::Duration::from_secs(120));
        for bad in ["noisy", "noisy=60s", "=1s/2s", "noisy=x/2m"] {
            assert!(
                SimulateArgs::try_parse_from(["sim", "--throttle-client", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
