//! In-process fake Kubernetes API server for the operator's tests, benchmark and sandbox.
//!
//! It lives in its own crate, used only as a dev-dependency, so the release binary can never
//! contain it. No real kube-apiserver can run on the development machines (no Docker), so the
//! controllers are tested end to end against this server through their real kube-runtime watch
//! loops; it reproduces the apiserver's behaviour where kube-runtime and the operator rely on it.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_test_server::Error> {
//! use kube_test_server::{Fault, TestServer};
//! let server = TestServer::new().with_crds_from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds"))?;
//! let client: kube::Client = server.client(); // in-process, no socket; call inside a tokio runtime
//! // Spawn the controller with `client`, create objects through `client` (or raw HTTP through
//! // `server.router()` with tower's `oneshot`), then poll with a deadline until converged:
//! let obj = server.get_object("alexa.operator.dev/v1alpha1", "skillaccountlinkings", Some("default"), "x");
//! // Traffic assertions: verb, path, query, status, fieldManager, Content-Type of every request.
//! let status_applies = server.requests().iter()
//!     .filter(|r| r.verb == "patch" && r.path.ends_with("/status")).count();
//! // Failure injection: the next PATCH to a /status path answers 500.
//! server.inject_fault(Fault { method: Some(http::Method::PATCH), path_contains: Some("/status".into()), nth: 1, status: 500 });
//! // Watch disruption: the re-watch gets an in-stream 410 ERROR and kube's watcher relists.
//! server.compact_history();
//! server.close_watches();
//! // kubectl or a separate operator process:
//! let listening = server.listen("127.0.0.1:0".parse().unwrap()).await?;
//! listening.write_kubeconfig("/tmp/kubeconfig")?; // KUBECONFIG=/tmp/kubeconfig kubectl get sal
//! # let _ = (obj, status_applies); Ok(()) }
//! ```
//!
//! Other knobs: [`TestServer::with_bookmark_interval`] (default 5s; shorten to see BOOKMARKs
//! quickly), [`TestServer::with_history_limit`] (default 100,000 retained watch events),
//! [`TestServer::with_namespaces`], [`TestServer::resource_version`], [`TestServer::dump`],
//! [`TestServer::with_crd`] (e.g.
//! `MyKind::crd()` from kube's derive). [`lint_crd_dir`] checks CRD YAML for the structural
//! schema rules a real apiserver enforces.
//!
//! Everything is asynchronous like a real cluster: a write returns before watchers see it, so
//! tests should poll for the expected state with a deadline rather than sleep a fixed time.
//!
//! # What it reproduces
//!
//! - Paths: core `/api/v1/...` and group `/apis/{g}/{v}/...`, namespaced and cluster-wide
//!   list/watch, `/status` subresource, legacy `/watch/` prefix; discovery (`/version`, `/api`,
//!   `/apis`, `/api/v1`, `/apis/{g}[/{v}]`) so kubectl works with `--validate=false`.
//! - `Status` error bodies: 404 NotFound, 409 AlreadyExists/Conflict, 422 Invalid (with
//!   `details.causes`), 410 Expired, 415 UnsupportedMediaType (protobuf), 400 BadRequest.
//! - One global resourceVersion counter; uid; creationTimestamp; `generation` (custom
//!   resources) starting at 1 and bumped only when something outside metadata/status changes
//!   (and on graceful deletion); no-op writes return the stored object unchanged, with no new
//!   resourceVersion and no watch event.
//! - PUT needs the current resourceVersion for custom resources (stale → 409 "the object has
//!   been modified; ..."); PATCH as merge patch (strategic merge patch of core kinds is treated
//!   as a merge patch), JSON patch with the `test`-of-missing-path-against-null quirk, and
//!   server-side apply (`fieldManager`, `force`, create-on-missing, managedFields, 409
//!   FieldManagerConflict; objects marked `x-kubernetes-map-type: atomic` are one owned leaf;
//!   dropping the last owned field of a custom resource's object leaves `null`, which a
//!   non-nullable schema refuses, as kubernetes#117447 describes).
//! - Status subresource split; finalizers and graceful deletion; delete preconditions.
//! - Namespace lifecycle (`namespaces.rs`): new Namespaces are `Active`; DELETE makes one
//!   `Terminating` and deletes everything in it, honouring finalizers; creating in it is
//!   refused with 403 Forbidden as NamespaceLifecycle does; it goes once empty.
//! - Lists (`{Kind}List`, label/field selectors, `limit`/`continue`); watches (replay from a
//!   resourceVersion, bookmarks, `sendInitialEvents` with the `k8s.io/initial-events-end`
//!   bookmark, `timeoutSeconds`, in-stream 410 ERROR for compacted history; with selectors, an
//!   object that starts/stops matching arrives as ADDED/DELETED).
//! - Secrets (`stringData` → base64 `data`), ConfigMaps, Leases, Namespaces, ServiceAccounts;
//!   CRDs loaded from YAML and enforced on every write (pruning, defaults, OpenAPI validation,
//!   CEL rules including transition rules).
//! - Events: core `v1` and `events.k8s.io/v1` are two views of one object, as in a cluster.
//!   Each API's list, get, watch, field selectors (`involvedObject.name=…,…uid=…` as kubectl
//!   describe sends them, `regarding.name=…`), writes and deletes see events written through the
//!   other, with the apiserver's field conversion (`regarding`↔`involvedObject`,
//!   `note`↔`message`, `reportingController`↔`reportingComponent`,
//!   `deprecatedSource`/`deprecatedCount`/`deprecated*Timestamp`↔`source`/`count`/`*Timestamp`).
//!   Where the apiserver leaves the other view's fields empty, they are filled so that every
//!   kubectl (1.20 too) prints them: `count` from `series.count`, `firstTimestamp`/`lastTimestamp`
//!   from `eventTime`/`series.lastObservedTime`, `source.component` from `reportingController`,
//!   and the other way round `eventTime` and `reportingController`.
//! - Table output for `kubectl get` (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, also
//!   `v1beta1`) on get, list and watch (each watch event a one-row Table, column definitions in
//!   the first only): custom resources show NAME plus the CRD version's
//!   `additionalPrinterColumns` (AGE without any), JSONPaths such as `.spec.skillId` or
//!   `.status.conditions[?(@.type=="Ready")].status` evaluated as the apiserver does (`date`
//!   columns as an age like `5m`); built-in kinds show the apiserver's columns (NAME/AGE, Secret
//!   TYPE/DATA, ConfigMap DATA, Namespace STATUS, Lease HOLDER, Event LAST SEEN/TYPE/REASON/
//!   OBJECT/MESSAGE and the `-o wide` ones). Rows carry PartialObjectMetadata, or the object with
//!   `includeObject=Object`, or nothing with `includeObject=None`. Without a Table in `Accept`
//!   answers are unchanged.
//! - Metadata-only answers (`Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`
//!   on lists, `as=PartialObjectMetadata` on get and watch, also `v1beta1`), as sent by kube's
//!   `Api<PartialObjectMeta<K>>` and client-go's metadata informers: `PartialObjectMetadataList`
//!   (ListMeta kept) and `PartialObjectMetadata` objects carrying only `metadata`, in watch
//!   events (BOOKMARKs too) as well; the list kind on a single object or the reverse is a 406.
//! - Test hooks: request log, fault injection on the Nth matching request, history compaction,
//!   closing all watches, dump of stored objects; failing Lease writes (of one holder) and the
//!   history of accepted Lease writes (`fail_lease_writes`, `lease_history`).
//!
//! # Known gaps against a real cluster
//!
//! - No authentication, authorization (RBAC) or admission webhooks / ValidatingAdmissionPolicy:
//!   every request is allowed.
//! - No garbage collection: `ownerReferences` are stored but dependents are never deleted, and
//!   `propagationPolicy` is ignored (no `foregroundDeletion`/`orphan` finalizers are added).
//!   Objects can be created in namespaces that do not exist.
//! - Server-side apply approximates structured-merge-diff: lists are atomic unless the CRD
//!   schema marks them `x-kubernetes-list-type: map`/`set` (plus `metadata.finalizers` as a
//!   set); core kinds have no schema, so their lists are atomic; ownership of `Update`
//!   operations is "fields this write changed"; field order in merged lists may differ; client
//!   writes to `managedFields` are ignored.
//! - Only JSON (and YAML request bodies); protobuf is refused with 415. No OpenAPI documents
//!   (`/openapi/v2|v3` → 404, hence `kubectl --validate=false`), no aggregated discovery (kubectl
//!   falls back to legacy).
//! - Table and PartialObjectMetadata output only for reads (not for the answers to writes, e.g.
//!   kube's `patch_metadata` gets the full object), a watch asking for
//!   `PartialObjectMetadataList` gets a 406 rather than a stream that ends at the first event,
//!   and an `Accept` naming nothing servable gets JSON rather than 406. Printer-column JSONPaths support fields, `['key']`, indexes, slices, `*` and
//!   `[?(@.path OP literal)]` filters, not recursive descent (`..`); unsupported paths print
//!   empty cells.
//! - Lists are not MVCC snapshots: a `continue` page shows the current state after the last
//!   returned key (with the first page's resourceVersion). `resourceVersion`/
//!   `resourceVersionMatch` on lists are accepted but the current state is always served.
//! - Only one version per CRD is really stored: all served versions share objects and no
//!   conversion is done (apiVersion is rewritten).
//! - CEL runs on kube-cel (the `cel` crate), which lacks a few Kubernetes CEL library functions
//!   and does no cost estimation; validation ratcheting is not implemented.
//! - Core kinds are not schema-validated (only Secret data is checked for base64), and
//!   `fieldValidation=Strict` is not supported (unknown fields of custom resources are pruned).
//!
//! ## Known gaps vs the real apiserver (measured)
//!
//! Found by running the same requests against kube-apiserver v1.37.2 (`tests/control-plane/`,
//! whose `run.sh` also runs the whole e2e suite there):
//!
//! - CEL rule failures name the offending value differently: the apiserver prints the value
//!   for scalars (`spec.skillId: Invalid value: "amzn1.ask.skill.other": skillId is
//!   immutable...`) and nothing for objects (`spec.accountLinking: Invalid value: type
//!   AUTH_CODE requires...`); this server prints the JSON type (`Invalid value: "string": ...`,
//!   `Invalid value: "object": ...`). The rule's message itself is the same.
//! - When the OpenAPI schema already fails (an enum, `maxItems`), the apiserver does not run
//!   the CEL rules and adds the cause `<nil>: Invalid value: null: some validation rules were
//!   not checked because the object was invalid; correct the existing errors to complete
//!   validation`; this server runs them anyway and also reports their failures (e.g. a
//!   transition rule on the same field).
//! - Server-side apply conflict messages: the apiserver writes `using <apiVersion>` only after
//!   the first conflicting manager, this server after each. `managedFields` order differs too
//!   (the apiserver lists the `Apply` entries first).
//! - Discovery: the verbs of a resource come in a different order (the apiserver's is
//!   `delete,deletecollection,get,list,patch,create,update,watch`) and JSON keys of discovery
//!   documents are ordered differently; nothing a client should depend on.
//! - The namespace controller's work (deleting a terminating namespace's contents, removing
//!   the namespace once empty) happens within the request that makes it necessary here, and
//!   asynchronously (in seconds) there; `/finalize` is not served.
//! - kubectl 1.3x sends protobuf for built-in kinds from generators (`kubectl create secret`,
//!   `kubectl create namespace`), which this server refuses with 415; `kubectl create -f`
//!   with YAML or JSON works.
//! - Timing: writes become visible to watchers within microseconds here and within
//!   milliseconds there, so a test that accepts an earlier state that merely looks like the
//!   one it waits for (e.g. any `SecretNotFound` while waiting for the one written after a
//!   deletion) passes here and fails there; wait for something only the awaited state has.
//! - The same requests agree on: status codes and reasons of 404/409/422, immutable-field and
//!   `x-kubernetes-validations` messages, `generation` (unchanged by metadata and status
//!   writes, bumped by spec writes and by the deletion of an object with finalizers), spec
//!   writes while deleting, refusing new finalizers while deleting, JSON patch `test` of a
//!   missing path against `null`, and printer columns.

