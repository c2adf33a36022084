//! Login with Amazon access tokens, cached per credential (client ID, refresh token and client
//! secret) and refreshed ahead of expiry. Refreshes are single-flight: however many reconciles
//! need a token at once, one refresh per credential is in flight, and everyone who queued
//! behind it gets its outcome (the token, or the failure) instead of sending a refresh of their
//! own. LWA's 429 and 5xx answers close the credential's Retry-After gate shared with the API
//! calls ([`super::throttle`]), and a refresh waits for that gate like any other call (or
//! returns [`AlexaError::Deferred`] when it stays closed longer than `max_in_call_wait`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::config::ClientConfig;
use super::credentials::LwaCredentials;
use super::errors::{AlexaError, Setting, foreign_lwa_answer, redact_body};
use super::models::TokenResponse;
use super::observer::{ApiObserver, Operation};
use super::throttle::Throttle;
use super::transport::{BodyError, host_of, read_body, retry_after, transport_error};

/// Lifetime assumed when LWA's answer has no usable `expires_in` (LWA tokens last an hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Slots kept before stale ones are dropped.
const PRUNE_ABOVE: usize = 1024;

/// An access token handed to a caller, with the generation needed to invalidate exactly it.
#[derive(Clone)]
pub(crate) struct AccessToken {
    pub(crate) value: SecretString,
    pub(crate) generation: u64,
}

/// Cached token of one credential.
struct Cached {
    value: SecretString,
    generation: u64,
    refresh_at: Instant,
    expires_at: Instant,
}

/// State of one credential, behind a short-held std mutex.
#[derive(Default)]
struct SlotState {
    token: Option<Cached>,
    /// A refresh token LWA returned in place of the configured one.
    rotated_refresh_token: Option<SecretString>,
    /// A credentials rejection and until when it is answered from memory.
    failure: Option<(AlexaError, Instant)>,
    /// Refreshes finished so far, and the outcome of the last one: callers that queued while
    /// it was in flight take it instead of refreshing again.
    finished: u64,
    last_outcome: Option<Result<AccessToken, AlexaError>>,
}

/// One credential's entry: state plus the single-flight lock held across a refresh.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    flight: tokio::sync::Mutex<()>,
}

/// Access tokens for all credentials in use.
pub(crate) struct TokenCache {
    http: reqwest::Client,
    url: String,
    refresh_ahead: Duration,
    backoff: Backoff,
    max_retries: u32,
    max_in_call_wait: Duration,
    credentials_error_ttl: Duration,
    observer: Option<Arc<dyn ApiObserver>>,
    throttle: Arc<Throttle>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    generations: AtomicU64,
}

impl TokenCache {
    /// A cache that refreshes at `config.lwa_url` with `http`, behind `throttle`'s gates.
    pub(crate) fn new(
        http: reqwest::Client,
        config: &ClientConfig,
        throttle: Arc<Throttle>,
    ) -> TokenCache {
        TokenCache {
            http,
            url: config.lwa_url.clone(),
            refresh_ahead: config.refresh_ahead,
            backoff: config.backoff,
            max_retries: config.max_retries,
            max_in_call_wait: config.max_in_call_wait,
            credentials_error_ttl: config.credentials_error_ttl,
            observer: config.observer.clone(),
            throttle,
            slots: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(1),
        }
    }

