//! Customer APIs (app-to-app account linking): endpoint discovery and enable/status/disable of a
//! skill for the customer who owns the access token. Partner authorization codes must be known
//! to the simulator and are single-use.

use serde_json::{Map, Value};

use crate::Region;
use crate::Stage;
use crate::faults::DiscoveryMode;
use crate::reply::{self, Reply, Violation};
use crate::state::{CustomerEnablementRecord, Store};

/// `GET /v1/alexaApiEndpoint`.
pub(crate) fn discover(store: &Store, customer: &str, mode: DiscoveryMode) -> Reply {
    let Some(region) = store.customers.get(customer).map(|c| c.region) else {
        return unknown_customer();
    };
    let endpoints: Vec<&str> = match mode {
        DiscoveryMode::Normal => vec![region.host()],
        DiscoveryMode::Multiple => Region::ALL
            .iter()
            .filter(|r| **r != region)
            .chain(std::iter::once(&region))
            .map(|r| r.host())
            .collect(),
        DiscoveryMode::ServerError => {
            return Reply::error(
                500,
                "INTERNAL_SERVER_ERROR",
                "Endpoint discovery is unavailable (simulated).",
            );
        }
    };
    Reply::json(200, serde_json::json!({ "endpoints": endpoints }))
}

fn unknown_customer() -> Reply {
    Reply::error(
        401,
        "INVALID_ACCESS_TOKEN",
        "The access token's user is unknown.",
    )
}

fn not_enabled(skill_id: &str) -> Reply {
    Reply::error(
        404,
        "NOT_FOUND",
        format!("Skill {skill_id} is not enabled for this user."),
    )
}

fn invalid_auth_code() -> Reply {
    Reply::error(
        400,
        "INVALID_AUTH_CODE",
        "The authorization code is invalid, expired or has already been used.",
    )
}

/// A non-empty string property (`MISSING_REQUIRED_PROPERTY` when absent, null or empty,
/// `INVALID_DATA_TYPE` when not a string). Amazon names nested properties by their own name.
fn required_string<'a>(
    object: Option<&'a Map<String, Value>>,
    name: &str,
    violations: &mut Vec<Violation>,
) -> Option<&'a str> {
    match object.and_then(|o| o.get(name)) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            violations.push(Violation::missing(name));
            None
        }
        Some(_) => {
            violations.push(Violation::wrong_type(name, "a string"));
            None
        }
    }
}

/// An enablement request body that passed Amazon's checks.
#[derive(Debug, PartialEq, Eq)]
struct EnableRequest<'a> {
    stage: Stage,
    auth_code: &'a str,
    redirect_uri: Option<&'a str>,
}

impl<'a> EnableRequest<'a> {
    /// Checks `{"stage", "accountLinkRequest": {"type", "authCode", "redirectUri"}}`, reporting
    /// every violation at once.
    fn parse(body: &'a Value) -> Result<EnableRequest<'a>, Vec<Violation>> {
        let root = body.as_object();
        let mut violations = Vec::new();
        let stage = requested_stage(root, &mut violations);
        let (auth_code, redirect_uri) = account_link_request(root, &mut violations);
        match (stage, auth_code) {
            (Some(stage), Some(auth_code)) if violations.is_empty() => Ok(EnableRequest {
                stage,
                auth_code,
                redirect_uri,
            }),
            _ => Err(violations),
        }
    }
}

/// `stage`: required, `development` or `live`.
fn requested_stage(
    root: Option<&Map<String, Value>>,
    violations: &mut Vec<Violation>,
) -> Option<Stage> {
    let name = required_string(root, "stage", violations)?;
    let stage = Stage::parse(name);
    if stage.is_none() {
        violations.push(Violation::not_one_of(
            "stage",
            format_args!("\"{name}\""),
            &["development", "live"],
        ));
    }
    stage
}

/// `accountLinkRequest`: required object of type AUTH_CODE with `authCode` and `redirectUri`;
/// answers the code and the redirect URI.
fn account_link_request<'a>(
    root: Option<&'a Map<String, Value>>,
    violations: &mut Vec<Violation>,
) -> (Option<&'a str>, Option<&'a str>) {
    let Some(Value::Object(link)) = root.and_then(|o| o.get("accountLinkRequest")) else {
        violations.push(Violation::missing("accountLinkRequest"));
        return (None, None);
    };
    match required_string(Some(link), "type", violations) {
        Some("AUTH_CODE") | None => {}
        Some(other) => violations.push(Violation::not_one_of(
            "accountLinkRequest.type",
            format_args!("\"{other}\""),
            &["AUTH_CODE"],
        )),
    }
    let auth_code = required_string(Some(link), "authCode", violations);
    let redirect_uri = required_string(Some(link), "redirectUri", violations);
    (auth_code, redirect_uri)
}

