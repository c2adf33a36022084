//! Injected faults: rate limits, error rates, latency, scripted answers, dropped connections,
//! forced stale ETags.

use std::time::{Duration, Instant};

use alexa_simulator::{FaultConfig, Operation, RateLimit, ScriptedResponse, SimConfig, sandbox};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    SKILL, auth_code_config, call, dev_token, enablement_url, etag, http, linking_url, put_linking,
    run_steps, start, start_with, status_of, token_with,
};

#[tokio::test]
async fn rate_limit_is_per_client_with_retry_after() {
    let sim = start().await;
    let one = dev_token(&sim).await;
    let two = token_with(
        &sim,
        sandbox::CLIENT_ID_2,
        sandbox::CLIENT_SECRET_2,
        sandbox::REFRESH_TOKEN_2,
    )
    .await;
    sim.faults().set_rate_limit(Some(RateLimit {
        per_second: 0.01,
        burst: 2,
        retry_after: Duration::from_millis(1500),
    }));
    let url = enablement_url(&sim.url(), SKILL, "development");
    run_steps(
        Some(&one),
        &[
            (Method::GET, &url, None, 404),
            (Method::GET, &url, None, 404),
        ],
    )
    .await;
    let limited = http().get(&url).bearer_auth(&one).send().await.unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    let (_, body) = crate::support::status_body(limited).await;
    assert!(body["message"].is_string() && body["code"].is_string());
    // The other client has its own bucket.
    let other = enablement_url(&sim.url(), sandbox::OTHER_VENDOR_SKILL_ID, "development");
    run_steps(Some(&two), &[(Method::GET, &other, None, 404)]).await;
    // LWA is spared by default.
    dev_token(&sim).await;
    // Zero Retry-After omits the header.
    sim.faults().set_rate_limit(Some(RateLimit {
        per_second: 0.01,
        burst: 1,
        retry_after: Duration::ZERO,
    }));
    http().get(&url).bearer_auth(&one).send().await.unwrap();
    let limited = http().get(&url).bearer_auth(&one).send().await.unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    assert!(limited.headers().get("retry-after").is_none());
    let rate_limited = sim.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(rate_limited, 2);
}

#[tokio::test]
async fn error_rate_latency_and_lwa_inclusion() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    let url = enablement_url(&sim.url(), SKILL, "development");
    sim.faults().set_error_rate(1.0);
    for _ in 0..4 {
        let (status, body) = call(http().get(&url).bearer_auth(&token)).await;
        assert!(status == 500 || status == 503, "{status}");
        assert!(body["code"].is_string());
    }
    // LWA is unaffected unless asked for.
    dev_token(&sim).await;
    sim.faults().set_include_lwa(true);
    let (status, _) = call(
        http()
            .post(sim.lwa_token_url())
            .form(&[("grant_type", "refresh_token")]),
    )
    .await;
    assert!((500..600).contains(&status), "{status}");
    sim.faults().clear();

    sim.faults().set_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(status_of(http().get(&url).bearer_auth(&token)).await, 404);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn scripted_responses_answer_the_next_requests_then_normal_behaviour_resumes() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    sim.faults().script(
        Operation::GetAccountLinking,
        vec![
            ScriptedResponse::json(
                429,
                json!({"message": "slow down", "code": "TOO_MANY_REQUESTS"}),
            )
            .with_header("Retry-After", "7"),
            ScriptedResponse::status(503),
        ],
    );
    let url = linking_url(&sim.url(), SKILL, "development");
    let first = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 429);
    assert_eq!(first.headers()["retry-after"], "7");
    assert_eq!(first.json::<Value>().await.unwrap()["message"], "slow down");
    let live = enablement_url(&sim.url(), SKILL, "live");
    run_steps(
        Some(&token),
        &[
            (Method::GET, &url, None, 503),
            (Method::GET, &url, None, 404),
            // Other operations were never affected.
            (Method::GET, &live, None, 404),
        ],
    )
    .await;
}

#[tokio::test]
async fn dropped_connections_get_no_response() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    let url = enablement_url(&sim.url(), SKILL, "development");
    sim.faults().drop_next(1);
    let err = http().get(&url).bearer_auth(&token).send().await;
    assert!(err.is_err(), "the connection must close without a response");
    assert_eq!(status_of(http().get(&url).bearer_auth(&token)).await, 404);
    let records = sim.requests();
    let dropped: Vec<_> = records.iter().filter(|r| r.status == 0).collect();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].operation, Operation::GetStageEnablement);
}

#[tokio::test]
async fn forced_stale_etag_refuses_every_conditional_put() {
    // Faults given at start (what the CLI flags do) are active from the first request.
    let sim = start_with(SimConfig {
        faults: FaultConfig {
            stale_etag: true,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let token = dev_token(&sim).await;
    let put = async |if_match: Option<&str>| {
        put_linking(
            &sim,
            &token,
            SKILL,
            "development",
            &auth_code_config(),
            if_match,
        )
        .await
    };
    let tag = etag(&put(None).await);
    assert_eq!(put(Some(&tag)).await.status().as_u16(), 412);
    // Without If-Match the write still goes through.
    assert_eq!(put(None).await.status().as_u16(), 204);
}
