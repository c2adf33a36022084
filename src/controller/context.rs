//! What every reconcile of every kind shares: clients, settings, metrics, events and the
//! per-object failure counts that drive back-off.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, ResourceExt};

use super::digest::Digester;
use super::keys::{Namespaces, Uid};
use super::lifecycle::ManagedKind;
use super::secrets::SecretReader;
use crate::alexa::{AlexaClient, Backoff};
use crate::metrics::Metrics;
use parking_lot::Mutex;

/// Field manager of every write the operator makes (status server-side apply, finalizers).
pub const FIELD_MANAGER: &str = "alexa-skill-operator";

/// Timing knobs of the controllers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often a healthy object re-reads Amazon (drift detection), before jitter.
    pub resync_period: Duration,
    /// Safety re-check of objects that need a human (Forbidden, SkillNotFound, ...).
    pub stalled_retry: Duration,
    /// Per-object back-off for transient failures.
    pub backoff: Backoff,
}

impl Settings {
    /// The resync period at point `jitter` in [0, 1] of a ±10% range, so objects created
    /// together do not resync together (the lifecycle draws `jitter`).
    pub fn resync_with(&self, jitter: f64) -> Duration {
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let base = self.resync_period.as_secs_f64();
        Duration::from_secs_f64((base * (0.9 + jitter * 0.2)).max(0.001))
    }
}

/// Consecutive failures per object (by uid); reset on success. kube-runtime has no per-object
/// back-off of its own.
#[derive(Debug, Default)]
pub struct FailureTracker {
    counts: Mutex<HashMap<Uid, u32>>,
}

impl FailureTracker {
    /// Counts one more failure and returns the new count.
    pub fn record(&self, uid: &str) -> u32 {
        let mut counts = self.counts.lock();
        let n = counts.entry(Uid::new(uid)).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets failures after a success (or deletion).
    pub fn reset(&self, uid: &str) {
        self.counts.lock().remove(&Uid::new(uid));
    }

    /// Every object with a failure count.
    pub fn uids(&self) -> HashSet<Uid> {
        self.counts.lock().keys().cloned().collect()
    }

    /// Current count, for tests and status messages.
    pub fn count(&self, uid: &str) -> u32 {
        self.counts.lock().get(&Uid::new(uid)).copied().unwrap_or(0)
    }
}

/// Shared state handed to every reconcile.
pub struct Context {
    /// Kubernetes client.
    pub kube: kube::Client,
    /// Alexa API client (token cache, rate budget and Retry-After gates are shared through it).
    pub alexa: AlexaClient,
    /// Names this replica in the Kubernetes events it publishes.
    pub reporter: Reporter,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Timing knobs.
    pub settings: Settings,
    /// Per-object failure counts.
    pub failures: FailureTracker,
    /// Keyed digests of secret values for status (the installation's key).
    pub digester: Digester,
    /// Which objects use which credentials object (the in-use count in their status).
    pub credential_users: super::credentials::Users,
    /// The credentials objects as the managed controllers' watches last saw them.
    pub credential_caches: super::credentials::Caches,
    /// Reads referenced Secrets, cached while their resourceVersion stays (see
    /// [`super::secrets`]).
    pub secrets: SecretReader,
    /// Per object (uid), the resourceVersion a status write of this operator was based on (as
    /// [`version_tag`]): the watch cache may still hold that older object when the next
    /// reconcile starts.
    written: Mutex<HashMap<Uid, u64>>,
    /// Kind and namespace of every object (uid) reconciled and not yet forgotten, so what is
    /// kept per object can be swept against a controller's cache ([`Context::sweep`]).
    tracked: Mutex<HashMap<Uid, Placement>>,
    /// Per object (uid), the unusable resync-period annotation value last warned about, so a
    /// bad value earns one Warning event, not one per reconcile.
    pub resync_warned: Mutex<HashMap<Uid, String>>,
    /// Kind and namespace of every object (uid) whose cleanup on Amazon succeeded, kept until
    /// the object leaves the cache: a reconcile started from a cache that still shows the
    /// finalizer (the removal's watch event not seen yet) must not call Amazon a second time.
    cleaned: Mutex<HashMap<Uid, Placement>>,
    /// The namespaces of tracked objects, stored once.
    namespaces: Namespaces,
}

/// An object's kind and namespace (shared with every object of that namespace).
type Placement = (&'static str, Arc<str>);

/// A resourceVersion as a 64-bit tag. resourceVersions are opaque and only compared for
/// equality here, so a hash serves (a collision, 1 in 2^64, costs one stale-status check).
fn version_tag(resource_version: Option<&str>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&resource_version, &mut h);
    std::hash::Hasher::finish(&h)
}

/// Which of the tracked objects one controller's cache covers: its kind and namespace (`None`:
/// every namespace).
#[derive(Debug, Clone, Copy)]
pub struct CacheScope<'a> {
    /// Kind of the controller.
    pub kind: &'static str,
    /// Its namespace, or `None` when it watches all of them.
    pub namespace: Option<&'a str>,
}

