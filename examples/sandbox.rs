//! `cargo run --example sandbox`: the operator working within a minute, with no cluster and no
//! Amazon account.
//!
//! One process starts the in-process Kubernetes API test server on 127.0.0.1 (and writes a
//! kubeconfig for kubectl), the Alexa API simulator with its sandbox state, and the real operator
//! through `operator::start` (what `alexa-skill-operator run` calls) with a client built from that
//! kubeconfig, so every request goes over HTTP exactly as in a cluster. It then applies the
//! example objects of `deploy/samples/`, shows them becoming Ready like `kubectl get sal,sen -w`,
//! demonstrates a drift repair and a failure that is then fixed, and keeps running until Ctrl-C
//! so the user can experiment with kubectl.
//!
//! It is an example rather than a subcommand because the test API server is a dev-dependency:
//! the release binary and image must not contain it.
//!
//! `--no-operator` leaves the operator out and prints the `alexa-skill-operator run` command
//! that points a separately started operator at the two servers; the demo then waits for that
//! operator. `--exit-after-demo` exits after the demo with its result (for the test and CI).

#[path = "sandbox/demo.rs"]
mod demo;
#[path = "sandbox/objects.rs"]
mod objects;
#[path = "sandbox/out.rs"]
mod out;
#[path = "sandbox/servers.rs"]
mod servers;
#[path = "sandbox/view.rs"]
mod view;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use alexa_simulator::Simulator;
use alexa_skill_operator::operator::{self, Running};
use clap::Parser;

use crate::servers::KubeApi;
use crate::view::View;

/// Examples may not panic on bad input either; errors travel up to `main` and end the process
/// with a message and a non-zero status.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Run the real operator against a local Kubernetes API test server and the Alexa API
/// simulator, apply the example objects, and demonstrate drift repair and a failure.
#[derive(Debug, Parser)]
#[command(name = "sandbox")]
struct Args {
    /// Start only the Kubernetes API test server and the simulator, and print the
    /// `alexa-skill-operator run` command that points an operator started separately at them.
    /// The demo then waits for that operator.
    #[arg(long)]
    no_operator: bool,

    /// Exit after the demo: status 0 when every step worked, 1 when one failed or timed out.
    #[arg(long)]
    exit_after_demo: bool,

    /// Show the operator's info logs on stderr (default: warnings and errors only; RUST_LOG
    /// overrides both).
    #[arg(long, short)]
    verbose: bool,

    /// Port of the Kubernetes API test server on 127.0.0.1 (a free port if taken; 0: any).
    #[arg(long, default_value_t = servers::DEFAULT_KUBE_PORT)]
    kube_port: u16,

    /// Main port of the Alexa simulator on 127.0.0.1; its EU and FE listeners take the next
    /// two ports (free ports if any is taken; 0: any).
    #[arg(long, default_value_t = 9100)]
    sim_port: u16,

    /// Where to write the kubeconfig [default: <cargo target dir>/sandbox/kubeconfig].
    #[arg(long)]
    kubeconfig: Option<PathBuf>,

