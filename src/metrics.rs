//! Prometheus metrics. Labels are bounded (kind, operation, status code, result, reason, error
//! category); object names never become labels, so cardinality does not grow with the cluster.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::controller::keys::Uid;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-reconcile metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// Custom resource kind.
    pub kind: String,
    /// ready, progressing, stalled, idle or error.
    pub result: String,
}

/// Labels of Alexa API request metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// Operation name (get_account_linking, token, ...).
    pub operation: String,
    /// HTTP status code, or "error" when no response arrived.
    pub status: String,
}

/// Labels with only the kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Custom resource kind.
    pub kind: String,
}

/// Labels of the objects gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Custom resource kind.
    pub kind: String,
    /// Status of the Ready condition: True or False.
    pub ready: String,
    /// Reason of the Ready condition.
    pub reason: String,
}

/// Labels of failure metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Custom resource kind.
    pub kind: String,
    /// Error category (throttled, unavailable, credentials, ...).
    pub category: String,
}

/// Labels of token refresh metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// ok or failed.
    pub result: String,
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

fn ready_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 16))
}

/// All metrics the operator exports, registered once at start-up.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile duration by kind and result.
    pub reconcile_duration: Family<ReconcileLabels, Histogram, fn() -> Histogram>,
    /// Failed reconciles by kind and error category.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Alexa API requests by operation and status.
    pub api_requests: Family<ApiLabels, Counter>,
    /// Alexa API request latency by operation and status.
    pub api_duration: Family<ApiLabels, Histogram, fn() -> Histogram>,
    /// LWA token refreshes by result.
    pub token_refreshes: Family<ResultLabels, Counter>,
    /// Calls that waited for the rate budget or a Retry-After gate.
    pub throttled_waits: Counter,
    /// Total seconds spent waiting for the rate budget or Retry-After (milliseconds precision).
    pub throttled_wait_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Unix time until which a Retry-After gate holds calls (0 when none).
    pub retry_after_gate_until: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Times Amazon throttled a credential at a rate it had accepted, so its rate was lowered.
    pub api_rate_reductions: Counter,
    /// Objects by kind and Ready status/reason.
    pub objects: Family<ObjectLabels, Gauge>,
    /// Seconds from object creation to its first Ready.
    pub time_to_first_ready: Family<KindLabels, Histogram, fn() -> Histogram>,
    /// Out-of-band changes on Amazon's side that were undone.
    pub drift_repairs: Family<KindLabels, Counter>,
    /// Objects that stopped writing because Amazon accepted writes without its read-back
    /// agreeing (reason NotConverging), counted when they enter that state.
    pub not_converging: Family<KindLabels, Counter>,
    /// 1 while this replica reconciles (it leads, or leader election is off), else 0; set at
    /// each scrape, so an alert can tell "no replica leads" from "no objects".
    pub leader: Gauge,
    /// Unix time of the latest successful read of Amazon's state, by kind (replaces the
    /// per-object status.lastSyncTime, whose write on every resync cost an apiserver write).
    pub last_sync: Family<KindLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    states: Mutex<ObjectStates>,
}

#[derive(Default)]
struct ObjectStates {
    /// Per object (uid): its series of the objects gauge, and whether it was seen Ready since
    /// start (so time-to-first-Ready is observed once).
    objects: HashMap<Uid, ObjectState>,
    /// One shared copy of each label set in use (bounded: kinds × Ready × reasons), so an
    /// object's entry is a pointer, not three strings.
    labels: HashSet<Arc<ObjectLabels>>,
}

#[derive(Default)]
struct ObjectState {
    current: Option<Arc<ObjectLabels>>,
    seen_ready: bool,
}

impl ObjectStates {
    fn shared(&mut self, labels: ObjectLabels) -> Arc<ObjectLabels> {
        if let Some(shared) = self.labels.get(&labels) {
            return shared.clone();
        }
        let shared = Arc::new(labels);
        self.labels.insert(shared.clone());
        shared
    }
}

/// A metric whose clone shares its series, registered by handle.
trait RegisterClone {
    fn register_in(&self, registry: &mut Registry, name: &str, help: &str);
}

