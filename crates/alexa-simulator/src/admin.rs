//! Admin endpoints under `/__sim/` (a prefix Amazon never uses): the request log, counts, faults
//! and out-of-band state changes, so the sandbox and the benchmark (separate processes) can
//! drive the simulator like in-process tests do. No authentication: loopback only by default.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::{Method, Uri};
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
struct DropNextRequest {
    count: u64,
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

fn info(shared: &Shared) -> Value {
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

fn stage_state(
    shared: &Shared,
    method: &Method,
    skill_id: &str,
    stage: &str,
    what: &str,
    body: &[u8],
) -> Reply {
    if Stage::parse(stage).is_none() {
        return bad_request(format!("unknown stage {stage}"));
    }
    let mut store = shared.store.lock();
    match (what, method) {
        ("account-linking", &Method::GET) => match store.account_linking(skill_id, stage) {
            Some((config, etag)) => {
                Reply::json(200, json!({"config": hashed_config(config), "etag": etag}))
            }
            None => not_found(),
        },
        ("account-linking", &Method::PUT) => {
            let config: Value = match parse_json(body) {
                Ok(config) => config,
                Err(reply) => return reply,
            };
            let config = match config {
                Value::Object(mut map) => match map.remove("accountLinkingRequest") {
                    Some(inner) => inner,
                    None => Value::Object(map),
                },
                _ => return bad_request("the body must be a JSON object"),
            };
            store.set_account_linking_out_of_band(skill_id, stage, config);
            Reply::json(
                200,
                json!({"etag": store.account_linking(skill_id, stage).map(|(_, e)| e)}),
            )
        }
        ("account-linking", &Method::DELETE) => {
            store.delete_account_linking_out_of_band(skill_id, stage);
            Reply::empty(204)
        }
        ("enablement", &Method::GET) => Reply::json(
            200,
            json!({"enabled": store.stage_enabled(skill_id, stage)}),
        ),
        ("enablement", &Method::PUT) => {
            let request: EnabledRequest = match parse_json(body) {
                Ok(request) => request,
                Err(reply) => return reply,
            };
            store.set_stage_enabled(skill_id, stage, request.enabled);
            Reply::json(
                200,
                json!({"enabled": store.stage_enabled(skill_id, stage)}),
            )
        }
        _ => not_found(),
    }
}

fn add_skills(store: &mut Store, request: SkillsRequest) -> Reply {
    let before = store.skill_count();
    for id in &request.skill_ids {
        store.add_skill(id, request.vendor_id.as_deref());
    }
    Reply::json(
        200,
        json!({"added": store.skill_count() - before, "total": store.skill_count()}),
    )
}

/// Handles one admin request.
pub(crate) fn handle(shared: &Shared, method: &Method, uri: &Uri, body: &[u8]) -> Reply {
    let path = uri.path().trim_end_matches('/');
    let segments: Vec<String> = path
        .split('/')
        .skip(2)
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, parts.as_slice()) {
        (&Method::GET, [] | ["info"]) => Reply::json(200, info(shared)),
        (&Method::GET, ["requests"]) => {
            let query = query_params(uri);
            let op = match query.get("operation") {
                Some(name) => match Operation::parse(name) {
                    Some(op) => Some(op),
                    None => return bad_request(format!("unknown operation {name}")),
                },
                None => None,
            };
            let after = query.get("after").and_then(|v| v.parse().ok()).unwrap_or(0);
            let limit = query.get("limit").and_then(|v| v.parse().ok());
            Reply::json(
                200,
                json!({"requests": shared.log.records(op, after, limit)}),
            )
        }
        (&Method::DELETE, ["requests"]) => {
            shared.log.clear();
            Reply::empty(204)
        }
        (&Method::GET, ["counts"]) => {
            let counts: BTreeMap<&str, usize> = Operation::ALL
                .iter()
                .map(|op| (op.as_str(), shared.log.count(*op)))
                .collect();
            Reply::json(200, json!(counts))
        }
        (&Method::GET, ["faults"]) => {
            let pending: BTreeMap<&str, usize> = shared
                .faults
                .pending_scripts()
                .into_iter()
                .map(|(op, n)| (op.as_str(), n))
                .collect();
            let mut config = json!(shared.faults.config());
            if let Some(map) = config.as_object_mut() {
                map.insert("pendingScripts".to_string(), json!(pending));
            }
            Reply::json(200, config)
        }
        (&Method::PUT, ["faults"]) => {
            let config: FaultConfig = match parse_json(body) {
                Ok(config) => config,
                Err(reply) => return reply,
            };
            if let Err(message) = config.validate() {
                return bad_request(message);
            }
            shared.faults.set_config(config);
            Reply::json(200, json!(shared.faults.config()))
        }
        (&Method::DELETE, ["faults"]) => {
            shared.faults.clear();
            Reply::empty(204)
        }
        (&Method::POST, ["script"]) => {
            let request: ScriptRequest = match parse_json(body) {
                Ok(request) => request,
                Err(reply) => return reply,
            };
            let Some(op) = Operation::parse(&request.operation) else {
                return bad_request(format!("unknown operation {}", request.operation));
            };
            shared.faults.script(op, request.responses);
            Reply::empty(204)
        }
        (&Method::POST, ["drop-next"]) => match parse_json::<DropNextRequest>(body) {
            Ok(request) => {
                shared.faults.drop_next(request.count);
                Reply::empty(204)
            }
            Err(reply) => reply,
        },
        (&Method::GET, ["settings"]) => Reply::json(200, settings_json(shared)),
        (&Method::PUT, ["settings"]) => {
            let patch: SettingsPatch = match parse_json(body) {
                Ok(patch) => patch,
                Err(reply) => return reply,
            };
            {
                let mut settings = shared.settings.lock();
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
            Reply::json(200, settings_json(shared))
        }
        (&Method::POST, ["expire-tokens"]) => {
            shared.tokens.expire_all();
            Reply::empty(204)
        }
        (&Method::POST, ["reset"]) => {
            shared.reset();
            Reply::empty(204)
        }
        (&Method::POST, ["auth-codes"]) => {
            let request: AuthCodesRequest = match parse_json(body) {
                Ok(request) => request,
                Err(reply) => return reply,
            };
            let mut store = shared.store.lock();
            if !store.customers.contains_key(&request.customer) {
                return bad_request(format!("unknown customer {}", request.customer));
            }
            let codes: Vec<String> = request.code.into_iter().chain(request.codes).collect();
            if codes.is_empty() {
                return bad_request("give `code` or `codes`");
            }
            for code in &codes {
                store.add_partner_code(code, &request.customer);
            }
            Reply::json(201, json!({"added": codes.len()}))
        }
        (&Method::POST, ["lwa-auth-codes"]) => {
            let request: LwaCodeRequest = match parse_json(body) {
                Ok(request) => request,
                Err(reply) => return reply,
            };
            let mut store = shared.store.lock();
            if !store.customers.contains_key(&request.customer) {
                return bad_request(format!("unknown customer {}", request.customer));
            }
            if !store.clients.contains_key(&request.client_id) {
                return bad_request(format!("unknown LWA client {}", request.client_id));
            }
            store.add_lwa_customer_code(&request.code, &request.client_id, &request.customer);
            Reply::json(201, json!({"added": 1}))
        }
        (&Method::POST, ["skills"]) => match parse_json::<SkillsRequest>(body) {
            Ok(request) => add_skills(&mut shared.store.lock(), request),
            Err(reply) => reply,
        },
        (_, ["state", "skills", skill_id, "stages", stage, what]) => {
            stage_state(shared, method, skill_id, stage, what, body)
        }
        (
            &Method::GET,
            [
                "state",
                "customers",
                customer,
                "skills",
                skill_id,
                "enablement",
            ],
        ) => match shared.store.lock().customer_enablement(customer, skill_id) {
            Some(record) => Reply::json(200, json!(record)),
            None => not_found(),
        },
        (
            &Method::DELETE,
            [
                "state",
                "customers",
                customer,
                "skills",
                skill_id,
                "enablement",
            ],
        ) => {
            shared
                .store
                .lock()
                .remove_customer_enablement(customer, skill_id);
            Reply::empty(204)
        }
        _ => not_found(),
    }
}