/// Redeems a single-use partner code: it must have been issued to this customer.
fn redeem_partner_code(store: &mut Store, code: &str, customer: &str) -> Result<(), Reply> {
    if store.partner_codes.get(code).map(String::as_str) != Some(customer) {
        return Err(invalid_auth_code());
    }
    store.partner_codes.remove(code);
    Ok(())
}

/// `POST /v1/users/~current/skills/{skillId}/enablement`: 201 + status body. With
/// `link_after_reads` > 0 the body says `NOT_LINKED` and linking completes after that many
/// status reads.
pub(crate) fn enable(
    store: &mut Store,
    customer: &str,
    skill_id: &str,
    body: &[u8],
    link_after_reads: u32,
) -> Reply {
    try_enable(store, (customer, skill_id), body, link_after_reads).unwrap_or_else(|reply| reply)
}

/// The checks in Amazon's order: body (400), skill and stage (404), customer (401), partner
/// code (400).
fn try_enable(
    store: &mut Store,
    (customer, skill_id): (&str, &str),
    body: &[u8],
    link_after_reads: u32,
) -> Result<Reply, Reply> {
    let parsed = reply::json_body(body)?;
    let request = EnableRequest::parse(&parsed).map_err(Reply::violations)?;
    let skill = store
        .skills
        .get(skill_id)
        .ok_or_else(|| reply::skill_not_found(skill_id))?;
    if skill.stage(request.stage).is_none() {
        return Err(reply::no_such_stage(skill_id, request.stage));
    }
    let user_id = store
        .customers
        .get(customer)
        .map(|c| c.user_id.clone())
        .ok_or_else(unknown_customer)?;
    redeem_partner_code(store, request.auth_code, customer)?;
    let record = CustomerEnablementRecord::linked(
        skill_id,
        request.stage,
        user_id,
        request.redirect_uri.map(str::to_string),
    )
    .linked_after(link_after_reads);
    let body = record.status_body();
    if let Some(customer) = store.customers.get_mut(customer) {
        customer.enablements.insert(skill_id.to_string(), record);
    }
    Ok(Reply::json(201, body))
}

/// `GET`: 200 + status body, 404 when the skill is unknown or not enabled for the customer.
/// A read counts towards a late link's completion.
pub(crate) fn status(store: &mut Store, customer: &str, skill_id: &str) -> Reply {
    if !store.skills.contains_key(skill_id) {
        return reply::skill_not_found(skill_id);
    }
    let record = store
        .customers
        .get_mut(customer)
        .and_then(|c| c.enablements.get_mut(skill_id));
    match record {
        Some(record) => {
            let body = record.status_body();
            record.reads_until_linked = record.reads_until_linked.saturating_sub(1);
            Reply::json(200, body)
        }
        None => not_enabled(skill_id),
    }
}

/// `DELETE`: 200 (no body), 404 when the skill is unknown or not enabled for the customer.
pub(crate) fn disable(store: &mut Store, customer: &str, skill_id: &str) -> Reply {
    if !store.skills.contains_key(skill_id) {
        return reply::skill_not_found(skill_id);
    }
    let removed = store
        .customers
        .get_mut(customer)
        .and_then(|c| c.enablements.remove(skill_id));
    match removed {
        Some(_) => Reply::empty(200),
        None => not_enabled(skill_id),
    }
}

