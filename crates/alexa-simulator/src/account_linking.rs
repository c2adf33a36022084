//! Account Linking Management API: validation of the accountLinkingRequest schema, the GET body
//! (secret removed, Alexa redirect URLs added) and ETag-guarded writes.

use serde_json::{Map, Value};

use crate::GetShape;
use crate::Stage;
use crate::faults::{Divergences, PutAnswer};
use crate::reply::{self, Reply, Violation};
use crate::requests::FaultKind;
use crate::state::Store;

/// What the schema accepts in one field. An absent or null field passes every rule; which
/// fields must be present is [`REQUIRED_FOR_AUTH_CODE`]'s business.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// One of the listed strings (`INVALID_ENUM_VALUE`).
    OneOf(&'static [&'static str]),
    /// A string (`INVALID_DATA_TYPE`).
    Text,
    /// An array of strings (`INVALID_DATA_TYPE`) with at most [`MAX_ITEMS`] items
    /// (`MAX_ITEMS_EXCEEDED`).
    TextList,
    /// A non-negative whole number of seconds (`INVALID_DATA_TYPE`).
    Seconds,
    /// A boolean, or the strings "true" and "false" (`INVALID_DATA_TYPE`).
    Flag,
    /// An array of `{platformType, platformAuthorizationUrl}` objects, both required.
    PlatformUrls,
}

/// Every field Amazon knows, with its rule, in the order violations are reported. Fields not
/// listed are dropped from a PUT, as Amazon does.
const SCHEMA: [(&str, Rule); 14] = [
    ("type", Rule::OneOf(&["AUTH_CODE", "IMPLICIT"])),
    (
        "accessTokenScheme",
        Rule::OneOf(&["HTTP_BASIC", "REQUEST_BODY_CREDENTIALS"]),
    ),
    (
        "voiceForwardAccountLinking",
        Rule::OneOf(&["ENABLED", "DISABLED"]),
    ),
    ("authorizationUrl", Rule::Text),
    ("clientId", Rule::Text),
    ("accessTokenUrl", Rule::Text),
    ("clientSecret", Rule::Text),
    ("reciprocalAccessTokenUrl", Rule::Text),
    ("domains", Rule::TextList),
    ("scopes", Rule::TextList),
    ("redirectUrls", Rule::TextList),
    ("defaultTokenExpirationInSeconds", Rule::Seconds),
    ("skipOnEnablement", Rule::Flag),
    ("authorizationUrlsByPlatform", Rule::PlatformUrls),
];

/// Fields an AUTH_CODE (authorization code grant) configuration cannot do without: Alexa
/// must be able to redeem the code.
const REQUIRED_FOR_AUTH_CODE: [&str; 2] = ["accessTokenUrl", "accessTokenScheme"];

/// Platforms an `authorizationUrlsByPlatform` entry may name.
const PLATFORMS: [&str; 2] = ["iOS", "Android"];

const MAX_ITEMS: usize = 15;

/// The Alexa redirect URL bases the schema seed lists.
const REDIRECT_BASES: [&str; 2] = ["https://pitangui.amazon.com", "https://layla.amazon.com"];

fn prop(name: &str) -> String {
    format!("accountLinkingRequest.{name}")
}

impl Rule {
    /// The violations of a present, non-null value at `path`.
    fn check(self, path: &str, value: &Value) -> Vec<Violation> {
        match self {
            Rule::OneOf(allowed) => one_of(path, value, allowed).into_iter().collect(),
            Rule::Text => text(path, value).into_iter().collect(),
            Rule::TextList => text_list(path, value),
            Rule::Seconds => seconds(path, value).into_iter().collect(),
            Rule::Flag => flag(path, value).into_iter().collect(),
            Rule::PlatformUrls => platform_urls(path, value),
        }
    }
}

fn one_of(path: &str, value: &Value, allowed: &[&str]) -> Option<Violation> {
    match value {
        Value::String(value) if allowed.contains(&value.as_str()) => None,
        other => Some(Violation::not_one_of(path, other, allowed)),
    }
}

