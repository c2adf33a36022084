//! Account Linking Management API: validation of the accountLinkingRequest schema, the GET body
//! (secret removed, Alexa redirect URLs added) and ETag-guarded writes.

use serde_json::{Map, Value};

use crate::GetShape;
use crate::Stage;
use crate::reply::{Reply, Violation};
use crate::requests::FaultKind;
use crate::state::Store;

/// Fields Amazon knows; anything else in a PUT is ignored, as Amazon does.
const KNOWN_FIELDS: [&str; 14] = [
    "type",
    "authorizationUrl",
    "domains",
    "clientId",
    "scopes",
    "accessTokenUrl",
    "clientSecret",
    "accessTokenScheme",
    "defaultTokenExpirationInSeconds",
    "redirectUrls",
    "authorizationUrlsByPlatform",
    "skipOnEnablement",
    "voiceForwardAccountLinking",
    "reciprocalAccessTokenUrl",
];

const MAX_ITEMS: usize = 15;

/// The Alexa redirect URL bases the schema seed lists.
const REDIRECT_BASES: [&str; 2] = ["https://pitangui.amazon.com", "https://layla.amazon.com"];

fn prop(name: &str) -> String {
    format!("accountLinkingRequest.{name}")
}

fn check_enum(
    config: &Map<String, Value>,
    name: &str,
    allowed: &[&str],
    violations: &mut Vec<Violation>,
) {
    match config.get(name) {
        None | Some(Value::Null) => {}
        Some(Value::String(value)) if allowed.contains(&value.as_str()) => {}
        Some(other) => violations.push(Violation::new(
            "INVALID_ENUM_VALUE",
            format!(
                "Property '{}' has value {other}; valid values are {}.",
                prop(name),
                allowed.join(", ")
            ),
        )),
    }
}

fn check_string(config: &Map<String, Value>, name: &str, violations: &mut Vec<Violation>) {
    match config.get(name) {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => violations.push(Violation::new(
            "INVALID_DATA_TYPE",
            format!("Property '{}' must be a string.", prop(name)),
        )),
    }
}

fn check_string_list(config: &Map<String, Value>, name: &str, violations: &mut Vec<Violation>) {
    match config.get(name) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.iter().any(|item| !item.is_string()) {
                violations.push(Violation::new(
                    "INVALID_DATA_TYPE",
                    format!("Property '{}' must be an array of strings.", prop(name)),
                ));
            }
            if items.len() > MAX_ITEMS {
                violations.push(Violation::new(
                    "MAX_ITEMS_EXCEEDED",
                    format!(
                        "Property '{}' has {} items; at most {MAX_ITEMS} are allowed.",
                        prop(name),
                        items.len()
                    ),
                ));
            }
        }
        Some(_) => violations.push(Violation::new(
            "INVALID_DATA_TYPE",
            format!("Property '{}' must be an array of strings.", prop(name)),
        )),
    }
}

