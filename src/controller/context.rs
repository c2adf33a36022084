//! What every reconcile of every kind shares: clients, settings, metrics, events and the
//! per-object failure counts that drive back-off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;

use crate::alexa::{AlexaClient, Backoff};
use crate::crd::SkillEnablement;
use crate::metrics::Metrics;

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
    /// The resync period with ±10% jitter, so objects created together do not resync together.
    pub fn jittered_resync(&self) -> Duration {
        let base = self.resync_period.as_secs_f64();
        let factor = 0.9 + rand::random::<f64>() * 0.2;
        Duration::from_secs_f64((base * factor).max(0.001))
    }
}

/// Consecutive failures per object (by uid); reset on success. kube-runtime has no per-object
/// back-off of its own.
#[derive(Debug, Default)]
pub struct FailureTracker {
    counts: Mutex<HashMap<String, u32>>,
}

impl FailureTracker {
    /// Counts one more failure and returns the new count.
    pub fn record(&self, uid: &str) -> u32 {
        let Ok(mut counts) = self.counts.lock() else {
            return 1;
        };
        let n = counts.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets failures after a success (or deletion).
    pub fn reset(&self, uid: &str) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.remove(uid);
        }
    }

    /// Current count, for tests and status messages.
    pub fn count(&self, uid: &str) -> u32 {
        self.counts
            .lock()
            .ok()
            .and_then(|c| c.get(uid).copied())
            .unwrap_or(0)
    }
}

/// Shared state handed to every reconcile.
pub struct Context {
    /// Kubernetes client.
    pub kube: kube::Client,
    /// Alexa API client (token cache, rate budget and Retry-After gates are shared through it).
    pub alexa: AlexaClient,
    /// Publishes Kubernetes events.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Timing knobs.
    pub settings: Settings,
    /// Per-object failure counts.
    pub failures: FailureTracker,
    /// Caches of the SkillEnablement controllers (one per watched namespace), for conflict
    /// detection without extra API calls.
    enablement_stores: RwLock<Vec<Store<SkillEnablement>>>,
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
            recorder: Recorder::new(kube.clone(), reporter),
            kube,
            alexa,
            metrics,
            settings,
            failures: FailureTracker::default(),
            enablement_stores: RwLock::new(Vec::new()),
        }
    }

    /// Makes the SkillEnablement caches of the running controllers visible to conflict
    /// detection (replacing those of an earlier leadership term).
    pub fn set_enablement_stores(&self, list: Vec<Store<SkillEnablement>>) {
        if let Ok(mut stores) = self.enablement_stores.write() {
            *stores = list;
        }
    }

    /// Every cached SkillEnablement.
    pub fn enablements(&self) -> Vec<Arc<SkillEnablement>> {
        self.enablement_stores
            .read()
            .map(|stores| stores.iter().flat_map(|s| s.state()).collect())
            .unwrap_or_default()
    }
}
