//! Wire models of SMAPI account linking, skill enablement, endpoint discovery and Login with
//! Amazon. Responses are read tolerantly (real answers differ from the docs: wrapped or flat
//! bodies, booleans as strings, new fields), requests are written exactly as Amazon's own clients
//! write them (camelCase, absent fields omitted, never `null`).

use secrecy::{ExposeSecret, SecretString};
use serde::de::Deserializer;
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crd::account_linking::{
    AccessTokenScheme, AccountLinkingSpec, AccountLinkingType, PlatformAuthorizationUrl,
    PlatformType, VoiceForwardAccountLinking,
};
use crate::crd::common::Stage;
use crate::crd::enablement::AccountLinkRequestType;

/// A value read together with the `ETag` Amazon returned for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// The `ETag` header, verbatim, when Amazon sent one; pass it back as `If-Match`.
    pub etag: Option<String>,
}

/// Account linking of a skill stage as `GET .../accountLinkingClient` returns it. Every field is
/// optional or defaults to empty because Amazon omits what is not set; unknown fields are
/// ignored and values of an unknown spelling read as absent, so a change on Amazon's side never
/// fails a reconcile. `clientSecret` is write-only and never returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountLinkingInfo {
    /// OAuth grant type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<AccountLinkingType>,
    /// Login page of the skill's authorization server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// Domains the login page loads content from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Client ID Alexa uses at the authorization server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Scopes Alexa requests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Token endpoint of the authorization server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_url: Option<String>,
    /// How Alexa authenticates at the token endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_scheme: Option<AccessTokenScheme>,
    /// Token lifetime Alexa assumes when the token response has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_token_expiration_in_seconds: Option<i32>,
    /// Alexa redirect URLs the user must allow in their authorization server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirect_urls: Vec<String>,
    /// Platform-specific authorization URLs (app-to-app account linking).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_urls_by_platform: Vec<PlatformAuthorizationUrl>,
    /// Whether users may enable the skill without linking first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_on_enablement: Option<bool>,
    /// Voice-forward account linking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_forward_account_linking: Option<VoiceForwardAccountLinking>,
    /// URL Alexa calls for reciprocal access tokens (newer field, read when present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reciprocal_access_token_url: Option<String>,
}

impl AccountLinkingInfo {
    /// Reads a GET body, wrapped in `accountLinkingResponse` or flat. Fails only when the body
    /// is not a JSON object; the message never quotes the body.
    pub fn from_json(body: &[u8]) -> Result<AccountLinkingInfo, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON ({e})"))?;
        AccountLinkingInfo::from_value(value)
    }

    /// Like [`AccountLinkingInfo::from_json`], from an already parsed value.
    pub fn from_value(value: Value) -> Result<AccountLinkingInfo, String> {
        let Value::Object(mut map) = value else {
            return Err(format!("expected a JSON object, got {}", json_kind(&value)));
        };
        let inner = match map.remove("accountLinkingResponse") {
            Some(Value::Object(inner)) => inner,
            Some(other) => {
                // Not an object: keep reading the outer fields as if flat.
                map.insert("accountLinkingResponse".into(), other);
                map
            }
            None => map,
        };
        let raw: RawAccountLinkingInfo = serde_json::from_value(Value::Object(inner))
            .map_err(|e| format!("unexpected account linking shape ({e})"))?;
        Ok(AccountLinkingInfo {
            type_: raw
                .type_
                .and_then(|v| lenient_enum(&v, ACCOUNT_LINKING_TYPES)),
            authorization_url: raw.authorization_url.and_then(|v| lenient_string(&v)),
            domains: raw.domains.map(|v| string_list(&v)).unwrap_or_default(),
            client_id: raw.client_id.and_then(|v| lenient_string(&v)),
            scopes: raw.scopes.map(|v| string_list(&v)).unwrap_or_default(),
            access_token_url: raw.access_token_url.and_then(|v| lenient_string(&v)),
            access_token_scheme: raw
                .access_token_scheme
                .and_then(|v| lenient_enum(&v, ACCESS_TOKEN_SCHEMES)),
            default_token_expiration_in_seconds: raw
                .default_token_expiration_in_seconds
                .and_then(|v| lenient_i32(&v)),
            redirect_urls: raw
                .redirect_urls
                .map(|v| string_list(&v))
                .unwrap_or_default(),
            authorization_urls_by_platform: raw
                .authorization_urls_by_platform
                .map(|v| platform_urls(&v))
                .unwrap_or_default(),
            skip_on_enablement: raw.skip_on_enablement.and_then(|v| lenient_bool(&v)),
            voice_forward_account_linking: raw
                .voice_forward_account_linking
                .and_then(|v| lenient_enum(&v, VOICE_FORWARD)),
            reciprocal_access_token_url: raw
                .reciprocal_access_token_url
                .and_then(|v| lenient_string(&v)),
        })
    }
}

