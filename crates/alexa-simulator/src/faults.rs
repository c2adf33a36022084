//! Fault injection: the misbehaviours the operator must survive (throttling, 5xx bursts, latency,
//! dropped connections, stale ETags, broken discovery), switchable by flags, through [`Faults`]
//! in-process, or through `/__sim/faults` from another process.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::requests::Operation;

/// Per-client token bucket. Amazon publishes no SMAPI limit and no `Retry-After`, so both are
/// configurable; a zero `retry_after` omits the header to test clients that must not need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per second per client.
    pub per_second: f64,
    /// Bucket size (requests allowed at once after idling).
    pub burst: u32,
    /// Value of the `Retry-After` header, rounded up to whole seconds; zero omits the header.
    #[serde(default, with = "duration_serde")]
    pub retry_after: Duration,
}

/// One LWA client answered 429 on every API request for a while: the noisy neighbour of a
/// shared operator. The window starts when the faults are applied (simulator start for the
/// flag, the `PUT /__sim/faults` or [`Faults::throttle_client`] call otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleWindow {
    /// The LWA client id whose API requests are throttled (others are not).
    pub client_id: String,
    /// Value of the `Retry-After` header, rounded up to whole seconds; zero omits the header.
    #[serde(default, with = "duration_serde")]
    pub retry_after: Duration,
    /// How long the window lasts.
    #[serde(with = "duration_serde")]
    pub duration: Duration,
}

/// How `GET /v1/alexaApiEndpoint` behaves, to exercise the client's fallback rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum DiscoveryMode {
    /// The customer's own region host only.
    #[default]
    #[serde(alias = "normal")]
    Normal,
    /// 500: clients must fall back to NA, EU, FE in that order.
    #[serde(alias = "server-error", alias = "serverError")]
    ServerError,
    /// All three hosts with the customer's own one last: clients must try each in order.
    #[serde(alias = "multiple")]
    Multiple,
}

/// How a successful account-linking PUT is answered. The management page gives both: its text
/// says "A successful response returns HTTP 204 No Content", its status table "200 OK: Account
/// linking information updated successfully. The response header contains an ETag".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum PutAnswer {
    /// 204 No Content, no body (the new ETag is sent as a header too).
    #[default]
    #[serde(alias = "noContent", alias = "204")]
    NoContent,
    /// 200 OK with the new ETag header and no body.
    #[serde(alias = "okWithEtag", alias = "200")]
    OkWithEtag,
}

/// Ways a real account-linking API may differ from the seed pages, all off by default: the
/// default simulator is seed-literal. Part of [`FaultConfig`], so they are switched like faults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Divergences {
    /// GET also returns the stored `skipOnEnablement`, which the seed documents only on the PUT
    /// (the simulator's behaviour before it followed the seeds).
    pub echo_skip_on_enablement: bool,
    /// GET returns `domains`, `scopes` and `redirectUrls` in reverse order (cosmetic).
    pub reverse_lists: bool,
    /// A PUT stores `authorizationUrl` and `accessTokenUrl` normalised: scheme and host
    /// lower-cased and a trailing `/` added, as some servers do (not cosmetic: the GET differs).
    pub normalize_urls: bool,
    /// Fields a PUT accepts (2xx) but does not store, so the GET never shows them, e.g.
    /// `["defaultTokenExpirationInSeconds"]`; `["redirectUrls"]` plays the schema page's
    /// reading that redirect URLs are fixed and cannot be set.
    pub drop_fields: Vec<String>,
}

/// One canned answer for [`Faults::script`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptedResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body, if any.
    #[serde(default)]
    pub body: Option<Value>,
    /// Extra headers, as `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