mod apply;
mod cel;
mod discovery;
mod error;
mod events;
mod fields;
mod jsonpath;
mod kubeconfig;
mod leases;
mod lint;
mod metadata;
mod namespaces;
mod ops;
mod patch;
mod resources;
mod routes;
mod schema;
mod selectors;
mod store;
mod table;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

pub use error::Error;
pub use kubeconfig::ListeningServer;
pub use leases::{LeaseAnswer, LeaseFault, LeaseWrite};
pub use lint::{LintIssue, lint_crd, lint_crd_dir};

use resources::Registry;
use store::State;

/// One request the server answered (for assertions in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: Method,
    /// URL path, e.g. `/apis/alexa.operator.dev/v1alpha1/namespaces/default/skillaccountlinkings/x/status`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection,
    /// discovery, health, or unknown.
    pub verb: String,
    /// HTTP status code answered (200 for watches, whose errors are in-stream).
    pub status: u16,
    /// The `fieldManager` query parameter, if given.
    pub field_manager: Option<String>,
    /// The request's Content-Type, if any (tells merge/JSON/apply patches apart).
    pub content_type: Option<String>,
}

/// A fault to inject: the `nth` request (1-based, counted from when the fault is added) that
/// matches `method` and `path_contains` is answered with `status` (500 InternalError, 429
/// TooManyRequests with `Retry-After: 1`, 409 Conflict, 503, 404) instead of being served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    /// Only requests with this method count (None: any).
    pub method: Option<Method>,
    /// Only requests whose path (or `path?query`) contains this count (None: any).
    pub path_contains: Option<String>,
    /// Which matching request fails, 1-based.
    pub nth: usize,
    /// HTTP status to answer.
    pub status: u16,
}