impl AccountLinkingInfo {
    /// Names (as on the wire) of the fields where Amazon's state differs from `desired`, for
    /// drift detection and `status.drift`. Knows Amazon's ways so a steady state never looks
    /// like drift: the request-only fields (`clientSecret`, `skipOnEnablement`: Amazon's GET
    /// does not return them, see [`REQUEST_ONLY_FIELDS`]) are never compared, whatever a server
    /// echoes (the controller tracks what it applied instead); an empty desired `redirectUrls`
    /// means "Amazon's defaults"; absent `voiceForwardAccountLinking` is `DISABLED` on both
    /// sides; lists compare as sets (Amazon may reorder them).
    pub fn differences_from(&self, desired: &AccountLinkingRequest) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.type_ != desired.type_ {
            out.push("type");
        }
        if self.authorization_url != desired.authorization_url {
            out.push("authorizationUrl");
        }
        if !same_set(&self.domains, &desired.domains) {
            out.push("domains");
        }
        if self.client_id != desired.client_id {
            out.push("clientId");
        }
        if !same_set(&self.scopes, &desired.scopes) {
            out.push("scopes");
        }
        if self.access_token_url != desired.access_token_url {
            out.push("accessTokenUrl");
        }
        if self.access_token_scheme != desired.access_token_scheme {
            out.push("accessTokenScheme");
        }
        if desired.default_token_expiration_in_seconds.is_some()
            && self.default_token_expiration_in_seconds
                != desired.default_token_expiration_in_seconds
        {
            out.push("defaultTokenExpirationInSeconds");
        }
        if !desired.redirect_urls.is_empty()
            && !same_set(&self.redirect_urls, &desired.redirect_urls)
        {
            out.push("redirectUrls");
        }
        let platform_urls = |list: &[PlatformAuthorizationUrl]| {
            let mut keys: Vec<(String, String)> = list
                .iter()
                .map(|p| {
                    (
                        format!("{:?}", p.platform_type),
                        p.platform_authorization_url.clone(),
                    )
                })
                .collect();
            keys.sort();
            keys.dedup();
            keys
        };
        if platform_urls(&self.authorization_urls_by_platform)
            != platform_urls(&desired.authorization_urls_by_platform)
        {
            out.push("authorizationUrlsByPlatform");
        }
        let voice = |v: Option<VoiceForwardAccountLinking>| {
            v.unwrap_or(VoiceForwardAccountLinking::Disabled)
        };
        if voice(self.voice_forward_account_linking) != voice(desired.voice_forward_account_linking)
        {
            out.push("voiceForwardAccountLinking");
        }
        out
    }
}

/// Request properties the GET account linking response does not document (the seed's response
/// table lists type, authorizationUrl, domains, clientId, scopes, accessTokenUrl,
/// accessTokenScheme, defaultTokenExpirationInSeconds, redirectUrls, authorizationUrlsByPlatform
/// and voiceForwardAccountLinking only): what was applied cannot be read back, only recorded.
pub const REQUEST_ONLY_FIELDS: [&str; 2] = ["clientSecret", "skipOnEnablement"];

/// Whether two string lists hold the same items, ignoring order and repeats.
fn same_set(a: &[String], b: &[String]) -> bool {
    sorted_unique(a) == sorted_unique(b)
}

fn sorted_unique(list: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = list.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl<'de> Deserialize<'de> for AccountLinkingInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        AccountLinkingInfo::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// Every field as raw JSON, so no single odd value can fail the whole body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAccountLinkingInfo {
    #[serde(rename = "type")]
    type_: Option<Value>,
    authorization_url: Option<Value>,
    domains: Option<Value>,
    client_id: Option<Value>,
    scopes: Option<Value>,
    access_token_url: Option<Value>,
    access_token_scheme: Option<Value>,
    default_token_expiration_in_seconds: Option<Value>,
    redirect_urls: Option<Value>,
    authorization_urls_by_platform: Option<Value>,
    skip_on_enablement: Option<Value>,
    voice_forward_account_linking: Option<Value>,
    reciprocal_access_token_url: Option<Value>,
}

