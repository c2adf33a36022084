//! Admin endpoints under `/__sim/` (a prefix Amazon never uses): the request log, counts, faults
//! and out-of-band state changes, so the sandbox and the benchmark (separate processes) can
//! drive the simulator like in-process tests do. No authentication: loopback only by default.
//!
//! [`ROUTES`] is the whole API: one row per method and path, each naming its handler. A path
//! segment written `{name}` matches any one (percent-decoded) segment, which the handler reads
//! with [`AdminRequest::param`]. No row matches: 404.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::{Method, Uri};
use parking_lot::MutexGuard;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Stage;
use crate::faults::{FaultConfig, ScriptedResponse, duration_serde};
use crate::reply::Reply;
use crate::requests::Operation;
use crate::server::Shared;
use crate::state::Store;
use crate::{GetShape, Region};

fn bad_request(message: impl Into<String>) -> Reply {
    Reply::error(400, "BAD_ADMIN_REQUEST", message)
}

fn not_found() -> Reply {
    Reply::error(404, "NOT_FOUND", "No such admin resource.")
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Reply> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|err| bad_request(format!("invalid JSON body: {err}")))
}

fn query_params(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScriptRequest {
    operation: String,
    responses: Vec<ScriptedResponse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DropNextRequest {
    count: u64,
    /// Carry the requests out first, then drop (only with `operation`).
    #[serde(default)]
    after_applying: bool,
    /// The operation whose requests are dropped after applying.
    #[serde(default)]
    operation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsPatch {
    get_shape: Option<GetShape>,
    #[serde(default, deserialize_with = "optional_duration")]
    token_lifetime: Option<Duration>,
    wrong_region_status: Option<u16>,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_serde::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthCodesRequest {
    customer: String,
    code: Option<String>,
    #[serde(default)]
    codes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LwaCodeRequest {
    customer: String,
    client_id: String,
    code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SkillsRequest {
    skill_ids: Vec<String>,
    vendor_id: Option<String>,
}

#[derive(Deserialize)]
struct EnabledRequest {
    enabled: bool,
}

fn settings_json(shared: &Shared) -> Value {
    let settings = shared.settings.lock().clone();
    json!({
        "getShape": settings.get_shape,
        "tokenLifetime": humantime::format_duration(settings.token_lifetime).to_string(),
        "wrongRegionStatus": settings.wrong_region_status,
    })
}

fn info_json(shared: &Shared) -> Value {
    let urls = shared.urls.get().cloned();
    let store = shared.store.lock();
    let regions: BTreeMap<&str, Option<String>> = Region::ALL
        .iter()
        .map(|r| {
            (
                r.as_str(),
                urls.as_ref().map(|u| u.regions[r.index()].clone()),
            )
        })
        .collect();
    let overrides: Vec<String> = Region::ALL
        .iter()
        .filter_map(|r| {
            urls.as_ref()
                .map(|u| format!("{}={}", r.host(), u.regions[r.index()]))
        })
        .collect();
    json!({
        "url": urls.as_ref().map(|u| u.main.clone()),
        "lwaTokenUrl": urls.as_ref().map(|u| format!("{}/auth/o2/token", u.main)),
        "tlsUrl": urls.as_ref().and_then(|u| u.tls.clone()),
        "regions": regions,
        "endpointOverrides": overrides,
        "skills": store.skill_count(),
        "customers": store.customers.len(),
        "requestLogEntries": shared.log.len(),
        "settings": settings_json(shared),
    })
}

fn hashed_config(config: Value) -> Value {
    let mut config = config;
    if let Some(map) = config.as_object_mut() {
        if let Some(secret) = map.remove("clientSecret") {
            let secret = secret.as_str().unwrap_or_default().to_string();
            map.insert(
                "clientSecretSha256".to_string(),
                Value::String(hex::encode(Sha256::digest(secret.as_bytes()))),
            );
        }
    }
    config
}

/// One admin request, as every handler sees it.
pub(crate) struct AdminRequest<'a> {
    shared: &'a Shared,
    uri: &'a Uri,
    body: &'a [u8],
    /// Values of the route's `{name}` segments, in order.
    params: Vec<(&'static str, String)>,
}

impl AdminRequest<'_> {
    /// Value of the route's `{name}` segment ("" for a name the route does not have).
    fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(key, _)| *key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, Reply> {
        parse_json(self.body)
    }

    /// The simulated world, locked for this request.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.shared.store.lock()
    }

    /// The `{stage}` segment, which must name a stage.
    fn stage(&self) -> Result<Stage, Reply> {
        let stage = self.param("stage");
        Stage::parse(stage).ok_or_else(|| bad_request(format!("unknown stage {stage}")))
    }
}

/// What a handler returns: both arms are answers; `Err` lets handlers use `?` on bad input.
type Answer = Result<Reply, Reply>;

/// A named admin handler.
type Handler = fn(&AdminRequest<'_>) -> Answer;

const LINKING: &str = "state/skills/{id}/stages/{stage}/account-linking";
const STAGE_ENABLEMENT: &str = "state/skills/{id}/stages/{stage}/enablement";
const CUSTOMER_ENABLEMENT: &str = "state/customers/{name}/skills/{id}/enablement";

/// Every admin route: method, path below `/__sim/`, handler (docs/SIMULATOR.md lists them).
pub(crate) static ROUTES: &[(Method, &str, Handler)] = &[
    (Method::GET, "", info),
    (Method::GET, "info", info),
    (Method::GET, "requests", list_requests),
    (Method::DELETE, "requests", clear_requests),
    (Method::GET, "counts", counts),
    (Method::GET, "faults", get_faults),
    (Method::PUT, "faults", put_faults),
    (Method::DELETE, "faults", clear_faults),
    (Method::POST, "script", script),
    (Method::POST, "drop-next", drop_next),
    (Method::GET, "settings", get_settings),
    (Method::PUT, "settings", put_settings),
    (Method::POST, "expire-tokens", expire_tokens),
    (Method::POST, "reset", reset),
    (Method::POST, "auth-codes", add_auth_codes),
    (Method::POST, "lwa-auth-codes", add_lwa_auth_code),
    (Method::POST, "skills", add_skills),
    (Method::GET, LINKING, get_account_linking),
    (Method::PUT, LINKING, put_account_linking),
    (Method::DELETE, LINKING, delete_account_linking),
    (Method::GET, STAGE_ENABLEMENT, get_stage_enablement),
    (Method::PUT, STAGE_ENABLEMENT, put_stage_enablement),
    (Method::GET, CUSTOMER_ENABLEMENT, get_customer_enablement),
    (
        Method::DELETE,
        CUSTOMER_ENABLEMENT,
        delete_customer_enablement,
    ),
];

/// Handles one admin request: finds its row in [`ROUTES`] and runs the handler.
pub(crate) fn handle(shared: &Shared, method: &Method, uri: &Uri, body: &[u8]) -> Reply {
    let segments: Vec<String> = uri
        .path()
        .trim_end_matches('/')
        .split('/')
        .skip(2)
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let found = ROUTES.iter().find_map(|(route_method, pattern, handler)| {
        (route_method == method)
            .then(|| capture(pattern, &segments))
            .flatten()
            .map(|params| (handler, params))
    });
    let Some((handler, params)) = found else {
        return not_found();
    };
    let request = AdminRequest {
        shared,
        uri,
        body,
        params,
    };
    handler(&request).unwrap_or_else(|reply| reply)
}

/// The `{name}` captures when `segments` fit `pattern`, `None` when they do not.
fn capture(pattern: &'static str, segments: &[String]) -> Option<Vec<(&'static str, String)>> {
    let parts: Vec<&'static str> = if pattern.is_empty() {
        Vec::new()
    } else {
        pattern.split('/').collect()
    };
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (part, segment) in parts.into_iter().zip(segments) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => params.push((name, segment.clone())),
            None if part == segment => {}
            None => return None,
        }
    }
    Some(params)
}

// ---------------------------------------------------------------- log, counts, settings

fn info(request: &AdminRequest<'_>) -> Answer {
    Ok(Reply::json(200, info_json(request.shared)))
}

fn list_requests(request: &AdminRequest<'_>) -> Answer {
    let query = query_params(request.uri);
    let op = match query.get("operation") {
        Some(name) => Some(
            Operation::parse(name)
                .ok_or_else(|| bad_request(format!("unknown operation {name}")))?,
        ),
        None => None,
    };
    let after = query.get("after").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit = query.get("limit").and_then(|v| v.parse().ok());
    let records = request.shared.log.records(op, after, limit);
    Ok(Reply::json(200, json!({"requests": records})))
}

fn clear_requests(request: &AdminRequest<'_>) -> Answer {
    request.shared.log.clear();
    Ok(Reply::empty(204))
}

fn counts(request: &AdminRequest<'_>) -> Answer {
    let counts: BTreeMap<&str, usize> = Operation::ALL
        .iter()
        .map(|op| (op.as_str(), request.shared.log.count(*op)))
        .collect();
    Ok(Reply::json(200, json!(counts)))
}

fn get_settings(request: &AdminRequest<'_>) -> Answer {
    Ok(Reply::json(200, settings_json(request.shared)))
}

fn put_settings(request: &AdminRequest<'_>) -> Answer {
    let patch: SettingsPatch = request.json()?;
    {
        let mut settings = request.shared.settings.lock();
        if let Some(shape) = patch.get_shape {
            settings.get_shape = shape;
        }
        if let Some(lifetime) = patch.token_lifetime {
            settings.token_lifetime = lifetime;
        }
        if let Some(status) = patch.wrong_region_status {
            settings.wrong_region_status = status;
        }
    }
    Ok(Reply::json(200, settings_json(request.shared)))
}

fn expire_tokens(request: &AdminRequest<'_>) -> Answer {
    request.shared.tokens.expire_all();
    Ok(Reply::empty(204))
}

fn reset(request: &AdminRequest<'_>) -> Answer {
    request.shared.reset();
    Ok(Reply::empty(204))
}

// ---------------------------------------------------------------- faults

fn get_faults(request: &AdminRequest<'_>) -> Answer {
    let faults = &request.shared.faults;
    let pending: BTreeMap<&str, usize> = faults
        .pending_scripts()
        .into_iter()
        .map(|(op, n)| (op.as_str(), n))
        .collect();
    let mut config = json!(faults.config());
    if let Some(map) = config.as_object_mut() {
        map.insert("pendingScripts".to_string(), json!(pending));
    }
    Ok(Reply::json(200, config))
}

fn put_faults(request: &AdminRequest<'_>) -> Answer {
    let config: FaultConfig = request.json()?;
    config.validate().map_err(bad_request)?;
    request.shared.faults.set_config(config);
    Ok(Reply::json(200, json!(request.shared.faults.config())))
}

fn clear_faults(request: &AdminRequest<'_>) -> Answer {
    request.shared.faults.clear();
    Ok(Reply::empty(204))
}

fn script(request: &AdminRequest<'_>) -> Answer {
    let script: ScriptRequest = request.json()?;
    let op = Operation::parse(&script.operation)
        .ok_or_else(|| bad_request(format!("unknown operation {}", script.operation)))?;
    request.shared.faults.script(op, script.responses);
    Ok(Reply::empty(204))
}

fn drop_next(request: &AdminRequest<'_>) -> Answer {
    let drop: DropNextRequest = request.json()?;
    if !drop.after_applying {
        request.shared.faults.drop_next(drop.count);
        return Ok(Reply::empty(204));
    }
    let name = drop
        .operation
        .ok_or_else(|| bad_request("afterApplying needs an operation".to_string()))?;
    let op =
        Operation::parse(&name).ok_or_else(|| bad_request(format!("unknown operation {name}")))?;
    request.shared.faults.drop_after_applying(op, drop.count);
    Ok(Reply::empty(204))
}

// ---------------------------------------------------------------- seeding

fn add_auth_codes(request: &AdminRequest<'_>) -> Answer {
    let seed: AuthCodesRequest = request.json()?;
    let mut store = request.store();
    known_customer(&store, &seed.customer)?;
    let codes: Vec<String> = seed.code.into_iter().chain(seed.codes).collect();
    if codes.is_empty() {
        return Err(bad_request("give `code` or `codes`"));
    }
    for code in &codes {
        store.add_partner_code(code, &seed.customer);
    }
    Ok(Reply::json(201, json!({"added": codes.len()})))
}

fn add_lwa_auth_code(request: &AdminRequest<'_>) -> Answer {
    let seed: LwaCodeRequest = request.json()?;
    let mut store = request.store();
    known_customer(&store, &seed.customer)?;
    if !store.clients.contains_key(&seed.client_id) {
        return Err(bad_request(format!(
            "unknown LWA client {}",
            seed.client_id
        )));
    }
    store.add_lwa_customer_code(&seed.code, &seed.client_id, &seed.customer);
    Ok(Reply::json(201, json!({"added": 1})))
}

fn known_customer(store: &Store, customer: &str) -> Result<(), Reply> {
    if store.customers.contains_key(customer) {
        Ok(())
    } else {
        Err(bad_request(format!("unknown customer {customer}")))
    }
}

fn add_skills(request: &AdminRequest<'_>) -> Answer {
    let skills: SkillsRequest = request.json()?;
    let mut store = request.store();
    let before = store.skill_count();
    for id in &skills.skill_ids {
        store.add_skill(id, skills.vendor_id.as_deref());
    }
    let total = store.skill_count();
    Ok(Reply::json(
        200,
        json!({"added": total - before, "total": total}),
    ))
}

// ---------------------------------------------------------------- out-of-band state

fn get_account_linking(request: &AdminRequest<'_>) -> Answer {
    let stage = request.stage()?;
    let store = request.store();
    let (config, etag) = store
        .account_linking(request.param("id"), stage.as_str())
        .ok_or_else(not_found)?;
    Ok(Reply::json(
        200,
        json!({"config": hashed_config(config), "etag": etag}),
    ))
}

fn put_account_linking(request: &AdminRequest<'_>) -> Answer {
    let stage = request.stage()?.as_str();
    let body: Value = request.json()?;
    let config = match body {
        Value::Object(mut map) => map
            .remove("accountLinkingRequest")
            .unwrap_or(Value::Object(map)),
        _ => return Err(bad_request("the body must be a JSON object")),
    };
    let skill_id = request.param("id");
    let mut store = request.store();
    store.set_account_linking_out_of_band(skill_id, stage, config);
    let etag = store.account_linking(skill_id, stage).map(|(_, etag)| etag);
    Ok(Reply::json(200, json!({"etag": etag})))
}

fn delete_account_linking(request: &AdminRequest<'_>) -> Answer {
    let stage = request.stage()?;
    request
        .store()
        .delete_account_linking_out_of_band(request.param("id"), stage.as_str());
    Ok(Reply::empty(204))
}

fn get_stage_enablement(request: &AdminRequest<'_>) -> Answer {
    let stage = request.stage()?;
    let enabled = request
        .store()
        .stage_enabled(request.param("id"), stage.as_str());
    Ok(Reply::json(200, json!({"enabled": enabled})))
}

fn put_stage_enablement(request: &AdminRequest<'_>) -> Answer {
    let stage = request.stage()?.as_str();
    let EnabledRequest { enabled } = request.json()?;
    let skill_id = request.param("id");
    let mut store = request.store();
    store.set_stage_enabled(skill_id, stage, enabled);
    let enabled = store.stage_enabled(skill_id, stage);
    Ok(Reply::json(200, json!({"enabled": enabled})))
}

fn get_customer_enablement(request: &AdminRequest<'_>) -> Answer {
    let record = request
        .store()
        .customer_enablement(request.param("name"), request.param("id"))
        .ok_or_else(not_found)?;
    Ok(Reply::json(200, json!(record)))
}

fn delete_customer_enablement(request: &AdminRequest<'_>) -> Answer {
    request
        .store()
        .remove_customer_enablement(request.param("name"), request.param("id"));
    Ok(Reply::empty(204))
}

#[cfg(test)]
mod tests {
    use super::{ROUTES, capture};

    fn segments(path: &str) -> Vec<String> {
        path.split('/').map(str::to_string).collect()
    }

    #[test]
    fn routes_capture_their_named_segments_and_nothing_else() {
        let pattern = "state/customers/{name}/skills/{id}/enablement";
        assert_eq!(
            capture(
                pattern,
                &segments("state/customers/alice/skills/s1/enablement")
            ),
            Some(vec![
                ("name", "alice".to_string()),
                ("id", "s1".to_string())
            ])
        );
        assert_eq!(
            capture(pattern, &segments("state/customers/alice/skills/s1")),
            None
        );
        assert_eq!(
            capture(
                pattern,
                &segments("state/vendors/alice/skills/s1/enablement")
            ),
            None
        );
        assert_eq!(capture("", &[]), Some(Vec::new()));
        assert_eq!(capture("info", &[]), None);
    }

    #[test]
    fn every_route_is_unique_and_documented() {
        let docs = include_str!("../../../docs/SIMULATOR.md");
        for (i, (method, pattern, _)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..i]
                    .iter()
                    .any(|(m, p, _)| m == method && p == pattern),
                "{method} /__sim/{pattern} is listed twice"
            );
            let path = format!("/__sim/{pattern}");
            let documented = docs.lines().any(|line| {
                line.starts_with('|')
                    && line.contains(method.as_str())
                    && (line.contains(&format!("{path}`")) || line.contains(&format!("{path}?")))
            });
            assert!(documented, "{method} {path} is not in docs/SIMULATOR.md");
        }
    }
}
