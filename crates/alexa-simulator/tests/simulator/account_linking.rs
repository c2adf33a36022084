//! SMAPI account linking: PUT, GET and DELETE with ETags, body shapes, validation.

use alexa_simulator::{
    Divergences, FaultConfig, GetShape, Operation, PutAnswer, SimConfig, Simulator, sandbox,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    SKILL, auth_code_config, call, dev_token, etag, http, linking_url, put_linking, start,
    start_with, status_body, status_of,
};

#[tokio::test]
async fn account_linking_put_get_delete_with_etags() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    let url = linking_url(&sim.url(), SKILL, "development");
    let get = || http().get(&url).bearer_auth(&token);
    let delete = || http().delete(&url).bearer_auth(&token);
    let put = async |body: &Value, if_match: Option<&str>| {
        put_linking(&sim, &token, SKILL, "development", body, if_match).await
    };

    let (status, body) = call(get()).await;
    assert_eq!(status, 404);
    assert!(body["message"].is_string() && body["code"].is_string());

    let created = put(&auth_code_config(), None).await;
    assert_eq!(created.status().as_u16(), 204);
    let first_etag = etag(&created);
    assert_eq!(sim.etag(SKILL, "development"), Some(first_etag.clone()));

    let got = get().send().await.unwrap();
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
    let (status, stale_body) =
        status_body(put(&auth_code_config(), Some("not-current")).await).await;
    assert_eq!(status, 412);
    assert!(stale_body["code"].is_string());
    let mut changed = auth_code_config();
    changed["scopes"] = json!(["profile", "email"]);
    let updated = put(&changed, Some(&first_etag)).await;
    assert_eq!(updated.status().as_u16(), 204);
    let second_etag = etag(&updated);
    assert_ne!(second_etag, first_etag);
    // Quoted ETags (as HTTP clients echo them) match too.
    let quoted = put(&changed, Some(&format!("\"{second_etag}\""))).await;
    assert_eq!(quoted.status().as_u16(), 204);
    let third_etag = etag(&quoted);

    // An out-of-band change (a human in the console) invalidates the operator's ETag.
    sim.set_account_linking(
        SKILL,
        "development",
        json!({"type": "IMPLICIT", "authorizationUrl": "https://x.example.com"}),
    );
    assert_ne!(sim.etag(SKILL, "development").unwrap(), third_etag);
    let after_oob = put(&changed, Some(&third_etag)).await;
    assert_eq!(after_oob.status().as_u16(), 412);

    for (step, request, expected) in [
        ("delete", delete(), 204),
        ("get after delete", get(), 404),
        ("delete again", delete(), 404),
    ] {
        assert_eq!(status_of(request).await, expected, "{step}");
    }
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
    let url = linking_url(&sim.url(), SKILL, "live");
    let implicit = json!({"type": "IMPLICIT", "authorizationUrl": "https://auth.example.com/a", "clientId": "c"});
    assert_eq!(
        put_linking(&sim, &token, SKILL, "live", &implicit, None)
            .await
            .status()
            .as_u16(),
        204
    );
    let (_, body) = call(http().get(&url).bearer_auth(&token)).await;
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
    assert_eq!(
        status_of(http().put(&url).bearer_auth(&token).json(&own)).await,
        204
    );
    let (_, body) = call(http().get(&url).bearer_auth(&token)).await;
    assert_eq!(body["redirectUrls"], json!(["https://mine.example.com/cb"]));
    assert!(body.get("accountLinkingResponse").is_none());
}

/// `auth_code_config()` with one field replaced.
fn with(field: &str, value: Value) -> Value {
    let mut config = auth_code_config();
    config[field] = value;
    config
}

fn numbered(prefix: &str, suffix: &str, count: usize) -> Value {
    json!(
        (0..count)
            .map(|i| format!("{prefix}{i}{suffix}"))
            .collect::<Vec<_>>()
    )
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
            with("domains", numbered("d", ".example.com", 16)),
            "MAX_ITEMS_EXCEEDED",
        ),
        (with("scopes", numbered("s", "", 16)), "MAX_ITEMS_EXCEEDED"),
        (
            with("accessTokenScheme", json!("DIGEST")),
            "INVALID_ENUM_VALUE",
        ),
        (
            with(
                "authorizationUrlsByPlatform",
                json!([{"platformType": "Windows", "platformAuthorizationUrl": "https://w"}]),
            ),
            "INVALID_ENUM_VALUE",
        ),
        (
            with("voiceForwardAccountLinking", json!("MAYBE")),
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
    let fifteen = with("domains", numbered("d", ".example.com", 15));
    assert_eq!(
        put_linking(&sim, &token, SKILL, "development", &fifteen, None)
            .await
            .status()
            .as_u16(),
        204
    );
}