    /// A valid access token for `creds`: the cached one while it is fresh, else a new one from
    /// LWA (one request per credential however many callers wait).
    pub(crate) async fn token(&self, creds: &LwaCredentials) -> Result<AccessToken, AlexaError> {
        let fingerprint = creds.fingerprint();
        let slot = self.slot(&creds.cache_key());
        if let Some(answer) = Self::cached(&slot, Instant::now()) {
            return answer;
        }
        let queued_after = lock(&slot.state).finished;
        let _flight = slot.flight.lock().await;
        // Whoever held the flight lock before us may have refreshed already.
        if let Some(answer) = Self::cached(&slot, Instant::now()) {
            return answer;
        }
        if let Some(outcome) = Self::shared_outcome(&slot, queued_after) {
            return outcome;
        }
        let rotated = lock(&slot.state).rotated_refresh_token.clone();
        let result = self.refresh(creds, &fingerprint, rotated.as_ref()).await;
        let mut state = lock(&slot.state);
        let outcome = self.settle(&mut state, creds, &fingerprint, rotated.as_ref(), result);
        state.finished += 1;
        state.last_outcome = Some(outcome.clone());
        outcome
    }

    /// The outcome of a refresh that finished while this caller queued for the flight lock.
    fn shared_outcome(slot: &Slot, queued_after: u64) -> Option<Result<AccessToken, AlexaError>> {
        let state = lock(&slot.state);
        if state.finished > queued_after {
            state.last_outcome.clone()
        } else {
            None
        }
    }

    /// Records a refresh's result in the slot and says what the caller gets: the new token, the
    /// still valid cached one after a transient failure, or the error.
    fn settle(
        &self,
        state: &mut SlotState,
        creds: &LwaCredentials,
        fingerprint: &str,
        rotated: Option<&SecretString>,
        result: Result<TokenResponse, AlexaError>,
    ) -> Result<AccessToken, AlexaError> {
        let now = Instant::now();
        match result {
            Ok(answer) => {
                let lifetime = token_lifetime(answer.expires_in);
                let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                if let Some(new_refresh) = answer.refresh_token {
                    let current = rotated.unwrap_or(&creds.refresh_token);
                    if new_refresh.expose_secret() != current.expose_secret() {
                        tracing::info!(
                            credential = %fingerprint,
                            "Login with Amazon rotated the refresh token; using the new one"
                        );
                        state.rotated_refresh_token = Some(new_refresh);
                    }
                }
                state.failure = None;
                state.token = Some(Cached {
                    value: answer.access_token.clone(),
                    generation,
                    refresh_at: now + fresh_for(lifetime, self.refresh_ahead),
                    expires_at: now + lifetime,
                });
                Ok(AccessToken {
                    value: answer.access_token,
                    generation,
                })
            }
            Err(err) => self.settle_failure(state, fingerprint, err, now),
        }
    }

    fn settle_failure(
        &self,
        state: &mut SlotState,
        fingerprint: &str,
        err: AlexaError,
        now: Instant,
    ) -> Result<AccessToken, AlexaError> {
        if let Some(cached) = state.token.as_ref().filter(|t| now < t.expires_at) {
            if err.is_transient() {
                tracing::warn!(
                    credential = %fingerprint,
                    error = %err,
                    "token refresh failed; using the cached token until it expires"
                );
                return Ok(AccessToken {
                    value: cached.value.clone(),
                    generation: cached.generation,
                });
            }
        }
        if let AlexaError::Credentials { .. } = err {
            state.token = None;
            // The rotated token may be what LWA refuses: fall back to the configured one
            // next time.
            state.rotated_refresh_token = None;
            state.failure = Some((err.clone(), now + self.credentials_error_ttl));
        }
        Err(err)
    }

    /// Drops the cached token of `creds` if it is still the one with `generation` (a 401 was
    /// answered to it). A newer token fetched meanwhile by another caller is kept.
    pub(crate) fn invalidate_generation(&self, creds: &LwaCredentials, generation: u64) {
        let slot = self.slot(&creds.cache_key());
        let mut state = lock(&slot.state);
        if state
            .token
            .as_ref()
            .is_some_and(|t| t.generation == generation)
        {
            state.token = None;
        }
    }

    /// Forgets the cached token and any remembered credentials rejection of `creds`, and the
    /// last refresh's outcome.
    pub(crate) fn invalidate(&self, creds: &LwaCredentials) {
        let slot = self.slot(&creds.cache_key());
        let mut state = lock(&slot.state);
        state.token = None;
        state.failure = None;
        // Nobody is handed the forgotten token (or failure) as a shared outcome either.
        state.last_outcome = None;
    }

