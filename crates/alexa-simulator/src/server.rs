//! Listeners and the per-request pipeline: read the body, classify, authenticate, apply faults,
//! dispatch, log. Served with hyper directly (not a router framework) because dropping a
//! connection without a response needs the service to fail, which hyper turns into a closed
//! connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::IF_MATCH;
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::auth::TokenStore;
use crate::faults::{FaultConfig, Faults, Injected};
use crate::reply::Reply;
use crate::requests::{FaultKind, Operation, RequestLog, RequestRecord, redact};
use crate::routes::{self, Route};
use crate::state::{SimState, Store};
use crate::{GetShape, Region, SimConfig, Simulator, SimulatorError, admin, auth, lwa, tls};

/// Settings that can change at run time.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) get_shape: GetShape,
    pub(crate) token_lifetime: Duration,
    pub(crate) wrong_region_status: u16,
}

/// URLs of the listeners, for `/__sim/info`.
#[derive(Debug, Clone)]
pub(crate) struct Urls {
    pub(crate) main: String,
    pub(crate) regions: [String; 3],
    pub(crate) tls: Option<String>,
}

/// Everything the request pipeline shares.
pub(crate) struct Shared {
    pub(crate) started: Instant,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) store: Mutex<Store>,
    pub(crate) tokens: TokenStore,
    pub(crate) log: RequestLog,
    pub(crate) faults: Faults,
    pub(crate) urls: OnceLock<Urls>,
    initial_state: SimState,
    initial_faults: FaultConfig,
    max_body_bytes: usize,
    active_connections: AtomicUsize,
}

impl Shared {
    /// Restores the initial state and faults and clears the log; tokens stay valid.
    pub(crate) fn reset(&self) {
        match Store::from_state(&self.initial_state) {
            Ok(store) => *self.store.lock() = store,
            Err(err) => tracing::error!(%err, "initial state no longer loads"),
        }
        self.faults.clear();
        self.faults.set_config(self.initial_faults.clone());
        self.log.clear();
    }

    pub(crate) async fn wait_idle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.active_connections.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The error that makes hyper close a connection without answering (fault injection).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub(crate) struct DroppedConnection;

fn check_loopback(addr: SocketAddr, allow_remote: bool) -> Result<(), SimulatorError> {
    if allow_remote || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(SimulatorError::NonLoopback { addr })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SimulatorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimulatorError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, requested: SocketAddr) -> Result<SocketAddr, SimulatorError> {
    listener
        .local_addr()
        .map_err(|source| SimulatorError::Bind {
            addr: requested,
            source,
        })
}

impl Shared {
    fn new(config: &SimConfig, store: Store) -> Shared {
        Shared {
            started: Instant::now(),
            settings: Mutex::new(Settings {
                get_shape: config.get_shape,
                token_lifetime: config.token_lifetime,
                wrong_region_status: config.wrong_region_status,
            }),
            store: Mutex::new(store),
            tokens: TokenStore::new(),
            log: RequestLog::new(config.log_capacity),
            faults: Faults::new(config.faults.clone()),
            urls: OnceLock::new(),
            initial_state: config.state.clone(),
            initial_faults: config.faults.clone(),
            max_body_bytes: config.max_body_bytes,
            active_connections: AtomicUsize::new(0),
        }
    }
}

/// The bound sockets: one plain-HTTP listener per region, and the optional HTTPS one.
struct Listeners {
    regions: [(TcpListener, Region); 3],
    tls: Option<(TcpListener, TlsAcceptor)>,
    bound: [SocketAddr; 3],
    tls_addr: Option<SocketAddr>,
}

impl Listeners {
    /// Binds every listener the configuration asks for; port 0 becomes the port the system
    /// picked.
    async fn bind(config: &SimConfig) -> Result<Listeners, SimulatorError> {
        let acceptor = match &config.tls {
            Some(tls_config) => Some(TlsAcceptor::from(tls::server_config(
                &tls_config.cert_pem,
                &tls_config.key_pem,
            )?)),
            None => None,
        };
        let main = bind(config.listen).await?;
        let eu = bind(config.eu_listen).await?;
        let fe = bind(config.fe_listen).await?;
        let tls = match (&config.tls, acceptor) {
            (Some(tls_config), Some(acceptor)) => Some((bind(tls_config.listen).await?, acceptor)),
            _ => None,
        };
        let bound = [
            local_addr(&main, config.listen)?,
            local_addr(&eu, config.eu_listen)?,
            local_addr(&fe, config.fe_listen)?,
        ];
        let tls_addr = match (&tls, &config.tls) {
            (Some((listener, _)), Some(tls_config)) => {
                Some(local_addr(listener, tls_config.listen)?)
            }
            _ => None,
        };
        Ok(Listeners {
            regions: [(main, Region::Na), (eu, Region::Eu), (fe, Region::Fe)],
            tls,
            bound,
            tls_addr,
        })
    }