/// Desired account linking, sent as `PUT .../accountLinkingClient`. Serializes as Amazon
/// expects: wrapped in `{"accountLinkingRequest": {...}}`, camelCase, absent fields and empty
/// lists omitted (never `null`). The client secret is exposed only into that body; Debug
/// redacts it.
#[derive(Debug, Clone, Default)]
pub struct AccountLinkingRequest {
    /// OAuth grant type.
    pub type_: Option<AccountLinkingType>,
    /// Login page of the skill's authorization server.
    pub authorization_url: Option<String>,
    /// Domains the login page loads content from (≤ 15).
    pub domains: Vec<String>,
    /// Client ID Alexa uses at the authorization server.
    pub client_id: Option<String>,
    /// Scopes Alexa requests (≤ 15).
    pub scopes: Vec<String>,
    /// Token endpoint of the authorization server (AUTH_CODE).
    pub access_token_url: Option<String>,
    /// Client secret Alexa uses at the token endpoint (AUTH_CODE). Write-only at Amazon.
    pub client_secret: Option<SecretString>,
    /// How Alexa authenticates at the token endpoint (AUTH_CODE).
    pub access_token_scheme: Option<AccessTokenScheme>,
    /// Token lifetime Alexa assumes when the token response has none (AUTH_CODE).
    pub default_token_expiration_in_seconds: Option<i32>,
    /// Redirect URLs to use instead of Amazon's defaults.
    pub redirect_urls: Vec<String>,
    /// Platform-specific authorization URLs.
    pub authorization_urls_by_platform: Vec<PlatformAuthorizationUrl>,
    /// Whether users may enable the skill without linking first.
    pub skip_on_enablement: Option<bool>,
    /// Voice-forward account linking.
    pub voice_forward_account_linking: Option<VoiceForwardAccountLinking>,
}

impl AccountLinkingRequest {
    /// Builds the request for a resource's spec and the client secret read from its Secret.
    pub fn from_spec(
        spec: &AccountLinkingSpec,
        client_secret: Option<SecretString>,
    ) -> AccountLinkingRequest {
        AccountLinkingRequest {
            type_: Some(spec.type_),
            authorization_url: Some(spec.authorization_url.clone()),
            domains: spec.domains.clone(),
            client_id: Some(spec.client_id.clone()),
            scopes: spec.scopes.clone(),
            access_token_url: spec.access_token_url.clone(),
            client_secret,
            access_token_scheme: spec.access_token_scheme,
            default_token_expiration_in_seconds: spec.default_token_expiration_in_seconds,
            redirect_urls: spec.redirect_urls.clone(),
            authorization_urls_by_platform: spec.authorization_urls_by_platform.clone(),
            skip_on_enablement: spec.skip_on_enablement,
            voice_forward_account_linking: spec.voice_forward_account_linking,
        }
    }
}

impl Serialize for AccountLinkingRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut outer = serializer.serialize_struct("AccountLinkingRequestBody", 1)?;
        outer.serialize_field("accountLinkingRequest", &AccountLinkingRequestFields(self))?;
        outer.end()
    }
}

/// The inner object of the PUT body.
struct AccountLinkingRequestFields<'a>(&'a AccountLinkingRequest);

impl Serialize for AccountLinkingRequestFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut s = serializer.serialize_struct("accountLinkingRequest", 13)?;
        macro_rules! opt {
            ($name:literal, $field:expr) => {
                match &$field {
                    Some(v) => s.serialize_field($name, v)?,
                    None => s.skip_field($name)?,
                }
            };
        }
        macro_rules! list {
            ($name:literal, $field:expr) => {
                if $field.is_empty() {
                    s.skip_field($name)?
                } else {
                    s.serialize_field($name, &$field)?
                }
            };
        }
        opt!("type", r.type_);
        opt!("authorizationUrl", r.authorization_url);
        list!("domains", r.domains);
        opt!("clientId", r.client_id);
        list!("scopes", r.scopes);
        opt!("accessTokenUrl", r.access_token_url);
        match &r.client_secret {
            Some(secret) => s.serialize_field("clientSecret", secret.expose_secret())?,
            None => s.skip_field("clientSecret")?,
        }
        opt!("accessTokenScheme", r.access_token_scheme);
        opt!(
            "defaultTokenExpirationInSeconds",
            r.default_token_expiration_in_seconds
        );
        list!("redirectUrls", r.redirect_urls);
        list!(
            "authorizationUrlsByPlatform",
            r.authorization_urls_by_platform
        );
        opt!("skipOnEnablement", r.skip_on_enablement);
        opt!(
            "voiceForwardAccountLinking",
            r.voice_forward_account_linking
        );
        s.end()
    }
}

