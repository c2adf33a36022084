//! Throttling: Amazon's Retry-After gates and the client's own rate budget (on paused tokio time
//! where the simulator's clock is not involved).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use alexa_skill_operator::alexa::{
    AlexaClient, AlexaError, Backoff, DeferCause, RateLimit as ClientRateLimit,
};
use alexa_skill_operator::crd::common::Stage;
use serde_json::json;
use tokio::time::Instant;

use crate::{
    CountingObserver, Operation, SKILL, ScriptedResponse, SimConfig, SimRateLimit, answered,
    api_calls_after, client, client_config, other_owner, owner, records, sandbox, start,
};

/// On paused tokio time: the gate's 2 s pass at once, and the times below are exact.
#[tokio::test(start_paused = true)]
async fn retry_after_pauses_every_call_of_that_credential() {
    let sim = start(SimConfig::default()).await;
    let observer = Arc::new(CountingObserver::default());
    let mut config = client_config(&sim);
    config.observer = Some(observer.clone());
    let client = AlexaClient::new(config).unwrap();
    let creds = owner();
    // Warm the token so only API calls are timed.
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    client
        .stage_enabled(&other_owner(), sandbox::OTHER_VENDOR_SKILL_ID, Stage::Live)
        .await
        .unwrap();
    sim.faults().script(
        Operation::GetAccountLinking,
        vec![ScriptedResponse::status(429).with_header("Retry-After", "2")],
    );
    let first = {
        let client = client.clone();
        let creds = creds.clone();
        tokio::spawn(async move {
            client
                .get_account_linking(&creds, SKILL, Stage::Development)
                .await
                .map(|_| Instant::now())
        })
    };
    // Wait until the client has seen the 429 (its retry is waiting behind the gate), then
    // start more calls with the same credentials and one with other credentials. Yielding
    // does not move paused time.
    while observer.throttled.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let throttled_at = Instant::now();
    let throttle = answered(&sim, Operation::GetAccountLinking, 429);
    let mut others = Vec::new();
    for _ in 0..3 {
        let client = client.clone();
        let creds = creds.clone();
        others.push(tokio::spawn(async move {
            client
                .stage_enabled(&creds, SKILL, Stage::Development)
                .await
                .map(|_| Instant::now())
        }));
    }
    let unaffected = client
        .stage_enabled(
            &other_owner(),
            sandbox::OTHER_VENDOR_SKILL_ID,
            Stage::Development,
        )
        .await;
    assert!(unaffected.is_ok());
    let unaffected_at = Instant::now();
    let mut same_at = vec![first.await.unwrap().unwrap()];
    for other in others {
        same_at.push(other.await.unwrap().unwrap());
    }

    let same = api_calls_after(&sim, sandbox::CLIENT_ID, &throttle);
    assert_eq!(same.len(), 4, "the retried GET and three status calls");
    for at in &same_at {
        let waited = at.duration_since(throttled_at);
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100),
            "a call with the throttled credentials was answered {waited:?} after the 429, \
             not once Amazon's 2 s had passed"
        );
    }
    let other = api_calls_after(&sim, sandbox::CLIENT_ID_2, &throttle);
    assert_eq!(other.len(), 1);
    assert!(
        unaffected_at.duration_since(throttled_at) < Duration::from_secs(2),
        "other credentials waited {:?}",
        unaffected_at.duration_since(throttled_at)
    );
}

/// On paused tokio time, like the rest of this file's Retry-After tests.
#[tokio::test(start_paused = true)]
async fn server_error_retry_after_pauses_the_next_call_of_that_credential() {
    let sim = start(SimConfig::default()).await;
    let mut config = client_config(&sim);
    config.max_retries = 0;
    let client = AlexaClient::new(config).unwrap();
    let creds = owner();
    // Warm both tokens so only API calls are timed.
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    client
        .stage_enabled(&other_owner(), sandbox::OTHER_VENDOR_SKILL_ID, Stage::Live)
        .await
        .unwrap();
    sim.faults().script(
        Operation::GetAccountLinking,
        vec![
            ScriptedResponse::json(503, json!({"message": "Busy, come back later."}))
                .with_header("Retry-After", "2"),
        ],
    );
    let err = client
        .get_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)), "{err:?}");
    assert_eq!(err.category(), "unavailable");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("Busy, come back later."), "{err}");
    let busy = answered(&sim, Operation::GetAccountLinking, 503);
    let busy_at = Instant::now();

    // Other credentials are not held back; the same credentials wait out Amazon's 2 s.
    client
        .stage_enabled(
            &other_owner(),
            sandbox::OTHER_VENDOR_SKILL_ID,
            Stage::Development,
        )
        .await
        .unwrap();
    let other_at = busy_at.elapsed();
    client
        .get_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap();
    let same_at = busy_at.elapsed();
    let other = api_calls_after(&sim, sandbox::CLIENT_ID_2, &busy);
    assert_eq!(other.len(), 1);
    assert!(
        other_at < Duration::from_secs(2),
        "other credentials waited {other_at:?}"
    );
    let same = api_calls_after(&sim, sandbox::CLIENT_ID, &busy);
    assert_eq!(same.len(), 1, "{same:?}");
    assert!(
        same_at >= Duration::from_secs(2) && same_at < Duration::from_millis(2100),
        "next call of the credential answered {same_at:?} after the 503, not once Amazon's 2 s \
         had passed"
    );
}

