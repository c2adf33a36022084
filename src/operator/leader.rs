//! Leader election through a coordination.k8s.io Lease (kube-lease-manager): only the leader
//! runs controllers; a standby waits, takes over when the Lease expires or is released, and a
//! leader that loses the Lease stops its controllers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use super::{LEASE_RELEASE_TIMEOUT, RunError, run_term};
use crate::cli::RunArgs;
use crate::controller::context::Context;
use crate::server::{Health, Role};

/// A running election: whether this replica leads, and the task that renews the Lease.
pub(super) struct Election {
    leading: watch::Receiver<bool>,
    lease_task:
        JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Election {
    /// Handle to stop the Lease task at once (a simulated crash).
    pub(super) fn abort_handle(&self) -> AbortHandle {
        self.lease_task.abort_handle()
    }
}

/// Joins the election for `--lease-name` in `--lease-namespace` as `identity`.
pub(super) async fn elect(
    client: kube::Client,
    args: &RunArgs,
    identity: &str,
) -> Result<Election, RunError> {
    let seconds = args.lease_duration.as_secs().max(2);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(identity)
        .with_duration(seconds)
        .with_grace((seconds / 3).max(1))
        .build()
        .await
        .map_err(|e| {
            RunError::Config(format!(
                "leader election: cannot use Lease {}/{}: {e}",
                args.lease_namespace, args.lease_name
            ))
        })?;
    let (leading, lease_task) = manager.watch().await;
    Ok(Election {
        leading,
        lease_task,
    })
}

/// What a leadership term runs with.
pub(super) struct Term<'a> {
    pub(super) ctx: Arc<Context>,
    pub(super) args: &'a RunArgs,
    pub(super) health: Arc<Health>,
    pub(super) identity: &'a str,
    pub(super) grace: Duration,
}

/// Runs controllers in every term this replica leads, until `stop`; then releases the Lease
/// (bounded by [`LEASE_RELEASE_TIMEOUT`]) for a fast hand-over.
pub(super) async fn lead_while_elected(
    election: Election,
    term: Term<'_>,
    stop: watch::Receiver<bool>,
) {
    let Election {
        mut leading,
        lease_task,
    } = election;
    let mut stop = stop;
    loop {
        tokio::select! {
            changed = leading.wait_for(|is_leader| *is_leader) => {
                if changed.is_err() {
                    term.health.set_role(Role::Unhealthy);
                    break;
                }
            }
            _ = stop.wait_for(|stop| *stop) => break,
        }
        tracing::info!(identity = %term.identity, "elected leader; starting controllers");
        term.health.set_role(Role::Leader);
        if lead_one_term(&term, &mut leading, &mut stop).await {
            break;
        }
        term.health.set_role(Role::Standby);
    }
    // Dropping the receiver makes the lease task release the Lease for a fast hand-over.
    drop(leading);
    let _ = tokio::time::timeout(LEASE_RELEASE_TIMEOUT, lease_task).await;
}

/// One term: controllers run until leadership is lost or shutdown starts; in-flight
/// reconciles then get `grace`. Returns whether the operator is shutting down.
async fn lead_one_term(
    term: &Term<'_>,
    leading: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let (term_stop_tx, term_stop_rx) = watch::channel(false);
    let running = run_term(
        term.ctx.clone(),
        term.args,
        term.health.clone(),
        term_stop_rx,
    );
    tokio::pin!(running);
    let shutting_down = tokio::select! {
        _ = &mut running => false,
        _ = leading.wait_for(|is_leader| !*is_leader) => {
            tracing::warn!("lost leadership; stopping controllers");
            false
        }
        _ = stop.wait_for(|stop| *stop) => true,
    };
    let _ = term_stop_tx.send(true);
    let _ = tokio::time::timeout(term.grace, &mut running).await;
    term.health.set_synced(false);
    shutting_down
}