fn text(path: &str, value: &Value) -> Option<Violation> {
    (!value.is_string()).then(|| Violation::wrong_type(path, "a string"))
}

fn text_list(path: &str, value: &Value) -> Vec<Violation> {
    let Value::Array(items) = value else {
        return vec![Violation::wrong_type(path, "an array of strings")];
    };
    let mut violations = Vec::new();
    if items.iter().any(|item| !item.is_string()) {
        violations.push(Violation::wrong_type(path, "an array of strings"));
    }
    if items.len() > MAX_ITEMS {
        violations.push(Violation::new(
            "MAX_ITEMS_EXCEEDED",
            format!(
                "Property '{path}' has {} items; at most {MAX_ITEMS} are allowed.",
                items.len()
            ),
        ));
    }
    violations
}

fn seconds(path: &str, value: &Value) -> Option<Violation> {
    let whole = matches!(value, Value::Number(n) if n.as_u64().is_some());
    (!whole).then(|| Violation::wrong_type(path, "a non-negative integer"))
}

fn flag(path: &str, value: &Value) -> Option<Violation> {
    let boolean = match value {
        Value::Bool(_) => true,
        Value::String(s) => s == "true" || s == "false",
        _ => false,
    };
    (!boolean).then(|| Violation::wrong_type(path, "a boolean"))
}

fn platform_urls(path: &str, value: &Value) -> Vec<Violation> {
    let Value::Array(items) = value else {
        return vec![Violation::wrong_type(path, "an array")];
    };
    items
        .iter()
        .enumerate()
        .flat_map(|(i, item)| platform_url(&format!("{path}[{i}]"), item))
        .collect()
}

/// One `authorizationUrlsByPlatform` entry: a known platform and a non-empty URL.
fn platform_url(path: &str, item: &Value) -> Vec<Violation> {
    let Value::Object(entry) = item else {
        return vec![Violation::wrong_type(path, "an object")];
    };
    let mut violations = Vec::new();
    let platform = format!("{path}.platformType");
    match entry.get("platformType") {
        None | Some(Value::Null) => violations.push(Violation::missing(&platform)),
        Some(value) => violations.extend(one_of(&platform, value, &PLATFORMS)),
    }
    match entry.get("platformAuthorizationUrl") {
        Some(Value::String(url)) if !url.is_empty() => {}
        _ => violations.push(Violation::missing(&format!(
            "{path}.platformAuthorizationUrl"
        ))),
    }
    violations
}