    fn urls(&self) -> Urls {
        Urls {
            main: format!("http://{}", self.bound[0]),
            regions: self.bound.map(|addr| format!("http://{addr}")),
            tls: self.tls_addr.map(|addr| format!("https://{addr}")),
        }
    }
}

/// Refuses settings that cannot work, and listeners off the loopback interface unless
/// remote access was asked for.
fn check_config(config: &SimConfig) -> Result<(), SimulatorError> {
    config
        .faults
        .validate()
        .map_err(SimulatorError::InvalidSetting)?;
    let tls = config.tls.as_ref().map(|tls| tls.listen);
    for addr in [config.listen, config.eu_listen, config.fe_listen]
        .into_iter()
        .chain(tls)
    {
        check_loopback(addr, config.allow_remote)?;
    }
    Ok(())
}

pub(crate) async fn start(config: SimConfig) -> Result<Simulator, SimulatorError> {
    check_config(&config)?;
    let store = Store::from_state(&config.state).map_err(SimulatorError::InvalidState)?;
    let listeners = Listeners::bind(&config).await?;
    let shared = Arc::new(Shared::new(&config, store));
    let _ = shared.urls.set(listeners.urls());
    let Listeners {
        regions,
        tls,
        bound,
        tls_addr,
    } = listeners;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (listener, region) in regions {
        tasks.push(tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            region,
            None,
            shutdown_rx.clone(),
        )));
    }
    if let Some((listener, acceptor)) = tls {
        tasks.push(tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            Region::Na,
            Some(acceptor),
            shutdown_rx.clone(),
        )));
    }
    Ok(Simulator {
        shared,
        addrs: bound,
        tls_addr,
        shutdown_tx,
        tasks,
    })
}

struct ConnectionGuard(Arc<Shared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    region: Region,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                tracing::debug!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.active_connections.fetch_add(1, Ordering::AcqRel);
        let guard = ConnectionGuard(shared.clone());
        let shared = shared.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _guard = guard;
            match tls {
                None => serve_connection(TokioIo::new(stream), shared, region, shutdown).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        serve_connection(TokioIo::new(stream), shared, region, shutdown).await;
                    }
                    Err(err) => tracing::debug!(%err, "TLS handshake failed"),
                },
            }
        });
    }
}

async fn serve_connection<I>(
    io: I,
    shared: Arc<Shared>,
    region: Region,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let service = service_fn(move |request| handle(shared.clone(), region, request));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

fn logged_body(token_request: Option<&lwa::TokenRequest>, body: &[u8]) -> Option<Value> {
    if let Some(request) = token_request {
        let mut params = request.params_json();
        redact(&mut params);
        return Some(params);
    }
    if body.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(mut value) => {
            redact(&mut value);
            Some(value)
        }
        // Never log raw bytes: they might hold a secret.
        Err(_) => Some(serde_json::json!({"unparsedBytes": body.len()})),
    }
}

fn injected_reply(injected: Injected) -> Reply {
    match injected {
        Injected::Scripted(scripted) => Reply {
            status: scripted.status,
            body: scripted.body,
            headers: scripted.headers,
            fault: Some(FaultKind::Scripted),
        },
        Injected::RateLimited { retry_after } => {
            let reply = Reply::error(
                429,
                "TOO_MANY_REQUESTS",
                "Rate exceeded. Retry with exponential back-off.",
            )
            .with_fault(FaultKind::RateLimited);
            if retry_after.is_zero() {
                reply
            } else {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                reply.with_header("Retry-After", secs.to_string())
            }
        }
        Injected::ServerError(503) => Reply::error(
            503,
            "SERVICE_UNAVAILABLE",
            "Service unavailable (simulated).",
        )
        .with_fault(FaultKind::ServerError),
        Injected::ServerError(status) => Reply::error(
            status,
            "INTERNAL_SERVER_ERROR",
            "Internal server error (simulated).",
        )
        .with_fault(FaultKind::ServerError),
        Injected::Drop => Reply::empty(0).with_fault(FaultKind::Dropped),
    }
}