#[tokio::test(start_paused = true)]
async fn server_error_retry_after_is_waited_out_within_the_call() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim); // max_retries 2, back-off at most 100 ms
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    sim.faults().script(
        Operation::GetStageEnablement,
        vec![ScriptedResponse::status(503).with_header("Retry-After", "2")],
    );
    let started = Instant::now();
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    let took = started.elapsed();
    let busy = answered(&sim, Operation::GetStageEnablement, 503);
    let retried = api_calls_after(&sim, sandbox::CLIENT_ID, &busy);
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert_eq!(retried[0].status, 404);
    // The 503 is answered at once (paused time), so the call's duration is the wait.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2100),
        "the call retried after {took:?}, not after Amazon's 2 s"
    );
}

/// On paused tokio time: the 40 calls take no wall-clock time, and their times are exact.
#[tokio::test(start_paused = true)]
async fn requests_never_exceed_the_configured_rate() {
    let sim = start(SimConfig::default()).await;
    let mut config = client_config(&sim);
    config.rate_limit = Some(ClientRateLimit {
        per_second: 10.0,
        burst: 5,
    });
    let client = AlexaClient::new(config).unwrap();
    let started = Instant::now();
    let mut calls = Vec::new();
    for i in 0..40 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            let stage = if i % 2 == 0 {
                Stage::Development
            } else {
                Stage::Live
            };
            client
                .stage_enabled(&owner(), SKILL, stage)
                .await
                .map(|_| Instant::now())
        }));
    }
    // When each call was answered: on paused time, when its request was sent.
    let mut times = Vec::new();
    for call in calls {
        times.push(call.await.unwrap().unwrap());
    }
    times.sort();
    assert_eq!(records(&sim, Operation::GetStageEnablement).len(), 40);
    let mut worst = 0;
    for (i, start) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
            .count();
        worst = worst.max(in_window);
    }
    assert!(
        worst <= 15,
        "{worst} requests within one second (limit 10/s, burst 5)"
    );
    // 40 requests at 10/s after a burst of 5 take 3.5 s.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(3500) && took < Duration::from_millis(3600),
        "40 requests took {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn observer_sees_requests_refreshes_and_waits() {
    let sim = start(SimConfig::default()).await;
    let observer = Arc::new(CountingObserver::default());
    let mut config = client_config(&sim);
    config.observer = Some(observer.clone());
    config.rate_limit = Some(ClientRateLimit {
        per_second: 50.0,
        burst: 1,
    });
    let client = AlexaClient::new(config).unwrap();
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    let requests = observer.requests.lock().unwrap().clone();
    assert_eq!(requests.get(&("get_stage_enablement", Some(404))), Some(&2));
    assert_eq!(requests.get(&("lwa_token", Some(200))), Some(&1));
    assert_eq!(observer.refreshes.load(Ordering::SeqCst), 1);
    assert!(
        observer.throttled.load(Ordering::SeqCst) >= 1,
        "burst 1: the second call waited"
    );
}

/// On the wall clock: the simulator's rate limit runs on it, so paused time would make the
/// client's budget look slower than it is to the simulator.
#[tokio::test]
async fn own_rate_budget_stays_under_a_server_limit() {
    // The simulator throttles at 5/s; a client budget of 4/s never provokes a 429.
    let sim = start(SimConfig::default()).await;
    sim.faults().set_rate_limit(Some(SimRateLimit {
        per_second: 5.0,
        burst: 2,
        retry_after: Duration::ZERO,
    }));
    let mut config = client_config(&sim);
    config.max_retries = 6;
    config.backoff = Backoff {
        base: Duration::from_millis(200),
        factor: 2.0,
        max: Duration::from_secs(1),
    };
    config.rate_limit = Some(ClientRateLimit {
        per_second: 4.0,
        burst: 2,
    });
    let client = AlexaClient::new(config).unwrap();
    for _ in 0..6 {
        client
            .stage_enabled(&owner(), SKILL, Stage::Live)
            .await
            .unwrap();
    }
    let throttled = records(&sim, Operation::GetStageEnablement)
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(
        throttled, 0,
        "our own budget stays under the server's limit"
    );
}

