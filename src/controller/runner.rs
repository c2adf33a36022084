//! Builds and runs the kube-runtime Controllers of both kinds: main watches (managed fields
//! pruned from the cache), one metadata-only Secret watch per scope shared by every controller,
//! bounded concurrency, one Controller per watched namespace, and graceful shutdown.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, predicates};
use kube::{Resource, ResourceExt};

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use super::context::CacheScope;
use super::credentials::CredentialsKey;
use super::credentials::reconciler::SharedCredentials;
use super::keys::Uid;
use super::lifecycle::{KindContext, ManagedKind, error_policy, reconcile, trigger_hash};
use super::secrets::SecretReader;
use crate::crd::credentials::{AlexaCredentials, ClusterAlexaCredentials, CredentialsStatus};

/// Annotation kubectl writes with a full copy of the object; never needed by the operator.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Where one Controller watches: one namespace, or all of them.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every namespace (needs cluster-wide RBAC).
    All,
    /// One namespace (namespaced mode).
    Namespace(String),
}

impl Scope {
    /// Scopes for a `--watch-namespace` list (empty = all namespaces).
    pub fn from_list(namespaces: &[String]) -> Vec<Scope> {
        let list: Vec<Scope> = namespaces
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(|n| Scope::Namespace(n.to_string()))
            .collect();
        if list.is_empty() {
            vec![Scope::All]
        } else {
            list
        }
    }

    fn namespace(&self) -> Option<String> {
        match self {
            Scope::All => None,
            Scope::Namespace(ns) => Some(ns.clone()),
        }
    }

    /// The API of namespaced kind `K` in this scope.
    pub fn api<K>(&self, client: &kube::Client) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match self {
            Scope::All => Api::all(client.clone()),
            Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        }
    }
}

/// Forgets what the operator keeps per object (failure counts, status bookkeeping, metric
/// state) for objects of one controller's scope that are no longer in its cache: on each
/// deletion the watch reports, after each full list (deletions missed while disconnected), and
/// periodically (an object whose in-flight reconcile finished after its deletion).
#[derive(Clone)]
struct Sweeper<K: ManagedKind> {
    ctx: Arc<KindContext<K>>,
    cache: Store<K>,
    namespace: Option<String>,
}

impl<K: ManagedKind> Sweeper<K> {
    fn sweep(&self) {
        let live: HashSet<Uid> = self
            .cache
            .state()
            .iter()
            .filter_map(|o| o.meta().uid.as_deref().map(Uid::new))
            .collect();
        let scope = CacheScope {
            kind: K::KIND,
            namespace: self.namespace.as_deref(),
        };
        let forgotten = self.ctx.sweep(scope, &live);
        if forgotten > 0 {
            tracing::debug!(
                kind = K::KIND,
                forgotten,
                "forgot objects no longer in the cache"
            );
        }
    }

