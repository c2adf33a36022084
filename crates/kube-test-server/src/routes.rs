//! HTTP front: one axum fallback handler parses Kubernetes paths
//! (`/api/v1/[namespaces/{ns}/]{plural}[/{name}[/status]]`, `/apis/{g}/{v}/...`, legacy
//! `/watch/` prefixes, discovery), decodes bodies by Content-Type (415 for protobuf), applies
//! injected faults, records every request, and dispatches to `ops`/`watch`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, header};
use serde_json::Value;

use crate::error::ApiError;
use crate::metadata::MetadataOptions;
use crate::ops::{self, Params, Req};
use crate::patch::PatchKind;
use crate::table::{self, Convert, TableOptions};
use crate::{Inner, RequestRecord, discovery, watch};

/// Largest accepted request body.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new().fallback(handle).with_state(inner)
}

fn json_response(code: u16, v: &Value) -> Response {
    let code = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn converted_response(body: String, content_type: String) -> Response {
    (
        http::StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        body,
    )
        .into_response()
}

fn table_response(v: &Value, opts: TableOptions) -> Response {
    converted_response(v.to_string(), opts.content_type())
}

fn metadata_response(v: &Value, opts: MetadataOptions) -> Response {
    converted_response(v.to_string(), opts.content_type())
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let mut verb = "unknown";
    let params = Params::parse(query.as_deref());
    let field_manager = params
        .as_ref()
        .ok()
        .and_then(|p| p.get("fieldManager").map(str::to_string));
    let response = match inner.take_fault(&method, &path, query.as_deref()) {
        Some(code) => fault_response(code),
        None => match (params, axum::body::to_bytes(body, BODY_LIMIT).await) {
            (Ok(params), Ok(bytes)) => {
                let lease = crate::leases::Target::of(&method, &path, &bytes);
                let injected = match &lease {
                    Some(target) => inner.lease_fault(target).await,
                    None => None,
                };
                let response = match injected {
                    Some(r) => r,
                    None => match dispatch(
                        &inner,
                        &method,
                        &path,
                        &params,
                        &parts.headers,
                        bytes,
                        &mut verb,
                    ) {
                        Ok(r) => r,
                        Err(e) => e.into_response(),
                    },
                };
                if let Some(target) = lease.filter(|_| response.status().is_success()) {
                    inner.record_lease_write(&target);
                }
                response
            }
            (Err(e), _) => e.into_response(),
            (_, Err(e)) => ApiError::bad_request(format!("cannot read body: {e}")).into_response(),
        },
    };
    if verb == "unknown" {
        verb = classify(&method, &path);
    }
    inner.record(RequestRecord {
        method,
        path,
        query,
        verb: verb.to_string(),
        status: response.status().as_u16(),
        field_manager,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    response
}

/// Best-effort verb for requests that failed before dispatch.
fn classify(method: &Method, path: &str) -> &'static str {
    let named = {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let base = if segs.first() == Some(&"api") { 2 } else { 3 };
        let rest = segs.len().saturating_sub(base);
        let namespaced = segs.get(base) == Some(&"namespaces") && rest >= 3;
        if namespaced { rest >= 4 } else { rest >= 2 }
    };
    match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn fault_response(code: u16) -> Response {
    let (reason, message) = match code {
        429 => (
            "TooManyRequests",
            "injected fault: too many requests, please try again later",
        ),
        409 => (
            "Conflict",
            "injected fault: the object has been modified; please apply your changes to the latest version and try again",
        ),
        404 => ("NotFound", "injected fault: not found"),
        503 => ("ServiceUnavailable", "injected fault: service unavailable"),
        _ => (
            "InternalError",
            "injected fault: an error on the server has prevented the request from succeeding",
        ),
    };
    ApiError::new(code, reason, message).into_response()
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

/// Decode a create/update body (JSON or YAML; protobuf is refused with 415).
fn decode_body(headers: &HeaderMap, bytes: &Bytes) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    let base = ct.split(';').next().unwrap_or("").trim().to_string();
    match base.as_str() {
        "application/json" | "" | "*/*" => decode_json(bytes),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(bytes),
        _ => Err(ApiError::unsupported_media(&ct)),
    }
}

fn decode_json(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))
}

fn decode_yaml(bytes: &Bytes) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    serde_saphyr::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))
}

fn default_manager(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn dispatch(
    inner: &Arc<Inner>,
    method: &Method,
    path: &str,
    params: &Params,
    headers: &HeaderMap,
    bytes: Bytes,
    verb: &mut &'static str,
) -> Result<Response, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let discovery_get = |v: Option<Value>, verb: &mut &'static str| -> Result<Response, ApiError> {
        *verb = "discovery";
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        v.map(|v| json_response(200, &v))
            .ok_or_else(|| ApiError::path_not_found(path))
    };
    let reg = || inner.registry.read();
    match segs.as_slice() {
        ["version"] => discovery_get(Some(discovery::version()), verb),
        ["healthz" | "livez" | "readyz"] => {
            *verb = "health";
            Ok((http::StatusCode::OK, "ok").into_response())
        }
        ["api"] => discovery_get(
            Some(discovery::core_versions(&inner.server_address())),
            verb,
        ),
        ["apis"] => discovery_get(Some(discovery::group_list(&reg())), verb),
        ["api", "v1"] => discovery_get(discovery::resource_list(&reg(), "", "v1"), verb),
        ["apis", g] => discovery_get(discovery::group(&reg(), g), verb),
        ["apis", g, v] => discovery_get(discovery::resource_list(&reg(), g, v), verb),
        ["api", "v1", rest @ ..] => {
            resource(inner, method, "", "v1", rest, params, headers, bytes, verb)
        }
        ["apis", g, v, rest @ ..] => {
            resource(inner, method, g, v, rest, params, headers, bytes, verb)
        }
        _ => Err(ApiError::path_not_found(path)),
    }
}

