//! The request log and the admin API under `/__sim/`, as the sandbox and the benchmark (other
//! processes) drive the simulator.

use alexa_simulator::{Operation, Region, sandbox};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    SKILL, auth_code_config, call, customer_token, customer_url, dev_token, enable_request,
    enablement_url, http, linking_url, put_linking, request, run_steps, start, status_of,
};

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
    let code = sandbox::partner_code(Region::Na, 2);
    http()
        .post(customer_url(&sim.url(), SKILL))
        .bearer_auth(&customer)
        .json(&enable_request("live", &code))
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
        code.as_str(),
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
    let seed = format!("{admin}/auth-codes");
    run_steps(
        None,
        &[
            (
                Method::POST,
                &seed,
                Some(json!({"customer": "na-customer", "codes": [secrets[0], secrets[1]]})),
                201,
            ),
            (
                Method::POST,
                &seed,
                Some(json!({"customer": "na-customer", "code": secrets[2]})),
                201,
            ),
        ],
    )
    .await;
    // The codes work: they were stored, only the log forgot them.
    let customer = customer_token(&sim, Region::Na).await;
    let enable = http()
        .post(customer_url(&sim.url(), SKILL))
        .bearer_auth(&customer)
        .json(&enable_request("live", secrets[1]));
    assert_eq!(status_of(enable).await, 201);

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
async fn admin_faults_and_scripts_change_what_the_api_answers() {
    let sim = start().await;
    let admin = format!("{}/__sim", sim.url());
    let token = dev_token(&sim).await;
    let (_, counts) = call(http().get(format!("{admin}/counts"))).await;
    assert_eq!(counts["Token"], 1);

    let faults = format!("{admin}/faults");
    let rate_limit = json!({"rateLimit": {"perSecond": 0.01, "burst": 1, "retryAfter": "3s"}});
    run_steps(None, &[(Method::PUT, &faults, Some(rate_limit), 200)]).await;
    let url = enablement_url(&sim.url(), SKILL, "development");
    http().get(&url).bearer_auth(&token).send().await.unwrap();
    let limited = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(
        (
            limited.status().as_u16(),
            limited.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "3")
    );
    let script = json!({"operation": "GetStageEnablement", "responses": [{"status": 500, "body": {"message": "boom", "code": "X"}}]});
    run_steps(
        None,
        &[
            (Method::DELETE, &faults, None, 204),
            (Method::PUT, &faults, Some(json!({"errorRate": 2.0})), 400),
            (Method::POST, &format!("{admin}/script"), Some(script), 204),
        ],
    )
    .await;
    run_steps(Some(&token), &[(Method::GET, &url, None, 500)]).await;
}

#[tokio::test]
async fn admin_state_changes_are_what_the_api_then_serves() {
    let sim = start().await;
    let admin = format!("{}/__sim", sim.url());
    let token = dev_token(&sim).await;
    let linking = format!("{admin}/state/skills/{SKILL}/stages/development/account-linking");

    let (status, put_body) = call(http().put(&linking).json(&auth_code_config())).await;
    assert_eq!(status, 200);
    assert_eq!(
        put_body["etag"].as_str(),
        sim.etag(SKILL, "development").as_deref()
    );
    let (_, got) = call(http().get(&linking)).await;
    assert!(got["config"].get("clientSecret").is_none());
    assert_eq!(
        got["config"]["clientSecretSha256"].as_str().unwrap().len(),
        64
    );
    let live = format!("{admin}/state/skills/{SKILL}/stages/live/enablement");
    let codes = json!({"customer": "na-customer", "codes": ["admin-code-1", "admin-code-2"]});
    run_steps(
        None,
        &[
            (Method::PUT, &live, Some(json!({"enabled": true})), 200),
            (
                Method::POST,
                &format!("{admin}/auth-codes"),
                Some(codes),
                201,
            ),
        ],
    )
    .await;
    assert!(sim.stage_enabled(SKILL, "live"));

    let customer = customer_token(&sim, Region::Na).await;
    let enable = http()
        .post(customer_url(&sim.url(), SKILL))
        .bearer_auth(&customer)
        .json(&enable_request("live", "admin-code-2"));
    assert_eq!(status_of(enable).await, 201);
    let (_, record) = call(http().get(format!(
        "{admin}/state/customers/na-customer/skills/{SKILL}/enablement"
    )))
    .await;
    assert_eq!(record["status"], "ENABLED");

    let (_, skills) = call(
        http()
            .post(format!("{admin}/skills"))
            .json(&json!({"skillIds": ["amzn1.ask.skill.bench-1", "amzn1.ask.skill.bench-2"]})),
    )
    .await;
    assert_eq!(skills["added"], 2);
    let bench_2 = enablement_url(&sim.url(), "amzn1.ask.skill.bench-2", "live");
    run_steps(Some(&token), &[(Method::PUT, &bench_2, None, 204)]).await;

    let (_, requests) = call(http().get(format!("{admin}/requests?operation=EnableStage"))).await;
    let list = requests["requests"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], 204);
    assert!(list[0]["seq"].as_u64().unwrap() > 0);

    // Reset restores the initial state.
    run_steps(
        None,
        &[(Method::POST, &format!("{admin}/reset"), None, 204)],
    )
    .await;
    assert_eq!(sim.account_linking(SKILL, "development"), None);
    assert!(!sim.stage_enabled(SKILL, "live"));
}

