//! Request log and per-operation counts: what tests and the benchmark assert on. Bounded (a ring
//! buffer) so a long benchmark cannot exhaust memory; counts are kept apart so they stay exact.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::Region;

/// What a request asked for, so tests can count calls per API operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// `GET /v1/skills/{skillId}/stages/{stage}/accountLinkingClient`
    GetAccountLinking,
    /// `PUT /v1/skills/{skillId}/stages/{stage}/accountLinkingClient`
    UpdateAccountLinking,
    /// `DELETE /v1/skills/{skillId}/stages/{stage}/accountLinkingClient`
    DeleteAccountLinking,
    /// `PUT /v1/skills/{skillId}/stages/{stage}/enablement`
    EnableStage,
    /// `GET /v1/skills/{skillId}/stages/{stage}/enablement`
    GetStageEnablement,
    /// `DELETE /v1/skills/{skillId}/stages/{stage}/enablement`
    DisableStage,
    /// `GET /v1/alexaApiEndpoint`
    DiscoverEndpoints,
    /// `POST /v1/users/~current/skills/{skillId}/enablement`
    CustomerEnable,
    /// `GET /v1/users/~current/skills/{skillId}/enablement`
    CustomerStatus,
    /// `DELETE /v1/users/~current/skills/{skillId}/enablement`
    CustomerDisable,
    /// `POST /auth/o2/token`
    Token,
    /// Anything under `/__sim/`.
    Admin,
    /// Any other path or method.
    Unknown,
}

impl Operation {
    /// Every operation, in a stable order (used for the counts table).
    pub const ALL: [Operation; 13] = [
        Operation::GetAccountLinking,
        Operation::UpdateAccountLinking,
        Operation::DeleteAccountLinking,
        Operation::EnableStage,
        Operation::GetStageEnablement,
        Operation::DisableStage,
        Operation::DiscoverEndpoints,
        Operation::CustomerEnable,
        Operation::CustomerStatus,
        Operation::CustomerDisable,
        Operation::Token,
        Operation::Admin,
        Operation::Unknown,
    ];