struct PendingFault {
    fault: Fault,
    seen: usize,
}

/// Size of the request log ring.
const MAX_REQUEST_LOG: usize = 100_000;

/// Shared state behind every clone of [`TestServer`] and every request.
pub(crate) struct Inner {
    pub registry: RwLock<Registry>,
    pub state: Mutex<State>,
    pub closes: tokio::sync::watch::Sender<u64>,
    requests: Mutex<std::collections::VecDeque<RequestRecord>>,
    faults: Mutex<Vec<PendingFault>>,
    bookmark_interval: Mutex<Duration>,
    server_address: Mutex<String>,
    leases: leases::Leases,
}

impl Inner {
    fn record(&self, r: RequestRecord) {
        let mut log = self.requests.lock();
        if log.len() >= MAX_REQUEST_LOG {
            log.pop_front();
        }
        log.push_back(r);
    }

    /// If a pending fault matches this request and it is the Nth match, consume it.
    fn take_fault(&self, method: &Method, path: &str, query: Option<&str>) -> Option<u16> {
        let mut faults = self.faults.lock();
        if faults.is_empty() {
            return None;
        }
        let full = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let mut hit = None;
        for (i, f) in faults.iter_mut().enumerate() {
            let m_ok = f.fault.method.as_ref().is_none_or(|m| m == method);
            let p_ok = f
                .fault
                .path_contains
                .as_deref()
                .is_none_or(|p| full.contains(p));
            if m_ok && p_ok {
                f.seen += 1;
                if f.seen >= f.fault.nth.max(1) && hit.is_none() {
                    hit = Some(i);
                }
            }
        }
        hit.map(|i| faults.remove(i).fault.status)
    }