    fn cached(slot: &Slot, now: Instant) -> Option<Result<AccessToken, AlexaError>> {
        let state = lock(&slot.state);
        if let Some(token) = state.token.as_ref().filter(|t| now < t.refresh_at) {
            return Some(Ok(AccessToken {
                value: token.value.clone(),
                generation: token.generation,
            }));
        }
        match &state.failure {
            Some((err, until)) if now < *until => Some(Err(err.clone())),
            _ => None,
        }
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        if slots.len() > PRUNE_ABOVE {
            let now = Instant::now();
            slots.retain(|_, slot| {
                // Keep slots in use (someone holds a clone) or with anything worth keeping.
                Arc::strong_count(slot) > 1 || {
                    let state = lock(&slot.state);
                    state.rotated_refresh_token.is_some()
                        || state.token.as_ref().is_some_and(|t| now < t.expires_at)
                        || state.failure.as_ref().is_some_and(|(_, u)| now < *u)
                }
            });
        }
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// One refresh with bounded retries of throttling, server and network errors.
    async fn refresh(
        &self,
        creds: &LwaCredentials,
        fingerprint: &str,
        rotated: Option<&SecretString>,
    ) -> Result<TokenResponse, AlexaError> {
        let refresh_token = rotated.unwrap_or(&creds.refresh_token);
        let secrets = [
            refresh_token.expose_secret(),
            creds.refresh_token.expose_secret(),
            creds.client_secret.expose_secret(),
        ];
        let mut failures = 0;
        loop {
            // A closed gate (Amazon or LWA asked every call with these credentials to wait)
            // holds refreshes too; a long one returns `Deferred` without sending.
            self.throttle
                .wait_gate(fingerprint, self.max_in_call_wait)
                .await?;
            let result = self.refresh_once(creds, refresh_token).await;
            let result = result.map_err(|e| e.redact(&secrets));
            if let Some(observer) = &self.observer {
                observer.token_refresh(result.is_ok());
            }
            let err = match result {
                Ok(answer) => {
                    tracing::debug!(credential = %fingerprint, "access token refreshed");
                    return Ok(answer);
                }
                Err(err) => err,
            };
            let wait = err
                .retry_after()
                .unwrap_or_else(|| self.backoff.delay(failures + 1));
            let gated = closes_gate(&err);
            if gated {
                self.throttle.defer(fingerprint, Instant::now() + wait);
            }
            if !err.is_transient() || failures >= self.max_retries || wait > self.max_in_call_wait {
                tracing::warn!(
                    credential = %fingerprint,
                    error = %err,
                    category = err.category(),
                    "access token refresh failed"
                );
                return Err(err);
            }
            failures += 1;
            tracing::debug!(
                credential = %fingerprint,
                error = %err,
                wait_ms = wait.as_millis() as u64,
                "access token refresh failed; retrying"
            );
            if !gated {
                // A gated wait is slept at the top of the loop, by `wait_gate`.
                tokio::time::sleep(wait).await;
            }
        }
    }

    async fn refresh_once(
        &self,
        creds: &LwaCredentials,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, AlexaError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.expose_secret()),
        ];
        let host = host_of(&self.url);
        let started = Instant::now();
        let sent = self
            .http
            .post(&self.url)
            .header(ACCEPT, "application/json")
            .form(&form)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                self.observe(None, started);
                return Err(transport_error(&err, &host));
            }
        };
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let body = read_body(response).await;
        self.observe(Some(status), started);
        let body = match body {
            Ok(body) => body,
            Err(BodyError::Read(err)) => return Err(transport_error(&err, &host)),
            Err(BodyError::TooLarge) => {
                return Err(AlexaError::Decode {
                    operation: Operation::LwaToken,
                    message: "answer is too large".into(),
                });
            }
        };
        let secrets = [
            refresh_token.expose_secret(),
            creds.client_secret.expose_secret(),
        ];
        let body = if (200..300).contains(&status) {
            body
        } else {
            redact_body(&body, &secrets)
        };
        if let Some(answered) = foreign_lwa_answer(status, &body) {
            let error = AlexaError::wrong_endpoint(
                "a Login with Amazon token endpoint",
                &self.url,
                Setting::LwaUrl,
                answered,
            );
            tracing::warn!(error = %error, "the configured token URL is not Login with Amazon");
            return Err(error);
        }
        if (200..300).contains(&status) {
            TokenResponse::from_json(&body).map_err(|message| AlexaError::Decode {
                operation: Operation::LwaToken,
                message,
            })
        } else {
            Err(AlexaError::from_lwa_response(status, wait, &body))
        }
    }

    fn observe(&self, status: Option<u16>, started: Instant) {
        if let Some(observer) = &self.observer {
            observer.request(Operation::LwaToken, status, started.elapsed());
        }
    }
}

