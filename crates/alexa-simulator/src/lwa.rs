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

/// The grants the token endpoint redeems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantType {
    /// `refresh_token`: a long-lived token, reusable.
    RefreshToken,
    /// `authorization_code`: a single-use code, exchanged for a new refresh token.
    AuthorizationCode,
}

/// RFC 6749 §5.2 `invalid_request` for a parameter the request lacks (or sends empty).
fn missing_parameter(name: &str) -> Reply {
    Reply::oauth_error(
        400,
        "invalid_request",
        format!("The request is missing a required parameter : {name}"),
    )
}

/// RFC 6749 §5.2 `invalid_grant`: unknown, used, or issued to another client.
fn invalid_grant(name: &str) -> Reply {
    Reply::oauth_error(
        400,
        "invalid_grant",
        format!("The request has an invalid grant parameter : {name}"),
    )
}

impl TokenRequest {
    fn required(&self, name: &str) -> Result<&str, Reply> {
        self.param(name).ok_or_else(|| missing_parameter(name))
    }

    fn grant_type(&self) -> Result<GrantType, Reply> {
        match self.required("grant_type")? {
            "refresh_token" => Ok(GrantType::RefreshToken),
            "authorization_code" => Ok(GrantType::AuthorizationCode),
            other => Err(Reply::oauth_error(
                400,
                "unsupported_grant_type",
                format!("The authorization grant type {other} is not supported"),
            )),
        }
    }

    /// The client's credentials: HTTP Basic when sent, the body's otherwise (never a mix).
    fn credentials(&self) -> (Option<&str>, Option<&str>) {
        match &self.basic {
            Some((id, secret)) => (Some(id.as_str()), Some(secret.as_str())),
            None => (self.param("client_id"), self.param("client_secret")),
        }
    }
}

/// Checks the client id and secret against the known security profiles; answers the client id.
/// A failure is 401 `invalid_client`, with a Basic challenge when the client used Basic.
fn authenticate_client<'a>(store: &Store, request: &'a TokenRequest) -> Result<&'a str, Reply> {
    let (client_id, client_secret) = request.credentials();
    let client_id = client_id.ok_or_else(|| missing_parameter("client_id"))?;
    let authenticated = match (store.clients.get(client_id), client_secret) {
        (Some(expected), Some(given)) => expected == given,
        _ => false,
    };
    if authenticated {
        return Ok(client_id);
    }
    let reply = Reply::oauth_error(401, "invalid_client", "Client authentication failed");
    Err(if request.basic.is_some() {
        reply.with_header("WWW-Authenticate", "Basic realm=\"LWA\"")
    } else {
        reply
    })
}

/// A refresh token works only for the client it was issued to, and stays valid.
fn redeem_refresh_token(
    store: &Store,
    request: &TokenRequest,
    client_id: &str,
) -> Result<(Grant, String), Reply> {
    let refresh = request.required("refresh_token")?;
    match store.refresh_tokens.get(refresh) {
        Some(grant) if grant.client_id == client_id => Ok((grant.clone(), refresh.to_string())),
        _ => Err(invalid_grant("refresh_token")),
    }
}

/// An authorization code is single-use and works only for its client; redeeming it issues a
/// new refresh token. Another client's code is left for its owner.
fn redeem_code(
    store: &mut Store,
    request: &TokenRequest,
    client_id: &str,
) -> Result<(Grant, String), Reply> {
    let code = request.required("code")?;
    let owned = store
        .lwa_codes
        .get(code)
        .is_some_and(|grant| grant.client_id == client_id);
    if !owned {
        return Err(invalid_grant("code"));
    }
    let grant = store
        .lwa_codes
        .remove(code)
        .ok_or_else(|| invalid_grant("code"))?;
    let refresh = random_token("Atzr|");
    store.refresh_tokens.insert(
        refresh.clone(),
        Grant {
            client_id: client_id.to_string(),
            subject: grant.subject.clone(),
        },
    );
    Ok((grant, refresh))
}

/// Redeems a grant and issues an access token (plus the refresh token to keep).
pub(crate) fn token(
    store: &mut Store,
    tokens: &TokenStore,
    lifetime: Duration,
    request: &TokenRequest,
) -> Reply {
    try_token(store, tokens, lifetime, request).unwrap_or_else(|reply| reply)
}

