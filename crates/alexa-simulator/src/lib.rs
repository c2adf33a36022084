//! Local Alexa API simulator: SMAPI account linking, developer and customer skill enablement,
//! customer endpoint discovery and the Login with Amazon token endpoint, with fault injection.
//!
//! No machine here can reach Amazon, so the operator's tests, its benchmark and the newcomer
//! sandbox all talk to this simulator instead. It follows the seed documents (status codes,
//! bodies, headers) and is driven either in-process through [`Simulator`] or from another process
//! through the admin endpoints under `/__sim/` (see `docs/SIMULATOR.md`), or run as its own
//! binary, `alexa-simulator`.
//!
//! The operator never links against this crate: it is only the operator's dev-dependency (tests,
//! examples, the sandbox and the benchmark), so the compiler refuses any call from the operator's
//! code, and the operator only speaks HTTP to it. Likewise this crate does not depend on the
//! operator: what both need (the [`Operation`] names, the [`Stage`]) is a deliberate copy here,
//! because the simulator plays Amazon and must not share the operator's assumptions.

mod account_linking;
mod admin;
mod auth;
mod cli;
mod customer;
mod enablement;
mod faults;
mod lwa;
mod reply;
mod requests;
mod routes;
mod server;
mod stage;
mod state;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use cli::{SimulateArgs, serve_cli};
pub use faults::{
    DiscoveryMode, Divergences, FaultConfig, Faults, PutAnswer, RateLimit, ScriptedResponse,
    ThrottleWindow,
};
pub use requests::{FaultKind, Operation, RequestRecord};
pub use stage::Stage;
pub use state::{
    CustomerEnablementRecord, CustomerState, EnablementState, LwaAuthCodeState, LwaClientState,
    RefreshTokenState, SimState, SkillState, VendorState, sandbox,
};

use server::Shared;

/// Shape of the GET account-linking body. The seed and the official Python SDK read it flat,
/// Amazon's live docs show it wrapped; the operator must survive both, so tests pick one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GetShape {
    /// The account linking object at the top level, as the seed shows.
    #[default]
    Flat,
    /// `{"accountLinkingResponse": {...}}`, as Amazon's live documentation shows.
    Wrapped,
}

/// Where a customer's Amazon account lives. Customer calls must go to that region's host, so the
/// simulator serves each region on its own listener to make wrong-region mistakes visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum Region {
    /// North America: `api.amazonalexa.com` (the main listener).
    #[serde(rename = "NA", alias = "na")]
    #[value(name = "na")]
    Na,
    /// Europe: `api.eu.amazonalexa.com`.
    #[serde(rename = "EU", alias = "eu")]
    #[value(name = "eu")]
    Eu,
    /// Far East: `api.fe.amazonalexa.com`.
    #[serde(rename = "FE", alias = "fe")]
    #[value(name = "fe")]
    Fe,
}

impl Region {
    /// Every region, in the order Amazon's discovery fallback tries them.
    pub const ALL: [Region; 3] = [Region::Na, Region::Eu, Region::Fe];

    /// Host name Amazon's endpoint discovery returns for this region; clients map it to the
    /// simulator's listener with [`Simulator::endpoint_overrides`].
    pub fn host(self) -> &'static str {
        match self {
            Region::Na => "api.amazonalexa.com",
            Region::Eu => "api.eu.amazonalexa.com",
            Region::Fe => "api.fe.amazonalexa.com",
        }
    }

    /// Short upper-case name used in the state file and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Na => "NA",
            Region::Eu => "EU",
            Region::Fe => "FE",
        }
    }

    fn index(self) -> usize {
        match self {
            Region::Na => 0,
            Region::Eu => 1,
            Region::Fe => 2,
        }
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Optional HTTPS listener: some official clients refuse plain http, so the same API is also
/// served over TLS (rustls with the ring provider). PEM bytes rather than paths so tests can pass
/// a freshly generated certificate without touching the file system.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Address of the HTTPS listener (serves the NA/main API).
    pub listen: SocketAddr,
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_pem: Vec<u8>,
}