    /// Name used in JSON and query strings (`GetAccountLinking`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::GetAccountLinking => "GetAccountLinking",
            Operation::UpdateAccountLinking => "UpdateAccountLinking",
            Operation::DeleteAccountLinking => "DeleteAccountLinking",
            Operation::EnableStage => "EnableStage",
            Operation::GetStageEnablement => "GetStageEnablement",
            Operation::DisableStage => "DisableStage",
            Operation::DiscoverEndpoints => "DiscoverEndpoints",
            Operation::CustomerEnable => "CustomerEnable",
            Operation::CustomerStatus => "CustomerStatus",
            Operation::CustomerDisable => "CustomerDisable",
            Operation::Token => "Token",
            Operation::Admin => "Admin",
            Operation::Unknown => "Unknown",
        }
    }

    /// Parses the name used in JSON and query strings (case-insensitive).
    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL
            .iter()
            .copied()
            .find(|op| op.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether the operation is one of Amazon's SMAPI (developer) operations.
    pub fn is_smapi(self) -> bool {
        matches!(
            self,
            Operation::GetAccountLinking
                | Operation::UpdateAccountLinking
                | Operation::DeleteAccountLinking
                | Operation::EnableStage
                | Operation::GetStageEnablement
                | Operation::DisableStage
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which injected fault answered a request, so a test can tell an injected 500 from a real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// A scripted response.
    Scripted,
    /// The per-client rate limit (429).
    RateLimited,
    /// The random 500/503 rate.
    ServerError,
    /// The connection was closed without a response.
    Dropped,
    /// The request was carried out, then the connection was closed without the response.
    DroppedAfterApplying,
    /// The forced stale-ETag switch (412).
    StaleEtag,
}

/// One request as the simulator saw it. Never holds a token or a secret in clear: bodies have
/// `clientSecret`, `authCode`, `refresh_token`, `client_secret`, `code`, `codes` and similar
/// redacted (any spelling, singular or plural).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Position in the log since start (monotonic, survives clears), for incremental polling.
    pub seq: u64,
    /// When the request arrived.
    #[serde(skip)]
    pub at: Instant,
    /// Time since the simulator started, so rates can be computed from the log.
    #[serde(rename = "elapsedMs", serialize_with = "millis")]
    pub elapsed_since_start: Duration,
    /// HTTP method.
    pub method: String,
    /// Request path (no query string).
    pub path: String,
    /// Classified operation.
    pub operation: Operation,
    /// Status answered; 0 when the connection was dropped.
    pub status: u16,
    /// LWA client id (developer calls, token requests) or customer name (customer calls) that
    /// owns the credentials; never the token itself.
    pub client: Option<String>,
    /// The `If-Match` header, if any.
    pub if_match: Option<String>,
    /// JSON or form body with secrets redacted as `"***"`.
    pub body: Option<Value>,
    /// Region of the listener that received the request.
    pub region: Option<Region>,
    /// Skill id from the path, if any.
    pub skill_id: Option<String>,
    /// Stage from the path or body, if any.
    pub stage: Option<String>,
    /// Set when an injected fault produced the answer.
    pub fault: Option<FaultKind>,
}

fn millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

/// Keys whose values never appear in the log, compared after [`normalize_key`] so that
/// `client_secret`, `clientSecret` and `Client-Secret` are one key.
const SECRET_KEYS: [&str; 8] = [
    "clientsecret",
    "authcode",
    "refreshtoken",
    "accesstoken",
    "code",
    "codeverifier",
    "password",
    "assertion",
];

/// Lower case without `_` and `-`: the spellings Amazon's APIs and the admin API use.
fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a key names a secret, also in the plural (`codes`, `refreshTokens`): a list of
/// secrets is as secret as one.
fn is_secret_key(key: &str) -> bool {
    let key = normalize_key(key);
    let singular = key.strip_suffix('s').unwrap_or(&key);
    SECRET_KEYS.contains(&key.as_str()) || SECRET_KEYS.contains(&singular)
}

/// Replaces every secret-bearing value (at any depth) by `"***"`. A list under a secret key
/// keeps its length (each item becomes `"***"`), so the log still shows how many were sent.
pub(crate) fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if !is_secret_key(key) {
                    redact(inner);
                } else if let Value::Array(items) = inner {
                    items
                        .iter_mut()
                        .for_each(|item| *item = Value::String("***".to_string()));
                } else {
                    *inner = Value::String("***".to_string());
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// A stored record: the body is kept as compact JSON text, several times smaller than a
/// `serde_json::Value` tree, so a million entries stay affordable.
struct Entry {
    record: RequestRecord,
    body: Option<Box<str>>,
}

impl Entry {
    fn to_record(&self) -> RequestRecord {
        let mut record = self.record.clone();
        record.body = self
            .body
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        record
    }
}

/// Bounded request log plus exact per-operation counts.
pub(crate) struct RequestLog {
    entries: Mutex<VecDeque<Entry>>,
    capacity: usize,
    counts: [AtomicU64; 13],
    next_seq: AtomicU64,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> RequestLog {
        RequestLog {
            entries: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            counts: Default::default(),
            next_seq: AtomicU64::new(1),
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn push(&self, mut record: RequestRecord) {
        if let Some(counter) = self.counts.get(record.operation.index()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let body = record
            .body
            .take()
            .map(|value| value.to_string().into_boxed_str());
        let entry = Entry { record, body };
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Entries oldest first, optionally only one operation, only after a sequence number, and
    /// at most `limit` of the newest matching ones.
    pub(crate) fn records(
        &self,
        op: Option<Operation>,
        after_seq: u64,
        limit: Option<usize>,
    ) -> Vec<RequestRecord> {
        let entries = self.entries.lock();
        let matching = entries
            .iter()
            .filter(|e| e.record.seq > after_seq && op.is_none_or(|op| e.record.operation == op));
        match limit {
            None => matching.map(Entry::to_record).collect(),
            Some(limit) => {
                let mut newest: Vec<RequestRecord> =
                    matching.rev().take(limit).map(Entry::to_record).collect();
                newest.reverse();
                newest
            }
        }
    }

    pub(crate) fn count(&self, op: Operation) -> usize {
        self.counts
            .get(op.index())
            .map(|c| c.load(Ordering::Relaxed))
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().clear();
        for counter in &self.counts {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Operation, redact};

    #[test]
    fn redaction_reaches_nested_secrets() {
        let mut body = serde_json::json!({
            "accountLinkingRequest": {"clientId": "id", "clientSecret": "s3cret"},
            "accountLinkRequest": {"authCode": "abc", "redirectUri": "https://x"},
            "refresh_token": "Atzr|x",
        });
        redact(&mut body);
        let text = body.to_string();
        assert!(!text.contains("s3cret") && !text.contains("abc") && !text.contains("Atzr"));
        assert!(text.contains("\"clientId\":\"id\""));
    }

    #[test]
    fn redaction_covers_lists_plurals_and_spellings() {
        let mut body = serde_json::json!({
            "customer": "na-customer",
            "codes": ["code-one", "code-two"],
            "refreshTokens": [{"token": "Atzr|nested"}],
            "Client-Secret": "dashed",
            "CODE": "upper",
            "accessTokenUrl": "https://auth.example.com/token",
            "status": "ENABLED",
        });
        redact(&mut body);
        let text = body.to_string();
        for secret in ["code-one", "code-two", "Atzr|nested", "dashed", "upper"] {
            assert!(!text.contains(secret), "{secret} left in {text}");
        }
        assert_eq!(body["codes"], serde_json::json!(["***", "***"]));
        assert_eq!(body["customer"], "na-customer");
        assert_eq!(body["accessTokenUrl"], "https://auth.example.com/token");
        assert_eq!(body["status"], "ENABLED");
    }

    #[test]
    fn operation_names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()), Some(op));
            assert_eq!(
                serde_json::to_value(op).unwrap(),
                serde_json::Value::String(op.as_str().into())
            );
        }
    }
}