/// Whether a field carries a value (an empty string counts as absent).
fn present(config: &Map<String, Value>, name: &str) -> bool {
    match config.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// The [`REQUIRED_FOR_AUTH_CODE`] fields an AUTH_CODE configuration lacks.
fn auth_code_requirements(config: &Map<String, Value>) -> Vec<Violation> {
    if config.get("type").and_then(Value::as_str) != Some("AUTH_CODE") {
        return Vec::new();
    }
    REQUIRED_FOR_AUTH_CODE
        .iter()
        .filter(|name| !present(config, name))
        .map(|name| {
            Violation::new(
                "MISSING_REQUIRED_PROPERTY",
                format!(
                    "Property '{}' is required when type is AUTH_CODE.",
                    prop(name)
                ),
            )
        })
        .collect()
}

/// Checks an accountLinkingRequest object against the seed's rules and keeps only the fields
/// Amazon knows. Violations are reported all at once, as SMAPI does.
pub(crate) fn validate(value: &Value) -> Result<Map<String, Value>, Vec<Violation>> {
    let Value::Object(input) = value else {
        return Err(vec![Violation::wrong_type(
            "accountLinkingRequest",
            "an object",
        )]);
    };
    let config: Map<String, Value> = input
        .iter()
        .filter(|(key, _)| SCHEMA.iter().any(|(name, _)| name == key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut violations: Vec<Violation> = SCHEMA
        .iter()
        .flat_map(|(name, rule)| match config.get(*name) {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => rule.check(&prop(name), value),
        })
        .collect();
    violations.extend(auth_code_requirements(&config));
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

/// Fields the management page documents only on the PUT: its GET response table lists neither.
const REQUEST_ONLY: [&str; 2] = ["clientSecret", "skipOnEnablement"];

/// Lists [`Divergences::reverse_lists`] returns reversed.
const REORDERED_LISTS: [&str; 3] = ["domains", "scopes", "redirectUrls"];

/// URLs [`Divergences::normalize_urls`] rewrites.
const NORMALIZED_URLS: [&str; 2] = ["authorizationUrl", "accessTokenUrl"];

/// A URL as a normalising server might store it: scheme and host lower-cased, and a `/` ending
/// the path. `HTTPS://Auth.Example.com/authorize?x=1` → `https://auth.example.com/authorize/?x=1`.
fn normalize_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, rest) = rest.split_at(host_end);
    let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (path, tail) = rest.split_at(path_end);
    let slash = if path.ends_with('/') { "" } else { "/" };
    let scheme = if scheme.is_empty() {
        String::new()
    } else {
        format!("{}://", scheme.to_ascii_lowercase())
    };
    format!("{scheme}{}{path}{slash}{tail}", host.to_ascii_lowercase())
}

/// What a PUT's validated configuration becomes in the store under `divergences`: dropped
/// fields removed, normalised URLs rewritten. Seed-literal (no divergences): unchanged.
fn stored(mut config: Map<String, Value>, divergences: &Divergences) -> Map<String, Value> {
    for name in &divergences.drop_fields {
        config.remove(name);
    }
    if divergences.normalize_urls {
        for name in NORMALIZED_URLS {
            if let Some(Value::String(url)) = config.get_mut(name) {
                *url = normalize_url(url);
            }
        }
    }
    config
}

/// GET body: the stored configuration without the request-only fields, with the Alexa redirect
/// URLs unless the user set their own, and `voiceForwardAccountLinking` defaulted to DISABLED.
pub(crate) fn render(
    config: &Map<String, Value>,
    vendor_id: &str,
    shape: GetShape,
    divergences: &Divergences,
) -> Value {
    let mut body = config.clone();
    for name in REQUEST_ONLY {
        if !(name == "skipOnEnablement" && divergences.echo_skip_on_enablement) {
            body.remove(name);
        }
    }
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
    if divergences.reverse_lists {
        for name in REORDERED_LISTS {
            if let Some(Value::Array(items)) = body.get_mut(name) {
                items.reverse();
            }
        }
    }
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

pub(crate) fn get(
    store: &Store,
    shape: GetShape,
    divergences: &Divergences,
    skill_id: &str,
    stage: Stage,
) -> Reply {
    let Some(skill) = store.skills.get(skill_id) else {
        return not_configured(skill_id, stage);
    };
    match skill.stage(stage).and_then(|s| s.account_linking.as_ref()) {
        Some(linking) => {
            let body = render(&linking.config, &skill.vendor_id, shape, divergences);
            Reply::json(200, body).with_header("ETag", linking.etag.clone())
        }
        None => not_configured(skill_id, stage),
    }
}

/// Strips quotes and a weak prefix so `"abc"`, `W/"abc"` and `abc` compare equal.
fn normalize_etag(tag: &str) -> &str {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.trim_matches('"')
}

/// How one PUT is answered and stored: the switches of [`crate::FaultConfig`] it obeys.
pub(crate) struct PutBehaviour {
    pub(crate) stale_etag_fault: bool,
    pub(crate) answer: PutAnswer,
    pub(crate) divergences: Divergences,
}

pub(crate) fn put(
    store: &mut Store,
    behaviour: &PutBehaviour,
    skill_id: &str,
    stage: Stage,
    if_match: Option<&str>,
    body: &[u8],
) -> Reply {
    let parsed = match reply::json_body(body) {
        Ok(value) => value,
        Err(reply) => return reply,
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
    if behaviour.stale_etag_fault && if_match.is_some() {
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
                config: stored(config, &behaviour.divergences),
                etag: etag.clone(),
            });
            let status = match behaviour.answer {
                PutAnswer::NoContent => 204,
                PutAnswer::OkWithEtag => 200,
            };
            Reply::empty(status).with_header("ETag", etag)
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
    use super::{normalize_url, redirect_urls, render, stored, validate};
    use crate::GetShape;
    use crate::faults::Divergences;
    use serde_json::{Value, json};

    /// A complete AUTH_CODE configuration with `change` merged in.
    fn auth_code(change: Value) -> Value {
        let mut body = json!({
            "type": "AUTH_CODE",
            "authorizationUrl": "https://auth.example.com/authorize",
            "accessTokenUrl": "https://auth.example.com/token",
            "accessTokenScheme": "HTTP_BASIC",
            "clientId": "alexa",
            "clientSecret": "secret",
        });
        if let (Some(body), Value::Object(change)) = (body.as_object_mut(), change) {
            body.extend(change);
        }
        body
    }

    const AL: &str = "accountLinkingRequest";

    /// What `validate` reports: a code and a message per violation, none when valid.
    type Reported = Vec<(&'static str, String)>;

    #[test]
    fn each_schema_rule_reports_amazons_violation() {
        let sixteen: Vec<String> = (0..16).map(|i| format!("https://r{i}.example")).collect();
        let cases: Vec<(&str, Value, Reported)> = vec![
            (
                "implicit needs nothing else",
                json!({"type": "IMPLICIT"}),
                vec![],
            ),
            ("complete auth code", auth_code(json!({})), vec![]),
            (
                "null fields count as absent",
                auth_code(json!({"scopes": null, "skipOnEnablement": null})),
                vec![],
            ),
            (
                "unknown fields are ignored, whatever their type",
                json!({"type": "IMPLICIT", "foo": 1}),
                vec![],
            ),
            (
                "auth code without token URL and scheme",
                json!({"type": "AUTH_CODE"}),
                vec![
                    (
                        "MISSING_REQUIRED_PROPERTY",
                        format!(
                            "Property '{AL}.accessTokenUrl' is required when type is AUTH_CODE."
                        ),
                    ),
                    (
                        "MISSING_REQUIRED_PROPERTY",
                        format!(
                            "Property '{AL}.accessTokenScheme' is required when type is AUTH_CODE."
                        ),
                    ),
                ],
            ),
            (
                "an empty token URL is absent",
                auth_code(json!({"accessTokenUrl": ""})),
                vec![(
                    "MISSING_REQUIRED_PROPERTY",
                    format!("Property '{AL}.accessTokenUrl' is required when type is AUTH_CODE."),
                )],
            ),
            (
                "unknown grant type",
                json!({"type": "OAUTH"}),
                vec![(
                    "INVALID_ENUM_VALUE",
                    format!(
                        "Property '{AL}.type' has value \"OAUTH\"; valid values are AUTH_CODE, IMPLICIT."
                    ),
                )],
            ),
            (
                "token scheme of the wrong type",
                json!({"type": "IMPLICIT", "accessTokenScheme": 1}),
                vec![(
                    "INVALID_ENUM_VALUE",
                    format!(
                        "Property '{AL}.accessTokenScheme' has value 1; valid values are HTTP_BASIC, REQUEST_BODY_CREDENTIALS."
                    ),
                )],
            ),
            (
                "enum values are case-sensitive",
                auth_code(json!({"voiceForwardAccountLinking": "enabled"})),
                vec![(
                    "INVALID_ENUM_VALUE",
                    format!(
                        "Property '{AL}.voiceForwardAccountLinking' has value \"enabled\"; valid values are ENABLED, DISABLED."
                    ),
                )],
            ),
            (
                "client id must be a string",
                auth_code(json!({"clientId": 42})),
                vec![(
                    "INVALID_DATA_TYPE",
                    format!("Property '{AL}.clientId' must be a string."),
                )],
            ),
            (
                "scopes must be a list",
                auth_code(json!({"scopes": "profile"})),
                vec![(
                    "INVALID_DATA_TYPE",
                    format!("Property '{AL}.scopes' must be an array of strings."),
                )],
            ),
            (
                "domains must hold strings",
                auth_code(json!({"domains": [1]})),
                vec![(
                    "INVALID_DATA_TYPE",
                    format!("Property '{AL}.domains' must be an array of strings."),
                )],
            ),
            (
                "at most 15 redirect URLs",
                auth_code(json!({"redirectUrls": sixteen})),
                vec![(
                    "MAX_ITEMS_EXCEEDED",
                    format!("Property '{AL}.redirectUrls' has 16 items; at most 15 are allowed."),
                )],
            ),
            (
                "a long list of non-strings breaks both list rules",
                auth_code(json!({"scopes": vec![0; 16]})),
                vec![
                    (
                        "INVALID_DATA_TYPE",
                        format!("Property '{AL}.scopes' must be an array of strings."),
                    ),
                    (
                        "MAX_ITEMS_EXCEEDED",
                        format!("Property '{AL}.scopes' has 16 items; at most 15 are allowed."),
                    ),
                ],
            ),
            (
                "token expiry in whole seconds",
                auth_code(json!({"defaultTokenExpirationInSeconds": 3600})),
                vec![],
            ),
            (
                "negative token expiry",
                auth_code(json!({"defaultTokenExpirationInSeconds": -1})),
                vec![(
                    "INVALID_DATA_TYPE",
                    format!(
                        "Property '{AL}.defaultTokenExpirationInSeconds' must be a non-negative integer."
                    ),
                )],
            ),
            (
                "fractional token expiry",
                auth_code(json!({"defaultTokenExpirationInSeconds": 1.5})),
                vec![(
                    "INVALID_DATA_TYPE",
                    format!(
                        "Property '{AL}.defaultTokenExpirationInSeconds' must be a non-negative integer."
                    ),
                )],
            ),
            (
                "skipOnEnablement as the string true",
                auth_code(json!({"skipOnEnablement": "true"})),
                vec![],
            ),
            (
                "skipOnEnablement as another string",
                auth_code(json!({"skipOnEnablement": "yes"})),
                vec![(
                    "INVALID_DATA_TYPE",
                    format!("Property '{AL}.skipOnEnablement' must be a boolean."),
                )],
            ),
            (
                "platform URLs must be a list",
                auth_code(json!({"authorizationUrlsByPlatform": {}})),
                vec![(
                    "INVALID_DATA_TYPE",
                    format!("Property '{AL}.authorizationUrlsByPlatform' must be an array."),
                )],
            ),
            (
                "platform URL entries must be objects",
                auth_code(json!({"authorizationUrlsByPlatform": ["https://a"]})),
                vec![(
                    "INVALID_DATA_TYPE",
                    format!("Property '{AL}.authorizationUrlsByPlatform[0]' must be an object."),
                )],
            ),
            (
                "platform URL entry needs both fields",
                auth_code(json!({"authorizationUrlsByPlatform": [
                    {"platformType": "iOS", "platformAuthorizationUrl": "https://a"},
                    {},
                ]})),
                vec![
                    (
                        "MISSING_REQUIRED_PROPERTY",
                        format!(
                            "Property '{AL}.authorizationUrlsByPlatform[1].platformType' is required."
                        ),
                    ),
                    (
                        "MISSING_REQUIRED_PROPERTY",
                        format!(
                            "Property '{AL}.authorizationUrlsByPlatform[1].platformAuthorizationUrl' is required."
                        ),
                    ),
                ],
            ),
            (
                "unknown platform",
                auth_code(json!({"authorizationUrlsByPlatform": [
                    {"platformType": "Windows", "platformAuthorizationUrl": "https://a"},
                ]})),
                vec![(
                    "INVALID_ENUM_VALUE",
                    format!(
                        "Property '{AL}.authorizationUrlsByPlatform[0].platformType' has value \"Windows\"; valid values are iOS, Android."
                    ),
                )],
            ),
            (
                "not an object",
                json!(["AUTH_CODE"]),
                vec![(
                    "INVALID_DATA_TYPE",
                    format!("Property '{AL}' must be an object."),
                )],
            ),
            (
                "all violations at once, in schema order",
                json!({"clientSecret": false, "type": "CODE"}),
                vec![
                    (
                        "INVALID_ENUM_VALUE",
                        format!(
                            "Property '{AL}.type' has value \"CODE\"; valid values are AUTH_CODE, IMPLICIT."
                        ),
                    ),
                    (
                        "INVALID_DATA_TYPE",
                        format!("Property '{AL}.clientSecret' must be a string."),
                    ),
                ],
            ),
        ];
        for (case, body, expected) in cases {
            let found: Reported = match validate(&body) {
                Ok(_) => Vec::new(),
                Err(violations) => violations
                    .into_iter()
                    .map(|v| (v.code, v.message))
                    .collect(),
            };
            assert_eq!(found, expected, "{case}");
        }
    }

    #[test]
    fn render_hides_secret_and_adds_redirects() {
        let config =
            validate(&json!({"type": "IMPLICIT", "clientSecret": "s", "unknown": 1})).unwrap();
        let body = render(&config, "V1", GetShape::Flat, &Divergences::default());
        assert!(body.get("clientSecret").is_none());
        assert!(body.get("unknown").is_none());
        assert_eq!(body["redirectUrls"], json!(redirect_urls("IMPLICIT", "V1")));
        assert_eq!(
            redirect_urls("AUTH_CODE", "V1")[0],
            "https://pitangui.amazon.com/api/skill/link/V1"
        );
    }

    #[test]
    fn normalize_url_lowercases_scheme_and_host_and_ends_the_path_with_a_slash() {
        for (url, expected) in [
            (
                "https://auth.example.com/authorize",
                "https://auth.example.com/authorize/",
            ),
            (
                "HTTPS://Auth.Example.COM/Authorize?x=Y",
                "https://auth.example.com/Authorize/?x=Y",
            ),
            ("https://auth.example.com/", "https://auth.example.com/"),
            ("https://auth.example.com", "https://auth.example.com/"),
        ] {
            assert_eq!(normalize_url(url), expected, "{url}");
        }
    }

    #[test]
    fn divergences_change_what_is_stored_and_shown() {
        let config = validate(&auth_code(json!({
            "skipOnEnablement": true,
            "domains": ["a.example", "b.example"],
            "defaultTokenExpirationInSeconds": 3600,
        })))
        .unwrap();
        let literal = render(&config, "V1", GetShape::Flat, &Divergences::default());
        assert!(literal.get("skipOnEnablement").is_none(), "request-only");
        assert_eq!(literal["domains"], json!(["a.example", "b.example"]));
        let divergences = Divergences {
            echo_skip_on_enablement: true,
            reverse_lists: true,
            normalize_urls: true,
            drop_fields: vec!["defaultTokenExpirationInSeconds".to_string()],
        };
        let shown = render(
            &stored(config, &divergences),
            "V1",
            GetShape::Flat,
            &divergences,
        );
        assert_eq!(shown["skipOnEnablement"], true);
        assert_eq!(shown["domains"], json!(["b.example", "a.example"]));
        assert_eq!(
            shown["authorizationUrl"],
            "https://auth.example.com/authorize/"
        );
        assert_eq!(shown["accessTokenUrl"], "https://auth.example.com/token/");
        assert!(shown.get("defaultTokenExpirationInSeconds").is_none());
        assert!(shown.get("clientSecret").is_none());
    }
}