/// Everything a simulator starts with. `Default` suits tests: ephemeral loopback ports, the
/// sandbox state, flat GET bodies, one-hour tokens and no faults.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Main listener: SMAPI, LWA, the NA customer API, discovery and `/__sim/`.
    pub listen: SocketAddr,
    /// Listener for the EU customer API (`api.eu.amazonalexa.com`).
    pub eu_listen: SocketAddr,
    /// Listener for the FE customer API (`api.fe.amazonalexa.com`).
    pub fe_listen: SocketAddr,
    /// Optional HTTPS listener serving the same API as the main listener.
    pub tls: Option<TlsConfig>,
    /// Allow binding non-loopback addresses. Off by default: the simulator has no real
    /// authentication and must not be reachable from the network by accident.
    pub allow_remote: bool,
    /// Initial state (vendors, skills, LWA clients, customers).
    pub state: SimState,
    /// Shape of GET account-linking bodies.
    pub get_shape: GetShape,
    /// Lifetime of issued access tokens (`expires_in`).
    pub token_lifetime: Duration,
    /// Faults active from the start.
    pub faults: FaultConfig,
    /// Status a customer call sent to the wrong region's listener gets (401 by default, 404 is
    /// the other plausible answer).
    pub wrong_region_status: u16,
    /// Most request-log entries kept (oldest dropped first); counts are kept separately.
    pub log_capacity: usize,
    /// Largest request body accepted (bigger ones get 413).
    pub max_body_bytes: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        SimConfig {
            listen: loopback,
            eu_listen: loopback,
            fe_listen: loopback,
            tls: None,
            allow_remote: false,
            state: SimState::sandbox(),
            get_shape: GetShape::Flat,
            token_lifetime: Duration::from_secs(3600),
            faults: FaultConfig::default(),
            wrong_region_status: 401,
            log_capacity: 1_000_000,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// Binding a listener failed (port in use, permission).
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A non-loopback address was requested without explicit permission.
    #[error(
        "refusing to listen on non-loopback address {addr}: the simulator has no real \
         authentication (pass --allow-remote to do it anyway)"
    )]
    NonLoopback {
        /// The refused address.
        addr: SocketAddr,
    },
    /// The initial state is inconsistent (duplicate ids, unknown references, invalid config).
    #[error("invalid simulator state: {0}")]
    InvalidState(String),
    /// The state file could not be read or parsed.
    #[error("failed to load state file {path}: {reason}")]
    StateFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// A flag or setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
}

/// A running simulator. Stop it with [`Simulator::shutdown`]; dropping it also stops the
/// listeners (without waiting for in-flight requests).
pub struct Simulator {
    shared: Arc<Shared>,
    addrs: [SocketAddr; 3],
    tls_addr: Option<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addrs", &self.addrs)
            .field("tls_addr", &self.tls_addr)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds every listener and starts serving. Fails before serving anything if the state is
    /// invalid or an address cannot be (or must not be) bound.
    pub async fn start(config: SimConfig) -> Result<Simulator, SimulatorError> {
        server::start(config).await
    }

