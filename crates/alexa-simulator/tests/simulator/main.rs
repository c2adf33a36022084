//! The Alexa API simulator as a client sees it: status codes, bodies, headers, counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use alexa_simulator::{
    DiscoveryMode, FaultConfig, GetShape, Operation, RateLimit, Region, ScriptedResponse,
    SimConfig, SimState, Simulator, SimulatorError, TlsConfig, sandbox,
};
use reqwest::{Client, Response};
use serde_json::{Value, json};

const SKILL: &str = sandbox::SKILL_ID;

fn http() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

async fn start() -> Simulator {
    Simulator::start(SimConfig::default()).await.unwrap()
}

async fn start_with(config: SimConfig) -> Simulator {
    Simulator::start(config).await.unwrap()
}

async fn token_with(sim: &Simulator, client_id: &str, secret: &str, refresh: &str) -> String {
    let resp = http()
        .post(sim.lwa_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn dev_token(sim: &Simulator) -> String {
    token_with(
        sim,
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        sandbox::REFRESH_TOKEN,
    )
    .await
}

async fn customer_token(sim: &Simulator, region: Region) -> String {
    token_with(
        sim,
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        sandbox::customer_refresh_token(region),
    )
    .await
}

fn linking_url(base: &str, skill: &str, stage: &str) -> String {
    format!("{base}/v1/skills/{skill}/stages/{stage}/accountLinkingClient")
}

fn enablement_url(base: &str, skill: &str, stage: &str) -> String {
    format!("{base}/v1/skills/{skill}/stages/{stage}/enablement")
}

fn customer_url(base: &str, skill: &str) -> String {
    format!("{base}/v1/users/~current/skills/{skill}/enablement")
}

fn auth_code_config() -> Value {
    json!({
        "type": "AUTH_CODE",
        "authorizationUrl": "https://auth.example.com/authorize",
        "accessTokenUrl": "https://auth.example.com/token",
        "accessTokenScheme": "HTTP_BASIC",
        "clientId": "alexa-skill",
        "clientSecret": "super-secret-value",
        "scopes": ["profile"],
        "domains": ["cdn.example.com"],
        "defaultTokenExpirationInSeconds": 3600
    })
}

async fn put_linking(
    sim: &Simulator,
    token: &str,
    skill: &str,
    stage: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Response {
    let mut req = http()
        .put(linking_url(&sim.url(), skill, stage))
        .bearer_auth(token)
        .json(&json!({ "accountLinkingRequest": body }));
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    req.send().await.unwrap()
}

fn etag(resp: &Response) -> String {
    resp.headers()
        .get("etag")
        .expect("ETag header")
        .to_str()
        .unwrap()
        .to_string()
}

async fn status_body(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

// ---------------------------------------------------------------- LWA

#[tokio::test]
async fn lwa_refresh_grant_returns_bearer_token_from_form_json_and_basic() {
    let sim = start().await;
    let client = http();
    let form = client
        .post(sim.lwa_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", sandbox::REFRESH_TOKEN),
            ("client_id", sandbox::CLIENT_ID),
            ("client_secret", sandbox::CLIENT_SECRET),
        ])
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
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status().as_u16(), 200);

    let basic = client
        .post(sim.lwa_token_url())
        .basic_auth(sandbox::CLIENT_ID, Some(sandbox::CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", sandbox::REFRESH_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 200);
    assert_eq!(sim.count(Operation::Token), 3);
}

#[tokio::test]
async fn lwa_errors_use_oauth_bodies() {
    let sim = start().await;
    let client = http();
    let send = |params: Vec<(&'static str, &'static str)>| {
        let client = client.clone();
        let url = sim.lwa_token_url();
        async move { status_body(client.post(url).form(&params).send().await.unwrap()).await }
    };
    let (status, body) = send(vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", sandbox::REFRESH_TOKEN),
        ("client_id", sandbox::CLIENT_ID),
        ("client_secret", "wrong"),
    ])
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(body["error_description"].is_string());

    let (status, body) = send(vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", "Atzr|unknown"),
        ("client_id", sandbox::CLIENT_ID),
        ("client_secret", sandbox::CLIENT_SECRET),
    ])
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A refresh token only works with the client it was issued to.
    let (status, body) = send(vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", sandbox::REFRESH_TOKEN),
        ("client_id", sandbox::CLIENT_ID_2),
        ("client_secret", sandbox::CLIENT_SECRET_2),
    ])
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (status, body) = send(vec![
        ("grant_type", "password"),
        ("client_id", sandbox::CLIENT_ID),
        ("client_secret", sandbox::CLIENT_SECRET),
    ])
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    let (status, body) = send(vec![("client_id", sandbox::CLIENT_ID)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
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
    let (status, body) = status_body(
        http()
            .post(sim.lwa_token_url())
            .form(&params)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    assert!(refresh.starts_with("Atzr|"));

    let (status, body) = status_body(
        http()
            .post(sim.lwa_token_url())
            .form(&params)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // The new refresh token acts for the customer: customer paths work, SMAPI does not.
    let token = token_with(&sim, sandbox::CLIENT_ID, sandbox::CLIENT_SECRET, &refresh).await;
    let resp = http()
        .get(format!("{}/v1/alexaApiEndpoint", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn access_tokens_expire_after_the_configured_lifetime() {
    let sim = start_with(SimConfig {
        token_lifetime: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await;
    let resp = http()
        .post(sim.lwa_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", sandbox::REFRESH_TOKEN),
            ("client_id", sandbox::CLIENT_ID),
            ("client_secret", sandbox::CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap().to_string();
    let url = enablement_url(&sim.url(), SKILL, "development");
    let before = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(before.status().as_u16(), 404);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) =
        status_body(http().get(&url).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(body["message"].is_string() && body["code"].is_string());
}

// ---------------------------------------------------------------- SMAPI authentication

#[tokio::test]
async fn smapi_requires_a_title_case_bearer_developer_token() {
    let sim = start().await;
    let url = linking_url(&sim.url(), SKILL, "development");
    let token = dev_token(&sim).await;
    let client = http();

    let missing = client.get(&url).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    let unknown = client
        .get(&url)
        .bearer_auth("Atza|nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 401);
    let lower = client
        .get(&url)
        .header("Authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status().as_u16(), 400);
    // The ASK CLI sends the bare token without a scheme.
    let bare = client
        .get(&url)
        .header("Authorization", token.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        bare.status().as_u16(),
        404,
        "no account linking configured yet"
    );

    let customer = customer_token(&sim, Region::Na).await;
    let (status, body) = status_body(
        client
            .get(&url)
            .bearer_auth(&customer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body["message"].is_string() && body["code"].is_string());

    let other = client
        .get(linking_url(
            &sim.url(),
            sandbox::OTHER_VENDOR_SKILL_ID,
            "development",
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 403);

    sim.expire_tokens();
    let expired = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(expired.status().as_u16(), 401);
}

// ---------------------------------------------------------------- account linking

#[tokio::test]
async fn account_linking_put_get_delete_with_etags() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    let url = linking_url(&sim.url(), SKILL, "development");
    let client = http();

    let (status, body) =
        status_body(client.get(&url).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(body["message"].is_string() && body["code"].is_string());

    let created = put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &auth_code_config(),
        None,
    )
    .await;
    assert_eq!(created.status().as_u16(), 204);
    let first_etag = etag(&created);
    assert_eq!(sim.etag(SKILL, "development"), Some(first_etag.clone()));

    let got = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(etag(&got), first_etag);
    let body: Value = got.json().await.unwrap();
    assert!(
        body.get("clientSecret").is_none(),
        "clientSecret is write-only"
    );
    assert_eq!(body["clientId"], "alexa-skill");
    assert_eq!(body["accessTokenScheme"], "HTTP_BASIC");
    assert_eq!(
        body["redirectUrls"],
        json!([
            format!(
                "https://pitangui.amazon.com/api/skill/link/{}",
                sandbox::VENDOR_ID
            ),
            format!(
                "https://layla.amazon.com/api/skill/link/{}",
                sandbox::VENDOR_ID
            ),
        ])
    );
    let stored = sim.account_linking(SKILL, "development").unwrap();
    assert_eq!(stored["clientSecret"], "super-secret-value");

    // A stale If-Match is refused; the current one is accepted and changes the ETag.
    let stale = put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &auth_code_config(),
        Some("not-current"),
    )
    .await;
    assert_eq!(stale.status().as_u16(), 412);
    let (_, stale_body) = status_body(stale).await;
    assert!(stale_body["code"].is_string());
    let mut changed = auth_code_config();
    changed["scopes"] = json!(["profile", "email"]);
    let updated = put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &changed,
        Some(&first_etag),
    )
    .await;
    assert_eq!(updated.status().as_u16(), 204);
    let second_etag = etag(&updated);
    assert_ne!(second_etag, first_etag);
    // Quoted ETags (as HTTP clients echo them) match too.
    let quoted = put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &changed,
        Some(&format!("\"{second_etag}\"")),
    )
    .await;
    assert_eq!(quoted.status().as_u16(), 204);
    let third_etag = etag(&quoted);

    // An out-of-band change (a human in the console) invalidates the operator's ETag.
    sim.set_account_linking(
        SKILL,
        "development",
        json!({"type": "IMPLICIT", "authorizationUrl": "https://x.example.com"}),
    );
    assert_ne!(sim.etag(SKILL, "development").unwrap(), third_etag);
    let after_oob = put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &changed,
        Some(&third_etag),
    )
    .await;
    assert_eq!(after_oob.status().as_u16(), 412);

    let deleted = client
        .delete(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    let gone = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(gone.status().as_u16(), 404);
    let again = client
        .delete(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 404);
    assert_eq!(sim.account_linking(SKILL, "development"), None);
    assert_eq!(sim.count(Operation::UpdateAccountLinking), 5);
    assert_eq!(sim.count(Operation::DeleteAccountLinking), 2);
}

#[tokio::test]
async fn account_linking_get_shape_and_redirect_urls() {
    let sim = start_with(SimConfig {
        get_shape: GetShape::Wrapped,
        ..SimConfig::default()
    })
    .await;
    let token = dev_token(&sim).await;
    let implicit = json!({"type": "IMPLICIT", "authorizationUrl": "https://auth.example.com/a", "clientId": "c"});
    assert_eq!(
        put_linking(&sim, &token, SKILL, "live", &implicit, None)
            .await
            .status()
            .as_u16(),
        204
    );
    let body: Value = http()
        .get(linking_url(&sim.url(), SKILL, "live"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inner = &body["accountLinkingResponse"];
    assert_eq!(inner["type"], "IMPLICIT");
    assert_eq!(inner["voiceForwardAccountLinking"], "DISABLED");
    assert_eq!(
        inner["redirectUrls"][0],
        format!(
            "https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId={}",
            sandbox::VENDOR_ID
        )
    );

    // Redirect URLs the user set are returned as set; the flat shape can be switched at run time.
    sim.set_get_shape(GetShape::Flat);
    let mut own = auth_code_config();
    own["redirectUrls"] = json!(["https://mine.example.com/cb"]);
    // A bare object (without the accountLinkingRequest wrapper) is tolerated.
    let bare = http()
        .put(linking_url(&sim.url(), SKILL, "live"))
        .bearer_auth(&token)
        .json(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 204);
    let body: Value = http()
        .get(linking_url(&sim.url(), SKILL, "live"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["redirectUrls"], json!(["https://mine.example.com/cb"]));
    assert!(body.get("accountLinkingResponse").is_none());
}

#[tokio::test]
async fn account_linking_validation_answers_400_with_violations() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    let cases = [
        (
            json!({"type": "AUTH_CODE", "authorizationUrl": "https://a"}),
            "MISSING_REQUIRED_PROPERTY",
        ),
        (json!({"type": "PASSWORD"}), "INVALID_ENUM_VALUE"),
        (
            {
                let mut c = auth_code_config();
                c["domains"] = json!(
                    (0..16)
                        .map(|i| format!("d{i}.example.com"))
                        .collect::<Vec<_>>()
                );
                c
            },
            "MAX_ITEMS_EXCEEDED",
        ),
        (
            {
                let mut c = auth_code_config();
                c["scopes"] = json!((0..16).map(|i| format!("s{i}")).collect::<Vec<_>>());
                c
            },
            "MAX_ITEMS_EXCEEDED",
        ),
        (
            {
                let mut c = auth_code_config();
                c["accessTokenScheme"] = json!("DIGEST");
                c
            },
            "INVALID_ENUM_VALUE",
        ),
        (
            {
                let mut c = auth_code_config();
                c["authorizationUrlsByPlatform"] =
                    json!([{"platformType": "Windows", "platformAuthorizationUrl": "https://w"}]);
                c
            },
            "INVALID_ENUM_VALUE",
        ),
        (
            {
                let mut c = auth_code_config();
                c["voiceForwardAccountLinking"] = json!("MAYBE");
                c
            },
            "INVALID_ENUM_VALUE",
        ),
    ];
    for (config, code) in cases {
        let (status, body) =
            status_body(put_linking(&sim, &token, SKILL, "development", &config, None).await).await;
        assert_eq!(status, 400, "{config}");
        assert!(body["message"].is_string(), "{body}");
        let violations = body["violations"].as_array().unwrap();
        assert!(
            violations
                .iter()
                .any(|v| v["code"] == code && v["message"].is_string()),
            "{body}"
        );
    }
    // Exactly 15 domains is fine.
    let mut fifteen = auth_code_config();
    fifteen["domains"] = json!(
        (0..15)
            .map(|i| format!("d{i}.example.com"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        put_linking(&sim, &token, SKILL, "development", &fifteen, None)
            .await
            .status()
            .as_u16(),
        204
    );

    let long_id = "a".repeat(256);
    let (status, body) = status_body(
        http()
            .get(linking_url(&sim.url(), &long_id, "development"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_STRING_LENGTH"))
    );
    let (status, body) = status_body(
        http()
            .get(linking_url(&sim.url(), SKILL, "beta"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["violations"][0]["code"].as_str()),
        (400, Some("INVALID_ENUM_VALUE"))
    );
    let unknown = http()
        .get(linking_url(
            &sim.url(),
            "amzn1.ask.skill.unknown",
            "development",
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let no_live = http()
        .put(linking_url(&sim.url(), sandbox::DEV_ONLY_SKILL_ID, "live"))
        .bearer_auth(&token)
        .json(&json!({"accountLinkingRequest": auth_code_config()}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_live.status().as_u16(), 404);
    let malformed = http()
        .put(linking_url(&sim.url(), SKILL, "development"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
}

// ---------------------------------------------------------------- developer enablement

#[tokio::test]
async fn enabling_one_stage_disables_the_other() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    let client = http();
    let dev = enablement_url(&sim.url(), SKILL, "development");
    let live = enablement_url(&sim.url(), SKILL, "live");
    let status = |url: String| {
        let client = client.clone();
        let token = token.clone();
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    assert_eq!(status(dev.clone()).await, 404);
    assert_eq!(
        client
            .put(&dev)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(status(dev.clone()).await, 204);
    assert!(sim.stage_enabled(SKILL, "development"));

    assert_eq!(
        client
            .put(&live)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(status(live.clone()).await, 204);
    assert_eq!(status(dev.clone()).await, 404);
    assert!(!sim.stage_enabled(SKILL, "development"));

    assert_eq!(
        client
            .delete(&live)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(status(live.clone()).await, 404);
    assert_eq!(
        client
            .delete(&live)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );

    sim.set_stage_enabled(SKILL, "development", true);
    assert_eq!(status(dev).await, 204);
    assert_eq!(sim.count(Operation::GetStageEnablement), 6);
    assert_eq!(sim.count(Operation::EnableStage), 2);
    assert_eq!(sim.count(Operation::DisableStage), 2);
}

// ---------------------------------------------------------------- customer APIs

#[tokio::test]
async fn customer_enable_status_disable_with_single_use_codes() {
    let sim = start().await;
    let token = customer_token(&sim, Region::Na).await;
    let client = http();
    let url = customer_url(&sim.url(), sandbox::SKILL_ID_2);
    let code = sandbox::partner_code(Region::Na, 1);
    let request = json!({
        "stage": "live",
        "accountLinkRequest": {"type": "AUTH_CODE", "authCode": code, "redirectUri": "https://app.example.com/cb"}
    });

    let (status, body) =
        status_body(client.get(&url).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(body["code"].is_string());

    let (status, body) = status_body(
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&request)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let expected = json!({
        "skill": {"id": sandbox::SKILL_ID_2, "stage": "live"},
        "user": {"id": sandbox::user_id(Region::Na)},
        "accountLink": {"status": "LINKED"},
        "status": "ENABLED"
    });
    assert_eq!(body, expected);
    let record = sim
        .customer_enablement(sandbox::customer(Region::Na), sandbox::SKILL_ID_2)
        .unwrap();
    assert_eq!(record.stage, "live");

    let (status, body) =
        status_body(client.get(&url).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!((status, body), (200, expected));

    // The code was consumed; an unknown code is refused the same way.
    let (status, body) = status_body(
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&request)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["message"].is_string() && body["code"].is_string());
    let mut unknown = request.clone();
    unknown["accountLinkRequest"]["authCode"] = json!("made-up-code");
    assert_eq!(
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&unknown)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    // Another customer's code is refused too.
    let mut foreign = request.clone();
    foreign["accountLinkRequest"]["authCode"] = json!(sandbox::partner_code(Region::Eu, 1));
    assert_eq!(
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&foreign)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    // Missing fields: 400 with violations.
    let (status, body) = status_body(
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"stage": "prod"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["violations"].as_array().unwrap().len() >= 2);

    let deleted = client
        .delete(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert!(
        sim.customer_enablement(sandbox::customer(Region::Na), sandbox::SKILL_ID_2)
            .is_none()
    );

    // A code seeded at run time works once.
    sim.add_auth_code("fresh-code", sandbox::customer(Region::Na));
    let mut fresh = request.clone();
    fresh["accountLinkRequest"]["authCode"] = json!("fresh-code");
    assert_eq!(
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&fresh)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    let unknown_skill = client
        .get(customer_url(&sim.url(), "amzn1.ask.skill.unknown"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_skill.status().as_u16(), 404);
}

#[tokio::test]
async fn customer_calls_must_reach_their_region_and_use_customer_tokens() {
    let sim = start().await;
    let eu = customer_token(&sim, Region::Eu).await;
    let dev = dev_token(&sim).await;
    let client = http();
    let request = json!({
        "stage": "development",
        "accountLinkRequest": {"type": "AUTH_CODE", "authCode": sandbox::partner_code(Region::Eu, 1), "redirectUri": "https://app.example.com/cb"}
    });

    let discovery: Value = client
        .get(format!("{}/v1/alexaApiEndpoint", sim.url()))
        .bearer_auth(&eu)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery, json!({"endpoints": ["api.eu.amazonalexa.com"]}));

    let wrong = client
        .post(customer_url(&sim.url(), SKILL))
        .bearer_auth(&eu)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let right = client
        .post(customer_url(&sim.region_url(Region::Eu), SKILL))
        .bearer_auth(&eu)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(
        right.status().as_u16(),
        201,
        "the wrong-region attempt must not consume the code"
    );

    let dev_on_customer = client
        .get(customer_url(&sim.url(), SKILL))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(dev_on_customer.status().as_u16(), 403);
    let dev_discovery = client
        .get(format!("{}/v1/alexaApiEndpoint", sim.url()))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(dev_discovery.status().as_u16(), 403);

    let overrides = sim.endpoint_overrides();
    assert_eq!(
        overrides[1],
        (
            "api.eu.amazonalexa.com".to_string(),
            sim.region_url(Region::Eu)
        )
    );
    assert_eq!(overrides.len(), 3);
    let records = sim.requests();
    assert!(records.iter().any(|r| r.region == Some(Region::Eu)
        && r.status == 201
        && r.client.as_deref() == Some("eu-customer")));
}

#[tokio::test]
async fn wrong_region_status_is_configurable() {
    let sim = start_with(SimConfig {
        wrong_region_status: 404,
        ..SimConfig::default()
    })
    .await;
    let fe = customer_token(&sim, Region::Fe).await;
    let resp = http()
        .get(customer_url(&sim.url(), SKILL))
        .bearer_auth(&fe)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = http()
        .get(customer_url(&sim.region_url(Region::Fe), SKILL))
        .bearer_auth(&fe)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        404,
        "reached FE, but the skill is not enabled"
    );
    let (_, body) = status_body(resp).await;
    assert!(body["message"].as_str().unwrap().contains("not enabled"));
}

#[tokio::test]
async fn discovery_modes_exercise_the_fallback_rules() {
    let sim = start().await;
    let na = customer_token(&sim, Region::Na).await;
    let url = format!("{}/v1/alexaApiEndpoint", sim.url());
    sim.faults().set_discovery(DiscoveryMode::Multiple);
    let body: Value = http()
        .get(&url)
        .bearer_auth(&na)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"endpoints": ["api.eu.amazonalexa.com", "api.fe.amazonalexa.com", "api.amazonalexa.com"]})
    );
    sim.faults().set_discovery(DiscoveryMode::ServerError);
    let resp = http().get(&url).bearer_auth(&na).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    sim.faults().set_discovery(DiscoveryMode::Normal);
    let body: Value = http()
        .get(&url)
        .bearer_auth(&na)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"endpoints": ["api.amazonalexa.com"]}));
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 3);
}

// ---------------------------------------------------------------- faults

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
    let client = http();
    for _ in 0..2 {
        assert_eq!(
            client
                .get(&url)
                .bearer_auth(&one)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            404
        );
    }
    let limited = client.get(&url).bearer_auth(&one).send().await.unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    let (_, body) = status_body(limited).await;
    assert!(body["message"].is_string() && body["code"].is_string());
    // The other client has its own bucket.
    let other = client
        .get(enablement_url(
            &sim.url(),
            sandbox::OTHER_VENDOR_SKILL_ID,
            "development",
        ))
        .bearer_auth(&two)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
    // LWA is spared by default.
    dev_token(&sim).await;
    // Zero Retry-After omits the header.
    sim.faults().set_rate_limit(Some(RateLimit {
        per_second: 0.01,
        burst: 1,
        retry_after: Duration::ZERO,
    }));
    client.get(&url).bearer_auth(&one).send().await.unwrap();
    let limited = client.get(&url).bearer_auth(&one).send().await.unwrap();
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
        let (status, body) =
            status_body(http().get(&url).bearer_auth(&token).send().await.unwrap()).await;
        assert!(status == 500 || status == 503, "{status}");
        assert!(body["code"].is_string());
    }
    // LWA is unaffected unless asked for.
    dev_token(&sim).await;
    sim.faults().set_include_lwa(true);
    let resp = http()
        .post(sim.lwa_token_url())
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_server_error());
    sim.faults().clear();

    sim.faults().set_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(
        http()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
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
    assert_eq!(
        http()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    assert_eq!(
        http()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    // Other operations were never affected.
    assert_eq!(
        http()
            .get(enablement_url(&sim.url(), SKILL, "live"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn dropped_connections_get_no_response() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    let url = enablement_url(&sim.url(), SKILL, "development");
    sim.faults().drop_next(1);
    let err = http().get(&url).bearer_auth(&token).send().await;
    assert!(err.is_err(), "the connection must close without a response");
    assert_eq!(
        http()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
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
    let created = put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &auth_code_config(),
        None,
    )
    .await;
    let tag = etag(&created);
    let refused = put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &auth_code_config(),
        Some(&tag),
    )
    .await;
    assert_eq!(refused.status().as_u16(), 412);
    // Without If-Match the write still goes through.
    let unconditional = put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &auth_code_config(),
        None,
    )
    .await;
    assert_eq!(unconditional.status().as_u16(), 204);
}

// ---------------------------------------------------------------- log and admin

#[tokio::test]
async fn request_log_never_holds_secrets_or_tokens() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &auth_code_config(),
        Some("stale"),
    )
    .await;
    let customer = customer_token(&sim, Region::Na).await;
    http()
        .post(customer_url(&sim.url(), SKILL))
        .bearer_auth(&customer)
        .json(&json!({"stage": "live", "accountLinkRequest": {"type": "AUTH_CODE", "authCode": sandbox::partner_code(Region::Na, 2), "redirectUri": "https://a.example.com"}}))
        .send()
        .await
        .unwrap();
    let records = sim.requests();
    let text = serde_json::to_string(&records).unwrap();
    for secret in [
        "super-secret-value",
        sandbox::CLIENT_SECRET,
        sandbox::REFRESH_TOKEN,
        token.as_str(),
        customer.as_str(),
        sandbox::partner_code(Region::Na, 2).as_str(),
    ] {
        assert!(!text.contains(secret), "log leaks {secret}");
    }
    let put = records
        .iter()
        .find(|r| r.operation == Operation::UpdateAccountLinking)
        .unwrap();
    assert_eq!(put.client.as_deref(), Some(sandbox::CLIENT_ID));
    assert_eq!(put.if_match.as_deref(), Some("stale"));
    assert_eq!(put.status, 412);
    assert_eq!(
        put.body.as_ref().unwrap()["accountLinkingRequest"]["clientSecret"],
        "***"
    );
    assert_eq!(put.skill_id.as_deref(), Some(SKILL));
    assert_eq!(
        records
            .iter()
            .filter(|r| r.operation == Operation::Token)
            .count(),
        2
    );
    assert_eq!(sim.count(Operation::Token), 2);
    sim.clear_requests();
    assert!(sim.requests().is_empty());
    assert_eq!(sim.count(Operation::Token), 0);
}

/// Codes seeded through the admin API are customer secrets too: the log (in process and over
/// `GET /__sim/requests`) shows that they were posted, never what they were.
#[tokio::test]
async fn admin_auth_codes_never_reach_the_request_log() {
    let sim = start().await;
    let admin = format!("{}/__sim", sim.url());
    let secrets = ["seeded-code-alpha", "seeded-code-beta", "seeded-code-gamma"];
    let many = http()
        .post(format!("{admin}/auth-codes"))
        .json(&json!({"customer": "na-customer", "codes": [secrets[0], secrets[1]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(many.status().as_u16(), 201);
    let one = http()
        .post(format!("{admin}/auth-codes"))
        .json(&json!({"customer": "na-customer", "code": secrets[2]}))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status().as_u16(), 201);
    // The codes work: they were stored, only the log forgot them.
    let customer = customer_token(&sim, Region::Na).await;
    let enable = http()
        .post(customer_url(&sim.url(), SKILL))
        .bearer_auth(&customer)
        .json(&json!({"stage": "live", "accountLinkRequest": {"type": "AUTH_CODE", "authCode": secrets[1], "redirectUri": "https://a.example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(enable.status().as_u16(), 201);

    let in_process = sim.requests();
    let seeded: Vec<_> = in_process
        .iter()
        .filter(|r| r.operation == Operation::Admin && r.path.ends_with("/auth-codes"))
        .collect();
    assert_eq!(seeded.len(), 2, "both admin posts are logged");
    let body = seeded[0].body.as_ref().unwrap();
    assert_eq!(body["customer"], "na-customer");
    assert_eq!(body["codes"], json!(["***", "***"]));
    let over_http = http()
        .get(format!("{admin}/requests"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(over_http.contains("/__sim/auth-codes"), "{over_http}");
    let in_process = serde_json::to_string(&in_process).unwrap();
    for secret in secrets {
        assert!(!in_process.contains(secret), "request log leaks {secret}");
        assert!(
            !over_http.contains(secret),
            "GET /__sim/requests leaks {secret}"
        );
    }
}

#[tokio::test]
async fn admin_endpoints_drive_the_simulator_over_http() {
    let sim = start().await;
    let admin = format!("{}/__sim", sim.url());
    let client = http();
    let token = dev_token(&sim).await;

    let counts: Value = client
        .get(format!("{admin}/counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["Token"], 1);

    let faults = client
        .put(format!("{admin}/faults"))
        .json(&json!({"rateLimit": {"perSecond": 0.01, "burst": 1, "retryAfter": "3s"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status().as_u16(), 200);
    let url = enablement_url(&sim.url(), SKILL, "development");
    client.get(&url).bearer_auth(&token).send().await.unwrap();
    let limited = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(
        (
            limited.status().as_u16(),
            limited.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "3")
    );
    assert_eq!(
        client
            .delete(format!("{admin}/faults"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    let bad = client
        .put(format!("{admin}/faults"))
        .json(&json!({"errorRate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    let script = client
        .post(format!("{admin}/script"))
        .json(&json!({"operation": "GetStageEnablement", "responses": [{"status": 500, "body": {"message": "boom", "code": "X"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status().as_u16(), 204);
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        500
    );

    // Out-of-band state changes.
    let put = client
        .put(format!(
            "{admin}/state/skills/{SKILL}/stages/development/account-linking"
        ))
        .json(&auth_code_config())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let put_body: Value = put.json().await.unwrap();
    assert_eq!(
        put_body["etag"].as_str(),
        sim.etag(SKILL, "development").as_deref()
    );
    let got: Value = client
        .get(format!(
            "{admin}/state/skills/{SKILL}/stages/development/account-linking"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(got["config"].get("clientSecret").is_none());
    assert_eq!(
        got["config"]["clientSecretSha256"].as_str().unwrap().len(),
        64
    );
    let enabled = client
        .put(format!(
            "{admin}/state/skills/{SKILL}/stages/live/enablement"
        ))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status().as_u16(), 200);
    assert!(sim.stage_enabled(SKILL, "live"));

    let codes = client
        .post(format!("{admin}/auth-codes"))
        .json(&json!({"customer": "na-customer", "codes": ["admin-code-1", "admin-code-2"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(codes.status().as_u16(), 201);
    let customer = customer_token(&sim, Region::Na).await;
    let enable = client
        .post(customer_url(&sim.url(), SKILL))
        .bearer_auth(&customer)
        .json(&json!({"stage": "live", "accountLinkRequest": {"type": "AUTH_CODE", "authCode": "admin-code-2", "redirectUri": "https://a.example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(enable.status().as_u16(), 201);
    let record: Value = client
        .get(format!(
            "{admin}/state/customers/na-customer/skills/{SKILL}/enablement"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(record["status"], "ENABLED");

    let skills: Value = client
        .post(format!("{admin}/skills"))
        .json(&json!({"skillIds": ["amzn1.ask.skill.bench-1", "amzn1.ask.skill.bench-2"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(skills["added"], 2);
    assert_eq!(
        client
            .put(enablement_url(
                &sim.url(),
                "amzn1.ask.skill.bench-2",
                "live"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );

    let requests: Value = client
        .get(format!("{admin}/requests?operation=EnableStage"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = requests["requests"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], 204);
    assert!(list[0]["seq"].as_u64().unwrap() > 0);

    let settings: Value = client
        .put(format!("{admin}/settings"))
        .json(&json!({"getShape": "wrapped"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["getShape"], "wrapped");
    let wrapped: Value = client
        .get(linking_url(&sim.url(), SKILL, "development"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(wrapped.get("accountLinkingResponse").is_some());

    assert_eq!(
        client
            .post(format!("{admin}/expire-tokens"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );

    let info: Value = client
        .get(format!("{admin}/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["url"], sim.url());
    assert_eq!(info["regions"]["EU"], sim.region_url(Region::Eu));

    assert_eq!(
        client
            .post(format!("{admin}/reset"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(sim.account_linking(SKILL, "development"), None);
    assert!(!sim.stage_enabled(SKILL, "live"));
    assert_eq!(
        client
            .get(format!("{admin}/nope"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}

// ---------------------------------------------------------------- state, serving

#[tokio::test]
async fn example_state_file_loads_and_serves() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/sim-state.yaml"
    ))
    .unwrap();
    let state = SimState::from_yaml(&text).unwrap();
    let first_vendor = state.vendors[0].clone();
    let refresh = first_vendor.refresh_tokens[0].clone();
    let secret = state
        .lwa_clients
        .iter()
        .find(|c| c.client_id == refresh.client_id)
        .unwrap()
        .client_secret
        .clone();
    let skill = first_vendor.skills[0].id.clone();
    let sim = start_with(SimConfig {
        state,
        ..SimConfig::default()
    })
    .await;
    let token = token_with(&sim, &refresh.client_id, &secret, &refresh.token).await;
    let resp = http()
        .get(linking_url(&sim.url(), &skill, "development"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "the example presets account linking"
    );
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("clientSecret").is_none());
    assert_eq!(
        body["redirectUrls"][0],
        "https://pitangui.amazon.com/api/skill/link/M2EXAMPLEVENDOR"
    );
    assert!(sim.stage_enabled(&skill, "development"));
    assert_eq!(
        sim.customer_enablement("alice", &skill).unwrap().stage,
        "live"
    );
    // The sandbox is gone: its refresh token is unknown here.
    let resp = http()
        .post(sim.lwa_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", sandbox::REFRESH_TOKEN),
            ("client_id", refresh.client_id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn invalid_state_and_non_loopback_addresses_are_refused() {
    let mut state = SimState::sandbox();
    state.vendors[0].skills[0]
        .account_linking
        .insert(alexa_simulator::Stage::Live, json!({"type": "AUTH_CODE"}));
    let err = Simulator::start(SimConfig {
        state,
        ..SimConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, SimulatorError::InvalidState(_)), "{err}");
    let err = Simulator::start(SimConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..SimConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, SimulatorError::NonLoopback { .. }), "{err}");
    assert!(SimState::from_yaml("vendors: [{id: V, unknownField: 1}]").is_err());
}

#[tokio::test]
async fn thousands_of_skills_can_be_added_and_used() {
    let sim = start().await;
    let started = Instant::now();
    for i in 0..10_000 {
        sim.add_skill(&format!("amzn1.ask.skill.bench-{i:05}"));
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let token = dev_token(&sim).await;
    let resp = put_linking(
        &sim,
        &token,
        "amzn1.ask.skill.bench-09999",
        "live",
        &auth_code_config(),
        None,
    )
    .await;
    assert_eq!(resp.status().as_u16(), 204);
    assert!(
        sim.account_linking("amzn1.ask.skill.bench-09999", "live")
            .is_some()
    );
}

#[tokio::test]
async fn tls_listener_serves_the_same_api() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let sim = start_with(SimConfig {
        tls: Some(TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert_pem: cert.cert.pem().into_bytes(),
            key_pem: cert.signing_key.serialize_pem().into_bytes(),
        }),
        ..SimConfig::default()
    })
    .await;
    let tls_url = sim.tls_url().unwrap();
    let port = tls_url.rsplit(':').next().unwrap().to_string();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let token: Value = client
        .post(format!("{base}/auth/o2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", sandbox::REFRESH_TOKEN),
            ("client_id", sandbox::CLIENT_ID),
            ("client_secret", sandbox::CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let resp = client
        .put(enablement_url(&base, SKILL, "development"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert!(sim.stage_enabled(SKILL, "development"));
}

#[tokio::test]
async fn shutdown_closes_the_listeners() {
    let sim = start().await;
    let url = format!("{}/__sim/counts", sim.url());
    assert_eq!(
        http().get(&url).send().await.unwrap().status().as_u16(),
        200
    );
    sim.shutdown().await;
    assert!(http().get(&url).send().await.is_err());
}

#[tokio::test]
async fn unknown_paths_and_methods_get_amazon_style_errors() {
    let sim = start().await;
    let (status, body) = status_body(
        http()
            .get(format!("{}/v1/nothing", sim.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["message"].is_string() && body["code"].is_string());
    let resp = http().get(sim.lwa_token_url()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(sim.count(Operation::Unknown), 2);
}

#[tokio::test]
async fn request_log_is_bounded_while_counts_stay_exact() {
    let sim = start_with(SimConfig {
        log_capacity: 3,
        ..SimConfig::default()
    })
    .await;
    let token = dev_token(&sim).await;
    for _ in 0..5 {
        put_linking(&sim, &token, SKILL, "live", &auth_code_config(), None).await;
    }
    let records = sim.requests();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.operation == Operation::UpdateAccountLinking)
    );
    assert_eq!(
        records[2].body.as_ref().unwrap()["accountLinkingRequest"]["clientId"],
        "alexa-skill"
    );
    assert_eq!(sim.count(Operation::UpdateAccountLinking), 5);
    assert_eq!(sim.count(Operation::Token), 1);
    let newest: Value = http()
        .get(format!("{}/__sim/requests?limit=1", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(newest["requests"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn absurd_settings_and_bodies_never_break_the_simulator() {
    let sim = start().await;
    let admin = format!("{}/__sim", sim.url());
    let resp = http()
        .put(format!("{admin}/settings"))
        .json(&json!({"tokenLifetime": 1e15}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let token = dev_token(&sim).await;
    let url = enablement_url(&sim.url(), SKILL, "development");
    assert_eq!(
        http()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let garbage = http()
        .post(sim.lwa_token_url())
        .header("Content-Type", "application/json")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status().as_u16(), 400);
    let huge = http()
        .put(linking_url(&sim.url(), SKILL, "development"))
        .bearer_auth(&token)
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await;
    if let Ok(resp) = huge {
        assert_eq!(resp.status().as_u16(), 413);
    }
    let script = http()
        .post(format!("{admin}/script"))
        .json(&json!({"operation": "GetStageEnablement", "responses": [{"status": 1000, "headers": [["bad header", "x"]]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status().as_u16(), 204);
    assert_eq!(
        http()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        500
    );
    // Still serving normally afterwards.
    assert_eq!(
        http()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}