fn present(config: &Map<String, Value>, name: &str) -> bool {
    match config.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// Checks an accountLinkingRequest object against the seed's rules and keeps only the fields
/// Amazon knows. Violations are reported all at once, as SMAPI does.
pub(crate) fn validate(value: &Value) -> Result<Map<String, Value>, Vec<Violation>> {
    let Value::Object(input) = value else {
        return Err(vec![Violation::new(
            "INVALID_DATA_TYPE",
            "Property 'accountLinkingRequest' must be an object.",
        )]);
    };
    let config: Map<String, Value> = input
        .iter()
        .filter(|(key, _)| KNOWN_FIELDS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut violations = Vec::new();
    check_enum(&config, "type", &["AUTH_CODE", "IMPLICIT"], &mut violations);
    check_enum(
        &config,
        "accessTokenScheme",
        &["HTTP_BASIC", "REQUEST_BODY_CREDENTIALS"],
        &mut violations,
    );
    check_enum(
        &config,
        "voiceForwardAccountLinking",
        &["ENABLED", "DISABLED"],
        &mut violations,
    );
    for name in [
        "authorizationUrl",
        "clientId",
        "accessTokenUrl",
        "clientSecret",
        "reciprocalAccessTokenUrl",
    ] {
        check_string(&config, name, &mut violations);
    }
    for name in ["domains", "scopes", "redirectUrls"] {
        check_string_list(&config, name, &mut violations);
    }
    match config.get("defaultTokenExpirationInSeconds") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some() => {}
        Some(_) => violations.push(Violation::new(
            "INVALID_DATA_TYPE",
            format!(
                "Property '{}' must be a non-negative integer.",
                prop("defaultTokenExpirationInSeconds")
            ),
        )),
    }
    match config.get("skipOnEnablement") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(Value::String(s)) if s == "true" || s == "false" => {}
        Some(_) => violations.push(Violation::new(
            "INVALID_DATA_TYPE",
            format!("Property '{}' must be a boolean.", prop("skipOnEnablement")),
        )),
    }
    match config.get("authorizationUrlsByPlatform") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let name = format!("authorizationUrlsByPlatform[{i}]");
                let Value::Object(entry) = item else {
                    violations.push(Violation::new(
                        "INVALID_DATA_TYPE",
                        format!("Property '{}' must be an object.", prop(&name)),
                    ));
                    continue;
                };
                match entry.get("platformType") {
                    Some(Value::String(p)) if p == "iOS" || p == "Android" => {}
                    None | Some(Value::Null) => violations.push(Violation::new(
                        "MISSING_REQUIRED_PROPERTY",
                        format!("Property '{}.platformType' is required.", prop(&name)),
                    )),
                    Some(other) => violations.push(Violation::new(
                        "INVALID_ENUM_VALUE",
                        format!(
                            "Property '{}.platformType' has value {other}; valid values are iOS, Android.",
                            prop(&name)
                        ),
                    )),
                }
                match entry.get("platformAuthorizationUrl") {
                    Some(Value::String(url)) if !url.is_empty() => {}
                    _ => violations.push(Violation::new(
                        "MISSING_REQUIRED_PROPERTY",
                        format!(
                            "Property '{}.platformAuthorizationUrl' is required.",
                            prop(&name)
                        ),
                    )),
                }
            }
        }
        Some(_) => violations.push(Violation::new(
            "INVALID_DATA_TYPE",
            format!(
                "Property '{}' must be an array.",
                prop("authorizationUrlsByPlatform")
            ),
        )),
    }
    if config.get("type").and_then(Value::as_str) == Some("AUTH_CODE") {
        for name in ["accessTokenUrl", "accessTokenScheme"] {
            if !present(&config, name) {
                violations.push(Violation::new(
                    "MISSING_REQUIRED_PROPERTY",
                    format!(
                        "Property '{}' is required when type is AUTH_CODE.",
                        prop(name)
                    ),
                ));
            }
        }
    }
    if violations.is_empty() {
        Ok(config)
    } else {
        Err(violations)
    }
}

/// The Alexa redirect URLs for a grant type and vendor, as the schema seed builds them.
pub(crate) fn redirect_urls(grant_type: &str, vendor_id: &str) -> Vec<String> {
    REDIRECT_BASES
        .iter()
        .map(|base| {
            if grant_type == "IMPLICIT" {
                format!("{base}/spa/skill/account-linking-status.html?vendorId={vendor_id}")
            } else {
                format!("{base}/api/skill/link/{vendor_id}")
            }
        })
        .collect()
}

/// GET body: the stored configuration without `clientSecret`, with the Alexa redirect URLs
/// unless the user set their own, and `voiceForwardAccountLinking` defaulted to DISABLED.
pub(crate) fn render(config: &Map<String, Value>, vendor_id: &str, shape: GetShape) -> Value {
    let mut body = config.clone();
    body.remove("clientSecret");
    let user_set = body
        .get("redirectUrls")
        .and_then(Value::as_array)
        .is_some_and(|urls| !urls.is_empty());
    if !user_set {
        let grant = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("AUTH_CODE");
        body.insert(
            "redirectUrls".to_string(),
            Value::from(redirect_urls(grant, vendor_id)),
        );
    }
    body.entry("voiceForwardAccountLinking")
        .or_insert_with(|| Value::String("DISABLED".to_string()));
    match shape {
        GetShape::Flat => Value::Object(body),
        GetShape::Wrapped => serde_json::json!({"accountLinkingResponse": body}),
    }
}

fn not_configured(skill_id: &str, stage: Stage) -> Reply {
    Reply::error(
        404,
        "NOT_FOUND",
        format!("No account linking information found for skill {skill_id} in stage {stage}."),
    )
}

