//! The access-token cache: single-flight refreshes, reuse while fresh, refresh ahead of expiry
//! (on paused tokio time, so the boundaries are exact), rotation and invalidation.

use std::time::Duration;

use alexa_skill_operator::alexa::{AlexaClient, AlexaError, LwaCredentials};
use alexa_skill_operator::crd::common::Stage;
use serde_json::json;
use std::sync::Arc;
use tokio::time::Instant;

use crate::{
    Operation, RefreshTokenState, SKILL, ScriptedResponse, SimConfig, SimState, client,
    client_config, owner, records, sandbox, start,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_calls_cause_one_token_request() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let mut calls = Vec::new();
    for _ in 0..10 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .get_account_linking(&owner(), sandbox::SKILL_ID_2, Stage::Development)
                .await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap().unwrap();
    }
    assert_eq!(sim.count(Operation::Token), 1);
    assert_eq!(sim.count(Operation::GetAccountLinking), 10);

    // A token that expires is refreshed once for the next calls, again single-flight.
    sim.expire_tokens();
    let mut calls = Vec::new();
    for _ in 0..10 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .stage_enabled(&owner(), SKILL, Stage::Development)
                .await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.count(Operation::Token), 2);
}

#[tokio::test]
async fn unauthorized_refreshes_once_and_retries_once() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(sim.count(Operation::Token), 1);

    // The server forgets the token: one 401, one refresh, one retry, success.
    sim.expire_tokens();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(sim.count(Operation::Token), 2);
    assert_eq!(sim.count(Operation::GetStageEnablement), 3);
    let statuses: Vec<u16> = records(&sim, Operation::GetStageEnablement)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![404, 401, 404]);

    // A 401 that does not go away: exactly one refresh and one retry, then Unauthorized.
    sim.faults().script(
        Operation::GetStageEnablement,
        vec![ScriptedResponse::status(401); 5],
    );
    let err = client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::Unauthorized { .. }), "{err:?}");
    assert_eq!(sim.count(Operation::Token), 3);
    assert_eq!(sim.count(Operation::GetStageEnablement), 5);
    sim.faults().clear();
}

/// On paused tokio time, so the boundaries are exact: a token is reused up to the last moment
/// of its fresh period and replaced at its end. Fresh for the lifetime minus the refresh-ahead
/// margin, or for half the lifetime when the margin is longer than that (tokens shorter than
/// twice the margin would otherwise be refreshed on every call). The simulator's tokens live on
/// the wall clock, so they are an hour long here: they never expire while the test runs however
/// slow the machine is, and paused time crosses the client's hour at once.
#[tokio::test(start_paused = true)]
async fn tokens_are_reused_while_fresh_and_refreshed_ahead_of_expiry() {
    let hour = Duration::from_secs(3600);
    // (what, refresh-ahead margin (None: the default), fresh for)
    let rows = [
        (
            "hour-long tokens with the default 5 min margin: after 55 min",
            None,
            Duration::from_secs(3300),
        ),
        (
            "hour-long tokens with a 40 min margin: at half-life",
            Some(Duration::from_secs(2400)),
            Duration::from_secs(1800),
        ),
    ];
    for (what, refresh_ahead, fresh_for) in rows {
        let lifetime = hour;
        let sim = start(SimConfig::default()).await;
        sim.set_token_lifetime(lifetime);
        let mut config = client_config(&sim);
        match refresh_ahead {
            Some(ahead) => config.refresh_ahead = ahead,
            None => assert_eq!(config.refresh_ahead, Duration::from_secs(300), "{what}"),
        }
        let client = AlexaClient::new(config).unwrap();
        let creds = owner();
        let issued = Instant::now();
        for _ in 0..3 {
            client
                .stage_enabled(&creds, SKILL, Stage::Live)
                .await
                .unwrap();
        }
        assert_eq!(
            sim.count(Operation::Token),
            1,
            "{what}: the fresh token is reused"
        );
        // Paused time moves only when told to: the token was issued at `issued` exactly.
        assert_eq!(issued.elapsed(), Duration::ZERO, "{what}");

        tokio::time::advance(fresh_for - Duration::from_millis(1) - issued.elapsed()).await;
        client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap();
        assert_eq!(
            sim.count(Operation::Token),
            1,
            "{what}: reused until the end of the fresh period ({:?} after issue)",
            issued.elapsed()
        );

        tokio::time::advance(Duration::from_millis(1)).await;
        client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap();
        assert_eq!(
            sim.count(Operation::Token),
            2,
            "{what}: renewed at the end of the fresh period ({:?} after issue)",
            issued.elapsed()
        );
        assert!(
            issued.elapsed() < lifetime,
            "{what}: renewed {:?} after issue, not before expiry",
            issued.elapsed()
        );
        // The new token is fresh again: the next call reuses it.
        client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap();
        assert_eq!(sim.count(Operation::Token), 2, "{what}");
        // Ahead of expiry means no call ever met an expired token.
        assert!(sim.requests().iter().all(|r| r.status != 401), "{what}");
    }
}

