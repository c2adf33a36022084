//! Starting the two local stand-ins (the Kubernetes API test server and the Alexa API simulator)
//! and the real operator. Fixed default ports make the printed commands stable between runs;
//! when a port is taken (a second sandbox, a local k3s on 6443) the sandbox falls back to free
//! ports instead of failing, and says so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alexa_simulator::{SimConfig, Simulator, SimulatorError};
use alexa_skill_operator::cli::{Cli, Command};
use alexa_skill_operator::operator::{self, Running};
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_test_server::{ListeningServer, TestServer};

use crate::Res;
use crate::out;

/// The CRDs a user installs, so the sandbox enforces exactly their schemas and CEL rules.
const CRDS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");

/// The usual kube-apiserver port, so the kubeconfig looks familiar.
pub const DEFAULT_KUBE_PORT: u16 = 6443;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The Kubernetes API test server listening on 127.0.0.1, and the kubeconfig written for it.
pub struct KubeApi {
    /// Kept so the store lives as long as the sandbox.
    pub _server: TestServer,
    pub listening: ListeningServer,
    /// Absolute path of the kubeconfig pointing at `listening`.
    pub kubeconfig: PathBuf,
}

impl KubeApi {
    /// Starts the server on `port` (a free port if it is taken; 0 asks for one) and writes the
    /// kubeconfig to `kubeconfig` or, by default, under the cargo target directory.
    pub async fn start(port: u16, kubeconfig: Option<PathBuf>) -> Res<KubeApi> {
        let server = TestServer::new()
            .with_crds_from_dir(CRDS_DIR)?
            // A fresh cluster lists these, and `kubectl get ns` should look like one.
            .with_namespaces(&["default", "kube-system", "kube-public"]);
        let listening = match server.listen(loopback(port)).await {
            Ok(l) => l,
            Err(err) if port != 0 => {
                out::line(format!(
                    "Kubernetes API: cannot listen on 127.0.0.1:{port} ({err}); using a free port"
                ));
                server.listen(loopback(0)).await?
            }
            Err(err) => return Err(err.into()),
        };
        let path = match kubeconfig {
            Some(p) => p,
            None => default_kubeconfig_path(listening.addr.port()),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        listening.write_kubeconfig(&path)?;
        let kubeconfig = std::fs::canonicalize(&path)?;
        Ok(KubeApi {
            _server: server,
            listening,
            kubeconfig,
        })
    }

    /// A client that reaches the server through its TCP port and the written kubeconfig, the
    /// same HTTP path kubectl and a separately started operator take.
    pub async fn client(&self) -> Res<kube::Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// Stops listening and removes the kubeconfig, which would point at nothing afterwards.
    pub async fn shutdown(self) {
        self.listening.shutdown().await;
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// `<target>/sandbox/kubeconfig` next to the example binary, where `cargo clean` removes it and
/// git ignores it; `kubeconfig-<port>` when the default port was taken so that a second sandbox
/// never overwrites the first one's file. Falls back to the temporary directory.
fn default_kubeconfig_path(port: u16) -> PathBuf {
    let file = if port == DEFAULT_KUBE_PORT {
        "kubeconfig".to_string()
    } else {
        format!("kubeconfig-{port}")
    };
    let target = std::env::current_exe().ok().and_then(|exe| {
        // <target>/<profile>/examples/sandbox
        let examples = exe.parent()?;
        (examples.file_name()? == "examples")
            .then(|| examples.parent()?.parent().map(Path::to_path_buf))
            .flatten()
    });
    target
        .unwrap_or_else(|| std::env::temp_dir().join("alexa-skill-operator"))
        .join("sandbox")
        .join(file)
}

/// A `kube::Client` built from a kubeconfig file, like `kube::Client::try_default` does with
/// `KUBECONFIG` set.
pub async fn client_from_kubeconfig(path: &Path) -> Res<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Starts the simulator with its sandbox state on `port` (main: SMAPI, LWA, NA customer API),
/// `port + 1` (EU) and `port + 2` (FE), or on free ports if any of them is taken.
pub async fn start_simulator(port: u16) -> Res<Simulator> {
    let ports = (port != 0)
        .then(|| Some((port.checked_add(1)?, port.checked_add(2)?)))
        .flatten();
    if let Some((eu, fe)) = ports {
        let config = SimConfig {
            listen: loopback(port),
            eu_listen: loopback(eu),
            fe_listen: loopback(fe),
            ..SimConfig::default()
        };
        match Simulator::start(config).await {
            Ok(sim) => return Ok(sim),
            Err(SimulatorError::Bind { addr, source }) => out::line(format!(
                "Alexa simulator: cannot listen on {addr} ({source}); using free ports"
            )),
            Err(err) => return Err(err.into()),
        }
    }
    Ok(Simulator::start(SimConfig::default()).await?)
}

/// The `alexa-skill-operator run` arguments that point the operator at the simulator: the
/// production defaults except for the URLs, a short resync period so drift repair shows up
/// within seconds, text logs and a short shutdown grace.
pub fn run_args(sim: &Simulator, metrics_addr: &str, resync_period: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "alexa-skill-operator".into(),
        "run".into(),
        "--smapi-url".into(),
        sim.url(),
        "--lwa-url".into(),
        sim.lwa_token_url(),
        "--customer-discovery-url".into(),
        sim.url(),
    ];
    for (host, url) in sim.endpoint_overrides() {
        args.push("--endpoint-override".into());
        args.push(format!("{host}={url}"));
    }
    args.extend(
        [
            "--resync-period",
            resync_period,
            "--metrics-addr",
            metrics_addr,
            "--log-format",
            "text",
            "--shutdown-grace",
            "5s",
        ]
        .map(String::from),
    );
    args
}

/// Starts the real operator (`operator::start`, what `alexa-skill-operator run` calls) in this
/// process with a client that goes through the kubeconfig and the TCP port.
pub async fn start_operator(args: &[String], client: kube::Client) -> Res<Running> {
    let cli = Cli::try_parse_from(args)?;
    let Command::Run(run) = cli.command else {
        return Err("internal error: the operator arguments are not a `run` command".into());
    };
    Ok(operator::start(*run, client).await?)
}

/// An address for a separately started operator's `/metrics`: 127.0.0.1:8080 when free, else
/// another free port (checked now; another program could still take it before the operator
/// starts, in which case the operator says so and the user edits the flag).
pub fn free_metrics_addr() -> String {
    for port in [8080, 0] {
        let bound = std::net::TcpListener::bind(loopback(port)).and_then(|l| l.local_addr());
        if let Ok(addr) = bound {
            return addr.to_string();
        }
    }
    "127.0.0.1:8080".into()
}
