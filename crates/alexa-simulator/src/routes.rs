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

    /// The route table: what each method does on this route's path. A method not listed
    /// answers 405.
    fn operations(&self) -> &'static [(&'static str, Operation)] {
        match self {
            Route::AccountLinking { .. } => &[
                ("GET", Operation::GetAccountLinking),
                ("PUT", Operation::UpdateAccountLinking),
                ("DELETE", Operation::DeleteAccountLinking),
            ],
            Route::StageEnablement { .. } => &[
                ("PUT", Operation::EnableStage),
                ("GET", Operation::GetStageEnablement),
                ("DELETE", Operation::DisableStage),
            ],
            Route::Discovery => &[("GET", Operation::DiscoverEndpoints)],
            Route::CustomerEnablement { .. } => &[
                ("POST", Operation::CustomerEnable),
                ("GET", Operation::CustomerStatus),
                ("DELETE", Operation::CustomerDisable),
            ],
            Route::Token => &[("POST", Operation::Token)],
            Route::Admin | Route::MethodNotAllowed | Route::NotFound => &[],
        }
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

/// The API path a request names (percent-decoded, case-sensitive like Amazon's, except the
/// LWA token path), or `NotFound`.
fn route_of(path: &str) -> Route {
    if path.eq_ignore_ascii_case("/auth/o2/token") {
        return Route::Token;
    }
    let segments: Vec<String> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(decode)
        .collect();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    match parts.as_slice() {
        [
            "v1",
            "skills",
            skill,
            "stages",
            stage,
            "accountLinkingClient",
        ] => Route::AccountLinking {
            skill_id: (*skill).to_string(),
            stage: (*stage).to_string(),
        },
        ["v1", "skills", skill, "stages", stage, "enablement"] => Route::StageEnablement {
            skill_id: (*skill).to_string(),
            stage: (*stage).to_string(),
        },
        ["v1", "alexaApiEndpoint"] => Route::Discovery,
        ["v1", "users", "~current", "skills", skill, "enablement"] => Route::CustomerEnablement {
            skill_id: (*skill).to_string(),
        },
        _ => Route::NotFound,
    }
}

/// Classifies a request. Unknown paths are `Unknown`/`NotFound`; known paths with the wrong
/// method are `Unknown`/`MethodNotAllowed`.
pub(crate) fn classify(method: &Method, path: &str) -> (Operation, Route) {
    if path == "/__sim" || path.starts_with("/__sim/") {
        return (Operation::Admin, Route::Admin);
    }
    let route = route_of(path);
    if route == Route::NotFound {
        return (Operation::Unknown, Route::NotFound);
    }
    let allowed = route
        .operations()
        .iter()
        .find(|(m, _)| *m == method.as_str());
    match allowed {
        Some((_, op)) => (*op, route),
        None => (Operation::Unknown, Route::MethodNotAllowed),
    }
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
    let answer = match request.route {
        Route::NotFound | Route::Admin => Err(not_found()),
        Route::MethodNotAllowed => Err(method_not_allowed()),
        Route::Token => token(shared, token_request),
        Route::AccountLinking { skill_id, stage } | Route::StageEnablement { skill_id, stage } => {
            authenticated(caller).and_then(|caller| {
                skill_management(shared, &request, vendor_of(&caller)?, skill_id, stage)
            })
        }
        Route::Discovery => {
            authenticated(caller).and_then(|caller| discovery(shared, customer_of(&caller)?))
        }
        Route::CustomerEnablement { skill_id } => authenticated(caller).and_then(|caller| {
            customer_enablement(shared, &request, customer_of(&caller)?, skill_id)
        }),
    };
    answer.unwrap_or_else(|reply| reply)
}

fn not_found() -> Reply {
    Reply::error(404, "NOT_FOUND", "No such resource.")
}

fn method_not_allowed() -> Reply {
    Reply::error(405, "METHOD_NOT_ALLOWED", "Method not allowed here.")
}

/// The caller of a token-protected route: 401 without a token, the authentication's own
/// answer when it failed.
fn authenticated(caller: Option<Result<Caller, Reply>>) -> Result<Caller, Reply> {
    caller.unwrap_or_else(|| {
        Err(Reply::error(
            401,
            "MISSING_ACCESS_TOKEN",
            "Missing access token.",
        ))
    })
}

/// SMAPI takes only developer tokens.
fn vendor_of(caller: &Caller) -> Result<&str, Reply> {
    match caller {
        Caller::Vendor { vendor_id, .. } => Ok(vendor_id),
        Caller::Customer { .. } => Err(forbidden(
            "Customer access tokens cannot be used for Skill Management API operations.",
        )),
    }
}

/// The customer APIs take only the customer's own token.
fn customer_of(caller: &Caller) -> Result<&str, Reply> {
    match caller {
        Caller::Customer { name } => Ok(name),
        Caller::Vendor { .. } => Err(forbidden(
            "Developer access tokens cannot be used for customer operations; use the customer's own token.",
        )),
    }
}

/// `POST /auth/o2/token`.
fn token(
    shared: &Shared,
    token_request: Option<Result<TokenRequest, Reply>>,
) -> Result<Reply, Reply> {
    let request = token_request
        .unwrap_or_else(|| Err(Reply::oauth_error(400, "invalid_request", "Missing body.")))?;
    let lifetime = shared.settings.lock().token_lifetime;
    let mut store = shared.store.lock();
    Ok(lwa::token(&mut store, &shared.tokens, lifetime, &request))
}

/// Account linking and stage enablement, on a skill stage the developer owns.
fn skill_management(
    shared: &Shared,
    request: &ApiRequest<'_>,
    vendor_id: &str,
    skill_id: &str,
    stage: &str,
) -> Result<Reply, Reply> {
    let shape = shared.settings.lock().get_shape;
    let behaviour = account_linking::PutBehaviour {
        stale_etag_fault: shared.faults.stale_etag(),
        answer: shared.faults.put_answer(),
        divergences: shared.faults.divergences(),
    };
    let mut store = shared.store.lock();
    let stage = smapi_target(&store, vendor_id, skill_id, stage)?;
    let store = &mut *store;
    Ok(match request.op {
        Operation::GetAccountLinking => {
            account_linking::get(store, shape, &behaviour.divergences, skill_id, stage)
        }
        Operation::UpdateAccountLinking => {
            let if_match = request.headers.get(IF_MATCH).and_then(|v| v.to_str().ok());
            account_linking::put(store, &behaviour, skill_id, stage, if_match, request.body)
        }
        Operation::DeleteAccountLinking => account_linking::delete(store, skill_id, stage),
        Operation::EnableStage => enablement::enable(store, skill_id, stage),
        Operation::GetStageEnablement => enablement::status(store, skill_id, stage),
        Operation::DisableStage => enablement::disable(store, skill_id, stage),
        _ => method_not_allowed(),
    })
}

/// `GET /v1/alexaApiEndpoint`: any region's host answers it.
fn discovery(shared: &Shared, customer: &str) -> Result<Reply, Reply> {
    let mode = shared.faults.discovery();
    let store = shared.store.lock();
    Ok(customer::discover(&store, customer, mode))
}

/// A customer's enablement of a skill, on the customer's own region's host.
fn customer_enablement(
    shared: &Shared,
    request: &ApiRequest<'_>,
    customer: &str,
    skill_id: &str,
) -> Result<Reply, Reply> {
    let wrong_region_status = shared.settings.lock().wrong_region_status;
    let link_after_reads = shared.faults.link_after_reads();
    let mut store = shared.store.lock();
    let home = store.customers.get(customer).map(|c| c.region);
    if let Some(home) = home.filter(|home| *home != request.region) {
        return Err(wrong_region(wrong_region_status, home, request.region));
    }
    if let Some(violation) = skill_id_violation(skill_id) {
        return Err(Reply::violations(vec![violation]));
    }
    let store = &mut *store;
    Ok(match request.op {
        Operation::CustomerEnable => {
            customer::enable(store, customer, skill_id, request.body, link_after_reads)
        }
        Operation::CustomerStatus => customer::status(store, customer, skill_id),
        Operation::CustomerDisable => customer::disable(store, customer, skill_id),
        _ => method_not_allowed(),
    })
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
    fn each_path_and_method_maps_to_its_operation() {
        let linking = || Route::AccountLinking {
            skill_id: "s".to_string(),
            stage: "live".to_string(),
        };
        let cases = [
            (
                Method::GET,
                "/v1/skills/s/stages/live/accountLinkingClient",
                Operation::GetAccountLinking,
                linking(),
            ),
            (
                Method::PUT,
                "/v1/skills/s/stages/live/accountLinkingClient",
                Operation::UpdateAccountLinking,
                linking(),
            ),
            (
                Method::DELETE,
                "/v1/skills/s/stages/live/accountLinkingClient",
                Operation::DeleteAccountLinking,
                linking(),
            ),
            (
                Method::POST,
                "/v1/skills/s/stages/live/accountLinkingClient",
                Operation::Unknown,
                Route::MethodNotAllowed,
            ),
            (
                Method::PUT,
                "/v1/skills/s/stages/live/enablement",
                Operation::EnableStage,
                Route::StageEnablement {
                    skill_id: "s".to_string(),
                    stage: "live".to_string(),
                },
            ),
            (
                Method::GET,
                "/v1/alexaApiEndpoint",
                Operation::DiscoverEndpoints,
                Route::Discovery,
            ),
            (
                Method::POST,
                "/v1/alexaApiEndpoint",
                Operation::Unknown,
                Route::MethodNotAllowed,
            ),
            (
                Method::DELETE,
                "/v1/users/~current/skills/s/enablement",
                Operation::CustomerDisable,
                Route::CustomerEnablement {
                    skill_id: "s".to_string(),
                },
            ),
            (
                Method::GET,
                "/auth/o2/token",
                Operation::Unknown,
                Route::MethodNotAllowed,
            ),
            (
                Method::GET,
                "/__sim/requests",
                Operation::Admin,
                Route::Admin,
            ),
            (
                Method::GET,
                "/v1/skills/s/stages/live",
                Operation::Unknown,
                Route::NotFound,
            ),
            (
                Method::GET,
                "/v1/skills/s/stages/live/accountLinkingClient/",
                Operation::Unknown,
                Route::NotFound,
            ),
        ];
        for (method, path, op, route) in cases {
            assert_eq!(classify(&method, path), (op, route), "{method} {path}");
        }
    }

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
