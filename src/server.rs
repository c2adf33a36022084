//! HTTP endpoints for the platform: `/metrics` (Prometheus), `/healthz` (the leader elector
//! and the controllers are alive; 503 with the reason once one of them died) and `/readyz`
//! (watches synced, and leading or standing by when leader election is on).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use parking_lot::Mutex;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Leader-election role of this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Leader election is off: this replica always reconciles.
    Single = 0,
    /// This replica holds the Lease and reconciles.
    Leader = 1,
    /// Another replica holds the Lease; this one is healthy and ready to take over.
    Standby = 2,
    /// The Lease cannot be read or renewed.
    Unhealthy = 3,
}

/// Health shared between the controllers, the leader elector and the HTTP server.
#[derive(Debug, Default)]
pub struct Health {
    synced: AtomicBool,
    role: AtomicU8,
    dead: Mutex<Option<String>>,
}

impl Health {
    /// Marks whether the controllers' watches have listed everything once.
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::SeqCst);
    }

    /// Records this replica's leader-election role.
    pub fn set_role(&self, role: Role) {
        self.role.store(role as u8, Ordering::SeqCst);
    }

    /// This replica's leader-election role.
    pub fn role(&self) -> Role {
        match self.role.load(Ordering::SeqCst) {
            1 => Role::Leader,
            2 => Role::Standby,
            3 => Role::Unhealthy,
            _ => Role::Single,
        }
    }

    /// Records that a task the operator cannot work without (the leader elector, the
    /// controllers) has stopped: `/healthz` answers 503 with `why` from now on. The first
    /// reason is kept.
    pub fn set_dead(&self, why: impl Into<String>) {
        self.dead.lock().get_or_insert_with(|| why.into());
    }

    /// Whether `/healthz` answers 200, and why not.
    pub fn liveness(&self) -> Result<(), String> {
        match self.dead.lock().as_ref() {
            None => Ok(()),
            Some(why) => Err(why.clone()),
        }
    }

    /// Whether `/readyz` answers 200, and why not.
    pub fn readiness(&self) -> Result<(), String> {
        self.liveness()?;
        let synced = self.synced.load(Ordering::SeqCst);
        match self.role() {
            Role::Standby => Ok(()),
            Role::Unhealthy => Err("leader election: the Lease cannot be read or renewed".into()),
            Role::Single | Role::Leader if synced => Ok(()),
            Role::Single | Role::Leader => Err("watches have not synced yet".into()),
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The router, separate from `serve` so tests can call it without a socket.
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .route("/readyz", get(readyz_handler))
        .with_state(AppState { metrics, health })
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    let reconciles = matches!(state.health.role(), Role::Leader | Role::Single);
    state.metrics.leader.set(i64::from(reconciles));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn healthz_handler(State(state): State<AppState>) -> impl IntoResponse {
    answer(state.health.liveness())
}

async fn readyz_handler(State(state): State<AppState>) -> impl IntoResponse {
    answer(state.health.readiness())
}

fn answer(check: Result<(), String>) -> (StatusCode, String) {
    match check {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Error starting the HTTP server.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {addr} for /metrics, /healthz and /readyz: {source}; choose another --metrics-addr"
)]
pub struct ServeError {
    addr: String,
    #[source]
    source: std::io::Error,
}

/// Binds the HTTP server; returns the bound address and the serving future.
pub async fn bind(
    addr: String,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()>), ServeError> {
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(source) => return Err(ServeError { addr, source }),
    };
    let local = listener.local_addr().map_err(|source| ServeError {
        addr: addr.to_string(),
        source,
    })?;
    let app = router(metrics, health);
    let fut = async move {
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %err, "metrics server stopped");
        }
    };
    Ok((local, fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_sync_and_role() {
        let health = Health::default();
        assert!(health.readiness().is_err(), "not synced yet");
        health.set_synced(true);
        assert!(health.readiness().is_ok());
        health.set_role(Role::Standby);
        health.set_synced(false);
        assert!(health.readiness().is_ok(), "a healthy standby is ready");
        health.set_role(Role::Unhealthy);
        assert!(health.readiness().is_err());
        health.set_role(Role::Leader);
        assert!(health.readiness().is_err(), "a leader must have synced");
    }

    async fn get(health: &Arc<Health>, path: &str) -> (StatusCode, String) {
        crate::alexa::install_crypto_provider();
        let metrics = Arc::new(Metrics::new());
        let (addr, serve) = bind("127.0.0.1:0".into(), metrics, health.clone(), async {
            std::future::pending::<()>().await
        })
        .await
        .unwrap();
        let server = tokio::spawn(serve);
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let body = response.text().await.unwrap();
        server.abort();
        (status, body)
    }

    #[tokio::test]
    async fn healthz_fails_with_the_reason_once_a_vital_task_died() {
        let health = Arc::new(Health::default());
        health.set_synced(true);
        assert_eq!(
            get(&health, "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
        health.set_dead("the controllers stopped: boom");
        health.set_dead("a later reason is not kept");
        assert_eq!(
            get(&health, "/healthz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the controllers stopped: boom".into()
            )
        );
        let (status, _) = get(&health, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "dead is not ready");
    }

    #[tokio::test]
    async fn the_leader_gauge_says_whether_this_replica_reconciles() {
        let health = Arc::new(Health::default());
        for (role, want) in [
            (Role::Single, 1),
            (Role::Standby, 0),
            (Role::Leader, 1),
            (Role::Unhealthy, 0),
        ] {
            health.set_role(role);
            let (_, body) = get(&health, "/metrics").await;
            assert!(
                body.lines()
                    .any(|l| l == format!("alexa_operator_leader {want}")),
                "{role:?}: {body}"
            );
        }
    }
}
