//! The shared rate budget: one token bucket and one Retry-After gate per credential, shared by
//! every clone of the client, so all reconciles using the same Amazon account together stay
//! under the configured rate, and a 429 (or a 5xx with Retry-After, or any 429/5xx from Login
//! with Amazon) seen by one of them pauses all of them.
//!
//! Waiting never holds a worker for long: a caller sleeps in the call only when its gate opens,
//! or its reserved slot comes, within the bound it passes (`max_in_call_wait`). A longer wait
//! returns [`AlexaError::Deferred`] at once, without sending and without taking a token, and the
//! reconcile is requeued for the remaining time, so one throttled credential cannot park every
//! `--concurrency` worker while objects of other credentials wait. Callers that take a token are
//! served in arrival order; a caller that was turned away gets no place in that queue and asks
//! again when its time has come.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::errors::{AlexaError, DeferCause};
use super::observer::ApiObserver;

/// Entries kept before idle ones (full bucket, no gate) are dropped.
const PRUNE_ABOVE: usize = 1024;

/// A per-credential request rate limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may be sent at once after a quiet period.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 5 requests/s with bursts of 10: well below anything Amazon has been seen to throttle,
    /// and enough for a resync of hundreds of objects per credential within minutes.
    fn default() -> Self {
        RateLimit {
            per_second: 5.0,
            burst: 10,
        }
    }
}

/// A token bucket that hands out reservations: each request takes a token immediately and, when
/// the bucket is in debt, waits until its token would have been refilled. Callers are served in
/// arrival order and no window of length `t` ever sees more than `burst + rate * t` sends.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    /// The configured rate; `rate` drops below it after a 429 and climbs back on successes.
    configured: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        let burst = f64::from(limit.burst.max(1));
        TokenBucket {
            rate: limit.per_second,
            configured: limit.per_second,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token and returns how long the caller must wait before sending (whatever the
    /// wait: the tests' view of the bucket).
    #[cfg(test)]
    pub(crate) fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        self.debt_wait()
    }

    /// Takes one token if its slot comes within `max_wait` and returns the wait; otherwise
    /// takes nothing and returns `Err` with how long until a token would be free.
    pub(crate) fn try_reserve(
        &mut self,
        now: Instant,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        self.refill(now);
        self.tokens -= 1.0;
        let wait = self.debt_wait();
        if wait > max_wait {
            self.tokens += 1.0;
            return Err(wait);
        }
        Ok(wait)
    }

    /// Returns a reserved token that was not used (a gate closed while its holder waited), so
    /// the callers behind it are not slowed down by a request that never went out.
    pub(crate) fn give_back(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }

    /// How long until the bucket is out of debt.
    fn debt_wait(&self) -> Duration {
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::MAX)
        }
    }

    /// Amazon throttled: halve the rate (down to 2 % of the configured one) and drop any saved
    /// burst, so the requests waiting behind the Retry-After gate resume at the reduced pace
    /// instead of all at once.
    fn slow_down(&mut self, now: Instant) {
        self.refill(now);
        self.rate = (self.rate * 0.5).max(self.configured * 0.02);
        self.tokens = self.tokens.min(0.0);
    }

    /// A request succeeded: grow the rate back by 1 % of the configured one (additive increase).
    fn speed_up(&mut self, now: Instant) {
        if self.rate < self.configured {
            self.refill(now);
            self.rate = (self.rate + self.configured * 0.01).min(self.configured);
        }
    }

    /// Whether the bucket is full (nothing owed), so its state can be forgotten.
    fn is_idle(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        if now > self.last {
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
            self.last = now;
        }
    }
}

/// Throttling state of one credential.
#[derive(Debug)]
struct CredentialState {
    bucket: Option<TokenBucket>,
    gate_until: Option<Instant>,
}

/// Rate budget and Retry-After gates for all credentials.
pub(crate) struct Throttle {
    limit: Option<RateLimit>,
    states: Mutex<HashMap<String, CredentialState>>,
    observer: Option<Arc<dyn ApiObserver>>,
}

/// What a caller has to do before sending.
#[derive(Debug, PartialEq)]
enum Wait {
    /// Send now.
    None,
    /// A Retry-After gate is closed but opens within the bound; wait and ask again.
    Gate(Duration),
    /// A token is reserved; wait for its slot, then check the gate once more.
    Slot(Duration),
    /// The gate or the next slot is further away than the bound: do not send, come back then.
    Refuse(Duration, DeferCause),
}

impl Throttle {
    /// A throttle with the given per-credential limit (`None`: only Retry-After gates apply).
    pub(crate) fn new(
        limit: Option<RateLimit>,
        observer: Option<Arc<dyn ApiObserver>>,
    ) -> Throttle {
        let limit = limit.filter(|l| l.per_second.is_finite() && l.per_second > 0.0);
        Throttle {
            limit,
            states: Mutex::new(HashMap::new()),
            observer,
        }
    }