/// `--concurrency 1` in miniature: one permit is the one worker, and reconciles of two
/// credentials take turns on it. Amazon answers one credential 429 with `Retry-After: 60`: its
/// calls return at once without sending (nothing reaches Amazon inside the 60 s), so the other
/// credential's calls go through on the same worker right away instead of after 60 s.
#[tokio::test(start_paused = true)]
async fn a_long_retry_after_never_holds_the_only_worker() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim); // max_in_call_wait: the default 10 s
    assert_eq!(client.config().max_in_call_wait, Duration::from_secs(10));
    let (noisy, quiet) = (owner(), other_owner());
    client
        .stage_enabled(&noisy, SKILL, Stage::Live)
        .await
        .unwrap();
    client
        .stage_enabled(&quiet, sandbox::OTHER_VENDOR_SKILL_ID, Stage::Live)
        .await
        .unwrap();
    sim.faults().script(
        Operation::GetAccountLinking,
        vec![ScriptedResponse::status(429).with_header("Retry-After", "60")],
    );
    let worker = Arc::new(tokio::sync::Semaphore::new(1));
    let started = Instant::now();
    let mut jobs = Vec::new();
    for i in 0..8 {
        let (client, worker) = (client.clone(), worker.clone());
        let (creds, skill) = if i % 2 == 0 {
            (noisy.clone(), SKILL)
        } else {
            (quiet.clone(), sandbox::OTHER_VENDOR_SKILL_ID)
        };
        jobs.push(tokio::spawn(async move {
            let _permit = worker.acquire_owned().await.unwrap();
            let result = client
                .get_account_linking(&creds, skill, Stage::Development)
                .await;
            (i % 2 == 0, result.map(|_| ()), started.elapsed())
        }));
    }
    for job in jobs {
        let (is_noisy, result, done_after) = job.await.unwrap();
        if is_noisy {
            let err = result.unwrap_err();
            assert!(
                err.retry_after().unwrap() > Duration::from_secs(59),
                "the throttled credential is told how long to wait: {err:?}"
            );
            assert!(err.is_retryable());
        } else {
            result.unwrap();
        }
        assert!(
            done_after < Duration::from_secs(1),
            "a reconcile held the only worker for {done_after:?} (noisy: {is_noisy})"
        );
    }
    let throttle = answered(&sim, Operation::GetAccountLinking, 429);
    assert_eq!(
        api_calls_after(&sim, sandbox::CLIENT_ID, &throttle).len(),
        0,
        "nothing sent with the throttled credentials inside its Retry-After"
    );
    assert_eq!(
        api_calls_after(&sim, sandbox::CLIENT_ID_2, &throttle).len(),
        4,
        "every call of the other credential went out"
    );
    // Once the 60 s are over, the throttled credential sends again.
    tokio::time::advance(Duration::from_secs(60)).await;
    client
        .get_account_linking(&noisy, SKILL, Stage::Development)
        .await
        .unwrap();
    assert_eq!(
        api_calls_after(&sim, sandbox::CLIENT_ID, &throttle).len(),
        1
    );
}

/// Login with Amazon's 429 pauses the credential's API calls too (same gate), even when a
/// still valid token would let them go out; and a refresh is held by the gate as well.
#[tokio::test(start_paused = true)]
async fn lwa_429_closes_the_gate_for_api_calls_and_refreshes() {
    let sim = start(SimConfig::default()).await; // hour-long tokens (on the wall clock)
    let client = client(&sim); // refresh 5 min ahead of expiry
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    // Into the refresh-ahead window: the token is due for renewal but still valid.
    tokio::time::advance(Duration::from_secs(3300)).await;
    sim.faults().script(
        Operation::Token,
        vec![
            ScriptedResponse::json(429, json!({"error": "slow_down"}))
                .with_header("Retry-After", "60"),
        ],
    );
    let api_before = sim.count(Operation::GetStageEnablement);
    let err = client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AlexaError::Deferred {
                cause: DeferCause::RetryAfter,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(
        sim.count(Operation::GetStageEnablement),
        api_before,
        "no API call inside LWA's Retry-After"
    );
    // Other credentials are not held.
    client
        .stage_enabled(&other_owner(), sandbox::OTHER_VENDOR_SKILL_ID, Stage::Live)
        .await
        .unwrap();
    // With no token to fall back on, the refresh itself waits for the gate: nothing sent.
    let tokens_before = sim.count(Operation::Token);
    client.invalidate_token(&creds);
    let err = client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "throttled", "{err:?}");
    assert_eq!(sim.count(Operation::Token), tokens_before);
    tokio::time::advance(Duration::from_secs(60)).await;
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(sim.count(Operation::Token), tokens_before + 1);
}