    pub(crate) fn bookmark_interval(&self) -> Duration {
        *self.bookmark_interval.lock()
    }

    pub(crate) fn server_address(&self) -> String {
        self.server_address.lock().clone()
    }
}

/// The fake apiserver. Cheap to clone (all clones share one store).
#[derive(Clone)]
pub struct TestServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").finish_non_exhaustive()
    }
}

impl Default for TestServer {
    fn default() -> Self {
        TestServer::new()
    }
}

impl TestServer {
    /// An empty store knowing the core kinds (Namespace, Secret, ConfigMap, ServiceAccount,
    /// Event in `v1` and `events.k8s.io/v1`, Lease). Namespaces need not exist to be used; see
    /// [`TestServer::with_namespaces`] to have them listed like in a real cluster.
    pub fn new() -> TestServer {
        TestServer::with_history_limit(store::DEFAULT_HISTORY_LIMIT)
    }

    /// Like [`TestServer::new`] with a custom number of retained watch events (older
    /// resourceVersions get 410 Expired when watched from).
    pub fn with_history_limit(limit: usize) -> TestServer {
        let (tx, _) = tokio::sync::broadcast::channel(65_536);
        let (closes, _) = tokio::sync::watch::channel(0u64);
        let inner = Arc::new(Inner {
            registry: RwLock::new(Registry::with_builtins()),
            state: Mutex::new(State::new(tx, limit.max(1))),
            closes,
            requests: Mutex::new(std::collections::VecDeque::new()),
            faults: Mutex::new(Vec::new()),
            bookmark_interval: Mutex::new(Duration::from_secs(5)),
            server_address: Mutex::new("127.0.0.1:0".into()),
            leases: leases::Leases::default(),
        });
        TestServer { inner }
    }