/// The checks in LWA's order: grant type, client, then the grant itself.
fn try_token(
    store: &mut Store,
    tokens: &TokenStore,
    lifetime: Duration,
    request: &TokenRequest,
) -> Result<Reply, Reply> {
    let grant_type = request.grant_type()?;
    let client_id = authenticate_client(store, request)?;
    let (grant, refresh_token) = match grant_type {
        GrantType::RefreshToken => redeem_refresh_token(store, request, client_id)?,
        GrantType::AuthorizationCode => redeem_code(store, request, client_id)?,
    };
    let access_token = tokens.issue(grant.subject, client_id, lifetime);
    Ok(Reply::json(
        200,
        serde_json::json!({
            "access_token": access_token,
            "refresh_token": refresh_token,
            "token_type": "bearer",
            "expires_in": lifetime.as_secs(),
        }),
    )
    .with_header("Cache-Control", "no-store")
    .with_header("Pragma", "no-cache"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::HeaderMap;

    use super::{parse, token};
    use crate::Region;
    use crate::auth::TokenStore;
    use crate::state::{SimState, Store, sandbox};

    /// A form body as pairs.
    type Form<'a> = Vec<(&'a str, &'a str)>;

    #[test]
    fn each_token_request_rule_gets_its_oauth_error() {
        let mut store = Store::from_state(&SimState::sandbox()).expect("sandbox loads");
        let tokens = TokenStore::new();
        let client = [
            ("client_id", sandbox::CLIENT_ID),
            ("client_secret", sandbox::CLIENT_SECRET),
        ];
        let other_client = [
            ("client_id", sandbox::CLIENT_ID_2),
            ("client_secret", sandbox::CLIENT_SECRET_2),
        ];
        let code = sandbox::customer_lwa_code(Region::Na, 1);
        let refresh = [("grant_type", "refresh_token")];
        let by_code = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ];
        let cases: [(&str, Form, u16, &str, &str); 8] = [
            (
                "no grant type",
                client.to_vec(),
                400,
                "invalid_request",
                "The request is missing a required parameter : grant_type",
            ),
            (
                "unknown grant type",
                [&[("grant_type", "password")], &client[..]].concat(),
                400,
                "unsupported_grant_type",
                "The authorization grant type password is not supported",
            ),
            (
                "no client id",
                [&refresh[..], &client[1..]].concat(),
                400,
                "invalid_request",
                "The request is missing a required parameter : client_id",
            ),
            (
                "wrong secret",
                [
                    &refresh[..],
                    &[("client_id", sandbox::CLIENT_ID), ("client_secret", "x")],
                ]
                .concat(),
                401,
                "invalid_client",
                "Client authentication failed",
            ),
            (
                "no refresh token",
                [&refresh[..], &client[..]].concat(),
                400,
                "invalid_request",
                "The request is missing a required parameter : refresh_token",
            ),
            (
                "another client's refresh token",
                [
                    &refresh[..],
                    &[("refresh_token", sandbox::REFRESH_TOKEN)],
                    &other_client[..],
                ]
                .concat(),
                400,
                "invalid_grant",
                "The request has an invalid grant parameter : refresh_token",
            ),
            (
                "no code",
                [&by_code[..1], &client[..]].concat(),
                400,
                "invalid_request",
                "The request is missing a required parameter : code",
            ),
            (
                "another client's code",
                [&by_code[..], &other_client[..]].concat(),
                400,
                "invalid_grant",
                "The request has an invalid grant parameter : code",
            ),
        ];
        for (case, form, status, error, description) in cases {
            let body = serde_urlencoded::to_string(&form).expect("form encodes");
            let request = parse(&HeaderMap::new(), body.as_bytes()).expect("form parses");
            let reply = token(&mut store, &tokens, Duration::from_secs(60), &request);
            let found = reply.body.unwrap_or_default();
            assert_eq!(
                (reply.status, &found["error"], &found["error_description"]),
                (status, &error.into(), &description.into()),
                "{case}"
            );
        }
        // The code another client tried is still there for its owner, and single-use.
        for expected in [200, 400] {
            let body = serde_urlencoded::to_string([&by_code[..], &client[..]].concat())
                .expect("form encodes");
            let request = parse(&HeaderMap::new(), body.as_bytes()).expect("form parses");
            let reply = token(&mut store, &tokens, Duration::from_secs(60), &request);
            assert_eq!(reply.status, expected);
        }
    }
}