pub(crate) fn get(store: &Store, shape: GetShape, skill_id: &str, stage: Stage) -> Reply {
    let Some(skill) = store.skills.get(skill_id) else {
        return not_configured(skill_id, stage);
    };
    match skill.stage(stage).and_then(|s| s.account_linking.as_ref()) {
        Some(linking) => Reply::json(200, render(&linking.config, &skill.vendor_id, shape))
            .with_header("ETag", linking.etag.clone()),
        None => not_configured(skill_id, stage),
    }
}

/// Strips quotes and a weak prefix so `"abc"`, `W/"abc"` and `abc` compare equal.
fn normalize_etag(tag: &str) -> &str {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.trim_matches('"')
}

pub(crate) fn put(
    store: &mut Store,
    stale_etag_fault: bool,
    skill_id: &str,
    stage: Stage,
    if_match: Option<&str>,
    body: &[u8],
) -> Reply {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => {
            return Reply::violations(vec![Violation::new(
                "INVALID_REQUEST_BODY",
                format!("The request body is not valid JSON: {err}."),
            )]);
        }
    };
    // The seed's form is {"accountLinkingRequest": {...}}; a bare object is tolerated.
    let request = match &parsed {
        Value::Object(map) => map.get("accountLinkingRequest").unwrap_or(&parsed),
        _ => &parsed,
    };
    let config = match validate(request) {
        Ok(config) => config,
        Err(violations) => return Reply::violations(violations),
    };
    let if_match = if_match.map(str::trim).filter(|tag| !tag.is_empty());
    if stale_etag_fault && if_match.is_some() {
        return precondition_failed().with_fault(FaultKind::StaleEtag);
    }
    let current = store
        .skills
        .get(skill_id)
        .and_then(|skill| skill.stage(stage))
        .and_then(|slot| slot.account_linking.as_ref())
        .map(|linking| linking.etag.clone());
    if let Some(tag) = if_match {
        let matches = match &current {
            Some(current) => tag == "*" || normalize_etag(tag) == current,
            None => false,
        };
        if !matches {
            return precondition_failed();
        }
    }
    let etag = store.new_etag(skill_id, stage.as_str());
    match store
        .skills
        .get_mut(skill_id)
        .and_then(|skill| skill.stage_mut(stage))
    {
        Some(slot) => {
            slot.account_linking = Some(crate::state::Linking {
                config,
                etag: etag.clone(),
            });
            Reply::empty(204).with_header("ETag", etag)
        }
        None => not_configured(skill_id, stage),
    }
}

fn precondition_failed() -> Reply {
    Reply::error(
        412,
        "PRECONDITION_FAILED",
        "The account linking information was modified since it was read (stale If-Match ETag).",
    )
}

pub(crate) fn delete(store: &mut Store, skill_id: &str, stage: Stage) -> Reply {
    let slot = store
        .skills
        .get_mut(skill_id)
        .and_then(|skill| skill.stage_mut(stage));
    match slot.and_then(|slot| slot.account_linking.take()) {
        Some(_) => Reply::empty(204),
        None => not_configured(skill_id, stage),
    }
}

#[cfg(test)]
mod tests {
    use super::{redirect_urls, render, validate};
    use crate::GetShape;
    use serde_json::json;

    #[test]
    fn auth_code_requires_token_url_and_scheme() {
        let violations = validate(&json!({"type": "AUTH_CODE"})).unwrap_err();
        assert_eq!(violations.len(), 2);
        assert!(
            violations
                .iter()
                .all(|v| v.code == "MISSING_REQUIRED_PROPERTY")
        );
        assert!(validate(&json!({"type": "IMPLICIT"})).is_ok());
    }

    #[test]
    fn render_hides_secret_and_adds_redirects() {
        let config =
            validate(&json!({"type": "IMPLICIT", "clientSecret": "s", "unknown": 1})).unwrap();
        let body = render(&config, "V1", GetShape::Flat);
        assert!(body.get("clientSecret").is_none());
        assert!(body.get("unknown").is_none());
        assert_eq!(body["redirectUrls"], json!(redirect_urls("IMPLICIT", "V1")));
        assert_eq!(
            redirect_urls("AUTH_CODE", "V1")[0],
            "https://pitangui.amazon.com/api/skill/link/V1"
        );
    }
}