/// The body, or `None` when it is larger than the configured limit (or the client broke off).
async fn read_body(body: Incoming, limit: usize) -> Option<Bytes> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Some(collected.to_bytes()),
        Err(_) => None,
    }
}

/// The log entry for a request as it arrived; status, client, body and fault come later.
fn arrival_record(
    shared: &Shared,
    at: Instant,
    parts: &Parts,
    op: Operation,
    route: &Route,
    region: Region,
) -> RequestRecord {
    RequestRecord {
        seq: shared.log.next_seq(),
        at,
        elapsed_since_start: at.duration_since(shared.started),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        operation: op,
        status: 0,
        client: None,
        if_match: parts
            .headers
            .get(IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: None,
        region: Some(region),
        skill_id: route.skill_id().map(str::to_string),
        stage: route.stage().map(str::to_string),
        fault: None,
    }
}

/// Logs the request with the status it got and turns the answer into the HTTP response.
fn logged(shared: &Shared, mut record: RequestRecord, reply: Reply) -> Response<Full<Bytes>> {
    record.status = reply.status;
    shared.log.push(record);
    reply.into_response()
}

async fn handle(
    shared: Arc<Shared>,
    region: Region,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DroppedConnection> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let (op, route) = routes::classify(&parts.method, parts.uri.path());
    let body = read_body(body, shared.max_body_bytes).await;
    let mut record = arrival_record(&shared, at, &parts, op, &route, region);
    let Some(body) = body else {
        let reply = Reply::error(413, "PAYLOAD_TOO_LARGE", "The request body is too large.");
        return Ok(logged(&shared, record, reply));
    };
    if route == Route::Admin {
        record.body = logged_body(None, &body);
        let reply = admin::handle(&shared, &parts.method, &parts.uri, &body);
        return Ok(logged(&shared, record, reply));
    }
    serve_api(&shared, region, &parts, &route, &body, record).await
}

/// Who the log names as the client: the LWA client id of a token request, or the caller a
/// token-protected request authenticated as.
fn client_name(
    token_request: Option<&Result<lwa::TokenRequest, Reply>>,
    caller: Option<&Result<auth::Caller, Reply>>,
) -> Option<String> {
    match (token_request, caller) {
        (Some(Ok(request)), _) => request.client_id(),
        (_, Some(Ok(caller))) => Some(caller.log_name()),
        _ => None,
    }
}

/// An Amazon API request: authenticate, log what it carried, apply latency and injected
/// faults, then dispatch. A dropped connection is logged with status 0.
async fn serve_api(
    shared: &Shared,
    region: Region,
    parts: &Parts,
    route: &Route,
    body: &Bytes,
    mut record: RequestRecord,
) -> Result<Response<Full<Bytes>>, DroppedConnection> {
    let op = record.operation;
    let token_request = (*route == Route::Token).then(|| lwa::parse(&parts.headers, body));
    let caller = route
        .needs_token()
        .then(|| auth::authenticate(&shared.tokens, &parts.headers));
    let client = client_name(token_request.as_ref(), caller.as_ref());
    record.client = client.clone();
    record.body = logged_body(token_request.as_ref().and_then(|r| r.as_ref().ok()), body);
    if record.stage.is_none() {
        record.stage = record
            .body
            .as_ref()
            .and_then(|b| b.get("stage"))
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    let (latency, injected) = shared.faults.decide(op, client.as_deref());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let reply = match injected {
        Some(Injected::Drop) => {
            record.fault = Some(FaultKind::Dropped);
            shared.log.push(record);
            return Err(DroppedConnection);
        }
        Some(injected) => injected_reply(injected),
        None => {
            let request = routes::ApiRequest {
                region,
                op,
                route,
                headers: &parts.headers,
                body,
            };
            let reply = routes::dispatch(shared, request, caller, token_request);
            if shared.faults.take_drop_after_applying(op) {
                record.fault = Some(FaultKind::DroppedAfterApplying);
                shared.log.push(record);
                return Err(DroppedConnection);
            }
            reply
        }
    };
    record.fault = reply.fault;
    tracing::debug!(
        method = %record.method,
        path = %record.path,
        status = reply.status,
        client = record.client.as_deref().unwrap_or("-"),
        "request"
    );
    Ok(logged(shared, record, reply))
}
