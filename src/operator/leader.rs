//! Leader election through a coordination.k8s.io/v1 Lease, the way client-go's
//! `leaderelection` does it (the decisions are in `lease.rs`): only the leader runs
//! controllers; a standby takes over once the Lease record stayed unchanged for its duration;
//! a leader that cannot renew within the renew deadline aborts its controllers (no further
//! request to Amazon) and the run ends with an error, so the process exits non-zero and the
//! kubelet restarts it, as controller-runtime does.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use super::lease::{self, Decision, Observed, Timing};
use super::{Controllers, LEASE_RELEASE_TIMEOUT, RunError};
use crate::cli::RunArgs;
use crate::controller::context::Context;
use crate::server::{Health, Role};

/// This replica's side of the election: the Lease API and what it last saw of the Lease.
pub(super) struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Option<Observed>,
}

/// The outcome of one attempt to acquire or renew.
enum Attempt {
    /// This replica holds the Lease (just created, taken over or renewed).
    Leading,
    /// Another replica holds an unexpired Lease.
    HeldBy(String),
}

/// Joins the election for `--lease-name` in `--lease-namespace` as `identity`.
pub(super) fn elect(client: kube::Client, args: &RunArgs, identity: &str) -> Elector {
    Elector {
        api: Api::namespaced(client, &args.lease_namespace),
        name: args.lease_name.clone(),
        identity: identity.to_string(),
        timing: Timing::from_lease_duration(args.lease_duration),
        observed: None,
    }
}

impl Elector {
    /// One read of the Lease, then a create or a write preconditioned on the resourceVersion
    /// read (a concurrent writer makes it fail with 409 instead of two replicas winning).
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let read = self.api.get_opt(&self.name).await?;
        let now = Instant::now();
        let wall = Timestamp::now();
        let observed = read.map(|l| {
            let spec = l.spec.unwrap_or_default();
            lease::observe(
                self.observed.as_ref(),
                spec,
                l.metadata.resource_version,
                now,
            )
        });
        let spec = match lease::decide(&self.identity, observed.as_ref(), &self.timing, now, wall) {
            Decision::HeldBy(holder) => {
                self.observed = observed;
                return Ok(Attempt::HeldBy(holder));
            }
            Decision::Create => lease::created(&self.identity, &self.timing, wall),
            Decision::Write(spec) => spec,
        };
        let rv = observed.and_then(|o| o.resource_version);
        let written = self.write(spec, rv).await?;
        self.observed = Some(lease::observe(
            None,
            written.spec.unwrap_or_default(),
            written.metadata.resource_version,
            now,
        ));
        Ok(Attempt::Leading)
    }

    /// Creates the Lease (`rv` None) or merge-patches it on condition it is still at `rv` (the
    /// API server refuses a patch naming another resourceVersion with 409; `patch` is the verb
    /// deploy/'s Role grants).
    async fn write(&self, spec: LeaseSpec, rv: Option<String>) -> Result<Lease, kube::Error> {
        let Some(rv) = rv else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            return self.api.create(&PostParams::default(), &lease).await;
        };
        let patch = lease::merge_patch(&spec, &rv).map_err(kube::Error::SerdeError)?;
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    }

    /// Hands the Lease over on a clean shutdown (bounded by [`LEASE_RELEASE_TIMEOUT`]); a
    /// failure only delays the standby until the Lease expires.
    async fn release(&self) {
        let release = async {
            let current = self.api.get_opt(&self.name).await?;
            let Some(current) = current else {
                return Ok(());
            };
            let spec = current.spec.unwrap_or_default();
            let Some(released) = lease::released(&self.identity, &spec, Timestamp::now()) else {
                return Ok(());
            };
            self.write(released, current.metadata.resource_version)
                .await
                .map(|_| ())
        };
        match tokio::time::timeout(LEASE_RELEASE_TIMEOUT, release).await {
            Ok(Ok(())) => tracing::info!(identity = %self.identity, "released the leader Lease"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot release the leader Lease"),
            Err(_) => tracing::warn!("releasing the leader Lease timed out"),
        }
    }

    /// A pause of the retry period with up to 20 % jitter, so replicas do not move in step.
    fn pause(&self) -> Duration {
        self.timing.retry.mul_f64(1.0 + rand::random::<f64>() * 0.2)
    }
}

/// What a leadership term runs with.
pub(super) struct Term<'a> {
    pub(super) ctx: Arc<Context>,
    pub(super) args: &'a RunArgs,
    pub(super) health: Arc<Health>,
    pub(super) grace: Duration,
}