    /// Base URL of the main listener: SMAPI paths, LWA at `/auth/o2/token`, the NA customer
    /// API, discovery and `/__sim/`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// Base URL of the HTTPS listener, when one was configured.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_addr.map(|addr| format!("https://{addr}"))
    }

    /// Address of the main listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// LWA token endpoint, as the operator's `--lwa-url` expects it.
    pub fn lwa_token_url(&self) -> String {
        format!("{}/auth/o2/token", self.url())
    }

    /// Base URL of one region's customer API (NA is the main listener).
    pub fn region_url(&self, region: Region) -> String {
        format!("http://{}", self.addrs[region.index()])
    }

    /// Host-to-URL mapping for the hosts discovery returns, in the operator's
    /// `--endpoint-override HOST=URL` form (NA, EU, FE).
    pub fn endpoint_overrides(&self) -> Vec<(String, String)> {
        Region::ALL
            .iter()
            .map(|region| (region.host().to_string(), self.region_url(*region)))
            .collect()
    }

    /// The request log, oldest first. Bodies have secrets redacted and tokens never appear.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.records(None, 0, None)
    }

    /// Empties the request log and resets the per-operation counts.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// How many requests of one operation arrived since start (or the last clear), including
    /// ones answered by injected faults. Kept apart from the log, so exact even after the log
    /// dropped old entries.
    pub fn count(&self, op: Operation) -> usize {
        self.shared.log.count(op)
    }

    /// Handle to change faults while the simulator runs.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Stored account-linking configuration of a skill stage, exactly as last written
    /// (including `clientSecret`, without the generated redirect URLs), so tests can compare
    /// what the operator sent. `None` when the skill, the stage or the configuration is absent.
    pub fn account_linking(&self, skill_id: &str, stage: &str) -> Option<serde_json::Value> {
        self.shared
            .store
            .lock()
            .account_linking(skill_id, stage)
            .map(|(config, _)| config)
    }

    /// Writes account linking out of band, as a human in the developer console would; the ETag
    /// changes. A missing skill is created under the default vendor.
    pub fn set_account_linking(&self, skill_id: &str, stage: &str, config: serde_json::Value) {
        self.shared
            .store
            .lock()
            .set_account_linking_out_of_band(skill_id, stage, config);
    }

    /// Removes account linking out of band.
    pub fn delete_account_linking(&self, skill_id: &str, stage: &str) {
        self.shared
            .store
            .lock()
            .delete_account_linking_out_of_band(skill_id, stage);
    }

    /// Current ETag of a skill stage's account linking, `None` when not configured.
    pub fn etag(&self, skill_id: &str, stage: &str) -> Option<String> {
        self.shared
            .store
            .lock()
            .account_linking(skill_id, stage)
            .map(|(_, etag)| etag)
    }

    /// Whether the skill stage is enabled for its owner's developer account.
    pub fn stage_enabled(&self, skill_id: &str, stage: &str) -> bool {
        self.shared.store.lock().stage_enabled(skill_id, stage)
    }

    /// Enables or disables a stage out of band; enabling one stage disables the other, as
    /// Amazon does.
    pub fn set_stage_enabled(&self, skill_id: &str, stage: &str, enabled: bool) {
        self.shared
            .store
            .lock()
            .set_stage_enabled(skill_id, stage, enabled);
    }

    /// A customer's enablement of a skill, `None` when not enabled. `customer` is the
    /// customer's `name` in the state.
    pub fn customer_enablement(
        &self,
        customer: &str,
        skill_id: &str,
    ) -> Option<CustomerEnablementRecord> {
        self.shared
            .store
            .lock()
            .customer_enablement(customer, skill_id)
    }

    /// Removes a customer's enablement out of band (the customer disabled the skill in the
    /// Alexa app).
    pub fn remove_customer_enablement(&self, customer: &str, skill_id: &str) {
        self.shared
            .store
            .lock()
            .remove_customer_enablement(customer, skill_id);
    }

    /// Seeds a single-use partner authorization code for a customer (what the partner's OAuth
    /// server would have issued); customer enablement accepts it once.
    pub fn add_auth_code(&self, code: &str, customer: &str) {
        self.shared.store.lock().add_partner_code(code, customer);
    }

    /// Seeds a single-use LWA authorization code (`grant_type=authorization_code`) for a
    /// customer and LWA client.
    pub fn add_lwa_auth_code(&self, code: &str, client_id: &str, customer: &str) {
        self.shared
            .store
            .lock()
            .add_lwa_customer_code(code, client_id, customer);
    }

    /// Adds a skill with both stages, owned by the default (sandbox) vendor. O(1), so the
    /// benchmark can add thousands.
    pub fn add_skill(&self, skill_id: &str) {
        self.shared.store.lock().add_skill(skill_id, None);
    }

    /// Adds a skill owned by a given vendor with both stages.
    pub fn add_skill_for_vendor(&self, skill_id: &str, vendor_id: &str) {
        self.shared
            .store
            .lock()
            .add_skill(skill_id, Some(vendor_id));
    }

    /// Makes every access token issued so far expire now, so tests can exercise the
    /// refresh-on-401 path without waiting.
    pub fn expire_tokens(&self) {
        self.shared.tokens.expire_all();
    }

    /// Changes the GET account-linking body shape at run time.
    pub fn set_get_shape(&self, shape: GetShape) {
        self.shared.settings.lock().get_shape = shape;
    }

    /// Changes the lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.settings.lock().token_lifetime = lifetime;
    }

    /// Restores the initial state, clears faults and the request log. Issued tokens stay valid.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting connections, lets in-flight requests finish (up to a few seconds) and
    /// waits for the listeners to close.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.shared.wait_idle(Duration::from_secs(5)).await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}
