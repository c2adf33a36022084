//! Customer APIs (app-to-app account linking): endpoint discovery and enable/status/disable of a
//! skill for the customer who owns the access token. Partner authorization codes must be known
//! to the simulator and are single-use.

use serde_json::Value;

use crate::Region;
use crate::Stage;
use crate::faults::DiscoveryMode;
use crate::reply::{Reply, Violation};
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

fn skill_not_found(skill_id: &str) -> Reply {
    Reply::error(404, "NOT_FOUND", format!("Skill {skill_id} not found."))
}

fn not_enabled(skill_id: &str) -> Reply {
    Reply::error(
        404,
        "NOT_FOUND",
        format!("Skill {skill_id} is not enabled for this user."),
    )
}

fn required_string<'a>(
    object: Option<&'a serde_json::Map<String, Value>>,
    name: &str,
    violations: &mut Vec<Violation>,
) -> Option<&'a str> {
    match object.and_then(|o| o.get(name)) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            violations.push(Violation::new(
                "MISSING_REQUIRED_PROPERTY",
                format!("Property '{name}' is required."),
            ));
            None
        }
        Some(_) => {
            violations.push(Violation::new(
                "INVALID_DATA_TYPE",
                format!("Property '{name}' must be a string."),
            ));
            None
        }
    }
}

/// `POST /v1/users/~current/skills/{skillId}/enablement`: 201 + status body.
pub(crate) fn enable(store: &mut Store, customer: &str, skill_id: &str, body: &[u8]) -> Reply {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => {
            return Reply::violations(vec![Violation::new(
                "INVALID_REQUEST_BODY",
                format!("The request body is not valid JSON: {err}."),
            )]);
        }
    };
    let root = parsed.as_object();
    let mut violations = Vec::new();
    let stage_name = required_string(root, "stage", &mut violations);
    let stage = stage_name.and_then(|s| {
        let stage = Stage::parse(s);
        if stage.is_none() {
            violations.push(Violation::new(
                "INVALID_ENUM_VALUE",
                format!("Property 'stage' has value \"{s}\"; valid values are development, live."),
            ));
        }
        stage
    });
    let link = match root.and_then(|o| o.get("accountLinkRequest")) {
        Some(Value::Object(link)) => Some(link),
        _ => {
            violations.push(Violation::new(
                "MISSING_REQUIRED_PROPERTY",
                "Property 'accountLinkRequest' is required.",
            ));
            None
        }
    };
    let mut auth_code = None;
    let mut redirect_uri = None;
    if link.is_some() {
        match required_string(link, "type", &mut violations) {
            Some("AUTH_CODE") | None => {}
            Some(other) => violations.push(Violation::new(
                "INVALID_ENUM_VALUE",
                format!("Property 'accountLinkRequest.type' has value \"{other}\"; valid values are AUTH_CODE."),
            )),
        }
        auth_code = required_string(link, "authCode", &mut violations);
        redirect_uri = required_string(link, "redirectUri", &mut violations);
    }
    if !violations.is_empty() {
        return Reply::violations(violations);
    }
    let (Some(stage), Some(auth_code)) = (stage, auth_code) else {
        return Reply::violations(violations);
    };
    match store.skills.get(skill_id) {
        None => return skill_not_found(skill_id),
        Some(skill) if skill.stage(stage).is_none() => {
            return Reply::error(
                404,
                "NOT_FOUND",
                format!("Skill {skill_id} has no {stage} stage."),
            );
        }
        Some(_) => {}
    }
    let Some(user_id) = store.customers.get(customer).map(|c| c.user_id.clone()) else {
        return unknown_customer();
    };
    if store.partner_codes.get(auth_code).map(String::as_str) != Some(customer) {
        return Reply::error(
            400,
            "INVALID_AUTH_CODE",
            "The authorization code is invalid, expired or has already been used.",
        );
    }
    store.partner_codes.remove(auth_code);
    let record = CustomerEnablementRecord {
        skill_id: skill_id.to_string(),
        stage: stage.as_str().to_string(),
        user_id,
        account_link_status: "LINKED".to_string(),
        status: "ENABLED".to_string(),
        redirect_uri: redirect_uri.map(str::to_string),
    };
    let body = record.status_body();
    if let Some(customer) = store.customers.get_mut(customer) {
        customer.enablements.insert(skill_id.to_string(), record);
    }
    Reply::json(201, body)
}

/// `GET`: 200 + status body, 404 when the skill is unknown or not enabled for the customer.
pub(crate) fn status(store: &Store, customer: &str, skill_id: &str) -> Reply {
    if !store.skills.contains_key(skill_id) {
        return skill_not_found(skill_id);
    }
    match store.customer_enablement(customer, skill_id) {
        Some(record) => Reply::json(200, record.status_body()),
        None => not_enabled(skill_id),
    }
}

/// `DELETE`: 200 (no body), 404 when the skill is unknown or not enabled for the customer.
pub(crate) fn disable(store: &mut Store, customer: &str, skill_id: &str) -> Reply {
    if !store.skills.contains_key(skill_id) {
        return skill_not_found(skill_id);
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