    /// The operator's --resync-period: how soon an out-of-band change is noticed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    resync_period: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(args.verbose);
    alexa_skill_operator::alexa::install_crypto_provider();
    out::start_clock();
    match run(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sandbox: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Operator logs go to stderr and stay quiet by default, so the demo's own lines on stdout are
/// readable.
fn init_tracing(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(args: Args) -> Res<ExitCode> {
    let kube = KubeApi::start(args.kube_port, args.kubeconfig.clone()).await?;
    let sim = servers::start_simulator(args.sim_port).await?;
    let resync = humantime::format_duration(args.resync_period).to_string();

    let (operator, run_args) = if args.no_operator {
        let run_args = servers::run_args(&sim, &servers::free_metrics_addr(), &resync);
        (None, run_args)
    } else {
        let run_args = servers::run_args(&sim, "127.0.0.1:0", &resync);
        let running = servers::start_operator(&run_args, kube.client().await?).await?;
        (Some(running), run_args)
    };
    banner(&args, &kube, &sim, operator.as_ref(), &run_args);

    let view = View::start(kube.client().await?, objects::NAMESPACE).await?;
    let demo = demo::Demo {
        client: kube.client().await?,
        sim: &sim,
        view: &view,
        resync_period: args.resync_period,
        external_operator: args.no_operator,
        first_ready_timeout: if args.no_operator {
            Duration::from_secs(600)
        } else {
            Duration::from_secs(60)
        },
    };
    // One signal listener for the whole run: a Ctrl-C that arrives between the end of the demo
    // and the wait below is kept, not lost.
    let signal = operator::shutdown_signal();
    tokio::pin!(signal);
    let result = tokio::select! {
        result = demo.run() => Some(result),
        () = &mut signal => None,
    };
    let code = match result {
        None => {
            out::line("interrupted; shutting down");
            exit_code(!args.exit_after_demo)
        }
        Some(Ok(())) => {
            out::raw("");
            out::line("demo complete: every step worked");
            if args.exit_after_demo {
                ExitCode::SUCCESS
            } else {
                summary(&kube, &sim, operator.as_ref());
                (&mut signal).await;
                ExitCode::SUCCESS
            }
        }
        Some(Err(err)) => {
            out::raw("");
            out::line(format!("demo FAILED: {err}"));
            if !args.exit_after_demo {
                out::line(
                    "everything keeps running so you can look around with kubectl; Ctrl-C stops it",
                );
                (&mut signal).await;
            }
            ExitCode::FAILURE
        }
    };
    shutdown(view, operator, sim, kube).await;
    Ok(code)
}

fn exit_code(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Stops in dependency order: the operator first (it finishes in-flight reconciles against the
/// servers), then the watchers, then the servers.
async fn shutdown(view: View, operator: Option<Running>, sim: Simulator, kube: KubeApi) {
    if let Some(running) = operator {
        running.shutdown().await;
    }
    view.stop();
    sim.shutdown().await;
    kube.shutdown().await;
    out::line("stopped");
}

fn command_line(kubeconfig: &str, run_args: &[String]) -> String {
    let words: Vec<String> = run_args.iter().map(|a| out::shell_word(a)).collect();
    format!(
        "KUBECONFIG={} {}",
        out::shell_word(kubeconfig),
        words.join(" ")
    )
}

fn banner(args: &Args, kube: &KubeApi, sim: &Simulator, op: Option<&Running>, run_args: &[String]) {
    let kubeconfig = kube.kubeconfig.display().to_string();
    let regions: Vec<String> = sim
        .endpoint_overrides()
        .into_iter()
        .skip(1)
        .map(|(host, url)| format!("{host} -> {url}"))
        .collect();
    out::raw(
        "alexa-skill-operator sandbox: the real operator against a local Kubernetes API test \
         server and the Alexa API simulator (no cluster, no Amazon account)",
    );
    out::raw("");
    out::raw(&format!(
        "  Kubernetes API   {}  (in-process test server with the CRDs of crds/)",
        kube.listening.url
    ));
    out::raw(&format!("  kubeconfig       {kubeconfig}"));
    out::raw(&format!(
        "  Alexa simulator  {}  (SMAPI, LWA, customer APIs; {}; sandbox state: docs/SIMULATOR.md)",
        sim.url(),
        regions.join(", ")
    ));
    match op {
        Some(running) => {
            out::raw(&format!(
                "  operator         running in this process (operator::start, the code of `alexa-skill-operator run`), resync every {}",
                humantime::format_duration(args.resync_period)
            ));
            out::raw(&format!(
                "                   metrics http://{0}/metrics, health http://{0}/readyz; logs on stderr ({1})",
                running.metrics_addr,
                if args.verbose {
                    "info"
                } else {
                    "warnings only; --verbose for more"
                }
            ));
        }
        None => {
            out::raw(
                "  operator         not started (--no-operator). Start one against these servers, from",
            );
            out::raw(
                "                   the repository with `cargo run --`, or with an installed binary:",
            );
            out::raw("");
            let cargo: Vec<String> = std::iter::once("cargo".to_string())
                .chain(std::iter::once("run".to_string()))
                .chain(std::iter::once("--".to_string()))
                .chain(run_args.iter().skip(1).cloned())
                .collect();
            out::raw(&format!("    {}", command_line(&kubeconfig, &cargo)));
            out::raw(&format!("    {}", command_line(&kubeconfig, run_args)));
        }
    }
    out::raw("");
    out::raw("  Watch along in another terminal (kubectl watches one kind at a time):");
    for line in kubectl_watch_lines(&kubeconfig) {
        out::raw(&format!("    {line}"));
    }
}

/// `export KUBECONFIG=...` and one `kubectl get -w` per kind with the CRDs' printer columns.
fn kubectl_watch_lines(kubeconfig: &str) -> [String; 3] {
    [
        format!("export KUBECONFIG={}", out::shell_word(kubeconfig)),
        format!("kubectl get sal -w -o {}", out::shell_word(&columns(false))),
        format!("kubectl get sen -w -o {}", out::shell_word(&columns(true))),
    ]
}

/// The CRDs' printer columns as `-o custom-columns`: a real API server renders them for plain
/// `kubectl get`, but the test server serves no Table output, so kubectl needs them spelled out.
fn columns(with_mode: bool) -> String {
    let ready = ".status.conditions[?(@.type==\"Ready\")]";
    let mode = if with_mode { "MODE:.status.mode," } else { "" };
    format!(
        "custom-columns=NAME:.metadata.name,SKILL:.spec.skillId,STAGE:.spec.stage,{mode}READY:{ready}.status,REASON:{ready}.reason"
    )
}

fn summary(kube: &KubeApi, sim: &Simulator, op: Option<&Running>) {
    let kubeconfig = kube.kubeconfig.display().to_string();
    let skill = alexa_simulator::sandbox::SKILL_ID;
    let sim_url = sim.url();
    let mut lines: Vec<String> = vec![
        String::new(),
        "The sandbox keeps running; Ctrl-C stops it. Things to try in another terminal:".into(),
        String::new(),
    ];
    lines.extend(kubectl_watch_lines(&kubeconfig).map(|l| format!("  {l}")));
    lines.extend([
        "  kubectl get sal sandbox-skill-development -o yaml     # conditions, status.redirectUrls".into(),
        "  kubectl get events.events.k8s.io -o custom-columns=OBJECT:.regarding.name,TYPE:.type,REASON:.reason,NOTE:.note".into(),
        String::new(),
        "  # change the spec: the operator updates Amazon (the simulator) within a second".into(),
        "  kubectl patch sal sandbox-skill-development --type=merge -p '{\"spec\":{\"accountLinking\":{\"clientId\":\"new-client\"}}}'".into(),
        "  # apply your own objects (the test server serves no OpenAPI schema, hence --validate=false)".into(),
        "  kubectl apply --server-side --validate=false -f my-skill-account-linking.yaml".into(),
        "  # force a reconcile, pause, delete (deletionPolicy Delete removes it from Amazon too)".into(),
        "  kubectl annotate sal sandbox-skill-development alexa.operator.dev/reconcile-requested-at=\"$(date +%s)\" --overwrite".into(),
        "  kubectl annotate sen sandbox-skill-owner alexa.operator.dev/paused=true".into(),
        "  kubectl delete sen sandbox-skill-owner".into(),
        String::new(),
        "  # the simulator: requests the operator sent, Amazon's side of the state, fault injection".into(),
        format!("  curl -s '{sim_url}/__sim/requests?limit=5'"),
        format!("  curl -s {sim_url}/__sim/state/skills/{skill}/stages/development/account-linking"),
        format!("  curl -s -X PUT {sim_url}/__sim/faults -H 'Content-Type: application/json' -d '{{\"errorRate\": 0.5}}'   # then DELETE to stop"),
    ]);
    if let Some(running) = op {
        lines.push(String::new());
        lines.push("  # the operator's metrics".into());
        lines.push(format!(
            "  curl -s http://{}/metrics | grep '^alexa_operator_'",
            running.metrics_addr
        ));
    }
    for line in lines {
        out::raw(&line);
    }
}