#[allow(clippy::too_many_arguments)]
fn resource(
    inner: &Arc<Inner>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    params: &Params,
    headers: &HeaderMap,
    bytes: Bytes,
    verb: &mut &'static str,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::path_not_found(&format!("/{}", rest.join("/")));
    let (legacy_watch, rest) = match rest.split_first() {
        Some((&"watch", r)) => (true, r),
        _ => (false, rest),
    };
    let is_ns_subresource = rest.len() == 3 && matches!(rest.get(2), Some(&"status" | &"finalize"));
    let (ns, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() && !is_ns_subresource => (Some(*ns), r),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(not_found()),
    };
    let rt = inner
        .registry
        .read()
        .get(group, version, plural)
        .ok_or_else(not_found)?;
    if (rt.namespaced && name.is_some() && ns.is_none()) || (!rt.namespaced && ns.is_some()) {
        return Err(not_found());
    }
    let status_sub = match sub {
        None => false,
        Some("status") if rt.status_subresource => true,
        Some(_) => return Err(not_found()),
    };
    let manager = params
        .get("fieldManager")
        .map(str::to_string)
        .unwrap_or_else(|| default_manager(headers));
    let dry_run = params.get("dryRun") == Some("All");
    let req = Req {
        inner,
        rt: rt.clone(),
        ns: ns.unwrap_or("").to_string(),
        params,
        manager,
        dry_run,
    };
    let reply = |(code, v): (u16, Value)| json_response(code, &v);
    // kubectl get asks for server-side printing, metadata clients for PartialObjectMetadata.
    let convert = if *method == Method::GET {
        table::negotiate(headers, params)?
    } else {
        None
    };
    match (method.clone(), name) {
        (Method::GET, None) if legacy_watch || params.flag("watch") => {
            *verb = "watch";
            watch::watch(inner, rt, ns.map(str::to_string), params, convert)
        }
        (Method::GET, None) => {
            *verb = "list";
            let list = ops::list(&req, ns)?;
            if let Some(Convert::Metadata(m)) = convert {
                m.check(&rt, true)?;
            }
            Ok(match convert {
                Some(Convert::Table(t)) => {
                    table_response(&table::table_of_list(&rt, &list.into_value(), t), t)
                }
                Some(Convert::Metadata(m)) => {
                    converted_response(m.list(&list.meta, &list.items), m.content_type())
                }
                None => converted_response(list.body(), "application/json".into()),
            })
        }
        (Method::GET, Some(n)) if legacy_watch => {
            *verb = "watch";
            let mut p = params.clone();
            let fs = match p.get("fieldSelector") {
                Some(f) => format!("{f},metadata.name={n}"),
                None => format!("metadata.name={n}"),
            };
            p.0.insert("fieldSelector".into(), fs);
            watch::watch(inner, rt, ns.map(str::to_string), &p, convert)
        }
        (Method::GET, Some(n)) => {
            *verb = "get";
            let obj = ops::get(&req, n)?;
            if let Some(Convert::Metadata(m)) = convert {
                m.check(&rt, false)?;
            }
            Ok(match convert {
                Some(Convert::Table(t)) => {
                    table_response(&table::table_of_one(&rt, &obj, t, true), t)
                }
                Some(Convert::Metadata(m)) => metadata_response(&m.object(&obj), m),
                None => json_response(200, &obj),
            })
        }
        (Method::POST, None) => {
            *verb = "create";
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed("POST"));
            }
            let body = decode_body(headers, &bytes)?;
            ops::create(&req, body).map(reply)
        }
        (Method::DELETE, None) => {
            *verb = "deletecollection";
            ops::delete_collection(&req, ns).map(|v| json_response(200, &v))
        }
        (Method::PUT, Some(n)) => {
            *verb = "update";
            let body = decode_body(headers, &bytes)?;
            ops::update(&req, n, body, status_sub).map(reply)
        }
        (Method::PATCH, Some(n)) => {
            *verb = "patch";
            let ct = content_type(headers);
            let kind = PatchKind::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media(&ct))?;
            let body = match kind {
                PatchKind::Apply => decode_json(&bytes).or_else(|_| decode_yaml(&bytes))?,
                _ => decode_json(&bytes)?,
            };
            ops::patch(&req, n, kind, body, status_sub).map(reply)
        }
        (Method::DELETE, Some(n)) => {
            *verb = "delete";
            let ct = content_type(headers);
            if ct.contains("protobuf") {
                return Err(ApiError::unsupported_media(&ct));
            }
            let body = decode_json(&bytes)?;
            let dry = req.dry_run
                || body
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|x| x == "All"));
            let req = Req {
                dry_run: dry,
                ..req
            };
            ops::delete(&req, n, &body).map(reply)
        }
        (m, _) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}
