//! Account linking: the round trip, the PUT body on the wire, and the GET shapes Amazon answers
//! with.

use alexa_skill_operator::alexa::{AccountLinkingRequest, AlexaError};
use alexa_skill_operator::crd::account_linking::{AccessTokenScheme, AccountLinkingType};
use alexa_skill_operator::crd::common::Stage;
use serde_json::json;

use crate::{
    GetShape, LINK_SECRET, Operation, SKILL, ScriptedResponse, SimConfig, client, contains_null,
    link_request, owner, records, sandbox, start,
};

#[tokio::test]
async fn account_linking_round_trip() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();

    assert_eq!(
        client
            .get_account_linking(&creds, SKILL, Stage::Development)
            .await
            .unwrap(),
        None,
        "not configured yet reads as None"
    );
    let written = client
        .update_account_linking(&creds, SKILL, Stage::Development, &link_request(), None)
        .await
        .unwrap();
    assert_eq!(
        written,
        sim.etag(SKILL, "development"),
        "the PUT's ETag is returned"
    );
    let read = client
        .get_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap()
        .expect("configured now");
    let info = &read.value;
    assert_eq!(info.type_, Some(AccountLinkingType::AuthCode));
    assert_eq!(info.client_id.as_deref(), Some("alexa-skill"));
    assert_eq!(info.scopes, vec!["profile".to_string()]);
    assert_eq!(info.access_token_scheme, Some(AccessTokenScheme::HttpBasic));
    assert_eq!(info.default_token_expiration_in_seconds, Some(3600));
    assert_eq!(
        info.skip_on_enablement, None,
        "request-only: the seed's GET does not return it"
    );
    assert_eq!(
        sim.account_linking(SKILL, "development").unwrap()["skipOnEnablement"],
        true,
        "the PUT carried it"
    );
    assert_eq!(info.authorization_urls_by_platform.len(), 1);
    assert!(
        !info.redirect_urls.is_empty(),
        "Amazon's redirect URLs are surfaced"
    );
    assert_eq!(
        info.differences_from(&link_request()),
        Vec::<&str>::new(),
        "what was written reads back without drift"
    );
    let etag = read.etag.clone().expect("GET returns an ETag");
    assert_eq!(Some(etag.clone()), sim.etag(SKILL, "development"));

    // Update with the ETag just read.
    let mut changed = link_request();
    changed.scopes = vec!["profile".into(), "email".into()];
    client
        .update_account_linking(&creds, SKILL, Stage::Development, &changed, Some(&etag))
        .await
        .unwrap();
    let stored = sim.account_linking(SKILL, "development").unwrap();
    assert_eq!(stored["scopes"], json!(["profile", "email"]));
    assert_eq!(stored["clientSecret"], LINK_SECRET);

    client
        .delete_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap();
    assert!(sim.account_linking(SKILL, "development").is_none());
    let again = client
        .delete_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap_err();
    assert!(matches!(again, AlexaError::NotFound { .. }), "{again:?}");
}

#[tokio::test]
async fn put_body_is_wrapped_without_nulls_and_if_match_only_when_given() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    let minimal = AccountLinkingRequest {
        type_: Some(AccountLinkingType::Implicit),
        authorization_url: Some("https://auth.example.com/authorize".into()),
        client_id: Some("alexa-skill".into()),
        ..AccountLinkingRequest::default()
    };
    client
        .update_account_linking(&creds, SKILL, Stage::Development, &minimal, None)
        .await
        .unwrap();
    let etag = sim.etag(SKILL, "development").unwrap();
    client
        .update_account_linking(
            &creds,
            SKILL,
            Stage::Development,
            &link_request(),
            Some(&etag),
        )
        .await
        .unwrap();

    let puts = records(&sim, Operation::UpdateAccountLinking);
    assert_eq!(puts.len(), 2);
    assert_eq!(
        puts[0].path,
        format!("/v1/skills/{SKILL}/stages/development/accountLinkingClient")
    );
    assert_eq!(puts[0].if_match, None, "no If-Match without a known ETag");
    assert_eq!(puts[1].if_match.as_deref(), Some(etag.as_str()), "verbatim");
    let first = puts[0].body.clone().unwrap();
    assert_eq!(
        first,
        json!({"accountLinkingRequest": {
            "type": "IMPLICIT",
            "authorizationUrl": "https://auth.example.com/authorize",
            "clientId": "alexa-skill"
        }})
    );
    let second = puts[1].body.clone().unwrap();
    assert!(!contains_null(&second), "{second}");
    let inner = second["accountLinkingRequest"].as_object().unwrap();
    for key in [
        "type",
        "authorizationUrl",
        "clientId",
        "scopes",
        "accessTokenUrl",
        "clientSecret",
        "accessTokenScheme",
        "defaultTokenExpirationInSeconds",
        "authorizationUrlsByPlatform",
        "skipOnEnablement",
        "voiceForwardAccountLinking",
    ] {
        assert!(inner.contains_key(key), "{key} missing from {second}");
    }
    assert!(!inner.contains_key("domains"), "empty lists are omitted");
    // The secret reached Amazon (the simulator's store), never its log.
    assert_eq!(
        sim.account_linking(SKILL, "development").unwrap()["clientSecret"],
        LINK_SECRET
    );
}

#[tokio::test]
async fn get_reads_wrapped_and_flat_bodies_alike() {
    let sim = start(SimConfig {
        get_shape: GetShape::Wrapped,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let creds = owner();
    let skill = sandbox::SKILL_ID_2; // preset account linking on development
    let wrapped = client
        .get_account_linking(&creds, skill, Stage::Development)
        .await
        .unwrap()
        .unwrap();
    sim.set_get_shape(GetShape::Flat);
    let flat = client
        .get_account_linking(&creds, skill, Stage::Development)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wrapped, flat);
    assert_eq!(
        flat.value.client_id.as_deref(),
        Some("example-alexa-client")
    );
    assert_eq!(flat.value.type_, Some(AccountLinkingType::AuthCode));
    assert!(!flat.value.redirect_urls.is_empty());

    // Odd but plausible answers: "true" as a string, unknown fields, numbers as strings.
    sim.faults().script(
        Operation::GetAccountLinking,
        vec![
            ScriptedResponse::json(
                200,
                json!({"accountLinkingResponse": {
                    "type": "IMPLICIT",
                    "authorizationUrl": "https://a",
                    "skipOnEnablement": "true",
                    "defaultTokenExpirationInSeconds": "20",
                    "reciprocalAccessTokenUrl": "https://r",
                    "brandNewField": {"x": [1]}
                }}),
            )
            .with_header("ETag", "\"v7\""),
        ],
    );
    let odd = client
        .get_account_linking(&creds, skill, Stage::Development)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(odd.etag.as_deref(), Some("\"v7\""));
    assert_eq!(odd.value.skip_on_enablement, Some(true));
    assert_eq!(odd.value.default_token_expiration_in_seconds, Some(20));
    assert_eq!(
        odd.value.reciprocal_access_token_url.as_deref(),
        Some("https://r")
    );
    assert!(odd.value.domains.is_empty());
}