impl ScriptedResponse {
    /// A bare status without body.
    pub fn status(status: u16) -> ScriptedResponse {
        ScriptedResponse {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    /// A status with a JSON body.
    pub fn json(status: u16, body: Value) -> ScriptedResponse {
        ScriptedResponse {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> ScriptedResponse {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// The switchable faults. Serialized as the body of `GET/PUT /__sim/faults`; durations are
/// humantime strings (`"250ms"`) or numbers of seconds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultConfig {
    /// Per-client rate limit answering 429.
    pub rate_limit: Option<RateLimit>,
    /// Probability (0..=1) that a request gets 500 or 503 (half each).
    pub error_rate: f64,
    /// Added to every API request before it is handled.
    #[serde(with = "duration_serde")]
    pub latency: Duration,
    /// Probability (0..=1) that the connection is closed without a response.
    pub drop_rate: f64,
    /// Every PUT carrying any `If-Match` gets 412.
    pub stale_etag: bool,
    /// Behaviour of endpoint discovery.
    pub discovery: DiscoveryMode,
    /// Also apply the random faults (rate limit, errors, latency, drops) to the LWA token
    /// endpoint. Off by default: LWA is a separate Amazon service, and a SMAPI outage test should
    /// not first fail at the token refresh. Scripts always apply.
    pub include_lwa: bool,
    /// How a successful account-linking PUT is answered.
    pub put_answer: PutAnswer,
    /// Divergences from the seed pages (all off by default).
    pub divergences: Divergences,
    /// Per-client throttle windows: every API request of that LWA client gets 429 until the
    /// window ends (LWA too with `includeLwa`).
    pub throttle_clients: Vec<ThrottleWindow>,
    /// Customer linking completes late: a successful enable answers 201 with
    /// `accountLink.status` `NOT_LINKED`, and the first this many status reads of that
    /// enablement still show `NOT_LINKED`; the next one shows `LINKED`. 0 (default): linked at
    /// once, as the seed's example shows.
    pub link_after_reads: u32,
}

impl FaultConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, rate) in [("errorRate", self.error_rate), ("dropRate", self.drop_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if let Some(limit) = &self.rate_limit {
            if !(limit.per_second.is_finite() && limit.per_second > 0.0) {
                return Err("rateLimit.perSecond must be a positive number".to_string());
            }
            if limit.burst == 0 {
                return Err("rateLimit.burst must be at least 1".to_string());
            }
        }
        Ok(())
    }
}

/// What the fault layer decided for one request.
#[derive(Debug)]
pub(crate) enum Injected {
    Scripted(ScriptedResponse),
    Drop,
    RateLimited { retry_after: Duration },
    ServerError(u16),
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

struct FaultState {
    config: FaultConfig,
    /// When each throttle window of `config.throttle_clients` ends.
    throttled_until: HashMap<String, (Instant, Duration)>,
    scripts: HashMap<Operation, VecDeque<ScriptedResponse>>,
    drop_next: u64,
    drop_after_applying: HashMap<Operation, u64>,
    buckets: HashMap<String, Bucket>,
}

/// Cheap clonable handle to the simulator's faults; changes apply to the next request.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("config", &self.inner.lock().config)
            .finish_non_exhaustive()
    }
}

impl Faults {
    pub(crate) fn new(config: FaultConfig) -> Faults {
        Faults {
            inner: Arc::new(Mutex::new(FaultState {
                throttled_until: windows(&config.throttle_clients),
                config,
                scripts: HashMap::new(),
                drop_next: 0,
                drop_after_applying: HashMap::new(),
                buckets: HashMap::new(),
            })),
        }
    }

    /// Current switchable faults (scripts and pending drops are not part of it).
    pub fn config(&self) -> FaultConfig {
        self.inner.lock().config.clone()
    }

    /// Replaces all switchable faults at once (what `PUT /__sim/faults` does). Out-of-range
    /// rates are clamped to 0..=1.
    pub fn set_config(&self, mut config: FaultConfig) {
        config.error_rate = clamp_rate(config.error_rate);
        config.drop_rate = clamp_rate(config.drop_rate);
        let mut state = self.inner.lock();
        state.throttled_until = windows(&config.throttle_clients);
        state.config = config;
        state.buckets.clear();
    }

    /// Answers every API request of LWA client `client_id` with 429 (and `Retry-After`, unless
    /// zero) for `duration` from now; replaces an earlier window of that client.
    pub fn throttle_client(&self, client_id: &str, retry_after: Duration, duration: Duration) {
        let window = ThrottleWindow {
            client_id: client_id.to_string(),
            retry_after,
            duration,
        };
        let mut state = self.inner.lock();
        state
            .config
            .throttle_clients
            .retain(|w| w.client_id != client_id);
        state
            .throttled_until
            .extend(windows(std::slice::from_ref(&window)));
        state.config.throttle_clients.push(window);
    }

    /// Sets or removes the per-client rate limit (429 with `Retry-After`).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut state = self.inner.lock();
        state.config.rate_limit = limit;
        state.buckets.clear();
    }

    /// Probability (0..=1) of answering 500 or 503.
    pub fn set_error_rate(&self, rate: f64) {
        self.inner.lock().config.error_rate = clamp_rate(rate);
    }

    /// Latency added to every API request.
    pub fn set_latency(&self, latency: Duration) {
        self.inner.lock().config.latency = latency;
    }

    /// The next `responses.len()` requests of `op` get these answers in order, then normal
    /// behaviour resumes. Appends to an already queued script.
    pub fn script(&self, op: Operation, responses: Vec<ScriptedResponse>) {
        self.inner
            .lock()
            .scripts
            .entry(op)
            .or_default()
            .extend(responses);
    }

    /// Probability (0..=1) of closing the connection without an answer.
    pub fn set_drop_rate(&self, rate: f64) {
        self.inner.lock().config.drop_rate = clamp_rate(rate);
    }

    /// Closes the connection without an answer for the next `n` API requests.
    pub fn drop_next(&self, n: u64) {
        self.inner.lock().drop_next = n;
    }

    /// The next `n` requests of `op` are carried out (state changes, codes redeemed) and then
    /// the connection is closed without the answer: "processed, answer lost". Replaces an
    /// earlier count for `op`.
    pub fn drop_after_applying(&self, op: Operation, n: u64) {
        self.inner.lock().drop_after_applying.insert(op, n);
    }

    /// Whether this request of `op` loses its answer after being carried out (uses one).
    pub(crate) fn take_drop_after_applying(&self, op: Operation) -> bool {
        let mut state = self.inner.lock();
        match state.drop_after_applying.get_mut(&op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Customer linking completes after this many status reads (see
    /// [`FaultConfig::link_after_reads`]).
    pub fn set_link_after_reads(&self, reads: u32) {
        self.inner.lock().config.link_after_reads = reads;
    }

    pub(crate) fn link_after_reads(&self) -> u32 {
        self.inner.lock().config.link_after_reads
    }

    /// When on, every account-linking PUT that carries any `If-Match` gets 412.
    pub fn set_stale_etag(&self, on: bool) {
        self.inner.lock().config.stale_etag = on;
    }

    /// Behaviour of endpoint discovery.
    pub fn set_discovery(&self, mode: DiscoveryMode) {
        self.inner.lock().config.discovery = mode;
    }

    /// Whether random faults also hit the LWA token endpoint.
    pub fn set_include_lwa(&self, on: bool) {
        self.inner.lock().config.include_lwa = on;
    }

    /// Removes every fault, script and pending drop.
    pub fn clear(&self) {
        let mut state = self.inner.lock();
        state.config = FaultConfig::default();
        state.throttled_until.clear();
        state.scripts.clear();
        state.drop_next = 0;
        state.drop_after_applying.clear();
        state.buckets.clear();
    }

    /// Scripted responses still queued per operation.
    pub fn pending_scripts(&self) -> HashMap<Operation, usize> {
        self.inner
            .lock()
            .scripts
            .iter()
            .filter(|(_, queue)| !queue.is_empty())
            .map(|(op, queue)| (*op, queue.len()))
            .collect()
    }

    pub(crate) fn stale_etag(&self) -> bool {
        self.inner.lock().config.stale_etag
    }

    /// How a successful account-linking PUT is answered.
    pub fn set_put_answer(&self, answer: PutAnswer) {
        self.inner.lock().config.put_answer = answer;
    }

    /// Replaces the divergences from the seed pages.
    pub fn set_divergences(&self, divergences: Divergences) {
        self.inner.lock().config.divergences = divergences;
    }

    pub(crate) fn put_answer(&self) -> PutAnswer {
        self.inner.lock().config.put_answer
    }

    pub(crate) fn divergences(&self) -> Divergences {
        self.inner.lock().config.divergences.clone()
    }

    pub(crate) fn discovery(&self) -> DiscoveryMode {
        self.inner.lock().config.discovery
    }

    /// Decides latency and any injected answer for one request. One lock, O(1).
    pub(crate) fn decide(
        &self,
        op: Operation,
        client: Option<&str>,
    ) -> (Duration, Option<Injected>) {
        if op == Operation::Admin {
            return (Duration::ZERO, None);
        }
        let mut state = self.inner.lock();
        let random_faults = op != Operation::Token || state.config.include_lwa;
        let latency = if random_faults {
            state.config.latency
        } else {
            Duration::ZERO
        };
        if let Some(queue) = state.scripts.get_mut(&op) {
            if let Some(response) = queue.pop_front() {
                return (latency, Some(Injected::Scripted(response)));
            }
        }
        if !random_faults || op == Operation::Unknown {
            return (latency, None);
        }
        if let Some((until, retry_after)) = client.and_then(|c| state.throttled_until.get(c)) {
            if Instant::now() < *until {
                let retry_after = *retry_after;
                return (latency, Some(Injected::RateLimited { retry_after }));
            }
        }
        if state.drop_next > 0 {
            state.drop_next -= 1;
            return (latency, Some(Injected::Drop));
        }
        let mut rng = rand::rng();
        if state.config.drop_rate > 0.0 && rng.random::<f64>() < state.config.drop_rate {
            return (latency, Some(Injected::Drop));
        }
        if let Some(limit) = state.config.rate_limit.clone() {
            let key = client.unwrap_or("anonymous").to_string();
            let now = Instant::now();
            let burst = f64::from(limit.burst);
            let bucket = state.buckets.entry(key).or_insert(Bucket {
                tokens: burst,
                last: now,
            });
            let refill = now.duration_since(bucket.last).as_secs_f64() * limit.per_second;
            bucket.tokens = (bucket.tokens + refill).min(burst);
            bucket.last = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
            } else {
                return (
                    latency,
                    Some(Injected::RateLimited {
                        retry_after: limit.retry_after,
                    }),
                );
            }
        }
        if state.config.error_rate > 0.0 && rng.random::<f64>() < state.config.error_rate {
            let status = if rng.random::<bool>() { 500 } else { 503 };
            return (latency, Some(Injected::ServerError(status)));
        }
        (latency, None)
    }
}

/// End time and Retry-After of each window, starting now.
fn windows(list: &[ThrottleWindow]) -> HashMap<String, (Instant, Duration)> {
    let now = Instant::now();
    list.iter()
        .map(|w| {
            let until = now.checked_add(w.duration).unwrap_or(now);
            (w.client_id.clone(), (until, w.retry_after))
        })
        .collect()
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// Durations in JSON: humantime strings ("1s", "250ms") or numbers of seconds.
pub(crate) mod duration_serde {
    use super::{Deserialize, Deserializer, Duration, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Seconds(secs) => {
                Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
            }
            Raw::Text(text) => humantime::parse_duration(&text).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FaultConfig, Faults, Injected, RateLimit, ScriptedResponse};
    use crate::requests::Operation;
    use std::time::Duration;

    #[test]
    fn rate_limit_is_per_client() {
        let faults = Faults::new(FaultConfig::default());
        faults.set_rate_limit(Some(RateLimit {
            per_second: 0.001,
            burst: 2,
            retry_after: Duration::from_secs(3),
        }));
        let op = Operation::GetAccountLinking;
        assert!(faults.decide(op, Some("a")).1.is_none());
        assert!(faults.decide(op, Some("a")).1.is_none());
        assert!(matches!(
            faults.decide(op, Some("a")).1,
            Some(Injected::RateLimited { .. })
        ));
        assert!(faults.decide(op, Some("b")).1.is_none());
    }

    #[test]
    fn a_throttle_window_holds_one_client_until_it_ends() {
        let faults = Faults::new(FaultConfig::default());
        let op = Operation::GetAccountLinking;
        faults.throttle_client("noisy", Duration::from_secs(60), Duration::from_secs(3600));
        assert!(matches!(
            faults.decide(op, Some("noisy")).1,
            Some(Injected::RateLimited { retry_after }) if retry_after == Duration::from_secs(60)
        ));
        assert!(faults.decide(op, Some("quiet")).1.is_none());
        assert!(
            faults.decide(Operation::Token, Some("noisy")).1.is_none(),
            "LWA spared"
        );
        // A window that has ended lets the client through.
        faults.throttle_client("noisy", Duration::from_secs(60), Duration::ZERO);
        assert!(faults.decide(op, Some("noisy")).1.is_none());
        assert_eq!(faults.config().throttle_clients.len(), 1);
    }

    #[test]
    fn scripts_run_out_and_lwa_is_spared_by_default() {
        let faults = Faults::new(FaultConfig {
            error_rate: 1.0,
            ..FaultConfig::default()
        });
        faults.script(Operation::Token, vec![ScriptedResponse::status(500)]);
        assert!(matches!(
            faults.decide(Operation::Token, None).1,
            Some(Injected::Scripted(_))
        ));
        assert!(faults.decide(Operation::Token, None).1.is_none());
        assert!(matches!(
            faults.decide(Operation::GetAccountLinking, None).1,
            Some(Injected::ServerError(500 | 503))
        ));
    }

    #[test]
    fn fault_config_json_accepts_humantime_and_seconds() {
        let config: FaultConfig = serde_json::from_value(serde_json::json!({
            "latency": "250ms",
            "rateLimit": {"perSecond": 2.0, "burst": 3, "retryAfter": 2}
        }))
        .unwrap();
        assert_eq!(config.latency, Duration::from_millis(250));
        assert_eq!(
            config.rate_limit.unwrap().retry_after,
            Duration::from_secs(2)
        );
    }
}