/// Body of `POST /v1/users/~current/skills/{skillId}/enablement`: enable the skill for a
/// customer and link their account in the skill's service.
#[derive(Debug, Clone)]
pub struct CustomerEnableRequest {
    /// Skill stage to enable for the customer.
    pub stage: Stage,
    /// The account link to create.
    pub account_link_request: CustomerLinkRequest,
}

/// The `accountLinkRequest` part of [`CustomerEnableRequest`].
#[derive(Debug, Clone)]
pub struct CustomerLinkRequest {
    /// Grant type (only AUTH_CODE exists).
    pub type_: AccountLinkRequestType,
    /// The customer's authorization code from the skill's authorization server (single-use).
    pub auth_code: SecretString,
    /// Redirect URI the code was issued for.
    pub redirect_uri: String,
    /// PKCE code verifier, when the authorization server uses PKCE.
    pub code_verifier: Option<SecretString>,
}

impl Serialize for CustomerEnableRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CustomerEnableRequest", 2)?;
        s.serialize_field("stage", &self.stage)?;
        s.serialize_field("accountLinkRequest", &self.account_link_request)?;
        s.end()
    }
}

impl Serialize for CustomerLinkRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("accountLinkRequest", 4)?;
        s.serialize_field("type", &self.type_)?;
        s.serialize_field("authCode", self.auth_code.expose_secret())?;
        s.serialize_field("redirectUri", &self.redirect_uri)?;
        match &self.code_verifier {
            Some(v) => s.serialize_field("codeVerifier", v.expose_secret())?,
            None => s.skip_field("codeVerifier")?,
        }
        s.end()
    }
}

/// A customer's enablement of a skill, from the customer enablement API. Flattened from
/// Amazon's nested `{"skill": {"id", "stage"}, "user": {"id"}, "accountLink": {"status"},
/// "status"}`; values stay strings so new statuses never fail a read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerEnablementStatus {
    /// `skill.id`.
    pub skill_id: Option<String>,
    /// `skill.stage`.
    pub stage: Option<String>,
    /// `user.id`: Amazon's ID of the customer (may change when they re-enable).
    pub user_id: Option<String>,
    /// `accountLink.status`, for example `LINKED`.
    pub account_link_status: Option<String>,
    /// `status`, for example `ENABLED`.
    pub status: Option<String>,
}

impl CustomerEnablementStatus {
    /// Reads a status body tolerantly; fails only when the body is not a JSON object.
    pub fn from_json(body: &[u8]) -> Result<CustomerEnablementStatus, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON ({e})"))?;
        let Value::Object(map) = &value else {
            return Err(format!("expected a JSON object, got {}", json_kind(&value)));
        };
        let nested = |outer: &str, inner: &str| {
            map.get(outer)
                .and_then(|o| o.get(inner))
                .and_then(lenient_string)
        };
        Ok(CustomerEnablementStatus {
            skill_id: nested("skill", "id"),
            stage: nested("skill", "stage"),
            user_id: nested("user", "id"),
            account_link_status: nested("accountLink", "status"),
            status: map.get("status").and_then(lenient_string),
        })
    }

    /// Whether Amazon reports the skill enabled for the customer.
    pub fn is_enabled(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("ENABLED"))
    }

    /// Whether Amazon reports the customer's account linked.
    pub fn is_linked(&self) -> bool {
        self.account_link_status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("LINKED"))
    }
}

/// Reads `{"endpoints": ["api.amazonalexa.com", ...]}`; entries may also be full URLs.
pub(crate) fn endpoints_from_json(body: &[u8]) -> Result<Vec<String>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON ({e})"))?;
    match value.get("endpoints") {
        Some(list) => Ok(string_list(list)
            .into_iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect()),
        None => Err("no endpoints field".into()),
    }
}

/// A successful Login with Amazon token answer.
#[derive(Clone)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: SecretString,
    pub(crate) refresh_token: Option<SecretString>,
    pub(crate) expires_in: Option<u64>,
}