/// Waits to become leader, then runs the controllers until `stop` (then releases the Lease)
/// or until leadership is lost or the controllers died (an error: the process must restart).
pub(super) async fn lead_while_elected(
    mut elector: Elector,
    term: Term<'_>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let Some(renewed) = acquire(&mut elector, &term.health, &mut stop).await else {
        return Ok(());
    };
    tracing::info!(identity = %elector.identity, "elected leader; starting controllers");
    term.health.set_role(Role::Leader);
    lead(&mut elector, &term, renewed, &mut stop).await
}

/// Tries to acquire the Lease every retry period until it succeeds (returns when that attempt
/// started) or `stop` (None).
async fn acquire(
    elector: &mut Elector,
    health: &Health,
    stop: &mut watch::Receiver<bool>,
) -> Option<Instant> {
    loop {
        let started = Instant::now();
        let attempt = tokio::select! {
            a = tokio::time::timeout(elector.timing.renew_deadline, elector.try_acquire_or_renew()) => a,
            _ = stop.wait_for(|stop| *stop) => return None,
        };
        match attempt {
            Ok(Ok(Attempt::Leading)) => return Some(started),
            Ok(Ok(Attempt::HeldBy(holder))) => {
                tracing::debug!(%holder, "another replica leads");
                health.set_role(Role::Standby);
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "leader election: cannot read or write the Lease");
                health.set_role(Role::Unhealthy);
            }
            Err(_) => {
                tracing::warn!("leader election: a Lease request timed out");
                health.set_role(Role::Unhealthy);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(elector.pause()) => {}
            _ = stop.wait_for(|stop| *stop) => return None,
        }
    }
}

/// One term: controllers run in their own task while the Lease is renewed every retry period.
/// On `stop` in-flight reconciles get `grace` and the Lease is released; when no renewal
/// succeeds before the renew deadline, or the controllers end on their own, the controllers
/// are aborted at once and the error is returned.
async fn lead(
    elector: &mut Elector,
    term: &Term<'_>,
    renewed: Instant,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), RunError> {
    let (term_stop_tx, term_stop_rx) = watch::channel(false);
    let mut controllers = Controllers::spawn(
        term.ctx.clone(),
        term.args,
        term.health.clone(),
        term_stop_rx,
    );
    let timing = elector.timing;
    let mut renewed = renewed;
    let outcome = loop {
        let deadline = lease::renew_deadline(renewed, &timing);
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break Ok(()),
            joined = &mut controllers.0 => break Err(super::controllers_ended(joined)),
            renewal = tokio::time::timeout_at(deadline, renew(elector)) => match renewal {
                Ok(Ok(started)) => renewed = started,
                Ok(Err(holder)) => break Err(RunError::LeadershipLost(format!(
                    "the Lease is held by {holder}"
                ))),
                Err(_) => break Err(RunError::LeadershipLost(format!(
                    "no renewal succeeded within the renew deadline of {:?}",
                    timing.renew_deadline
                ))),
            },
        }
    };
    term.health.set_synced(false);
    match outcome {
        Ok(()) => {
            let _ = term_stop_tx.send(true);
            if tokio::time::timeout(term.grace, &mut controllers.0)
                .await
                .is_err()
            {
                // Past the grace: nothing may run once the Lease is released.
                abort_and_wait(&mut controllers).await;
            }
            elector.release().await;
            Ok(())
        }
        Err(error) => {
            abort_and_wait(&mut controllers).await;
            tracing::error!(%error, "stopped reconciling; exiting so that the process restarts");
            term.health.set_role(Role::Unhealthy);
            term.health.set_dead(error.to_string());
            Err(error)
        }
    }
}

/// Aborts the controllers and waits until their reconciles are gone (bounded; a finished
/// task must not be polled again).
async fn abort_and_wait(controllers: &mut Controllers) {
    controllers.0.abort();
    if !controllers.0.is_finished() {
        let _ = tokio::time::timeout(LEASE_RELEASE_TIMEOUT, &mut controllers.0).await;
    }
}

/// After one retry period, attempts to renew until an attempt succeeds (returns when it
/// started) or finds another holder (its name); the caller bounds it by the renew deadline.
async fn renew(elector: &mut Elector) -> Result<Instant, String> {
    loop {
        tokio::time::sleep(elector.pause()).await;
        let started = Instant::now();
        match elector.try_acquire_or_renew().await {
            Ok(Attempt::Leading) => return Ok(started),
            Ok(Attempt::HeldBy(holder)) => return Err(holder),
            Err(error) => tracing::warn!(%error, "leader election: renewing the Lease failed"),
        }
    }
}
