//! Skill enablement: the developer's stage enablement (SMAPI) and a customer's enablement, with
//! regions, endpoint discovery and single-use partner codes.

use alexa_simulator::{DiscoveryMode, Operation, Region, SimConfig, sandbox};
use reqwest::Method;
use serde_json::json;

use crate::support::{
    SKILL, call, customer_token, customer_url, dev_token, discovery_url, enable_request,
    enablement_url, http, run_steps, start, start_with, status_of,
};

#[tokio::test]
async fn enabling_one_stage_disables_the_other() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    let dev = enablement_url(&sim.url(), SKILL, "development");
    let live = enablement_url(&sim.url(), SKILL, "live");
    // GET answers 204 for the enabled stage, 404 for any other.
    run_steps(
        Some(&token),
        &[
            (Method::GET, &dev, None, 404),
            (Method::PUT, &dev, None, 204),
            (Method::GET, &dev, None, 204),
        ],
    )
    .await;
    assert!(sim.stage_enabled(SKILL, "development"));
    run_steps(
        Some(&token),
        &[
            (Method::PUT, &live, None, 204),
            (Method::GET, &live, None, 204),
            (Method::GET, &dev, None, 404),
        ],
    )
    .await;
    assert!(!sim.stage_enabled(SKILL, "development"));
    run_steps(
        Some(&token),
        &[
            (Method::DELETE, &live, None, 204),
            (Method::GET, &live, None, 404),
            (Method::DELETE, &live, None, 404),
        ],
    )
    .await;
    sim.set_stage_enabled(SKILL, "development", true);
    run_steps(Some(&token), &[(Method::GET, &dev, None, 204)]).await;
    assert_eq!(sim.count(Operation::GetStageEnablement), 6);
    assert_eq!(sim.count(Operation::EnableStage), 2);
    assert_eq!(sim.count(Operation::DisableStage), 2);
}

#[tokio::test]
async fn customer_enable_status_disable_with_single_use_codes() {
    let sim = start().await;
    let token = customer_token(&sim, Region::Na).await;
    let url = customer_url(&sim.url(), sandbox::SKILL_ID_2);
    let request = enable_request("live", &sandbox::partner_code(Region::Na, 1));

    let (status, body) = call(http().get(&url).bearer_auth(&token)).await;
    assert_eq!(status, 404);
    assert!(body["code"].is_string());

    let (status, body) = call(http().post(&url).bearer_auth(&token).json(&request)).await;
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

    let (status, body) = call(http().get(&url).bearer_auth(&token)).await;
    assert_eq!((status, body), (200, expected));

    // Codes that cannot enable: each is refused with Amazon's error body.
    let refused = [
        ("the code was consumed", request.clone()),
        ("unknown code", enable_request("live", "made-up-code")),
        (
            "another customer's code",
            enable_request("live", &sandbox::partner_code(Region::Eu, 1)),
        ),
    ];
    for (case, body) in refused {
        let (status, reply) = call(http().post(&url).bearer_auth(&token).json(&body)).await;
        assert_eq!(status, 400, "{case}: {reply}");
        assert!(
            reply["message"].is_string() && reply["code"].is_string(),
            "{case}: {reply}"
        );
    }
    // Missing fields: 400 with violations.
    let (status, body) = call(
        http()
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"stage": "prod"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["violations"].as_array().unwrap().len() >= 2);

    run_steps(
        Some(&token),
        &[
            (Method::DELETE, &url, None, 200),
            (Method::GET, &url, None, 404),
        ],
    )
    .await;
    assert!(
        sim.customer_enablement(sandbox::customer(Region::Na), sandbox::SKILL_ID_2)
            .is_none()
    );

    // A code seeded at run time works once.
    sim.add_auth_code("fresh-code", sandbox::customer(Region::Na));
    let unknown_skill = customer_url(&sim.url(), "amzn1.ask.skill.unknown");
    run_steps(
        Some(&token),
        &[
            (
                Method::POST,
                &url,
                Some(enable_request("live", "fresh-code")),
                201,
            ),
            (Method::GET, &unknown_skill, None, 404),
        ],
    )
    .await;
}

#[tokio::test]
async fn customer_calls_must_reach_their_region_and_use_customer_tokens() {
    let sim = start().await;
    let eu = customer_token(&sim, Region::Eu).await;
    let dev = dev_token(&sim).await;
    let request = enable_request("development", &sandbox::partner_code(Region::Eu, 1));

    let (_, discovery) = call(http().get(discovery_url(&sim.url())).bearer_auth(&eu)).await;
    assert_eq!(discovery, json!({"endpoints": ["api.eu.amazonalexa.com"]}));

    run_steps(
        Some(&eu),
        &[
            (
                Method::POST,
                &customer_url(&sim.url(), SKILL),
                Some(request.clone()),
                401,
            ),
            // The wrong-region attempt did not consume the code.
            (
                Method::POST,
                &customer_url(&sim.region_url(Region::Eu), SKILL),
                Some(request),
                201,
            ),
        ],
    )
    .await;
    // A developer token is refused on every customer path.
    run_steps(
        Some(&dev),
        &[
            (Method::GET, &customer_url(&sim.url(), SKILL), None, 403),
            (Method::GET, &discovery_url(&sim.url()), None, 403),
        ],
    )
    .await;

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
    assert_eq!(
        status_of(http().get(customer_url(&sim.url(), SKILL)).bearer_auth(&fe)).await,
        404
    );
    let (status, body) = call(
        http()
            .get(customer_url(&sim.region_url(Region::Fe), SKILL))
            .bearer_auth(&fe),
    )
    .await;
    assert_eq!(status, 404, "reached FE, but the skill is not enabled");
    assert!(body["message"].as_str().unwrap().contains("not enabled"));
}

#[tokio::test]
async fn discovery_modes_exercise_the_fallback_rules() {
    let sim = start().await;
    let na = customer_token(&sim, Region::Na).await;
    let url = discovery_url(&sim.url());
    let cases = [
        (
            DiscoveryMode::Multiple,
            200,
            json!({"endpoints": ["api.eu.amazonalexa.com", "api.fe.amazonalexa.com", "api.amazonalexa.com"]}),
        ),
        (DiscoveryMode::ServerError, 500, json!(null)),
        (
            DiscoveryMode::Normal,
            200,
            json!({"endpoints": ["api.amazonalexa.com"]}),
        ),
    ];
    for (mode, expected_status, expected_body) in cases {
        sim.faults().set_discovery(mode);
        let (status, body) = call(http().get(&url).bearer_auth(&na)).await;
        assert_eq!(status, expected_status, "{mode:?}: {body}");
        if expected_status == 200 {
            assert_eq!(body, expected_body, "{mode:?}");
        }
    }
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 3);
}