#[tokio::test]
async fn rotated_refresh_tokens_are_kept() {
    // The simulator knows only the rotated refresh token; the configured one works only for
    // the first (scripted) refresh, which hands out the rotated one.
    let mut state = SimState::sandbox();
    state.vendors[0].refresh_tokens.push(RefreshTokenState {
        token: "Atzr|rotated-by-lwa".into(),
        client_id: sandbox::CLIENT_ID.into(),
    });
    let sim = start(SimConfig {
        state,
        ..SimConfig::default()
    })
    .await;
    sim.faults().script(
        Operation::Token,
        vec![ScriptedResponse::json(
            200,
            json!({"access_token": "Atza|scripted-invalid", "refresh_token": "Atzr|rotated-by-lwa",
                   "token_type": "bearer", "expires_in": "3600"}),
        )],
    );
    let client = client(&sim);
    let creds = LwaCredentials::new(
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        "Atzr|original-unknown",
    );
    // The scripted token is refused (401); the refresh must use the rotated refresh token.
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    assert_eq!(sim.count(Operation::Token), 2);
    let token_statuses: Vec<u16> = records(&sim, Operation::Token)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(token_statuses, vec![200, 200]);
}

#[tokio::test]
async fn invalidate_token_forces_a_fresh_token() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(sim.count(Operation::Token), 1);
    client.invalidate_token(&creds);
    client
        .stage_enabled(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert_eq!(sim.count(Operation::Token), 2);

    // A credentials rejection is remembered for a while: no LWA storm from many objects.
    let bad = LwaCredentials::new(sandbox::CLIENT_ID, sandbox::CLIENT_SECRET, "Atzr|revoked");
    for _ in 0..5 {
        let err = client
            .stage_enabled(&bad, SKILL, Stage::Live)
            .await
            .unwrap_err();
        assert_eq!(err.category(), "credentials");
    }
    assert_eq!(sim.count(Operation::Token), 3);
    client.invalidate_token(&bad);
    let _ = client.stage_enabled(&bad, SKILL, Stage::Live).await;
    assert_eq!(sim.count(Operation::Token), 4);
}

/// LWA answers 503 (no Retry-After): everyone who asked for a token while the refresh was in
/// flight gets its outcome. Ten callers cost one request per attempt (3 with two retries), not
/// ten; the next round, after the short gate the 503s closed, costs one more.
#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_failed_refresh() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim); // two in-call retries, back-off at most 100 ms
    sim.faults().script(
        Operation::Token,
        vec![ScriptedResponse::json(503, json!({"error": "server_error"})); 3],
    );
    let gate = Arc::new(tokio::sync::Barrier::new(10));
    let mut calls = Vec::new();
    for _ in 0..10 {
        let (client, gate) = (client.clone(), gate.clone());
        calls.push(tokio::spawn(async move {
            gate.wait().await;
            client.stage_enabled(&owner(), SKILL, Stage::Live).await
        }));
    }
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.status(), Some(503), "{err:?}");
    }
    assert_eq!(
        sim.count(Operation::Token),
        3,
        "one request per attempt, shared by all ten callers"
    );
    assert_eq!(sim.count(Operation::GetStageEnablement), 0);

    let mut calls = Vec::new();
    for _ in 0..10 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client.stage_enabled(&owner(), SKILL, Stage::Live).await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.count(Operation::Token), 4);
}
