//! The customer flow: enable, status and disable, and how the client finds the customer's
//! regional endpoint.

use alexa_skill_operator::alexa::AlexaError;
use serde_json::json;

use crate::{
    DiscoveryMode, Operation, Region, SKILL, SimConfig, client, customer, enable_request, records,
    sandbox, start,
};

#[tokio::test]
async fn customer_enable_status_and_disable() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = customer(Region::Na);

    let endpoints = client.discover_endpoints(&creds).await.unwrap();
    assert_eq!(endpoints, vec!["api.amazonalexa.com".to_string()]);

    let (endpoint, status) = client.customer_status(&creds, None, SKILL).await.unwrap();
    assert_eq!(endpoint, "api.amazonalexa.com");
    assert_eq!(status, None);

    let code = sandbox::partner_code(Region::Na, 1);
    let (endpoint, status) = client
        .customer_enable(&creds, Some(&endpoint), SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert_eq!(endpoint, "api.amazonalexa.com");
    assert!(status.is_enabled() && status.is_linked(), "{status:?}");
    assert_eq!(
        status.user_id.as_deref(),
        Some(sandbox::user_id(Region::Na))
    );
    assert_eq!(status.skill_id.as_deref(), Some(SKILL));

    let (_, status) = client
        .customer_status(&creds, Some(&endpoint), SKILL)
        .await
        .unwrap();
    assert!(status.unwrap().is_linked());

    // The single-use code is spent: a second enable is an invalid request, without the code
    // in the message.
    let err = client
        .customer_enable(&creds, Some(&endpoint), SKILL, &enable_request(&code))
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::InvalidRequest { .. }), "{err:?}");
    assert!(!err.to_string().contains(&code));

    let endpoint = client
        .customer_disable(&creds, Some(&endpoint), SKILL)
        .await
        .unwrap();
    assert_eq!(endpoint, "api.amazonalexa.com");
    let (_, status) = client
        .customer_status(&creds, Some(&endpoint), SKILL)
        .await
        .unwrap();
    assert_eq!(status, None);
    let err = client
        .customer_disable(&creds, Some(&endpoint), SKILL)
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::NotFound { .. }), "{err:?}");

    // The enable body on the wire.
    let enable = &records(&sim, Operation::CustomerEnable)[0];
    assert_eq!(
        enable.body.clone().unwrap(),
        json!({"stage": "live", "accountLinkRequest": {
            "type": "AUTH_CODE", "authCode": "***",
            "redirectUri": "https://app.example.com/alexa/callback"
        }})
    );
    // Discovery: the explicit call, the first status call without a hint, and the last disable
    // (a 404 from the hinted endpoint may mean "wrong region", so it is checked once).
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 3);
}

#[tokio::test]
async fn hinted_endpoint_skips_discovery_and_a_wrong_hint_rediscovers() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = customer(Region::Eu);
    let code = sandbox::partner_code(Region::Eu, 1);
    let (endpoint, _) = client
        .customer_enable(
            &creds,
            Some("api.eu.amazonalexa.com"),
            SKILL,
            &enable_request(&code),
        )
        .await
        .unwrap();
    assert_eq!(endpoint, "api.eu.amazonalexa.com");
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 0);

    // A wrong hint (NA for an EU customer) answers 401: discover, then use EU.
    let (endpoint, status) = client
        .customer_status(&creds, Some("api.amazonalexa.com"), SKILL)
        .await
        .unwrap();
    assert_eq!(endpoint, "api.eu.amazonalexa.com");
    assert!(status.unwrap().is_enabled());
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 1);
    let regions: Vec<Option<Region>> = records(&sim, Operation::CustomerStatus)
        .iter()
        .map(|r| r.region)
        .collect();
    assert_eq!(regions, vec![Some(Region::Na), Some(Region::Eu)]);
    // A wrong-region 401 does not cost a token refresh.
    assert_eq!(sim.count(Operation::Token), 1);
}

#[tokio::test]
async fn discovery_with_several_endpoints_tries_them_in_order() {
    let sim = start(SimConfig::default()).await;
    sim.faults().set_discovery(DiscoveryMode::Multiple);
    let client = client(&sim);
    let creds = customer(Region::Eu);
    let code = sandbox::partner_code(Region::Eu, 2);
    let (endpoint, status) = client
        .customer_enable(&creds, None, SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert_eq!(endpoint, "api.eu.amazonalexa.com");
    assert!(status.is_linked());
    let tried: Vec<(Option<Region>, u16)> = records(&sim, Operation::CustomerEnable)
        .iter()
        .map(|r| (r.region, r.status))
        .collect();
    // The simulator lists the customer's own region last.
    assert_eq!(
        tried,
        vec![
            (Some(Region::Na), 401),
            (Some(Region::Fe), 401),
            (Some(Region::Eu), 201)
        ]
    );
    assert_eq!(
        sim.count(Operation::Token),
        1,
        "no refresh per wrong region"
    );
}

#[tokio::test]
async fn wrong_regions_answering_404_are_skipped_too() {
    let sim = start(SimConfig {
        wrong_region_status: 404,
        ..SimConfig::default()
    })
    .await;
    sim.faults().set_discovery(DiscoveryMode::Multiple);
    let client = client(&sim);
    let creds = customer(Region::Fe);
    // Not enabled anywhere: every region says 404, which reads as "not enabled".
    let (_, status) = client.customer_status(&creds, None, SKILL).await.unwrap();
    assert_eq!(status, None);
    let code = sandbox::partner_code(Region::Fe, 2);
    let (endpoint, _) = client
        .customer_enable(&creds, None, SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    // Enabled: the 404s of the other regions are passed over for the answer from FE.
    let (endpoint, status) = client.customer_status(&creds, None, SKILL).await.unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    assert!(status.unwrap().is_linked());
    let endpoint = client.customer_disable(&creds, None, SKILL).await.unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    assert_eq!(sim.count(Operation::Token), 1);
}

#[tokio::test]
async fn discovery_server_error_falls_back_to_na_eu_fe_in_order() {
    let sim = start(SimConfig::default()).await;
    sim.faults().set_discovery(DiscoveryMode::ServerError);
    let client = client(&sim);
    let creds = customer(Region::Fe);
    let code = sandbox::partner_code(Region::Fe, 1);
    let (endpoint, _) = client
        .customer_enable(&creds, None, SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    let (endpoint, status) = client.customer_status(&creds, None, SKILL).await.unwrap();
    assert_eq!(endpoint, "api.fe.amazonalexa.com");
    assert!(status.unwrap().is_enabled());
    let regions: Vec<Option<Region>> = records(&sim, Operation::CustomerStatus)
        .iter()
        .map(|r| r.region)
        .collect();
    assert_eq!(
        regions,
        vec![Some(Region::Na), Some(Region::Eu), Some(Region::Fe)]
    );
    // Discovery is not retried in-call: the fallback list is the retry.
    assert_eq!(sim.count(Operation::DiscoverEndpoints), 2);
}