impl Context {
    /// Builds the context; `instance` names this replica in events (the pod name).
    pub fn new(
        kube: kube::Client,
        alexa: AlexaClient,
        metrics: Arc<Metrics>,
        settings: Settings,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance,
        };
        Self {
            reporter,
            secrets: SecretReader::new(kube.clone()),
            kube,
            alexa,
            metrics,
            settings,
            failures: FailureTracker::default(),
            digester: Digester::random(),
            credential_users: Default::default(),
            credential_caches: Default::default(),
            written: Mutex::new(HashMap::new()),
            tracked: Mutex::new(HashMap::new()),
            resync_warned: Mutex::new(HashMap::new()),
            cleaned: Mutex::new(HashMap::new()),
            namespaces: Namespaces::default(),
        }
    }

    /// The context with the installation's digest key (`new` starts with a random one, which
    /// only tests may keep: digests would change with every start).
    pub fn with_digester(mut self, digester: Digester) -> Self {
        self.digester = digester;
        self
    }

    /// An event recorder without kube-runtime's series cache: that cache keeps every event
    /// published in the last 6 minutes (about 3 KiB each) and scans all of them on every publish,
    /// which the benchmark measured at a third of the CPU time and two thirds of the heap at
    /// 10,000 objects. This operator publishes only on changes, so the repeated identical events
    /// that the cache folds into a series are rare.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.kube.clone(), self.reporter.clone())
    }

    /// The latest status of `obj`: the cached object's, unless the cache has not yet caught up
    /// with a status this operator wrote (the cached resourceVersion is still the one that write
    /// was based on); then the object is read once from the API server. Without this, a
    /// reconcile right after a write would act on stale status: resend a write Amazon already
    /// has, or a single-use authorization code. Only resourceVersions are kept (not statuses),
    /// so memory stays small at 10,000 objects.
    pub async fn latest_status<K: ManagedKind>(&self, obj: &K, api: &Api<K>) -> K::Status {
        let uid = Uid::new(obj.meta().uid.as_deref().unwrap_or_default());
        let cached_rv = obj.meta().resource_version.clone();
        let stale = {
            let mut written = self.written.lock();
            match written.get(&uid) {
                Some(before) if *before == version_tag(cached_rv.as_deref()) => true,
                Some(_) => {
                    written.remove(&uid);
                    false
                }
                None => false,
            }
        };
        if stale {
            if let Ok(Some(fresh)) = api.get_opt(&obj.name_any()).await {
                if fresh.meta().resource_version != cached_rv {
                    return fresh.current_status().cloned().unwrap_or_default();
                }
            }
        }
        obj.current_status().cloned().unwrap_or_default()
    }

    /// Records that this operator wrote the status of `obj` (see [`Context::latest_status`]).
    pub fn remember_status<K: ManagedKind>(&self, obj: &K) {
        let uid = Uid::new(obj.meta().uid.as_deref().unwrap_or_default());
        let tag = version_tag(obj.meta().resource_version.as_deref());
        self.written.lock().insert(uid, tag);
    }

    /// Drops everything kept about an object that is gone.
    pub fn forget(&self, uid: &str) {
        self.metrics.object_gone(uid);
        self.failures.reset(uid);
        let key = Uid::new(uid);
        self.written.lock().remove(&key);
        self.tracked.lock().remove(&key);
        self.credential_users.forget(uid);
        self.resync_warned.lock().remove(&key);
    }

    /// Records that the cleanup of an object of `kind` in `namespace` succeeded on Amazon and
    /// forgets what was kept for it ([`Context::forget`]); [`Context::was_cleaned_up`] answers
    /// true until a sweep finds the object gone from the cache.
    pub fn cleaned_up(&self, kind: &'static str, namespace: &str, uid: &str) {
        self.forget(uid);
        let namespace = self.namespaces.intern(namespace);
        self.cleaned.lock().insert(Uid::new(uid), (kind, namespace));
    }

    /// Whether this object's cleanup already succeeded (see [`Context::cleaned_up`]).
    pub fn was_cleaned_up(&self, uid: &str) -> bool {
        self.cleaned.lock().contains_key(&Uid::new(uid))
    }

    /// Notes that an object of `kind` in `namespace` is being reconciled, so that
    /// [`Context::sweep`] can forget it once it is gone however it went (finalizer removed by
    /// hand, deleted while this replica was not watching).
    pub fn track(&self, kind: &'static str, namespace: &str, uid: &str) {
        let key = Uid::new(uid);
        if self.tracked.lock().contains_key(&key) {
            return;
        }
        let namespace = self.namespaces.intern(namespace);
        self.tracked.lock().insert(key, (kind, namespace));
    }

    /// Forgets every tracked object in `scope` whose uid is not in `live` (the controller's
    /// cache), and whatever is kept for untracked uids (written by a reconcile that finished
    /// after its object was forgotten; every reconcile tracks its object before it writes
    /// anything): failure counts, status bookkeeping and metric state. Returns how many
    /// objects were forgotten.
    pub fn sweep(&self, scope: CacheScope<'_>, live: &HashSet<Uid>) -> usize {
        let mut gone: HashSet<Uid> = {
            let tracked = self.tracked.lock();
            let mut kept: HashSet<Uid> = self.failures.uids();
            kept.extend(self.written.lock().keys().cloned());
            kept.extend(self.metrics.object_uids());
            kept.retain(|uid| !tracked.contains_key(uid));
            kept
        };
        gone.extend(
            self.tracked
                .lock()
                .iter()
                .filter(|(uid, (kind, ns))| {
                    *kind == scope.kind
                        && scope.namespace.is_none_or(|s| s == &**ns)
                        && !live.contains(*uid)
                })
                .map(|(uid, _)| uid.clone()),
        );
        for uid in &gone {
            self.forget(&uid.to_string());
        }
        self.cleaned.lock().retain(|uid, (kind, ns)| {
            *kind != scope.kind || scope.namespace.is_some_and(|s| s != &**ns) || live.contains(uid)
        });
        gone.len()
    }

    /// How many objects are tracked (what [`Context::sweep`] looks at), for tests.
    pub fn tracked_objects(&self) -> usize {
        self.tracked.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{SkillAccountLinking, SkillAccountLinkingStatus};

    fn object(rv: &str, hash: Option<&str>) -> SkillAccountLinking {
        let mut obj: SkillAccountLinking = serde_json::from_value(serde_json::json!({
            "apiVersion": "alexa.operator.dev/v1alpha1",
            "kind": "SkillAccountLinking",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u1", "resourceVersion": rv},
            "spec": {"skillId": "s", "stage": "development", "credentialsSecretRef": {"name": "lwa"},
                     "accountLinking": {"type": "IMPLICIT", "authorizationUrl": "https://a", "clientId": "c"}}
        }))
        .unwrap();
        obj.status = hash.map(|h| SkillAccountLinkingStatus {
            client_secret_hash: Some(h.into()),
            ..Default::default()
        });
        obj
    }

    #[tokio::test]
    async fn a_sweep_forgets_everything_kept_about_objects_gone_from_the_cache() {
        let server = kube_test_server::TestServer::new();
        let alexa = AlexaClient::new(crate::alexa::ClientConfig::default()).unwrap();
        let settings = Settings {
            resync_period: Duration::from_secs(60),
            stalled_retry: Duration::from_secs(60),
            backoff: Backoff::default(),
        };
        let ctx = Context::new(
            server.client(),
            alexa,
            Arc::new(Metrics::new()),
            settings,
            None,
        );
        let keep = |kind, ns: &str, uid: &str| {
            ctx.track(kind, ns, uid);
            ctx.failures.record(uid);
            ctx.written.lock().insert(Uid::new(uid), version_tag(None));
            ctx.metrics
                .object_state(kind, uid, true, "Synced", Some(1.0));
        };
        // A uid as the apiserver makes them (kept as 16 bytes) and plain ones (kept as text).
        const LIVE: &str = "6f1c0d2e-8d3b-4a57-9c1e-0b8a4f3e2d1c";
        keep("SkillAccountLinking", "a", LIVE);
        keep("SkillAccountLinking", "a", "gone");
        keep("SkillAccountLinking", "b", "other-namespace");
        keep("SkillEnablement", "a", "other-kind");
        // Written by a reconcile that finished after its object was forgotten.
        ctx.failures.record("late");
        let live: HashSet<Uid> = [Uid::new(LIVE)].into();
        let scope = CacheScope {
            kind: "SkillAccountLinking",
            namespace: Some("a"),
        };
        assert_eq!(ctx.sweep(scope, &live), 2, "gone and late");
        for uid in ["gone", "late"] {
            assert_eq!(ctx.failures.count(uid), 0);
            assert!(!ctx.written.lock().contains_key(&Uid::new(uid)));
            assert!(!ctx.metrics.object_uids().contains(&Uid::new(uid)));
        }
        assert_eq!(ctx.tracked_objects(), 3, "outside the scope or live: kept");
        assert_eq!(ctx.failures.count("other-kind"), 1);
        let text = ctx.metrics.render();
        assert!(
            text.contains(r#"alexa_operator_objects{kind="SkillAccountLinking",ready="True",reason="Synced"} 2"#),
            "{text}"
        );
        let everywhere = CacheScope {
            kind: "SkillAccountLinking",
            namespace: None,
        };
        assert_eq!(ctx.sweep(everywhere, &live), 1, "the other namespace's");
        assert_eq!(ctx.tracked_objects(), 2);

        // A cleaned-up object is remembered while the cache still holds it, then forgotten.
        ctx.cleaned_up("SkillAccountLinking", "a", LIVE);
        assert_eq!(ctx.tracked_objects(), 1, "its state is forgotten at once");
        ctx.sweep(everywhere, &live);
        assert!(ctx.was_cleaned_up(LIVE), "still in the cache");
        ctx.sweep(scope, &HashSet::new());
        assert!(!ctx.was_cleaned_up(LIVE), "gone from the cache");
    }

    #[tokio::test]
    async fn a_reconcile_before_the_cache_catches_up_reads_the_status_just_written() {
        let server = kube_test_server::TestServer::new()
            .with_crds_from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
            .unwrap();
        let kube = server.client();
        let api: Api<SkillAccountLinking> = Api::namespaced(kube.clone(), "ns");
        let alexa = AlexaClient::new(crate::alexa::ClientConfig::default()).unwrap();
        let settings = Settings {
            resync_period: Duration::from_secs(60),
            stalled_retry: Duration::from_secs(60),
            backoff: Backoff::default(),
        };
        let ctx = Context::new(kube, alexa, Arc::new(Metrics::new()), settings, None);

        let mut created = object("ignored", None);
        created.metadata.uid = None;
        created.metadata.resource_version = None;
        let stale = api.create(&Default::default(), &created).await.unwrap();
        let patch = serde_json::json!({"status": {"clientSecretHash": "sha256:new"}});
        let fresh = api
            .patch_status(
                "a",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
        assert_ne!(
            stale.metadata.resource_version,
            fresh.metadata.resource_version
        );

        assert_eq!(
            ctx.latest_status(&stale, &api).await.client_secret_hash,
            None,
            "no write remembered: the cache is trusted"
        );
        ctx.remember_status(&stale);
        assert_eq!(
            ctx.latest_status(&stale, &api)
                .await
                .client_secret_hash
                .as_deref(),
            Some("sha256:new"),
            "the cache still holds the object the write was based on: read it fresh"
        );
        assert_eq!(
            ctx.latest_status(&fresh, &api)
                .await
                .client_secret_hash
                .as_deref(),
            Some("sha256:new")
        );
        assert!(
            ctx.written.lock().is_empty(),
            "forgotten once the cache moved on"
        );
    }
}
