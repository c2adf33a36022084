//! Maps method and path to an operation, and runs the shared checks (token kind, path
//! validation, skill ownership, region) before handing over to the API modules.

use hyper::header::IF_MATCH;
use hyper::{HeaderMap, Method};

use crate::Region;
use crate::Stage;
use crate::auth::Caller;
use crate::lwa::TokenRequest;
use crate::reply::{self, Reply, Violation};
use crate::requests::Operation;
use crate::server::Shared;
use crate::state::Store;
use crate::{account_linking, customer, enablement, lwa};

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    AccountLinking { skill_id: String, stage: String },
    StageEnablement { skill_id: String, stage: String },
    Discovery,
    CustomerEnablement { skill_id: String },
    Token,
    Admin,
    MethodNotAllowed,
    NotFound,
}

impl Route {
    /// Whether the route needs an LWA access token.
    pub(crate) fn needs_token(&self) -> bool {
        matches!(
            self,
            Route::AccountLinking { .. }
                | Route::StageEnablement { .. }
                | Route::Discovery
                | Route::CustomerEnablement { .. }
        )
    }

    pub(crate) fn skill_id(&self) -> Option<&str> {
        match self {
            Route::AccountLinking { skill_id, .. }
            | Route::StageEnablement { skill_id, .. }
            | Route::CustomerEnablement { skill_id } => Some(skill_id),
            _ => None,
        }
    }