    /// Waits until credential `key` may send one request (gate open and a token taken), or
    /// returns [`AlexaError::Deferred`] without waiting when that would take longer than
    /// `max_wait`.
    pub(crate) async fn acquire(&self, key: &str, max_wait: Duration) -> Result<(), AlexaError> {
        loop {
            let wait = self.next_wait(key, Instant::now(), max_wait);
            let d = match wait {
                Wait::None => return Ok(()),
                Wait::Refuse(remaining, cause) => {
                    self.report(key, remaining, matches!(cause, DeferCause::RetryAfter));
                    return Err(AlexaError::Deferred {
                        retry_after: remaining,
                        cause,
                    });
                }
                Wait::Gate(d) | Wait::Slot(d) => d,
            };
            self.report(key, d, matches!(wait, Wait::Gate(_)));
            tokio::time::sleep(d).await;
            if let Wait::Slot(_) = wait {
                // The reserved slot has come. Send unless a gate closed meanwhile; then the
                // unused token goes back and the gate is waited for (or refused) like any other.
                if self.gate_remaining(key, Instant::now()).is_none() {
                    return Ok(());
                }
                self.give_back(key);
            }
        }
    }

    /// Waits for credential `key`'s gate only (no token: Login with Amazon refreshes are not
    /// part of the API rate budget), or returns [`AlexaError::Deferred`] when it stays closed
    /// longer than `max_wait`.
    pub(crate) async fn wait_gate(&self, key: &str, max_wait: Duration) -> Result<(), AlexaError> {
        while let Some(remaining) = self.gate_remaining(key, Instant::now()) {
            self.report(key, remaining, true);
            if remaining > max_wait {
                return Err(AlexaError::Deferred {
                    retry_after: remaining,
                    cause: DeferCause::RetryAfter,
                });
            }
            tokio::time::sleep(remaining).await;
        }
        Ok(())
    }

    /// Tells the observer and the debug log about a wait (slept or refused).
    fn report(&self, key: &str, wait: Duration, gate: bool) {
        if let Some(observer) = &self.observer {
            observer.throttled(wait);
            if gate {
                observer.retry_after_gate(wait);
            }
        }
        tracing::debug!(
            credential = key,
            wait_ms = wait.as_millis() as u64,
            "throttled"
        );
    }