#[tokio::test]
async fn admin_settings_tokens_and_info() {
    let sim = start().await;
    let admin = format!("{}/__sim", sim.url());
    let token = dev_token(&sim).await;
    let (_, settings) = call(
        http()
            .put(format!("{admin}/settings"))
            .json(&json!({"getShape": "wrapped"})),
    )
    .await;
    assert_eq!(settings["getShape"], "wrapped");
    put_linking(
        &sim,
        &token,
        SKILL,
        "development",
        &auth_code_config(),
        None,
    )
    .await;
    let (_, wrapped) = call(
        http()
            .get(linking_url(&sim.url(), SKILL, "development"))
            .bearer_auth(&token),
    )
    .await;
    assert!(wrapped.get("accountLinkingResponse").is_some(), "{wrapped}");

    let url = enablement_url(&sim.url(), SKILL, "development");
    run_steps(
        None,
        &[(Method::POST, &format!("{admin}/expire-tokens"), None, 204)],
    )
    .await;
    run_steps(Some(&token), &[(Method::GET, &url, None, 401)]).await;

    for path in ["info", ""] {
        let (_, info) = call(http().get(format!("{admin}/{path}"))).await;
        assert_eq!(info["url"], sim.url(), "/__sim/{path}");
        assert_eq!(info["regions"]["EU"], sim.region_url(Region::Eu));
    }
}

/// What the admin API refuses: each row a request and the status it must get, with no change
/// to the simulator's state.
#[tokio::test]
async fn admin_requests_it_cannot_serve_are_refused() {
    let sim = start().await;
    let admin = format!("{}/__sim", sim.url());
    let path = |p: &str| format!("{admin}/{p}");
    let cases: [(&str, Method, String, Option<Value>, u16); 11] = [
        ("unknown path", Method::GET, path("nope"), None, 404),
        (
            "known path, wrong method",
            Method::POST,
            path("counts"),
            None,
            404,
        ),
        (
            "unknown operation filter",
            Method::GET,
            path("requests?operation=Nope"),
            None,
            400,
        ),
        (
            "unknown scripted operation",
            Method::POST,
            path("script"),
            Some(json!({"operation": "Nope", "responses": []})),
            400,
        ),
        (
            "body that is not JSON",
            Method::PUT,
            path("settings"),
            Some(json!([1])),
            400,
        ),
        (
            "unknown stage",
            Method::GET,
            path(&format!("state/skills/{SKILL}/stages/beta/enablement")),
            None,
            400,
        ),
        (
            "account linking that is not an object",
            Method::PUT,
            path(&format!("state/skills/{SKILL}/stages/live/account-linking")),
            Some(json!("x")),
            400,
        ),
        (
            "no account linking configured",
            Method::GET,
            path(&format!("state/skills/{SKILL}/stages/live/account-linking")),
            None,
            404,
        ),
        (
            "unknown customer",
            Method::POST,
            path("auth-codes"),
            Some(json!({"customer": "nobody", "code": "c"})),
            400,
        ),
        (
            "no code",
            Method::POST,
            path("auth-codes"),
            Some(json!({"customer": "na-customer"})),
            400,
        ),
        (
            "unknown LWA client",
            Method::POST,
            path("lwa-auth-codes"),
            Some(json!({"customer": "na-customer", "clientId": "nope", "code": "c"})),
            400,
        ),
    ];
    for (case, method, url, body, expected) in cases {
        let (status, reply) = call(request(method, &url, None, body.as_ref())).await;
        assert_eq!(status, expected, "{case}: {reply}");
        assert!(reply["message"].is_string(), "{case}: {reply}");
    }
    assert_eq!(sim.account_linking(SKILL, "live"), None);
    assert!(!sim.stage_enabled(SKILL, "live"));
}
