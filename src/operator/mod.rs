//! `alexa-skill-operator run`: wires the Kubernetes client, the Alexa client, the controllers and
//! the health/metrics server together. The sandbox, the tests and the benchmark call
//! [`run_with_client`] so they exercise exactly this code path.

mod leader;
mod lease;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;

use crate::alexa::{AlexaClient, Backoff, ClientConfig, RateLimit};
use crate::cli::RunArgs;
use crate::controller::context::{Context, Settings};
use crate::controller::lifecycle::KindContext;
use crate::controller::runner::{Scope, SecretChanges, controller, shared_secret_changes};
use crate::crd::{SkillAccountLinking, SkillEnablement};
use crate::metrics::Metrics;
use crate::server::{self, Health, Role};

/// Why the operator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable Kubernetes configuration.
    #[error("cannot load Kubernetes configuration (in-cluster service account or KUBECONFIG): {0}")]
    KubeConfig(#[source] kube::Error),
    /// A flag value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The Alexa client could not be built.
    #[error("cannot build the Alexa API client: {0}")]
    Alexa(#[source] crate::alexa::AlexaError),
    /// The digest key Secret could not be read or created.
    #[error(transparent)]
    DigestKey(#[from] crate::controller::digest::DigestKeyError),
    /// The metrics/health server could not start.
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    /// This replica stopped leading (it aborted its controllers); a restart rejoins the
    /// election as a standby.
    #[error(
        "lost leadership: {0}; controllers stopped, exiting so the process restarts (check the API server's health and the operator's CPU limits if this repeats)"
    )]
    LeadershipLost(String),
    /// The controllers ended or panicked while they should have been running.
    #[error("the controllers stopped unexpectedly: {0}; exiting so the process restarts")]
    ControllersStopped(String),
}

/// A controllers task that is aborted when its handle goes: aborting the run (a simulated
/// crash, a shutdown past its grace) must take the controllers with it.
struct Controllers(tokio::task::JoinHandle<()>);