/// Whether an LWA failure closes the credential's gate: 429 and 5xx (with or without
/// Retry-After), the same answers that pause API calls. Network errors do not: nothing says
/// LWA is overloaded.
fn closes_gate(err: &AlexaError) -> bool {
    matches!(
        err,
        AlexaError::Throttled { .. }
            | AlexaError::Overloaded { .. }
            | AlexaError::Unavailable { .. }
    )
}

/// Longest token lifetime believed: an absurd `expires_in` (years, u64::MAX) would overflow the
/// clock arithmetic and keep a revoked token forever. LWA tokens last an hour.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The lifetime a token answer's `expires_in` stands for, bounded to [`MAX_LIFETIME`].
fn token_lifetime(expires_in: Option<u64>) -> Duration {
    expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LIFETIME)
        .min(MAX_LIFETIME)
}

/// How long a token of `lifetime` is used before a refresh: until `refresh_ahead` before
/// expiry, but short-lived tokens (tests, odd servers) are refreshed at half-life instead, so
/// they are neither refreshed on every call nor used up to the last moment.
fn fresh_for(lifetime: Duration, refresh_ahead: Duration) -> Duration {
    lifetime - refresh_ahead.min(lifetime / 2)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_expires_in_is_capped_and_never_overflows_the_clock() {
        let hour = Duration::from_secs(3600);
        assert_eq!(token_lifetime(Some(3600)), hour);
        assert_eq!(token_lifetime(None), DEFAULT_LIFETIME);
        assert_eq!(token_lifetime(Some(u64::MAX)), MAX_LIFETIME);
        assert_eq!(token_lifetime(Some(10 * 365 * 24 * 3600)), MAX_LIFETIME);
        // The cache adds the lifetime to the clock: that must not panic.
        let _ = Instant::now() + fresh_for(token_lifetime(Some(u64::MAX)), hour);
    }

    #[test]
    fn refresh_point_is_ahead_of_expiry_or_at_half_life() {
        let secs = Duration::from_secs;
        // LWA's hour-long tokens with the default 5 min: refreshed at 55 min.
        assert_eq!(fresh_for(secs(3600), secs(300)), secs(3300));
        // Shorter than twice the refresh-ahead: half-life.
        assert_eq!(fresh_for(secs(60), secs(300)), secs(30));
        assert_eq!(fresh_for(secs(600), secs(300)), secs(300));
        assert_eq!(fresh_for(secs(1), secs(300)), Duration::from_millis(500));
        // A token that is already expired is never reused, and nothing underflows.
        assert_eq!(fresh_for(Duration::ZERO, secs(300)), Duration::ZERO);
        assert_eq!(fresh_for(secs(3600), Duration::ZERO), secs(3600));
    }
}
