//! Login with Amazon's token endpoint and how SMAPI checks the tokens it issues.

use std::time::Duration;

use alexa_simulator::{Operation, Region, SimConfig, sandbox};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    SKILL, call, customer_token, dev_token, enablement_url, http, linking_url, refresh_form, start,
    start_with, status_of, token_with,
};

#[tokio::test]
async fn lwa_refresh_grant_returns_bearer_token_from_form_json_and_basic() {
    let sim = start().await;
    let client = http();
    let form = client
        .post(sim.lwa_token_url())
        .form(&refresh_form(sandbox::REFRESH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 200);
    assert_eq!(form.headers()["cache-control"], "no-store");
    let body: Value = form.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["refresh_token"], sandbox::REFRESH_TOKEN);
    assert!(body["access_token"].as_str().unwrap().starts_with("Atza|"));

    let json_body = client
        .post(format!("{}/AUTH/O2/Token", sim.url()))
        .json(&json!({
            "grant_type": "refresh_token",
            "refresh_token": sandbox::REFRESH_TOKEN,
            "client_id": sandbox::CLIENT_ID,
            "client_secret": sandbox::CLIENT_SECRET,
        }));
    assert_eq!(status_of(json_body).await, 200);

    let basic = client
        .post(sim.lwa_token_url())
        .basic_auth(sandbox::CLIENT_ID, Some(sandbox::CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", sandbox::REFRESH_TOKEN),
        ]);
    assert_eq!(status_of(basic).await, 200);
    assert_eq!(sim.count(Operation::Token), 3);
}

#[tokio::test]
async fn lwa_errors_use_oauth_bodies() {
    let sim = start().await;
    let refresh = |token, client, secret| {
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client),
            ("client_secret", secret),
        ]
    };
    let cases = [
        (
            "wrong secret",
            refresh(sandbox::REFRESH_TOKEN, sandbox::CLIENT_ID, "wrong"),
            401,
            "invalid_client",
        ),
        (
            "unknown refresh token",
            refresh("Atzr|unknown", sandbox::CLIENT_ID, sandbox::CLIENT_SECRET),
            400,
            "invalid_grant",
        ),
        (
            "a refresh token only works with the client it was issued to",
            refresh(
                sandbox::REFRESH_TOKEN,
                sandbox::CLIENT_ID_2,
                sandbox::CLIENT_SECRET_2,
            ),
            400,
            "invalid_grant",
        ),
        (
            "password grant",
            vec![
                ("grant_type", "password"),
                ("client_id", sandbox::CLIENT_ID),
                ("client_secret", sandbox::CLIENT_SECRET),
            ],
            400,
            "unsupported_grant_type",
        ),
        (
            "no grant type",
            vec![("client_id", sandbox::CLIENT_ID)],
            400,
            "invalid_request",
        ),
    ];
    for (case, form, expected_status, expected_error) in cases {
        let (status, body) = call(http().post(sim.lwa_token_url()).form(&form)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (expected_status, Some(expected_error)),
            "{case}"
        );
        assert!(body["error_description"].is_string(), "{case}: {body}");
    }
}

#[tokio::test]
async fn lwa_authorization_code_is_single_use_and_yields_a_working_refresh_token() {
    let sim = start().await;
    let code = sandbox::customer_lwa_code(Region::Na, 1);
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://app.example.com/cb"),
        ("client_id", sandbox::CLIENT_ID),
        ("client_secret", sandbox::CLIENT_SECRET),
    ];
    let (status, body) = call(http().post(sim.lwa_token_url()).form(&params)).await;
    assert_eq!(status, 200);
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    assert!(refresh.starts_with("Atzr|"));

    let (status, body) = call(http().post(sim.lwa_token_url()).form(&params)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // The new refresh token acts for the customer: customer paths work, SMAPI does not.
    let token = token_with(&sim, sandbox::CLIENT_ID, sandbox::CLIENT_SECRET, &refresh).await;
    let discovery = http()
        .get(format!("{}/v1/alexaApiEndpoint", sim.url()))
        .bearer_auth(&token);
    assert_eq!(status_of(discovery).await, 200);
}

#[tokio::test]
async fn access_tokens_expire_after_the_configured_lifetime() {
    let sim = start_with(SimConfig {
        token_lifetime: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await;
    let (_, body) = call(
        http()
            .post(sim.lwa_token_url())
            .form(&refresh_form(sandbox::REFRESH_TOKEN)),
    )
    .await;
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap().to_string();
    let url = enablement_url(&sim.url(), SKILL, "development");
    assert_eq!(status_of(http().get(&url).bearer_auth(&token)).await, 404);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = call(http().get(&url).bearer_auth(&token)).await;
    assert_eq!(status, 401);
    assert!(body["message"].is_string() && body["code"].is_string());
}

/// How SMAPI answers each kind of credential: one row per Authorization header.
#[tokio::test]
async fn smapi_requires_a_title_case_bearer_developer_token() {
    let sim = start().await;
    let url = linking_url(&sim.url(), SKILL, "development");
    let other_vendor = linking_url(&sim.url(), sandbox::OTHER_VENDOR_SKILL_ID, "development");
    let token = dev_token(&sim).await;
    let customer = customer_token(&sim, Region::Na).await;
    let cases: [(&str, &str, Option<String>, u16); 6] = [
        ("no token", &url, None, 401),
        ("unknown token", &url, Some("Bearer Atza|nope".into()), 401),
        (
            "lower-case scheme",
            &url,
            Some(format!("bearer {token}")),
            400,
        ),
        // The ASK CLI sends the bare token without a scheme; nothing is configured yet.
        ("bare token", &url, Some(token.clone()), 404),
        (
            "customer token",
            &url,
            Some(format!("Bearer {customer}")),
            403,
        ),
        (
            "another vendor's skill",
            &other_vendor,
            Some(format!("Bearer {token}")),
            403,
        ),
    ];
    for (case, url, authorization, expected) in cases {
        let mut request = http().request(Method::GET, url);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let (status, body) = call(request).await;
        assert_eq!(status, expected, "{case}: {body}");
        assert!(
            body["message"].is_string() && body["code"].is_string(),
            "{case}: {body}"
        );
    }

    sim.expire_tokens();
    assert_eq!(status_of(http().get(&url).bearer_auth(&token)).await, 401);
}