#[cfg(test)]
mod tests {
    use super::EnableRequest;
    use crate::Stage;
    use serde_json::{Value, json};

    /// A request with `link` as its accountLinkRequest.
    fn with_link(link: Value) -> Value {
        json!({"stage": "live", "accountLinkRequest": link})
    }

    #[test]
    fn each_enable_request_rule_reports_amazons_violation() {
        let ok = |redirect_uri| {
            Ok(EnableRequest {
                stage: Stage::Live,
                auth_code: "code-1",
                redirect_uri,
            })
        };
        let violations = |rows: &[(&'static str, &str)]| {
            Err(rows
                .iter()
                .map(|(code, message)| (*code, message.to_string()))
                .collect::<Vec<_>>())
        };
        let cases = [
            (
                "complete",
                with_link(
                    json!({"type": "AUTH_CODE", "authCode": "code-1", "redirectUri": "https://r"}),
                ),
                ok(Some("https://r")),
            ),
            (
                "a missing redirect URI is reported",
                with_link(json!({"type": "AUTH_CODE", "authCode": "code-1"})),
                violations(&[(
                    "MISSING_REQUIRED_PROPERTY",
                    "Property 'redirectUri' is required.",
                )]),
            ),
            (
                "not an object",
                json!("live"),
                violations(&[
                    ("MISSING_REQUIRED_PROPERTY", "Property 'stage' is required."),
                    (
                        "MISSING_REQUIRED_PROPERTY",
                        "Property 'accountLinkRequest' is required.",
                    ),
                ]),
            ),
            (
                "stage names are lower-case",
                json!({"stage": "Live", "accountLinkRequest": {"type": "AUTH_CODE", "authCode": "c", "redirectUri": "r"}}),
                violations(&[(
                    "INVALID_ENUM_VALUE",
                    "Property 'stage' has value \"Live\"; valid values are development, live.",
                )]),
            ),
            (
                "stage must be a string",
                json!({"stage": 1, "accountLinkRequest": {"type": "AUTH_CODE", "authCode": "c", "redirectUri": "r"}}),
                violations(&[("INVALID_DATA_TYPE", "Property 'stage' must be a string.")]),
            ),
            (
                "an empty stage is missing",
                json!({"stage": "", "accountLinkRequest": {"type": "AUTH_CODE", "authCode": "c", "redirectUri": "r"}}),
                violations(&[("MISSING_REQUIRED_PROPERTY", "Property 'stage' is required.")]),
            ),
            (
                "the link request must be an object",
                json!({"stage": "live", "accountLinkRequest": "code-1"}),
                violations(&[(
                    "MISSING_REQUIRED_PROPERTY",
                    "Property 'accountLinkRequest' is required.",
                )]),
            ),
            (
                "only AUTH_CODE links",
                with_link(json!({"type": "IMPLICIT", "authCode": "c", "redirectUri": "r"})),
                violations(&[(
                    "INVALID_ENUM_VALUE",
                    "Property 'accountLinkRequest.type' has value \"IMPLICIT\"; valid values are AUTH_CODE.",
                )]),
            ),
            (
                "an empty link request lacks all three",
                with_link(json!({})),
                violations(&[
                    ("MISSING_REQUIRED_PROPERTY", "Property 'type' is required."),
                    (
                        "MISSING_REQUIRED_PROPERTY",
                        "Property 'authCode' is required.",
                    ),
                    (
                        "MISSING_REQUIRED_PROPERTY",
                        "Property 'redirectUri' is required.",
                    ),
                ]),
            ),
            (
                "the code must be a string",
                with_link(json!({"type": "AUTH_CODE", "authCode": 7, "redirectUri": "r"})),
                violations(&[("INVALID_DATA_TYPE", "Property 'authCode' must be a string.")]),
            ),
        ];
        for (case, body, expected) in cases {
            let found = EnableRequest::parse(&body)
                .map_err(|found| found.into_iter().map(|v| (v.code, v.message)).collect());
            assert_eq!(found, expected, "{case}");
        }
    }
}