    fn give_back(&self, key: &str) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = states.get_mut(key).and_then(|s| s.bucket.as_mut()) {
            bucket.give_back(Instant::now());
        }
    }

    /// Closes credential `key`'s gate until `until` (or keeps a later close time): after a 429,
    /// or a 5xx whose Retry-After says Amazon is overloaded, so both also slow the rate down.
    pub(crate) fn defer(&self, key: &str, until: Instant) {
        let now = Instant::now();
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let state = Self::state(&mut states, key, self.limit, now);
        // Only the first 429/503 of a burst (gate still open) slows the rate down: the others
        // were already in flight when it arrived.
        if state.gate_until.is_none_or(|g| g <= now) {
            if let Some(bucket) = state.bucket.as_mut() {
                bucket.slow_down(now);
            }
        }
        state.gate_until = Some(state.gate_until.map_or(until, |g| g.max(until)));
    }

    /// A request with credential `key` succeeded: lets a reduced rate recover.
    pub(crate) fn succeeded(&self, key: &str) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = states.get_mut(key).and_then(|s| s.bucket.as_mut()) {
            bucket.speed_up(Instant::now());
        }
    }

    /// How long credential `key`'s gate stays closed, if it is.
    pub(crate) fn gate_remaining(&self, key: &str, now: Instant) -> Option<Duration> {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states
            .get(key)
            .and_then(|s| s.gate_until)
            .filter(|g| *g > now)
            .map(|g| g.duration_since(now))
    }

    fn next_wait(&self, key: &str, now: Instant, max_wait: Duration) -> Wait {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if states.len() > PRUNE_ABOVE {
            states.retain(|_, s| {
                s.gate_until.is_some_and(|g| g > now)
                    || s.bucket.as_mut().is_some_and(|b| !b.is_idle(now))
            });
        }
        let state = Self::state(&mut states, key, self.limit, now);
        if let Some(gate) = state.gate_until {
            if gate > now {
                let remaining = gate.duration_since(now);
                if remaining > max_wait {
                    return Wait::Refuse(remaining, DeferCause::RetryAfter);
                }
                return Wait::Gate(remaining);
            }
            state.gate_until = None;
        }
        match state.bucket.as_mut().map(|b| b.try_reserve(now, max_wait)) {
            Some(Ok(d)) if !d.is_zero() => Wait::Slot(d),
            Some(Err(d)) => Wait::Refuse(d, DeferCause::RateBudget),
            _ => Wait::None,
        }
    }

    fn state<'a>(
        states: &'a mut HashMap<String, CredentialState>,
        key: &str,
        limit: Option<RateLimit>,
        now: Instant,
    ) -> &'a mut CredentialState {
        states
            .entry(key.to_owned())
            .or_insert_with(|| CredentialState {
                bucket: limit.map(|l| TokenBucket::new(l, now)),
                gate_until: None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bound no test wait reaches: the caller always sleeps in the call.
    const LONG: Duration = Duration::from_secs(3600);

    fn limit(per_second: f64, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }

    #[test]
    fn bucket_allows_burst_then_spaces_requests() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(limit(10.0, 3), t0);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        let w4 = b.reserve(t0);
        let w5 = b.reserve(t0);
        assert!((w4.as_secs_f64() - 0.1).abs() < 1e-9, "{w4:?}");
        assert!((w5.as_secs_f64() - 0.2).abs() < 1e-9, "{w5:?}");
    }

    #[test]
    fn a_429_halves_the_rate_and_successes_bring_it_back_gradually() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(limit(10.0, 3), t0);
        b.slow_down(t0);
        assert!((b.rate - 5.0).abs() < 1e-9, "halved: {}", b.rate);
        // The saved burst is gone: the next caller waits at the reduced pace.
        assert!(b.reserve(t0) > Duration::ZERO);
        for _ in 0..10 {
            b.slow_down(t0);
        }
        assert!(
            (b.rate - 0.2).abs() < 1e-9,
            "floor at 2 % of the configured rate: {}",
            b.rate
        );
        for _ in 0..49 {
            b.speed_up(t0);
        }
        assert!(
            b.rate < 10.0,
            "recovery is additive, not instant: {}",
            b.rate
        );
        for _ in 0..100 {
            b.speed_up(t0);
        }
        assert!(
            (b.rate - 10.0).abs() < 1e-9,
            "never above the configured rate: {}",
            b.rate
        );
    }

    #[test]
    fn bucket_refills_over_time_up_to_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(limit(2.0, 2), t0);
        b.reserve(t0);
        b.reserve(t0);
        // After 0.5 s one token is back.
        assert_eq!(b.reserve(t0 + Duration::from_millis(500)), Duration::ZERO);
        // After a long pause the bucket holds only `burst` tokens.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(b.reserve(later), Duration::ZERO);
        assert_eq!(b.reserve(later), Duration::ZERO);
        assert!(b.reserve(later) > Duration::ZERO);
    }

    /// Simulates many callers with an injected clock and checks the rate bound on the resulting
    /// send times: no window of 1 s holds more than burst + rate sends.
    #[test]
    fn reservations_never_exceed_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(limit(10.0, 5), t0);
        let mut sends = Vec::new();
        // 100 callers arriving in clumps over 3 s.
        for i in 0..100u64 {
            let arrival = t0 + Duration::from_millis((i / 10) * 300);
            sends.push(arrival + b.reserve(arrival));
        }
        sends.sort();
        for (i, start) in sends.iter().enumerate() {
            let in_window = sends[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 15, "{in_window} sends in 1 s from #{i}");
        }
    }

    #[test]
    fn zero_burst_is_treated_as_one() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(limit(1.0, 0), t0);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert!(b.reserve(t0) > Duration::ZERO);
    }

    #[test]
    fn invalid_limits_disable_the_bucket() {
        for per_second in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let t = Throttle::new(Some(limit(per_second, 1)), None);
            assert!(t.limit.is_none());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gate_delays_every_caller_of_that_credential_only() {
        let t = Arc::new(Throttle::new(None, None));
        let start = Instant::now();
        t.defer("a", start + Duration::from_secs(2));
        // A shorter defer never shortens the gate.
        t.defer("a", start + Duration::from_secs(1));
        t.acquire("b", LONG).await.unwrap();
        assert_eq!(Instant::now(), start);
        let mut joins = Vec::new();
        for _ in 0..3 {
            let t = t.clone();
            joins.push(tokio::spawn(async move {
                t.acquire("a", LONG).await.unwrap();
                Instant::now()
            }));
        }
        for j in joins {
            let sent = j.await.unwrap();
            assert!(sent.duration_since(start) >= Duration::from_secs(2));
        }
        assert!(t.gate_remaining("a", Instant::now()).is_none());
    }

    /// Counts what the throttle reports, to tell its own rate waits from Amazon's gates.
    #[derive(Default)]
    struct Seen {
        waits: std::sync::atomic::AtomicUsize,
        gates: std::sync::atomic::AtomicUsize,
    }

    impl ApiObserver for Seen {
        fn throttled(&self, _wait: Duration) {
            self.waits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        fn retry_after_gate(&self, _wait: Duration) {
            self.gates.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_amazons_retry_after_is_reported_as_a_gate() {
        let seen = Arc::new(Seen::default());
        let t = Throttle::new(Some(limit(1.0, 1)), Some(seen.clone()));
        t.acquire("a", LONG).await.unwrap();
        t.acquire("a", LONG).await.unwrap(); // waits for the rate budget: not a gate
        let ordering = std::sync::atomic::Ordering::SeqCst;
        assert_eq!(seen.waits.load(ordering), 1);
        assert_eq!(seen.gates.load(ordering), 0);
        t.defer("a", Instant::now() + Duration::from_secs(3));
        t.acquire("a", LONG).await.unwrap();
        assert_eq!(seen.gates.load(ordering), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_spaces_callers_by_the_rate() {
        let t = Throttle::new(Some(limit(4.0, 1)), None);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..5 {
            t.acquire("k", LONG).await.unwrap();
            times.push(Instant::now().duration_since(start));
        }
        assert_eq!(times[0], Duration::ZERO);
        assert!(times[4] >= Duration::from_secs(1), "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_closing_during_a_slot_wait_is_honoured() {
        let t = Arc::new(Throttle::new(Some(limit(1.0, 1)), None));
        let start = Instant::now();
        t.acquire("k", LONG).await.unwrap(); // uses the burst token
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move {
                t.acquire("k", LONG).await.unwrap(); // reserves the slot at +1 s
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        t.defer("k", start + Duration::from_secs(5));
        let sent = waiter.await.unwrap();
        assert!(sent.duration_since(start) >= Duration::from_secs(5));
    }

    /// The decision, per case: send, sleep in the call (short waits), or refuse (long waits).
    #[tokio::test(start_paused = true)]
    async fn waits_beyond_the_bound_are_refused_shorter_ones_slept() {
        let secs = Duration::from_secs;
        // (what, gate closed for, tokens taken before, bound, decision)
        let rows = [
            ("open, tokens left", None, 0, secs(1), Wait::None),
            (
                "open, slot within the bound",
                None,
                2,
                secs(1),
                Wait::Slot(secs(1)),
            ),
            (
                "open, slot beyond the bound",
                None,
                3,
                secs(1),
                Wait::Refuse(secs(2), DeferCause::RateBudget),
            ),
            (
                "gate within the bound",
                Some(1),
                0,
                secs(2),
                Wait::Gate(secs(1)),
            ),
            (
                "gate beyond the bound",
                Some(60),
                0,
                secs(10),
                Wait::Refuse(secs(60), DeferCause::RetryAfter),
            ),
        ];
        for (what, gate, taken, bound, expected) in rows {
            let t = Throttle::new(Some(limit(1.0, 2)), None);
            let now = Instant::now();
            for _ in 0..taken {
                t.next_wait("k", now, LONG);
            }
            if let Some(gate) = gate {
                t.defer("k", now + secs(gate));
            }
            assert_eq!(t.next_wait("k", now, bound), expected, "{what}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_slot_takes_no_token() {
        let t = Throttle::new(Some(limit(1.0, 1)), None);
        let start = Instant::now();
        t.acquire("k", Duration::ZERO).await.unwrap(); // the burst token
        let refused = t
            .acquire("k", Duration::from_millis(500))
            .await
            .unwrap_err();
        assert_eq!(
            refused,
            AlexaError::Deferred {
                retry_after: Duration::from_secs(1),
                cause: DeferCause::RateBudget,
            }
        );
        assert_eq!(Instant::now(), start, "refused at once, without sleeping");
        tokio::time::advance(Duration::from_secs(1)).await;
        // The refused caller took nothing: one second refilled exactly one token.
        t.acquire("k", Duration::ZERO).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_beyond_the_bound_is_refused_for_that_credential_only() {
        let t = Throttle::new(None, None);
        let start = Instant::now();
        t.defer("a", start + Duration::from_secs(60));
        let refused = t.acquire("a", Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(refused.retry_after(), Some(Duration::from_secs(60)));
        assert!(t.wait_gate("a", Duration::from_secs(10)).await.is_err());
        t.acquire("b", Duration::ZERO).await.unwrap();
        assert_eq!(Instant::now(), start, "nobody slept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_unused_because_a_gate_closed_is_given_back() {
        let t = Arc::new(Throttle::new(Some(limit(1.0, 1)), None));
        let start = Instant::now();
        t.acquire("k", LONG).await.unwrap(); // the burst token
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move {
                t.acquire("k", Duration::from_secs(5)).await.unwrap(); // slot at +1 s
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        t.defer("k", start + Duration::from_secs(3)); // also halves the rate to 0.5/s
        let sent = waiter.await.unwrap();
        // The token reserved for +1 s went back when the gate held it, so one is ready when
        // the gate opens; had it been forfeited, the caller would wait ~0.9 s more.
        assert_eq!(sent.duration_since(start), Duration::from_secs(3));
    }
}