/// Path problems: each row a request, its status and the error code it must carry (top-level
/// `code` or the first violation's).
#[tokio::test]
async fn account_linking_paths_are_checked_before_the_body() {
    let sim = start().await;
    let token = dev_token(&sim).await;
    let base = sim.url();
    let long_id = "a".repeat(256);
    let wrapped = json!({"accountLinkingRequest": auth_code_config()});
    let cases = [
        (
            "skill id over 255 characters",
            Method::GET,
            linking_url(&base, &long_id, "development"),
            None,
            400,
            Some("INVALID_STRING_LENGTH"),
        ),
        (
            "unknown stage",
            Method::GET,
            linking_url(&base, SKILL, "beta"),
            None,
            400,
            Some("INVALID_ENUM_VALUE"),
        ),
        (
            "unknown skill",
            Method::GET,
            linking_url(&base, "amzn1.ask.skill.unknown", "development"),
            None,
            404,
            None,
        ),
        (
            "skill without a live stage",
            Method::PUT,
            linking_url(&base, sandbox::DEV_ONLY_SKILL_ID, "live"),
            Some(wrapped),
            404,
            None,
        ),
    ];
    for (case, method, url, body, expected, code) in cases {
        let mut request = http().request(method, &url).bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, body) = call(request).await;
        assert_eq!(status, expected, "{case}: {body}");
        if let Some(code) = code {
            assert!(
                body["code"] == code || body["violations"][0]["code"] == code,
                "{case}: no {code} in {body}"
            );
        }
    }
    let malformed = http()
        .put(linking_url(&base, SKILL, "development"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body("{not json");
    assert_eq!(status_of(malformed).await, 400);
}

/// PUTs `body` on the sandbox skill's development stage, then GETs it: the PUT's status, its
/// ETag header (if any), its body text and the GET's body.
async fn put_then_get(sim: &Simulator, body: &Value) -> (u16, Option<String>, String, Value) {
    let token = dev_token(sim).await;
    let put = put_linking(sim, &token, SKILL, "development", body, None).await;
    let status = put.status().as_u16();
    let etag = put
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    let text = put.text().await.unwrap();
    let url = linking_url(&sim.url(), SKILL, "development");
    let (got, shown) = call(http().get(&url).bearer_auth(&token)).await;
    assert_eq!(got, 200);
    (status, etag, text, shown)
}

fn with_faults(faults: FaultConfig) -> SimConfig {
    SimConfig {
        faults,
        ..SimConfig::default()
    }
}

fn with_divergences(divergences: Divergences) -> SimConfig {
    with_faults(FaultConfig {
        divergences,
        ..FaultConfig::default()
    })
}

#[tokio::test]
async fn seed_literal_get_omits_skip_on_enablement_unless_echo_is_switched_on() {
    let sim = start().await;
    let mut config = auth_code_config();
    config["skipOnEnablement"] = json!(true);
    let (status, _, _, shown) = put_then_get(&sim, &config).await;
    assert_eq!(status, 204);
    assert_eq!(
        sim.account_linking(SKILL, "development").unwrap()["skipOnEnablement"],
        true,
        "stored"
    );
    assert!(shown.get("skipOnEnablement").is_none(), "{shown}");
    assert!(shown.get("clientSecret").is_none(), "{shown}");

    // Switched on through the admin API, like any fault.
    let admin = format!("{}/__sim/faults", sim.url());
    let body = json!({"divergences": {"echoSkipOnEnablement": true}});
    assert_eq!(status_of(http().put(&admin).json(&body)).await, 200);
    let (_, _, _, shown) = put_then_get(&sim, &config).await;
    assert_eq!(shown["skipOnEnablement"], true);
    assert!(shown.get("clientSecret").is_none(), "never echoed");
}

#[tokio::test]
async fn put_answers_204_by_default_or_200_with_the_etag_and_no_body() {
    let sim = start().await;
    let (status, _, text, _) = put_then_get(&sim, &auth_code_config()).await;
    assert_eq!((status, text.as_str()), (204, ""));

    let sim = start_with(with_faults(FaultConfig {
        put_answer: PutAnswer::OkWithEtag,
        ..FaultConfig::default()
    }))
    .await;
    let (status, etag, text, _) = put_then_get(&sim, &auth_code_config()).await;
    assert_eq!((status, text.as_str()), (200, ""));
    assert_eq!(etag, sim.etag(SKILL, "development"));
    assert!(etag.is_some());
}

#[tokio::test]
async fn reversed_lists_come_back_in_the_other_order() {
    let sim = start_with(with_divergences(Divergences {
        reverse_lists: true,
        ..Divergences::default()
    }))
    .await;
    let mut config = auth_code_config();
    config["scopes"] = json!(["profile", "email"]);
    config["domains"] = json!(["a.example.com", "b.example.com"]);
    let (_, _, _, shown) = put_then_get(&sim, &config).await;
    assert_eq!(shown["scopes"], json!(["email", "profile"]));
    assert_eq!(shown["domains"], json!(["b.example.com", "a.example.com"]));
}

#[tokio::test]
async fn normalised_urls_are_stored_lower_cased_with_a_trailing_slash() {
    let sim = start_with(with_divergences(Divergences {
        normalize_urls: true,
        ..Divergences::default()
    }))
    .await;
    let mut config = auth_code_config();
    config["authorizationUrl"] = json!("HTTPS://Auth.Example.com/authorize");
    let (status, _, _, shown) = put_then_get(&sim, &config).await;
    assert_eq!(status, 204, "accepted");
    assert_eq!(
        shown["authorizationUrl"],
        "https://auth.example.com/authorize/"
    );
    assert_eq!(shown["accessTokenUrl"], "https://auth.example.com/token/");
    assert_eq!(shown["clientId"], "alexa-skill", "other fields untouched");
}

#[tokio::test]
async fn a_dropped_field_is_accepted_but_never_stored() {
    let sim = start_with(with_divergences(Divergences {
        drop_fields: vec!["defaultTokenExpirationInSeconds".to_string()],
        ..Divergences::default()
    }))
    .await;
    let (status, _, _, shown) = put_then_get(&sim, &auth_code_config()).await;
    assert_eq!(status, 204, "accepted");
    assert!(
        shown.get("defaultTokenExpirationInSeconds").is_none(),
        "{shown}"
    );
    assert_eq!(shown["scopes"], json!(["profile"]));
}
