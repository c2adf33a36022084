//! What every topic's tests share: starting a simulator, getting tokens, building URLs, and
//! sending requests whose status (and body) the tests compare, one step or a table at a time.

use alexa_simulator::{Region, SimConfig, Simulator, sandbox};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};

pub const SKILL: &str = sandbox::SKILL_ID;

pub fn http() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

pub async fn start() -> Simulator {
    Simulator::start(SimConfig::default()).await.unwrap()
}

pub async fn start_with(config: SimConfig) -> Simulator {
    Simulator::start(config).await.unwrap()
}

/// The refresh-token grant's form for the sandbox's first client.
pub fn refresh_form(refresh: &str) -> [(&'static str, &str); 4] {
    [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", sandbox::CLIENT_ID),
        ("client_secret", sandbox::CLIENT_SECRET),
    ]
}

pub async fn token_with(sim: &Simulator, client_id: &str, secret: &str, refresh: &str) -> String {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", client_id),
        ("client_secret", secret),
    ];
    let (status, body) = call(http().post(sim.lwa_token_url()).form(&form)).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

pub async fn dev_token(sim: &Simulator) -> String {
    token_with(
        sim,
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        sandbox::REFRESH_TOKEN,
    )
    .await
}

pub async fn customer_token(sim: &Simulator, region: Region) -> String {
    token_with(
        sim,
        sandbox::CLIENT_ID,
        sandbox::CLIENT_SECRET,
        sandbox::customer_refresh_token(region),
    )
    .await
}

pub fn linking_url(base: &str, skill: &str, stage: &str) -> String {
    format!("{base}/v1/skills/{skill}/stages/{stage}/accountLinkingClient")
}

pub fn enablement_url(base: &str, skill: &str, stage: &str) -> String {
    format!("{base}/v1/skills/{skill}/stages/{stage}/enablement")
}

pub fn customer_url(base: &str, skill: &str) -> String {
    format!("{base}/v1/users/~current/skills/{skill}/enablement")
}

pub fn discovery_url(base: &str) -> String {
    format!("{base}/v1/alexaApiEndpoint")
}

pub fn auth_code_config() -> Value {
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

/// A customer enablement request for `stage` with a partner auth code.
pub fn enable_request(stage: &str, code: &str) -> Value {
    json!({
        "stage": stage,
        "accountLinkRequest": {"type": "AUTH_CODE", "authCode": code, "redirectUri": "https://app.example.com/cb"}
    })
}

pub async fn put_linking(
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

pub fn etag(resp: &Response) -> String {
    resp.headers()
        .get("etag")
        .expect("ETag header")
        .to_str()
        .unwrap()
        .to_string()
}

pub async fn status_body(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

/// Sends a request: its status and JSON body (`Null` when empty).
pub async fn call(request: RequestBuilder) -> (u16, Value) {
    status_body(request.send().await.unwrap()).await
}

/// Sends a request: only its status.
pub async fn status_of(request: RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

/// A request with an optional bearer token and JSON body.
pub fn request(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> RequestBuilder {
    let mut request = http().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request
}

/// One step of a table-driven sequence: method, URL, JSON body, the status it must get.
pub type Step<'a> = (Method, &'a str, Option<Value>, u16);

/// Runs `steps` in order with `token`, checking each status; a failure names its step.
pub async fn run_steps(token: Option<&str>, steps: &[Step<'_>]) {
    for (i, (method, url, body, expected)) in steps.iter().enumerate() {
        let (got, reply) = call(request(method.clone(), url, token, body.as_ref())).await;
        assert_eq!(got, *expected, "step {i}: {method} {url}: {reply}");
    }
}
