//! Login with Amazon token endpoint (`POST /auth/o2/token`): refresh-token and
//! authorization-code grants, form or JSON bodies, client credentials in the body or HTTP Basic,
//! RFC 6749 error bodies.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use hyper::HeaderMap;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

use crate::auth::{TokenStore, random_token};
use crate::reply::Reply;
use crate::state::{Grant, Store};

/// A parsed token request.
#[derive(Debug, Clone)]
pub(crate) struct TokenRequest {
    params: HashMap<String, String>,
    basic: Option<(String, String)>,
}

impl TokenRequest {
    /// The client id from HTTP Basic or the body, unverified (for logging and rate limiting).
    pub(crate) fn client_id(&self) -> Option<String> {
        self.basic
            .as_ref()
            .map(|(id, _)| id.clone())
            .or_else(|| self.params.get("client_id").cloned())
    }

    /// The body as a JSON object, for the (redacted) request log.
    pub(crate) fn params_json(&self) -> Value {
        Value::Object(
            self.params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn json_params(body: &[u8]) -> Option<HashMap<String, String>> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    Some(
        map.into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Number(n) => Some((k, n.to_string())),
                Value::Bool(b) => Some((k, b.to_string())),
                _ => None,
            })
            .collect(),
    )
}

fn decode_basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before encoding.
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((unescape(id), unescape(secret)))
}

/// Parses the body by content type (form by default, JSON when declared or when it looks like
/// JSON) and any HTTP Basic client credentials.
pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, Reply> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let params = if content_type.contains("json") || (content_type.is_empty() && looks_json) {
        json_params(body)
    } else {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()
            .map(|pairs| pairs.into_iter().collect())
    };
    let Some(params) = params else {
        return Err(Reply::oauth_error(
            400,
            "invalid_request",
            "The request body could not be parsed.",
        ));
    };
    Ok(TokenRequest {
        params,
        basic: decode_basic(headers),
    })
}

/// Redeems a grant and issues an access token (plus the refresh token to keep).
pub(crate) fn token(
    store: &mut Store,
    tokens: &TokenStore,
    lifetime: Duration,
    request: &TokenRequest,
) -> Reply {
    let Some(grant_type) = request.param("grant_type") else {
        return Reply::oauth_error(
            400,
            "invalid_request",
            "The request is missing a required parameter : grant_type",
        );
    };
    if grant_type != "refresh_token" && grant_type != "authorization_code" {
        return Reply::oauth_error(
            400,
            "unsupported_grant_type",
            format!("The authorization grant type {grant_type} is not supported"),
        );
    }
    let used_basic = request.basic.is_some();
    let (client_id, client_secret) = match &request.basic {
        Some((id, secret)) => (Some(id.as_str()), Some(secret.as_str())),
        None => (request.param("client_id"), request.param("client_secret")),
    };
    let Some(client_id) = client_id else {
        return Reply::oauth_error(
            400,
            "invalid_request",
            "The request is missing a required parameter : client_id",
        );
    };
    let authenticated = match (store.clients.get(client_id), client_secret) {
        (Some(expected), Some(given)) => expected == given,
        _ => false,
    };
    if !authenticated {
        let reply = Reply::oauth_error(401, "invalid_client", "Client authentication failed");
        return if used_basic {
            reply.with_header("WWW-Authenticate", "Basic realm=\"LWA\"")
        } else {
            reply
        };
    }
    let (grant, refresh_token) = if grant_type == "refresh_token" {
        let Some(refresh) = request.param("refresh_token") else {
            return Reply::oauth_error(
                400,
                "invalid_request",
                "The request is missing a required parameter : refresh_token",
            );
        };
        match store.refresh_tokens.get(refresh) {
            Some(grant) if grant.client_id == client_id => (grant.clone(), refresh.to_string()),
            _ => {
                return Reply::oauth_error(
                    400,
                    "invalid_grant",
                    "The request has an invalid grant parameter : refresh_token",
                );
            }
        }
    } else {
        let Some(code) = request.param("code") else {
            return Reply::oauth_error(
                400,
                "invalid_request",
                "The request is missing a required parameter : code",
            );
        };
        let valid = store
            .lwa_codes
            .get(code)
            .is_some_and(|grant| grant.client_id == client_id);
        let grant = match store.lwa_codes.remove(code) {
            Some(grant) if valid => grant,
            Some(other) => {
                // Not this client's code: leave it for its owner.
                store.lwa_codes.insert(code.to_string(), other);
                return invalid_code();
            }
            None => return invalid_code(),
        };
        let refresh = random_token("Atzr|");
        store.refresh_tokens.insert(
            refresh.clone(),
            Grant {
                client_id: client_id.to_string(),
                subject: grant.subject.clone(),
            },
        );
        (grant, refresh)
    };
    let access_token = tokens.issue(grant.subject, client_id, lifetime);
    Reply::json(
        200,
        serde_json::json!({
            "access_token": access_token,
            "refresh_token": refresh_token,
            "token_type": "bearer",
            "expires_in": lifetime.as_secs(),
        }),
    )
    .with_header("Cache-Control", "no-store")
    .with_header("Pragma", "no-cache")
}

fn invalid_code() -> Reply {
    Reply::oauth_error(
        400,
        "invalid_grant",
        "The request has an invalid grant parameter : code",
    )
}