impl TokenResponse {
    /// Reads `{"access_token", "refresh_token", "token_type", "expires_in"}`; `expires_in` may
    /// be a number or a string. Never quotes the body in its error.
    pub(crate) fn from_json(body: &[u8]) -> Result<TokenResponse, String> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| "token answer is not valid JSON".to_owned())?;
        let access_token = value
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| "token answer has no access_token".to_owned())?;
        Ok(TokenResponse {
            access_token: SecretString::from(access_token),
            refresh_token: value
                .get("refresh_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            expires_in: value.get("expires_in").and_then(lenient_u64),
        })
    }
}

const ACCOUNT_LINKING_TYPES: &[(&str, AccountLinkingType)] = &[
    ("AUTH_CODE", AccountLinkingType::AuthCode),
    ("IMPLICIT", AccountLinkingType::Implicit),
];
const ACCESS_TOKEN_SCHEMES: &[(&str, AccessTokenScheme)] = &[
    ("HTTP_BASIC", AccessTokenScheme::HttpBasic),
    (
        "REQUEST_BODY_CREDENTIALS",
        AccessTokenScheme::RequestBodyCredentials,
    ),
];
const VOICE_FORWARD: &[(&str, VoiceForwardAccountLinking)] = &[
    ("ENABLED", VoiceForwardAccountLinking::Enabled),
    ("DISABLED", VoiceForwardAccountLinking::Disabled),
];
const PLATFORM_TYPES: &[(&str, PlatformType)] = &[
    ("iOS", PlatformType::Ios),
    ("Android", PlatformType::Android),
];

/// Matches a string case-insensitively (and with `-`/`_` treated alike) against known names.
fn lenient_enum<T: Copy>(value: &Value, names: &[(&str, T)]) -> Option<T> {
    let s = value.as_str()?.trim();
    let norm = |x: &str| x.replace('-', "_").to_ascii_uppercase();
    let wanted = norm(s);
    names
        .iter()
        .find(|(n, _)| norm(n) == wanted)
        .map(|(_, v)| *v)
}

/// A string, or a number or bool rendered as one; anything else is absent.
fn lenient_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `true`/`false`, their string forms in any case, or 1/0.
fn lenient_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An integer as a number or a numeric string, within `i32`.
fn lenient_i32(value: &Value) -> Option<i32> {
    lenient_i64(value).and_then(|n| i32::try_from(n).ok())
}

/// A non-negative integer as a number or a numeric string.
fn lenient_u64(value: &Value) -> Option<u64> {
    lenient_i64(value).and_then(|n| u64::try_from(n).ok())
}