    /// Sweeps every `period` once the cache is synced, until the returned guard is dropped.
    fn every(self, period: Duration, synced: tokio::sync::watch::Receiver<bool>) -> AbortOnDrop {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period.max(Duration::from_secs(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if *synced.borrow() {
                    self.sweep();
                }
            }
        });
        AbortOnDrop(task.abort_handle())
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The objects of kind `K` that reference a Secret, found in the controller's cache.
fn objects_using_secret<K: ManagedKind>(
    store: &Store<K>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<K>> {
    let ns = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .into_iter()
        .filter(|o| o.namespace() == ns && o.secret_names().contains(&name))
        .map(|o| ObjectRef::from_obj(&*o))
        .collect()
}

/// Changes to Secrets after the initial list (the initial list would only repeat the startup
/// reconcile of every object). Secrets missed while disconnected are caught by the slow retry.
///
/// Metadata-only on the wire, not just in memory: kube 5's `Api<PartialObjectMeta<K>>` sends its
/// list with `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` and its
/// watch with `as=PartialObjectMetadata` (what `metadata_watcher` does, which kube-runtime 3.1
/// deprecated in favour of this form), so the apiserver never sends Secret data here.
///
/// Every report (re-lists included) also goes to the Secret cache, which reads a Secret again
/// only once its resourceVersion changed.
fn secret_changes(
    api: Api<PartialObjectMeta<Secret>>,
    cache: SecretReader,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send {
    watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .inspect(move |event| match event {
            Ok(Event::Apply(s)) | Ok(Event::InitApply(s)) => cache.observe(
                &s.namespace().unwrap_or_default(),
                &s.name_any(),
                s.resource_version().as_deref(),
            ),
            Ok(Event::Delete(s)) => {
                cache.observe(&s.namespace().unwrap_or_default(), &s.name_any(), None)
            }
            _ => {}
        })
        .filter_map(|event| async move {
            match event {
                Ok(Event::Apply(s)) | Ok(Event::Delete(s)) => Some(Ok(s)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        })
        .predicate_filter(predicates::resource_version, Default::default())
}

/// A consumer's share of a Secret watch ([`shared_secret_changes`]).
pub type SecretChanges =
    futures::stream::BoxStream<'static, Result<PartialObjectMeta<Secret>, watcher::Error>>;

/// One metadata watch of the Secrets in `scope`, shared by `N` controllers (both managed kinds
/// and the credentials kinds): one list and one watch of every Secret instead of one per
/// controller, which at start-up in a cluster with many Secrets was four lists of all of them.
///
/// A task drives the watch (and the Secret cache's bookkeeping, [`secret_changes`]) and hands
/// each change to every consumer through an unbounded channel (Secret changes are rare and
/// small; a bounded one would let a busy controller stall the others). The task stops when the
/// last consumer's stream is dropped. Watch errors are retried with back-off by the watcher and
/// logged here, as the controllers logged them before.
pub fn shared_secret_changes<const N: usize>(
    client: &kube::Client,
    scope: &Scope,
    cache: SecretReader,
) -> [SecretChanges; N] {
    let api: Api<PartialObjectMeta<Secret>> = scope.api(client);
    cache.watching(scope.namespace().as_deref());
    let mut senders = Vec::with_capacity(N);
    let receivers: [_; N] = std::array::from_fn(|_| {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        senders.push(tx);
        rx
    });
    let changes = secret_changes(api, cache);
    let task = tokio::spawn(async move {
        let mut changes = std::pin::pin!(changes);
        while let Some(change) = changes.next().await {
            match change {
                Ok(secret) => {
                    for tx in &senders {
                        let _ = tx.unbounded_send(Ok(secret.clone()));
                    }
                }
                Err(error) => tracing::debug!(%error, "watch of Secrets"),
            }
        }
    });
    let guard = Arc::new(AbortOnDrop(task.abort_handle()));
    receivers.map(|rx| {
        let guard = guard.clone();
        rx.map(move |change| {
            let _alive = &guard;
            change
        })
        .boxed()
    })
}

/// The objects of kind `K` in `store` whose credentialsRef names `key`.
fn objects_using_credentials<K: ManagedKind>(
    store: &Store<K>,
    key: &CredentialsKey,
) -> Vec<ObjectRef<K>> {
    store
        .state()
        .into_iter()
        .filter(|o| o.credentials_key().as_ref() == Some(key))
        .map(|o| ObjectRef::from_obj(&*o))
        .collect()
}

/// What of a credentials object its users react to: its spec, whether LWA accepts it and its
/// Secret's version (a rotation). Not its in-use count, which changes with every new user.
fn credentials_trigger(status: Option<&CredentialsStatus>, generation: Option<i64>) -> u64 {
    let mut h = DefaultHasher::new();
    generation.hash(&mut h);
    if let Some(s) = status {
        s.secret_resource_version.hash(&mut h);
        super::conditions::ready_condition(&s.conditions)
            .map(|c| (&c.status, &c.reason))
            .hash(&mut h);
    }
    h.finish()
}

/// Changes of the credentials objects of kind `C` (after the initial list) that users react
/// to ([`credentials_trigger`]).
///
/// Every event also goes to `cache` (what [`crate::controller::credentials::Caches`] serves
/// reconciles from, instead of a GET per reconcile).
fn credentials_changes<C>(
    api: Api<C>,
    status: fn(&C) -> Option<&CredentialsStatus>,
    cache: reflector::store::Writer<C>,
) -> impl Stream<Item = Result<C, watcher::Error>> + Send
where
    C: SharedCredentials,
{
    watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(cache)
        .filter_map(|event| async move {
            match event {
                Ok(Event::Apply(c)) | Ok(Event::Delete(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        })
        .predicate_filter(
            move |c: &C| Some(credentials_trigger(status(c), c.meta().generation)),
            Default::default(),
        )
}

/// The objects of kind `K` to reconcile: watched, trimmed of what no reconcile reads, cached in
/// `writer`'s store; the initial list flips `synced` and sweeps per-object state, deletions are
/// forgotten at once; only changes that matter ([`trigger_hash`]) pass.
fn managed_objects<K: ManagedKind>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    synced: tokio::sync::watch::Sender<bool>,
    sweeper: Sweeper<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send {
    watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o: &mut K| {
            o.managed_fields_mut().clear();
            o.annotations_mut().remove(LAST_APPLIED);
        })
        .reflect(writer)
        .inspect(move |event| match event {
            Ok(Event::InitDone) => {
                synced.send_replace(true);
                sweeper.sweep();
            }
            Ok(Event::Delete(o)) => sweeper.ctx.forget(&o.uid().unwrap_or_default()),
            _ => {}
        })
        .applied_objects()
        .predicate_filter(trigger_hash::<K>, Default::default())
}

/// The watches of both credentials kinds in `scope`, whose caches serve reconciles
/// ([`crate::controller::credentials::Caches`]). ClusterAlexaCredentials need cluster-wide
/// access: only the all-namespaces install reads them (else a stream that never yields).
fn credentials_watches<K: ManagedKind>(
    ctx: &KindContext<K>,
    scope: &Scope,
) -> (
    impl Stream<Item = Result<AlexaCredentials, watcher::Error>> + Send + use<K>,
    futures::stream::BoxStream<'static, Result<ClusterAlexaCredentials, watcher::Error>>,
) {
    let (local_cache, local_writer) = reflector::store();
    ctx.credential_caches
        .serve_local(scope.namespace(), local_cache);
    let local = credentials_changes::<AlexaCredentials>(
        scope.api(&ctx.kube),
        |c| c.status.as_ref(),
        local_writer,
    );
    let cluster = match scope {
        Scope::All => {
            let (cluster_cache, cluster_writer) = reflector::store();
            ctx.credential_caches.serve_cluster(cluster_cache);
            credentials_changes::<ClusterAlexaCredentials>(
                Api::all(ctx.kube.clone()),
                |c| c.status.as_ref(),
                cluster_writer,
            )
            .boxed()
        }
        Scope::Namespace(_) => futures::stream::pending().boxed(),
    };
    (local, cluster)
}

/// One Controller of kind `K` in one scope. Returns the stream to drive, its cache, and a flag
/// that turns true once the initial list is in the cache. (Not `Store::wait_until_ready`: the
/// Controller itself waits on it, and kube-runtime wakes only one of two concurrent waiters.)
pub fn controller<K: ManagedKind>(
    ctx: Arc<KindContext<K>>,
    scope: Scope,
    concurrency: u16,
    secrets: SecretChanges,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> (
    impl Stream<Item = ()> + Send,
    Store<K>,
    tokio::sync::watch::Receiver<bool>,
) {
    let api: Api<K> = scope.api(&ctx.kube);
    let (reader, writer) = reflector::store();
    let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
    let sweeper = Sweeper {
        ctx: ctx.clone(),
        cache: reader.clone(),
        namespace: scope.namespace(),
    };
    let periodic = sweeper
        .clone()
        .every(ctx.settings.resync_period, synced_rx.clone());
    let objects = managed_objects(api, writer, synced_tx, sweeper);
    let store = reader.clone();
    let (local_store, cluster_store) = (reader.clone(), reader.clone());
    let (local_credentials, cluster_credentials) = credentials_watches(&ctx, &scope);
    let stream = Controller::for_stream(objects, reader.clone())
        .with_config(controller::Config::default().concurrency(concurrency))
        .watches_stream(secrets, move |secret| objects_using_secret(&store, &secret))
        .watches_stream(local_credentials, move |c| {
            objects_using_credentials(&local_store, &c.key())
        })
        .watches_stream(cluster_credentials, move |c| {
            objects_using_credentials(&cluster_store, &c.key())
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .map(move |result| {
            // The periodic sweep lives as long as this stream.
            let _periodic = &periodic;
            if let Err(err) = result {
                match err {
                    controller::Error::ObjectNotFound(_) => {}
                    other => tracing::debug!(error = %other, kind = K::KIND, "controller event"),
                }
            }
        });
    (stream, reader, synced_rx)
}