impl Controllers {
    fn spawn(
        ctx: Arc<Context>,
        args: &RunArgs,
        health: Arc<Health>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Controllers {
        let args = args.clone();
        Controllers(tokio::spawn(async move {
            run_term(ctx, &args, health, stop).await
        }))
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The error for a controllers task that ended (`joined`) while it should have been running.
fn controllers_ended(joined: Result<(), tokio::task::JoinError>) -> RunError {
    RunError::ControllersStopped(match joined {
        Ok(()) => "every watch stream ended".to_string(),
        Err(e) if e.is_panic() => "a controller panicked".to_string(),
        Err(e) => e.to_string(),
    })
}

/// Builds the Alexa client configuration from the flags.
pub fn client_config(args: &RunArgs, metrics: Arc<Metrics>) -> Result<ClientConfig, RunError> {
    let overrides: HashMap<String, String> = args
        .endpoint_overrides
        .iter()
        .map(|o| (o.host.clone(), o.url.clone()))
        .collect();
    let rate_limit = (args.api_rate_limit > 0.0).then(|| RateLimit {
        per_second: args.api_rate_limit,
        burst: args.api_burst.max(1),
    });
    Ok(ClientConfig {
        smapi_url: args.smapi_url.trim_end_matches('/').to_string(),
        lwa_url: args.lwa_url.clone(),
        customer_discovery_url: args
            .customer_discovery_url
            .trim_end_matches('/')
            .to_string(),
        endpoint_overrides: overrides,
        rate_limit,
        backoff: backoff(args),
        timeout: args.http_timeout,
        observer: Some(metrics),
        ..ClientConfig::default()
    })
}

fn backoff(args: &RunArgs) -> Backoff {
    Backoff {
        base: args.backoff_base,
        factor: 2.0,
        max: args.backoff_max,
    }
}

/// Runs the operator with the usual Kubernetes configuration until SIGTERM/Ctrl-C.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = kube::Client::try_default()
        .await
        .map_err(RunError::KubeConfig)?;
    run_with_client(args, client, shutdown_signal()).await
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How long releasing the leader Lease on shutdown may take (one API call; the standby takes
/// over at lease expiry if it fails).
const LEASE_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// A started operator: its HTTP address and shared state, and the handle to stop it.
pub struct Running {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: std::net::SocketAddr,
    /// The metrics registry (tests read it directly).
    pub metrics: Arc<Metrics>,
    /// Readiness and leader-election role.
    pub health: Arc<Health>,
    stop: tokio::sync::watch::Sender<bool>,
    grace: Duration,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    /// Whether `task` was awaited to completion (a JoinHandle must not be polled again).
    ended: bool,
}

impl Running {
    /// Stops taking new work, lets in-flight reconciles finish (bounded by `--shutdown-grace`),
    /// releases the leader Lease and stops the HTTP server.
    pub async fn shutdown(self) {
        if self.ended {
            return;
        }
        tracing::info!("shutting down: no new reconciles; waiting for in-flight ones");
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        // In-flight reconciles get `grace`, then the Lease release its own bound; the margin
        // covers the HTTP server's stop.
        if tokio::time::timeout(
            self.grace + LEASE_RELEASE_TIMEOUT + Duration::from_secs(2),
            self.task,
        )
        .await
        .is_err()
        {
            tracing::warn!(
                grace_ms = self.grace.as_millis() as u64,
                "in-flight reconciles did not finish in time"
            );
            abort.abort();
        }
    }

    /// Stops everything at once without releasing the Lease, like a crashed process
    /// (for tests of leader fail-over).
    pub fn kill(self) {
        self.task.abort();
    }

    /// Completes when the operator stops on its own, which is always an error (leadership
    /// lost, controllers died): the process must exit non-zero so that it is restarted.
    pub async fn stopped(&mut self) -> Result<(), RunError> {
        let joined = (&mut self.task).await;
        self.ended = true;
        joined.unwrap_or_else(|e| {
            Err(RunError::ControllersStopped(format!(
                "the operator's main task failed: {e}"
            )))
        })
    }
}

/// Starts the controllers (now, or once elected leader) and the HTTP server against `client`,
/// and returns at once.
pub async fn start(args: RunArgs, client: kube::Client) -> Result<Running, RunError> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let alexa =
        AlexaClient::new(client_config(&args, metrics.clone())?).map_err(RunError::Alexa)?;
    let settings = Settings {
        resync_period: args.resync_period,
        stalled_retry: args.resync_period.max(Duration::from_secs(60)),
        backoff: backoff(&args),
    };
    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(random_identity);
    let digester =
        crate::controller::digest::load_or_create(&client, &args.lease_namespace).await?;
    crate::alexa::set_fingerprint_key(digester.fingerprint_key());
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            alexa,
            metrics.clone(),
            settings,
            Some(identity.clone()),
        )
        .with_digester(digester),
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (dead_tx, dead_rx) = tokio::sync::watch::channel(false);
    let stopped = stop_signal(stop_rx.clone());
    let died = stop_signal(dead_rx);
    let (metrics_addr, serve) = server::bind(
        args.metrics_addr.clone(),
        metrics.clone(),
        health.clone(),
        async move {
            tokio::select! {
                () = stopped => {}
                () = died => {}
            }
        },
    )
    .await?;
    tracing::info!(%metrics_addr, "serving /metrics, /healthz and /readyz");

    let elector = args.leader_election.then(|| {
        health.set_role(Role::Standby);
        leader::elect(client, &args, &identity)
    });
    let grace = args.shutdown_grace;
    let task_health = health.clone();
    let task = tokio::spawn(async move {
        let lead = async {
            let result = reconcile(ctx, &args, task_health, elector, stop_rx).await;
            // The HTTP server goes with the process (it also stops on `stop`).
            if result.is_err() {
                let _ = dead_tx.send(true);
            }
            result
        };
        tokio::join!(lead, serve).0
    });
    Ok(Running {
        metrics_addr,
        metrics,
        health,
        stop: stop_tx,
        grace,
        task,
        ended: false,
    })
}

/// Runs the controllers until `stop`: at once without leader election, else while leading.
async fn reconcile(
    ctx: Arc<Context>,
    args: &RunArgs,
    health: Arc<Health>,
    elector: Option<leader::Elector>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RunError> {
    let Some(elector) = elector else {
        return run_single(ctx, args, health, stop).await;
    };
    let term = leader::Term {
        ctx,
        args,
        health,
        grace: args.shutdown_grace,
    };
    leader::lead_while_elected(elector, term, stop).await
}

/// Without leader election: the controllers run until `stop`; if they end before (a panic,
/// every stream closed), `/healthz` fails with the reason and the error is returned.
async fn run_single(
    ctx: Arc<Context>,
    args: &RunArgs,
    health: Arc<Health>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RunError> {
    let controllers = Controllers::spawn(ctx, args, health.clone(), stop.clone());
    supervise(controllers, stop, &health).await
}

/// Waits for a controllers task: ending after `stop` is a clean shutdown; ending before is an
/// error, also reported by `/healthz`.
async fn supervise(
    mut controllers: Controllers,
    mut stop: tokio::sync::watch::Receiver<bool>,
    health: &Health,
) -> Result<(), RunError> {
    let joined = (&mut controllers.0).await;
    if *stop.borrow_and_update() {
        return Ok(());
    }
    let error = controllers_ended(joined);
    tracing::error!(%error, "exiting so that the process restarts");
    health.set_dead(error.to_string());
    Err(error)
}

fn random_identity() -> String {
    format!("alexa-skill-operator-{:016x}", rand::random::<u64>())
}

fn stop_signal(
    rx: tokio::sync::watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let mut rx = rx;
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// One term of running controllers: until `stop` says so, then in-flight reconciles finish.
async fn run_term(
    ctx: Arc<Context>,
    args: &RunArgs,
    health: Arc<Health>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let scopes = Scope::from_list(&args.watch_namespaces);
    let mut streams = Vec::new();
    let mut ready_waits = Vec::new();
    let mut enablement_stores = Vec::new();
    // One kind context per term, shared by every scope's controller of that kind.
    let linking_ctx = Arc::new(KindContext::<SkillAccountLinking>::new(ctx.clone()));
    let enablement_ctx = Arc::new(KindContext::<SkillEnablement>::new(ctx.clone()));
    let mut credential_secrets = Vec::new();
    for scope in &scopes {
        // One Secret watch per scope for both managed kinds, AlexaCredentials and (cluster-wide
        // only) ClusterAlexaCredentials.
        let [
            linking_secrets,
            enablement_secrets,
            local_secrets,
            cluster_secrets,
        ] = shared_secret_changes(&ctx.kube, scope, ctx.secrets.clone());
        let (s, _store, mut synced) = controller::<SkillAccountLinking>(
            linking_ctx.clone(),
            scope.clone(),
            args.concurrency,
            linking_secrets,
            stop_signal(stop.clone()),
        );
        streams.push(s.boxed());
        ready_waits.push(tokio::spawn(async move {
            synced.wait_for(|s| *s).await.is_ok()
        }));
        let (s, store, mut synced) = controller::<SkillEnablement>(
            enablement_ctx.clone(),
            scope.clone(),
            args.concurrency,
            enablement_secrets,
            stop_signal(stop.clone()),
        );
        enablement_stores.push(store);
        streams.push(s.boxed());
        ready_waits.push(tokio::spawn(async move {
            synced.wait_for(|s| *s).await.is_ok()
        }));
        credential_secrets.push((scope.clone(), local_secrets, cluster_secrets));
    }
    enablement_ctx.state.set(enablement_stores);
    streams.extend(credentials_controllers(&ctx, credential_secrets, &stop));
    let sync = tokio::spawn(async move {
        let all = join_all(ready_waits).await;
        if all.into_iter().all(|r| matches!(r, Ok(true))) {
            health.set_synced(true);
            tracing::info!("watches synced");
        }
    });
    futures::stream::select_all(streams)
        .for_each(|()| async {})
        .await;
    sync.abort();
}

/// The controllers of the credentials kinds: AlexaCredentials in every scope, and
/// ClusterAlexaCredentials when every namespace is watched (they need cluster-wide access).
/// Each scope comes with its shares of that scope's Secret watch, for either kind.
fn credentials_controllers(
    ctx: &Arc<Context>,
    scopes: Vec<(Scope, SecretChanges, SecretChanges)>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Vec<futures::stream::BoxStream<'static, ()>> {
    use crate::controller::credentials::reconciler::controller as credentials;
    use crate::crd::{AlexaCredentials, ClusterAlexaCredentials};
    use kube::Api;
    let client = &ctx.kube;
    let mut streams = Vec::new();
    for (scope, local_secrets, cluster_secrets) in scopes {
        let api: Api<AlexaCredentials> = scope.api(client);
        let stream = credentials(ctx.clone(), api, local_secrets, stop_signal(stop.clone()));
        streams.push(stream.boxed());
        if matches!(scope, Scope::All) {
            let api: Api<ClusterAlexaCredentials> = Api::all(client.clone());
            let stream = credentials(ctx.clone(), api, cluster_secrets, stop_signal(stop.clone()));
            streams.push(stream.boxed());
        }
    }
    streams
}

/// Runs the operator against `client` until `shutdown` completes, then stops gracefully.
pub async fn run_with_client(
    args: RunArgs,
    client: kube::Client,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let mut running = start(args, client).await?;
    tokio::pin!(shutdown);
    let ended = tokio::select! {
        () = &mut shutdown => None,
        result = running.stopped() => Some(result),
    };
    match ended {
        Some(result) => result,
        None => {
            running.shutdown().await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn controllers_that_end_before_stop_fail_healthz_and_the_run() {
        let health = Health::default();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        // A panic in a controller.
        let panicked = Controllers(tokio::spawn(async { panic!("boom") }));
        let err = supervise(panicked, stop.clone(), &health)
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::ControllersStopped(_)), "{err}");
        let why = health.liveness().unwrap_err();
        assert!(
            why.contains("controllers stopped unexpectedly: a controller panicked"),
            "{why}"
        );

        // Streams that all ended without being asked to.
        let health = Health::default();
        let ended = Controllers(tokio::spawn(async {}));
        assert!(supervise(ended, stop.clone(), &health).await.is_err());
        assert!(
            health
                .liveness()
                .unwrap_err()
                .contains("every watch stream ended")
        );

        // Ending after `stop` is a clean shutdown.
        let health = Health::default();
        stop_tx.send(true).unwrap();
        let ended = Controllers(tokio::spawn(async {}));
        assert!(supervise(ended, stop, &health).await.is_ok());
        assert_eq!(health.liveness(), Ok(()));
    }
}