    /// Create these Namespace objects (e.g. `&["default", "kube-system"]`), as a fresh cluster
    /// has them; existing ones are left alone.
    pub fn with_namespaces(self, names: &[&str]) -> Self {
        for ns in names {
            self.seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        self
    }

    fn seed(&self, obj: Value) {
        let reg = self.inner.registry.read();
        let Some(rt) = reg.by_api_version("v1", "namespaces") else {
            return;
        };
        drop(reg);
        let params = ops::Params::default();
        let req = ops::Req {
            inner: &self.inner,
            rt,
            ns: String::new(),
            params: &params,
            manager: "kube-test-server".into(),
            dry_run: false,
        };
        let _ = ops::create(&req, obj);
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default 5s; the real
    /// apiserver sends one about every minute).
    pub fn with_bookmark_interval(self, interval: Duration) -> Self {
        *self.inner.bookmark_interval.lock() = interval.max(Duration::from_millis(10));
        self
    }

    /// Load every CustomResourceDefinition in the YAML/JSON files of `dir` (multi-document files
    /// are fine; other kinds are ignored) and enforce their schemas on writes.
    pub fn with_crds_from_dir(self, dir: impl AsRef<Path>) -> Result<Self, Error> {
        let docs = resources::load_dir(dir.as_ref())?;
        {
            let mut reg = self.inner.registry.write();
            for (_, d) in docs.iter().filter(|(_, d)| {
                d.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            }) {
                reg.add_crd(d)?;
            }
        }
        Ok(self)
    }

    /// Register one CRD: a k8s-openapi `CustomResourceDefinition` (e.g. `MyKind::crd()` from
    /// kube's derive) or its JSON as a `serde_json::Value`.
    pub fn with_crd(self, crd: impl serde::Serialize) -> Result<Self, Error> {
        let v = serde_json::to_value(crd).map_err(|e| Error::Parse {
            path: "<value>".into(),
            message: e.to_string(),
        })?;
        self.inner.registry.write().add_crd(&v)?;
        Ok(self)
    }

    /// The axum router serving the API (for custom transports).
    pub fn router(&self) -> axum::Router {
        routes::router(self.inner.clone())
    }

    /// An in-process `kube::Client` (default namespace `default`) whose requests go straight to
    /// the router, no socket involved. Must be called inside a tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router(), "default")
    }

    /// Serve on a TCP address (use `127.0.0.1:0` for a free port) for kubectl or a separate
    /// operator process.
    pub async fn listen(&self, addr: SocketAddr) -> Result<ListeningServer, Error> {
        let l = ListeningServer::start(self.router(), addr).await?;
        *self.inner.server_address.lock() = l.addr.to_string();
        Ok(l)
    }

    /// Requests answered so far, in order (the last 100,000, so long benchmarks stay bounded).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.requests.lock().iter().cloned().collect()
    }

    /// Forget the request log.
    pub fn clear_requests(&self) {
        self.inner.requests.lock().clear();
    }

    /// Fail the Nth matching request from now on (see [`Fault`]). Several faults may be pending.
    pub fn inject_fault(&self, fault: Fault) {
        self.inner
            .faults
            .lock()
            .push(PendingFault { fault, seen: 0 });
    }

    /// Drop the watch history: watching from any resourceVersion issued so far answers an
    /// in-stream 410 ERROR, so clients must relist (as after etcd compaction).
    pub fn compact_history(&self) {
        self.inner.state.lock().compact();
    }

    /// End every open watch stream (clients re-watch from their last resourceVersion).
    pub fn close_watches(&self) {
        self.inner.closes.send_modify(|n| *n += 1);
    }

    /// The last resourceVersion issued.
    pub fn resource_version(&self) -> u64 {
        self.inner.state.lock().rv
    }

    /// All stored objects (every resource, in (namespace, name) order per resource).
    pub fn dump(&self) -> Vec<Value> {
        self.inner.state.lock().all()
    }

    /// One stored object by apiVersion (`v1`, `alexa.operator.dev/v1alpha1`), plural, namespace
    /// (None for cluster-scoped) and name. An Event comes as the API named shows it (e.g. an
    /// `events.k8s.io/v1` Event asked for as `v1` has `involvedObject` and `message`).
    pub fn get_object(
        &self,
        api_version: &str,
        kind_plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let rt = self
            .inner
            .registry
            .read()
            .by_api_version(api_version, kind_plural)?;
        let st = self.inner.state.lock();
        st.get(&rt.key, namespace.unwrap_or(""), name)
            .map(|o| events::view(&rt, o).into_owned())
    }
}