impl<M: prometheus_client::registry::Metric + Clone> RegisterClone for M {
    fn register_in(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register(name, help, self.clone());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A metric family to register: name, help text and a handle sharing its series.
type FamilyEntry<'a> = (&'static str, &'static str, &'a dyn RegisterClone);

impl Metrics {
    /// Creates and registers every metric under the `alexa_operator` prefix.
    pub fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::default(),
            reconciles: Default::default(),
            reconcile_duration: Family::new_with_constructor(
                seconds_histogram as fn() -> Histogram,
            ),
            reconcile_errors: Default::default(),
            api_requests: Default::default(),
            api_duration: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            token_refreshes: Default::default(),
            throttled_waits: Default::default(),
            throttled_wait_seconds: Default::default(),
            retry_after_gate_until: Default::default(),
            api_rate_reductions: Default::default(),
            objects: Default::default(),
            time_to_first_ready: Family::new_with_constructor(ready_histogram as fn() -> Histogram),
            drift_repairs: Default::default(),
            not_converging: Default::default(),
            leader: Default::default(),
            last_sync: Default::default(),
            states: Mutex::new(ObjectStates::default()),
        };
        let mut registry = Registry::with_prefix("alexa_operator");
        metrics.register_all(&mut registry);
        metrics.registry = registry;
        metrics
    }

    /// Registers a handle to every metric (the families share their series with `self`).
    fn register_all(&self, registry: &mut Registry) {
        for (name, help, metric) in self
            .object_families()
            .into_iter()
            .chain(self.api_families())
        {
            metric.register_in(registry, name, help);
        }
    }

    /// Name, help and handle of the families about objects and reconciles.
    fn object_families(&self) -> [FamilyEntry<'_>; 9] {
        [
            (
                "reconciles",
                "Reconciles by kind and result",
                &self.reconciles,
            ),
            (
                "reconcile_duration_seconds",
                "Reconcile duration by kind and result",
                &self.reconcile_duration,
            ),
            (
                "reconcile_errors",
                "Failed reconciles by kind and error category",
                &self.reconcile_errors,
            ),
            (
                "objects",
                "Objects by kind and Ready condition",
                &self.objects,
            ),
            (
                "time_to_first_ready_seconds",
                "Seconds from object creation to its first Ready",
                &self.time_to_first_ready,
            ),
            (
                "drift_repairs",
                "Out-of-band changes on Amazon's side that were undone",
                &self.drift_repairs,
            ),
            (
                "not_converging",
                "Objects that stopped writing because Amazon kept answering otherwise",
                &self.not_converging,
            ),
            (
                "leader",
                "1 while this replica reconciles (leader, or no leader election), 0 on a standby",
                &self.leader,
            ),
            (
                "last_sync_timestamp_seconds",
                "Unix time Amazon's state was last read successfully for an object of this kind",
                &self.last_sync,
            ),
        ]
    }

    /// Name, help and handle of the families about calls to Amazon (requests, tokens, throttling).
    fn api_families(&self) -> [FamilyEntry<'_>; 7] {
        [
            (
                "api_requests",
                "Alexa API requests by operation and HTTP status",
                &self.api_requests,
            ),
            (
                "api_request_duration_seconds",
                "Alexa API request latency",
                &self.api_duration,
            ),
            (
                "token_refreshes",
                "Login with Amazon token refreshes by result",
                &self.token_refreshes,
            ),
            (
                "throttled_waits",
                "Calls that waited for the rate budget or Retry-After",
                &self.throttled_waits,
            ),
            (
                "throttled_wait_seconds",
                "Seconds spent waiting for the rate budget or Retry-After",
                &self.throttled_wait_seconds,
            ),
            (
                "retry_after_gate_until_timestamp_seconds",
                "Unix time until which Amazon asked the operator to wait (Retry-After); 0 if never",
                &self.retry_after_gate_until,
            ),
            (
                "api_rate_reductions",
                "Times Amazon throttled a credential at a rate it had accepted, lowering its rate",
                &self.api_rate_reductions,
            ),
        ]
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Records one finished reconcile.
    pub fn reconciled(&self, kind: &str, result: &str, seconds: f64) {
        let labels = ReconcileLabels {
            kind: kind.to_string(),
            result: result.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// Records a successful read of Amazon's state for an object of `kind`, now.
    pub fn synced(&self, kind: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_sync
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .set(now);
    }

    /// Records the Ready state of one object (uid) after a status write; `age_seconds` is the
    /// time since creation, observed as time-to-first-Ready the first time it becomes Ready.
    pub fn object_state(
        &self,
        kind: &str,
        uid: &str,
        ready: bool,
        reason: &str,
        age_seconds: Option<f64>,
    ) {
        let labels = ObjectLabels {
            kind: kind.to_string(),
            ready: if ready { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
        };
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        let key = Uid::new(uid);
        let old = states.objects.get(&key).and_then(|s| s.current.clone());
        if let Some(old) = old {
            if *old == labels {
                return;
            }
            self.objects.get_or_create(&old).dec();
        }
        self.objects.get_or_create(&labels).inc();
        let shared = states.shared(labels);
        let state = states.objects.entry(key).or_default();
        state.current = Some(shared);
        if ready && !state.seen_ready {
            state.seen_ready = true;
            if let Some(age) = age_seconds {
                self.time_to_first_ready
                    .get_or_create(&KindLabels {
                        kind: kind.to_string(),
                    })
                    .observe(age);
            }
        }
    }

    /// Notes that an object was already Ready when first seen (no time-to-first-Ready for it).
    pub fn already_ready(&self, uid: &str) {
        if let Ok(mut states) = self.states.lock() {
            states.objects.entry(Uid::new(uid)).or_default().seen_ready = true;
        }
    }

    /// Every object with metric state (what a sweep checks against the caches).
    pub fn object_uids(&self) -> Vec<Uid> {
        let Ok(states) = self.states.lock() else {
            return Vec::new();
        };
        states.objects.keys().cloned().collect()
    }

    /// Drops an object's state and its share of the objects gauge.
    pub fn object_gone(&self, uid: &str) {
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        if let Some(ObjectState {
            current: Some(old), ..
        }) = states.objects.remove(&Uid::new(uid))
        {
            self.objects.get_or_create(&old).dec();
        }
    }
}

impl crate::alexa::ApiObserver for Metrics {
    fn request(
        &self,
        operation: crate::alexa::Operation,
        status: Option<u16>,
        elapsed: std::time::Duration,
    ) {
        let labels = ApiLabels {
            operation: operation.as_str().to_string(),
            status: status.map_or_else(|| "error".to_string(), |s| s.to_string()),
        };
        self.api_requests.get_or_create(&labels).inc();
        self.api_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    fn token_refresh(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.token_refreshes
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    fn throttled(&self, wait: std::time::Duration) {
        self.throttled_waits.inc();
        self.throttled_wait_seconds.inc_by(wait.as_secs_f64());
    }

    fn retry_after_gate(&self, wait: std::time::Duration) {
        let until = std::time::SystemTime::now()
            .checked_add(wait)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        if until > self.retry_after_gate_until.get() {
            self.retry_after_gate_until.set(until);
        }
    }

    fn rate_reduced(&self, _rate: f64) {
        self.api_rate_reductions.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_gauge_moves_between_states_without_double_counting() {
        let m = Metrics::new();
        m.object_state("SkillAccountLinking", "u1", false, "Creating", Some(1.0));
        m.object_state("SkillAccountLinking", "u1", true, "Synced", Some(2.0));
        m.object_state("SkillAccountLinking", "u1", true, "Synced", Some(3.0));
        let text = m.render();
        assert!(text.contains(r#"alexa_operator_objects{kind="SkillAccountLinking",ready="True",reason="Synced"} 1"#), "{text}");
        assert!(text.contains(r#"alexa_operator_objects{kind="SkillAccountLinking",ready="False",reason="Creating"} 0"#), "{text}");
        assert!(
            text.contains(
                r#"alexa_operator_time_to_first_ready_seconds_count{kind="SkillAccountLinking"} 1"#
            ),
            "{text}"
        );
        m.object_gone("u1");
        let text = m.render();
        assert!(text.contains(r#"alexa_operator_objects{kind="SkillAccountLinking",ready="True",reason="Synced"} 0"#), "{text}");
    }

    #[test]
    fn a_sync_sets_its_kinds_last_sync_time_to_now() {
        let m = Metrics::new();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        m.synced("SkillEnablement");
        let kind = |k: &str| KindLabels {
            kind: k.to_string(),
        };
        assert!(m.last_sync.get_or_create(&kind("SkillEnablement")).get() >= before);
        assert_eq!(
            m.last_sync
                .get_or_create(&kind("SkillAccountLinking"))
                .get(),
            0.0
        );
        assert!(
            m.render()
                .contains("alexa_operator_last_sync_timestamp_seconds{kind=\"SkillEnablement\"}")
        );
    }

    #[test]
    fn the_retry_after_gauge_moves_only_for_amazons_gates() {
        use crate::alexa::ApiObserver;
        let m = Metrics::new();
        m.throttled(std::time::Duration::from_secs(5));
        assert_eq!(
            m.retry_after_gate_until.get(),
            0.0,
            "own rate waits are not Amazon's"
        );
        m.retry_after_gate(std::time::Duration::from_secs(5));
        assert!(m.retry_after_gate_until.get() > 0.0);
    }

    #[test]
    fn already_ready_objects_do_not_count_as_first_ready() {
        let m = Metrics::new();
        m.already_ready("u2");
        m.object_state("SkillEnablement", "u2", true, "Synced", Some(5.0));
        assert!(
            !m.render()
                .contains(r#"time_to_first_ready_seconds_count{kind="SkillEnablement"}"#)
        );
    }

    #[test]
    fn reconcile_counter_and_histogram_share_labels() {
        let m = Metrics::new();
        m.reconciled("SkillAccountLinking", "ready", 0.02);
        let text = m.render();
        assert!(
            text.contains(
                r#"alexa_operator_reconciles_total{kind="SkillAccountLinking",result="ready"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"alexa_operator_reconcile_duration_seconds_count{kind="SkillAccountLinking",result="ready"} 1"#));
    }
}