fn lenient_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A list of strings; a single string counts as a one-item list, non-strings are skipped.
fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(lenient_string).collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// `authorizationUrlsByPlatform`, skipping entries that cannot be read.
fn platform_urls(value: &Value) -> Vec<PlatformAuthorizationUrl> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            Some(PlatformAuthorizationUrl {
                platform_type: lenient_enum(item.get("platformType")?, PLATFORM_TYPES)?,
                platform_authorization_url: lenient_string(item.get("platformAuthorizationUrl")?)?,
            })
        })
        .collect()
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full_flat() -> Value {
        json!({
            "type": "AUTH_CODE",
            "authorizationUrl": "https://www.example.com/auth_url",
            "domains": ["www.example.com"],
            "clientId": "your.client.id.1",
            "scopes": ["permission.scope.a", "permission.scope.b"],
            "accessTokenUrl": "https://www.example.com/accessToken_url",
            "accessTokenScheme": "HTTP_BASIC",
            "defaultTokenExpirationInSeconds": 20,
            "redirectUrls": ["https://www.example.com/redirect_url"],
            "authorizationUrlsByPlatform": [
                {"platformType": "iOS", "platformAuthorizationUrl": "https://your.ios.url"},
                {"platformType": "Android", "platformAuthorizationUrl": "https://your.android.url"}
            ],
            "skipOnEnablement": "true",
            "voiceForwardAccountLinking": "ENABLED",
            "reciprocalAccessTokenUrl": "https://www.example.com/reciprocal",
            "someFutureField": {"nested": [1, 2, 3]}
        })
    }

    fn expected_full() -> AccountLinkingInfo {
        AccountLinkingInfo {
            type_: Some(AccountLinkingType::AuthCode),
            authorization_url: Some("https://www.example.com/auth_url".into()),
            domains: vec!["www.example.com".into()],
            client_id: Some("your.client.id.1".into()),
            scopes: vec!["permission.scope.a".into(), "permission.scope.b".into()],
            access_token_url: Some("https://www.example.com/accessToken_url".into()),
            access_token_scheme: Some(AccessTokenScheme::HttpBasic),
            default_token_expiration_in_seconds: Some(20),
            redirect_urls: vec!["https://www.example.com/redirect_url".into()],
            authorization_urls_by_platform: vec![
                PlatformAuthorizationUrl {
                    platform_type: PlatformType::Ios,
                    platform_authorization_url: "https://your.ios.url".into(),
                },
                PlatformAuthorizationUrl {
                    platform_type: PlatformType::Android,
                    platform_authorization_url: "https://your.android.url".into(),
                },
            ],
            skip_on_enablement: Some(true),
            voice_forward_account_linking: Some(VoiceForwardAccountLinking::Enabled),
            reciprocal_access_token_url: Some("https://www.example.com/reciprocal".into()),
        }
    }

    #[test]
    fn reads_flat_and_wrapped_get_bodies_alike() {
        let flat = AccountLinkingInfo::from_value(full_flat()).unwrap();
        let wrapped =
            AccountLinkingInfo::from_value(json!({ "accountLinkingResponse": full_flat() }))
                .unwrap();
        assert_eq!(flat, expected_full());
        assert_eq!(wrapped, expected_full());
        // Through serde too.
        let via_serde: AccountLinkingInfo = serde_json::from_value(full_flat()).unwrap();
        assert_eq!(via_serde, expected_full());
    }

    #[test]
    fn tolerates_odd_values() {
        let info = AccountLinkingInfo::from_value(json!({
            "type": "auth_code",
            "skipOnEnablement": true,
            "defaultTokenExpirationInSeconds": "3600",
            "accessTokenScheme": "SOMETHING_NEW",
            "voiceForwardAccountLinking": null,
            "domains": null,
            "scopes": "profile",
            "redirectUrls": ["https://a", 5, null],
            "authorizationUrlsByPlatform": [{"platformType": "IOS", "platformAuthorizationUrl": "https://i"}, {"platformType": "Windows"}, 7],
            "clientId": 12345
        }))
        .unwrap();
        assert_eq!(info.type_, Some(AccountLinkingType::AuthCode));
        assert_eq!(info.skip_on_enablement, Some(true));
        assert_eq!(info.default_token_expiration_in_seconds, Some(3600));
        assert_eq!(info.access_token_scheme, None);
        assert_eq!(info.voice_forward_account_linking, None);
        assert!(info.domains.is_empty());
        assert_eq!(info.scopes, vec!["profile".to_string()]);
        assert_eq!(
            info.redirect_urls,
            vec!["https://a".to_string(), "5".to_string()]
        );
        assert_eq!(info.authorization_urls_by_platform.len(), 1);
        assert_eq!(info.client_id.as_deref(), Some("12345"));

        let info = AccountLinkingInfo::from_value(json!({"skipOnEnablement": "FALSE"})).unwrap();
        assert_eq!(info.skip_on_enablement, Some(false));
        assert_eq!(
            info,
            AccountLinkingInfo {
                skip_on_enablement: Some(false),
                ..Default::default()
            }
        );
    }

    #[test]
    fn absent_lists_are_empty() {
        let info = AccountLinkingInfo::from_value(json!({"type": "IMPLICIT"})).unwrap();
        assert!(info.domains.is_empty() && info.scopes.is_empty() && info.redirect_urls.is_empty());
        assert!(info.authorization_urls_by_platform.is_empty());
    }

    #[test]
    fn malformed_bodies_never_panic() {
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"42",
            b"\"x\"",
            b"{",
            b"{\"accountLinkingResponse\": 5}",
            b"{\"accountLinkingResponse\": null, \"type\": \"IMPLICIT\"}",
            &[0xff, 0x00, 0x7b],
        ] {
            let _ = AccountLinkingInfo::from_json(body);
            let _ = CustomerEnablementStatus::from_json(body);
            let _ = endpoints_from_json(body);
            let _ = TokenResponse::from_json(body);
        }
        assert!(AccountLinkingInfo::from_json(b"[]").is_err());
        let info = AccountLinkingInfo::from_json(
            b"{\"accountLinkingResponse\": null, \"type\": \"IMPLICIT\"}",
        )
        .unwrap();
        assert_eq!(info.type_, Some(AccountLinkingType::Implicit));
    }

    #[test]
    fn request_serializes_wrapped_without_nulls() {
        let request = AccountLinkingRequest {
            type_: Some(AccountLinkingType::AuthCode),
            authorization_url: Some("https://auth".into()),
            client_id: Some("cid".into()),
            access_token_url: Some("https://token".into()),
            client_secret: Some(SecretString::from("s3cr3t-value")),
            access_token_scheme: Some(AccessTokenScheme::RequestBodyCredentials),
            skip_on_enablement: Some(false),
            authorization_urls_by_platform: vec![PlatformAuthorizationUrl {
                platform_type: PlatformType::Ios,
                platform_authorization_url: "https://ios".into(),
            }],
            ..Default::default()
        };
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(
            value,
            json!({"accountLinkingRequest": {
                "type": "AUTH_CODE",
                "authorizationUrl": "https://auth",
                "clientId": "cid",
                "accessTokenUrl": "https://token",
                "clientSecret": "s3cr3t-value",
                "accessTokenScheme": "REQUEST_BODY_CREDENTIALS",
                "authorizationUrlsByPlatform": [{"platformType": "iOS", "platformAuthorizationUrl": "https://ios"}],
                "skipOnEnablement": false
            }})
        );
        let debug = format!("{request:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");

        let empty = serde_json::to_string(&AccountLinkingRequest::default()).unwrap();
        assert_eq!(empty, r#"{"accountLinkingRequest":{}}"#);
    }

    #[test]
    fn request_from_spec_copies_every_field() {
        let spec: AccountLinkingSpec = serde_json::from_value(json!({
            "type": "AUTH_CODE",
            "authorizationUrl": "https://a",
            "accessTokenUrl": "https://t",
            "accessTokenScheme": "HTTP_BASIC",
            "clientId": "c",
            "clientSecretRef": {"name": "n", "key": "k"},
            "scopes": ["profile"],
            "domains": ["d"],
            "defaultTokenExpirationInSeconds": 3600,
            "redirectUrls": ["https://r"],
            "authorizationUrlsByPlatform": [{"platformType": "Android", "platformAuthorizationUrl": "https://and"}],
            "skipOnEnablement": true,
            "voiceForwardAccountLinking": "DISABLED"
        }))
        .unwrap();
        let request = AccountLinkingRequest::from_spec(&spec, Some("x-secret".to_owned().into()));
        let value = serde_json::to_value(&request).unwrap();
        let inner = &value["accountLinkingRequest"];
        assert_eq!(inner["clientSecret"], "x-secret");
        assert_eq!(inner["defaultTokenExpirationInSeconds"], 3600);
        assert_eq!(inner["voiceForwardAccountLinking"], "DISABLED");
        assert_eq!(
            inner["authorizationUrlsByPlatform"][0]["platformType"],
            "Android"
        );
        assert_eq!(inner["redirectUrls"][0], "https://r");
        assert_eq!(inner["skipOnEnablement"], true);
        assert!(inner.get("clientSecretRef").is_none());
        // What GET returns for the same configuration reads back equal field by field.
        let mut echoed = inner.clone();
        echoed.as_object_mut().unwrap().remove("clientSecret");
        let info = AccountLinkingInfo::from_value(echoed).unwrap();
        assert_eq!(info.client_id.as_deref(), Some("c"));
        assert_eq!(info.default_token_expiration_in_seconds, Some(3600));
    }

    #[test]
    fn differences_ignore_amazons_defaults_and_order() {
        let desired = AccountLinkingRequest {
            type_: Some(AccountLinkingType::AuthCode),
            authorization_url: Some("https://a".into()),
            client_id: Some("c".into()),
            scopes: vec!["b".into(), "a".into()],
            access_token_url: Some("https://t".into()),
            client_secret: Some("secret".to_owned().into()),
            access_token_scheme: Some(AccessTokenScheme::HttpBasic),
            ..Default::default()
        };
        let mut actual = AccountLinkingInfo {
            type_: Some(AccountLinkingType::AuthCode),
            authorization_url: Some("https://a".into()),
            client_id: Some("c".into()),
            scopes: vec!["a".into(), "b".into()],
            access_token_url: Some("https://t".into()),
            access_token_scheme: Some(AccessTokenScheme::HttpBasic),
            default_token_expiration_in_seconds: Some(3600),
            redirect_urls: vec!["https://pitangui.amazon.com/api/skill/link/M2X".into()],
            skip_on_enablement: Some(false),
            voice_forward_account_linking: Some(VoiceForwardAccountLinking::Disabled),
            ..Default::default()
        };
        assert_eq!(actual.differences_from(&desired), Vec::<&str>::new());
        actual.scopes.push("c".into());
        actual.voice_forward_account_linking = Some(VoiceForwardAccountLinking::Enabled);
        actual.access_token_scheme = None;
        actual.domains = vec!["cdn".into()];
        assert_eq!(
            actual.differences_from(&desired),
            vec![
                "domains",
                "scopes",
                "accessTokenScheme",
                "voiceForwardAccountLinking"
            ]
        );
        let with_redirects = AccountLinkingRequest {
            redirect_urls: vec!["https://mine".into()],
            default_token_expiration_in_seconds: Some(60),
            skip_on_enablement: Some(true),
            ..desired.clone()
        };
        let diff = actual.differences_from(&with_redirects);
        assert!(
            diff.contains(&"redirectUrls") && diff.contains(&"defaultTokenExpirationInSeconds")
        );
        assert!(
            !diff.contains(&"skipOnEnablement"),
            "request-only: tracked by the controller, never compared"
        );
    }

    #[test]
    fn customer_enable_request_wire_shape() {
        let request = CustomerEnableRequest {
            stage: Stage::Live,
            account_link_request: CustomerLinkRequest {
                type_: AccountLinkRequestType::AuthCode,
                auth_code: "code-123456".to_owned().into(),
                redirect_uri: "https://app/cb".into(),
                code_verifier: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"stage": "live", "accountLinkRequest": {"type": "AUTH_CODE", "authCode": "code-123456", "redirectUri": "https://app/cb"}})
        );
        assert!(!format!("{request:?}").contains("code-123456"));
        let with_pkce = CustomerEnableRequest {
            account_link_request: CustomerLinkRequest {
                code_verifier: Some("verifier-xyz".to_owned().into()),
                ..request.account_link_request.clone()
            },
            ..request
        };
        let value = serde_json::to_value(&with_pkce).unwrap();
        assert_eq!(value["accountLinkRequest"]["codeVerifier"], "verifier-xyz");
        assert!(!format!("{with_pkce:?}").contains("verifier-xyz"));
    }

    #[test]
    fn reads_customer_status() {
        let status = CustomerEnablementStatus::from_json(
            br#"{"skill":{"id":"amzn1.ask.skill.1","stage":"live"},"user":{"id":"amzn1.ask.account.1"},"accountLink":{"status":"LINKED"},"status":"ENABLED","extra":1}"#,
        )
        .unwrap();
        assert_eq!(status.skill_id.as_deref(), Some("amzn1.ask.skill.1"));
        assert_eq!(status.stage.as_deref(), Some("live"));
        assert_eq!(status.user_id.as_deref(), Some("amzn1.ask.account.1"));
        assert!(status.is_enabled() && status.is_linked());
        let partial =
            CustomerEnablementStatus::from_json(br#"{"status":"DISABLED","user":5}"#).unwrap();
        assert!(!partial.is_enabled() && !partial.is_linked());
        assert_eq!(partial.user_id, None);
    }

    #[test]
    fn reads_endpoint_lists() {
        assert_eq!(
            endpoints_from_json(
                br#"{"endpoints":["api.amazonalexa.com"," api.eu.amazonalexa.com ",""]}"#
            )
            .unwrap(),
            vec![
                "api.amazonalexa.com".to_string(),
                "api.eu.amazonalexa.com".to_string()
            ]
        );
        assert_eq!(
            endpoints_from_json(br#"{"endpoints":[]}"#).unwrap(),
            Vec::<String>::new()
        );
        assert!(endpoints_from_json(br#"{"x":1}"#).is_err());
    }

    #[test]
    fn reads_token_answers() {
        let t = TokenResponse::from_json(
            br#"{"access_token":"Atza|abc","refresh_token":"Atzr|new","token_type":"bearer","expires_in":"3600"}"#,
        )
        .unwrap();
        assert_eq!(t.access_token.expose_secret(), "Atza|abc");
        assert_eq!(
            t.refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_owned()),
            Some("Atzr|new".into())
        );
        assert_eq!(t.expires_in, Some(3600));
        let t = TokenResponse::from_json(br#"{"access_token":"a","expires_in":3600.0}"#).unwrap();
        assert_eq!(t.expires_in, Some(3600));
        assert!(t.refresh_token.is_none());
        let t = TokenResponse::from_json(br#"{"access_token":"a","expires_in":"soon"}"#).unwrap();
        assert_eq!(t.expires_in, None);
        let err =
            TokenResponse::from_json(br#"{"token_type":"bearer","refresh_token":"Atzr|leak"}"#)
                .err()
                .unwrap();
        assert!(!err.contains("leak"));
    }
}