    pub(crate) fn stage(&self) -> Option<&str> {
        match self {
            Route::AccountLinking { stage, .. } | Route::StageEnablement { stage, .. } => {
                Some(stage)
            }
            _ => None,
        }
    }
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// Classifies a request. Unknown paths are `Unknown`/`NotFound`; known paths with the wrong
/// method are `Unknown`/`MethodNotAllowed`.
pub(crate) fn classify(method: &Method, path: &str) -> (Operation, Route) {
    if path == "/__sim" || path.starts_with("/__sim/") {
        return (Operation::Admin, Route::Admin);
    }
    if path.eq_ignore_ascii_case("/auth/o2/token") {
        return if method == Method::POST {
            (Operation::Token, Route::Token)
        } else {
            (Operation::Unknown, Route::MethodNotAllowed)
        };
    }
    let segments: Vec<String> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(decode)
        .collect();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (op, route) = match parts.as_slice() {
        [
            "v1",
            "skills",
            skill,
            "stages",
            stage,
            "accountLinkingClient",
        ] => {
            let route = Route::AccountLinking {
                skill_id: (*skill).to_string(),
                stage: (*stage).to_string(),
            };
            match *method {
                Method::GET => (Operation::GetAccountLinking, route),
                Method::PUT => (Operation::UpdateAccountLinking, route),
                Method::DELETE => (Operation::DeleteAccountLinking, route),
                _ => (Operation::Unknown, Route::MethodNotAllowed),
            }
        }
        ["v1", "skills", skill, "stages", stage, "enablement"] => {
            let route = Route::StageEnablement {
                skill_id: (*skill).to_string(),
                stage: (*stage).to_string(),
            };
            match *method {
                Method::PUT => (Operation::EnableStage, route),
                Method::GET => (Operation::GetStageEnablement, route),
                Method::DELETE => (Operation::DisableStage, route),
                _ => (Operation::Unknown, Route::MethodNotAllowed),
            }
        }
        ["v1", "alexaApiEndpoint"] => match *method {
            Method::GET => (Operation::DiscoverEndpoints, Route::Discovery),
            _ => (Operation::Unknown, Route::MethodNotAllowed),
        },
        ["v1", "users", "~current", "skills", skill, "enablement"] => {
            let route = Route::CustomerEnablement {
                skill_id: (*skill).to_string(),
            };
            match *method {
                Method::POST => (Operation::CustomerEnable, route),
                Method::GET => (Operation::CustomerStatus, route),
                Method::DELETE => (Operation::CustomerDisable, route),
                _ => (Operation::Unknown, Route::MethodNotAllowed),
            }
        }
        _ => (Operation::Unknown, Route::NotFound),
    };
    (op, route)
}

fn forbidden(message: &str) -> Reply {
    Reply::error(403, "ACCESS_DENIED", message)
}

fn skill_id_violation(skill_id: &str) -> Option<Violation> {
    (skill_id.is_empty() || skill_id.chars().count() > 255).then(|| {
        Violation::new(
            "INVALID_STRING_LENGTH",
            format!(
                "Path parameter 'skillId' must be 1-255 characters long; it has {}.",
                skill_id.chars().count()
            ),
        )
    })
}

/// Checks a SMAPI path against the developer account: valid skill id and stage (400), known
/// skill (404), owned by the caller's vendor (403), stage present (404).
fn smapi_target(
    store: &Store,
    vendor_id: &str,
    skill_id: &str,
    stage: &str,
) -> Result<Stage, Reply> {
    let mut violations: Vec<Violation> = skill_id_violation(skill_id).into_iter().collect();
    let parsed = Stage::parse(stage);
    if parsed.is_none() {
        violations.push(Violation::new(
            "INVALID_ENUM_VALUE",
            format!(
                "Path parameter 'stage' has value \"{stage}\"; valid values are development, live."
            ),
        ));
    }
    let Some(stage) = parsed.filter(|_| violations.is_empty()) else {
        return Err(Reply::violations(violations));
    };
    let Some(skill) = store.skills.get(skill_id) else {
        return Err(reply::skill_not_found(skill_id));
    };
    if skill.vendor_id != vendor_id {
        return Err(forbidden(
            "The access token's developer account does not own this skill.",
        ));
    }
    if skill.stage(stage).is_none() {
        return Err(reply::no_such_stage(skill_id, stage));
    }
    Ok(stage)
}

/// One classified API request, as `dispatch` needs it.
pub(crate) struct ApiRequest<'a> {
    /// Region of the listener that received it.
    pub(crate) region: Region,
    pub(crate) op: Operation,
    pub(crate) route: &'a Route,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

/// Runs one API request (faults have already been decided). `caller` is the authentication
/// outcome for token-protected routes, `token_request` the parsed LWA request.
pub(crate) fn dispatch(
    shared: &Shared,
    request: ApiRequest<'_>,
    caller: Option<Result<Caller, Reply>>,
    token_request: Option<Result<TokenRequest, Reply>>,
) -> Reply {
    let ApiRequest {
        region,
        op,
        route,
        headers,
        body,
    } = request;
    match route {
        Route::NotFound | Route::Admin => {
            return Reply::error(404, "NOT_FOUND", "No such resource.");
        }
        Route::MethodNotAllowed => {
            return Reply::error(405, "METHOD_NOT_ALLOWED", "Method not allowed here.");
        }
        Route::Token => {
            let request = match token_request {
                Some(Ok(request)) => request,
                Some(Err(reply)) => return reply,
                None => return Reply::oauth_error(400, "invalid_request", "Missing body."),
            };
            let lifetime = shared.settings.lock().token_lifetime;
            let mut store = shared.store.lock();
            return lwa::token(&mut store, &shared.tokens, lifetime, &request);
        }
        _ => {}
    }
    let caller = match caller {
        Some(Ok(caller)) => caller,
        Some(Err(reply)) => return reply,
        None => return Reply::error(401, "MISSING_ACCESS_TOKEN", "Missing access token."),
    };
    match route {
        Route::AccountLinking { skill_id, stage } | Route::StageEnablement { skill_id, stage } => {
            let Caller::Vendor { vendor_id, .. } = &caller else {
                return forbidden(
                    "Customer access tokens cannot be used for Skill Management API operations.",
                );
            };
            let shape = shared.settings.lock().get_shape;
            let stale_etag = shared.faults.stale_etag();
            let mut store = shared.store.lock();
            let stage = match smapi_target(&store, vendor_id, skill_id, stage) {
                Ok(stage) => stage,
                Err(reply) => return reply,
            };
            match op {
                Operation::GetAccountLinking => {
                    account_linking::get(&store, shape, skill_id, stage)
                }
                Operation::UpdateAccountLinking => {
                    let if_match = headers.get(IF_MATCH).and_then(|v| v.to_str().ok());
                    account_linking::put(&mut store, stale_etag, skill_id, stage, if_match, body)
                }
                Operation::DeleteAccountLinking => {
                    account_linking::delete(&mut store, skill_id, stage)
                }
                Operation::EnableStage => enablement::enable(&mut store, skill_id, stage),
                Operation::GetStageEnablement => enablement::status(&store, skill_id, stage),
                Operation::DisableStage => enablement::disable(&mut store, skill_id, stage),
                _ => Reply::error(405, "METHOD_NOT_ALLOWED", "Method not allowed here."),
            }
        }
        Route::Discovery | Route::CustomerEnablement { .. } => {
            let Caller::Customer { name } = &caller else {
                return forbidden(
                    "Developer access tokens cannot be used for customer operations; use the customer's own token.",
                );
            };
            let mode = shared.faults.discovery();
            let wrong_region_status = shared.settings.lock().wrong_region_status;
            let mut store = shared.store.lock();
            let Route::CustomerEnablement { skill_id } = route else {
                return customer::discover(&store, name, mode);
            };
            let home = store.customers.get(name.as_str()).map(|c| c.region);
            if let Some(home) = home.filter(|home| *home != region) {
                return wrong_region(wrong_region_status, home, region);
            }
            if let Some(violation) = skill_id_violation(skill_id) {
                return Reply::violations(vec![violation]);
            }
            match op {
                Operation::CustomerEnable => customer::enable(&mut store, name, skill_id, body),
                Operation::CustomerStatus => customer::status(&store, name, skill_id),
                Operation::CustomerDisable => customer::disable(&mut store, name, skill_id),
                _ => Reply::error(405, "METHOD_NOT_ALLOWED", "Method not allowed here."),
            }
        }
        _ => Reply::error(404, "NOT_FOUND", "No such resource."),
    }
}

/// A customer call sent to another region's host: Amazon does not know the user there.
fn wrong_region(status: u16, home: Region, here: Region) -> Reply {
    let message = format!(
        "The user's account is registered in region {home}, not {here}; call {} (see GET /v1/alexaApiEndpoint).",
        home.host()
    );
    if status == 404 {
        Reply::error(404, "USER_NOT_FOUND", message)
    } else {
        Reply::error(status, "INVALID_ACCESS_TOKEN", message)
    }
}

#[cfg(test)]
mod tests {
    use super::{Route, classify};
    use crate::requests::Operation;
    use hyper::Method;

    #[test]
    fn classification_decodes_and_ignores_case_only_for_lwa() {
        let (op, route) = classify(
            &Method::POST,
            "/v1/users/%7Ecurrent/skills/amzn1.ask.skill.x/enablement",
        );
        assert_eq!(op, Operation::CustomerEnable);
        assert_eq!(route.skill_id(), Some("amzn1.ask.skill.x"));
        assert_eq!(
            classify(&Method::POST, "/AUTH/O2/Token").0,
            Operation::Token
        );
        assert_eq!(
            classify(&Method::PATCH, "/v1/skills/s/stages/live/enablement").1,
            Route::MethodNotAllowed
        );
        assert_eq!(
            classify(&Method::GET, "/V1/alexaApiEndpoint").0,
            Operation::Unknown
        );
    }
}
