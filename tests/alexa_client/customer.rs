//! The customer flow: enable, status and disable, and how the client finds the customer's
//! regional endpoint.

use alexa_skill_operator::alexa::AlexaError;
use serde_json::json;

use crate::{
    DiscoveryMode, Operation, Region, SKILL, ScriptedResponse, SimConfig, client, client_config,
    customer, enable_request, records, sandbox, start,
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
    assert!(
        matches!(err.error, AlexaError::InvalidRequest { .. }) && err.sent,
        "{err:?}"
    );
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

/// A listener that counts connections and never answers: where customer calls must not go.
struct Trap {
    addr: std::net::SocketAddr,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Trap {
    async fn start() -> Trap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(socket);
            }
        });
        Trap { addr, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Issue 15 item 5: the hint (from status) and discovery's answer only choose among Amazon's
/// regional hosts and the `--endpoint-override` hosts; anything else is never connected to.
#[tokio::test]
async fn customer_calls_never_go_to_hosts_outside_amazons_and_the_overrides() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = customer(Region::Na);
    let trap = Trap::start().await;
    let hints = [
        trap.addr.to_string(),
        format!("http://{}", trap.addr),
        format!("https://{}/", trap.addr),
        "localhost".to_string(),
    ];
    for hint in &hints {
        let (endpoint, status) = client
            .customer_status(&creds, Some(hint), SKILL)
            .await
            .unwrap();
        assert_eq!(endpoint, "api.amazonalexa.com", "{hint}");
        assert_eq!(status, None);
    }
    // Discovery listing foreign hosts: they are skipped, Amazon's host is used.
    let listed = json!({"endpoints": [trap.addr.to_string(), format!("http://{}", trap.addr), "api.amazonalexa.com"]});
    sim.faults().script(
        Operation::DiscoverEndpoints,
        vec![ScriptedResponse::json(200, listed)],
    );
    let code = sandbox::partner_code(Region::Na, 1);
    let (endpoint, status) = client
        .customer_enable(&creds, Some(&hints[1]), SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert_eq!(endpoint, "api.amazonalexa.com");
    assert!(status.is_linked());
    // Discovery listing only foreign hosts: Amazon's fallback list instead.
    let only_foreign = json!({"endpoints": [trap.addr.to_string()]});
    sim.faults().script(
        Operation::DiscoverEndpoints,
        vec![ScriptedResponse::json(200, only_foreign)],
    );
    let (endpoint, status) = client.customer_status(&creds, None, SKILL).await.unwrap();
    assert_eq!(endpoint, "api.amazonalexa.com");
    assert!(status.unwrap().is_linked());
    assert_eq!(trap.hits(), 0, "no connection to a host outside the set");
    assert_eq!(sim.count(Operation::CustomerEnable), 1);
}

/// Issue 15 item 4: a failed enable says whether the request carrying the code went out, so
/// the controller knows whether the single-use code may have been used.
#[tokio::test]
async fn a_failed_enable_says_whether_the_code_was_sent() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = customer(Region::Na);
    let code = sandbox::partner_code(Region::Na, 1);
    let request = enable_request(&code);

    // Login with Amazon refuses the credentials: nothing was sent.
    let bad = alexa_skill_operator::alexa::LwaCredentials::new(
        sandbox::CLIENT_ID,
        "wrong-client-secret-value",
        sandbox::customer_refresh_token(Region::Na),
    );
    let err = client
        .customer_enable(&bad, Some("api.amazonalexa.com"), SKILL, &request)
        .await
        .unwrap_err();
    assert!(
        matches!(err.error, AlexaError::Credentials { .. }),
        "{err:?}"
    );
    assert!(!err.sent);

    // Discovery answers something unreadable: nothing was sent.
    sim.faults().script(
        Operation::DiscoverEndpoints,
        vec![ScriptedResponse::json(200, json!({"unexpected": true}))],
    );
    let err = client
        .customer_enable(&creds, None, SKILL, &request)
        .await
        .unwrap_err();
    assert!(matches!(err.error, AlexaError::Decode { .. }), "{err:?}");
    assert!(!err.sent);

    // The endpoint refuses the connection: nothing was sent.
    let mut config = client_config(&sim);
    config
        .endpoint_overrides
        .insert("api.amazonalexa.com".into(), "http://127.0.0.1:1".into());
    let refusing = alexa_skill_operator::alexa::AlexaClient::new(config).unwrap();
    let err = refusing
        .customer_enable(&creds, Some("api.amazonalexa.com"), SKILL, &request)
        .await
        .unwrap_err();
    assert!(matches!(err.error, AlexaError::Transport { .. }), "{err:?}");
    assert!(!err.sent);
    assert_eq!(sim.count(Operation::CustomerEnable), 0);

    // Amazon carries the request out and the answer is lost: sent, and sent once.
    sim.faults()
        .drop_after_applying(Operation::CustomerEnable, 1);
    let err = client
        .customer_enable(&creds, Some("api.amazonalexa.com"), SKILL, &request)
        .await
        .unwrap_err();
    assert!(matches!(err.error, AlexaError::Transport { .. }), "{err:?}");
    assert!(err.sent);
    assert_eq!(sim.count(Operation::CustomerEnable), 1);
    assert!(
        sim.customer_enablement(sandbox::customer(Region::Na), SKILL)
            .is_some_and(|r| r.account_link_status == "LINKED"),
        "the simulator applied the request"
    );
}

/// The simulator's late linking: the enable answers NOT_LINKED, the first N reads too.
#[tokio::test]
async fn late_linking_shows_not_linked_for_the_first_reads() {
    let sim = start(SimConfig::default()).await;
    sim.faults().set_link_after_reads(2);
    let client = client(&sim);
    let creds = customer(Region::Na);
    let code = sandbox::partner_code(Region::Na, 1);
    let (endpoint, status) = client
        .customer_enable(&creds, None, SKILL, &enable_request(&code))
        .await
        .unwrap();
    assert!(status.is_enabled() && !status.is_linked(), "{status:?}");
    let mut linked = Vec::new();
    for _ in 0..3 {
        let (_, status) = client
            .customer_status(&creds, Some(&endpoint), SKILL)
            .await
            .unwrap();
        linked.push(status.unwrap().is_linked());
    }
    assert_eq!(linked, vec![false, false, true]);
}
