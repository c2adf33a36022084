//! Access tokens: issued by the LWA endpoint, checked on every API call. Tokens act either for a
//! developer account (SMAPI paths only) or for a customer (customer paths only).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;
use parking_lot::Mutex;
use rand::Rng;

use crate::reply::Reply;
use crate::state::Subject;

/// What an access token stands for.
#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    pub(crate) subject: Subject,
    pub(crate) client_id: String,
    pub(crate) expires_at: Instant,
}

/// Who an authenticated request acts for.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Vendor {
        vendor_id: String,
        client_id: String,
    },
    Customer {
        name: String,
    },
}

impl Caller {
    /// Name shown in the request log and used as the rate-limit key: the LWA client id for
    /// developers, the customer name for customers.
    pub(crate) fn log_name(&self) -> String {
        match self {
            Caller::Vendor { client_id, .. } => client_id.clone(),
            Caller::Customer { name } => name.clone(),
        }
    }
}

/// Issued access tokens. Expired ones are pruned in batches so the map stays bounded without a
/// scan on every request.
pub(crate) struct TokenStore {
    tokens: Mutex<TokenMap>,
}

struct TokenMap {
    map: HashMap<String, AccessGrant>,
    prune_at: usize,
}

const PRUNE_START: usize = 10_000;

/// A random opaque token with Amazon's prefixes (`Atza|` access, `Atzr|` refresh).
pub(crate) fn random_token(prefix: &str) -> String {
    let bytes: [u8; 24] = rand::rng().random();
    format!("{prefix}sim-{}", hex::encode(bytes))
}

impl TokenStore {
    pub(crate) fn new() -> TokenStore {
        TokenStore {
            tokens: Mutex::new(TokenMap {
                map: HashMap::new(),
                prune_at: PRUNE_START,
            }),
        }
    }

    pub(crate) fn issue(&self, subject: Subject, client_id: &str, lifetime: Duration) -> String {
        let token = random_token("Atza|");
        let now = Instant::now();
        let grant = AccessGrant {
            subject,
            client_id: client_id.to_string(),
            // A huge lifetime (admin settings) must not overflow `Instant`.
            expires_at: now
                .checked_add(lifetime)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600)),
        };
        let mut tokens = self.tokens.lock();
        if tokens.map.len() >= tokens.prune_at {
            tokens.map.retain(|_, grant| grant.expires_at > now);
            tokens.prune_at = (tokens.map.len() * 2).max(PRUNE_START);
        }
        tokens.map.insert(token.clone(), grant);
        token
    }

    pub(crate) fn lookup(&self, token: &str) -> Option<AccessGrant> {
        self.tokens.lock().map.get(token).cloned()
    }

    pub(crate) fn expire_all(&self) {
        let past = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        for grant in self.tokens.lock().map.values_mut() {
            grant.expires_at = past;
        }
    }
}

/// Reads `Authorization` the way SMAPI does: `Bearer <token>` (title case) or a bare token (the
/// ASK CLI sends the token without a scheme); a lower-case `bearer` gets 400 like Amazon; a
/// missing, unknown or expired token gets 401.
pub(crate) fn authenticate(tokens: &TokenStore, headers: &HeaderMap) -> Result<Caller, Reply> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(Reply::error(
            401,
            "MISSING_ACCESS_TOKEN",
            "Request is missing the Authorization header with an LWA access token.",
        ));
    };
    let Ok(value) = value.to_str() else {
        return Err(invalid_token());
    };
    let value = value.trim();
    let token = match value.split_once(' ') {
        Some(("Bearer", token)) => token.trim(),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => {
            return Err(Reply::error(
                400,
                "INVALID_AUTHORIZATION_HEADER",
                "The Authorization header scheme must be 'Bearer' (title case).",
            ));
        }
        Some(_) => return Err(invalid_token()),
        None => value,
    };
    let Some(grant) = tokens.lookup(token) else {
        return Err(invalid_token());
    };
    if grant.expires_at <= Instant::now() {
        return Err(Reply::error(
            401,
            "EXPIRED_ACCESS_TOKEN",
            "The access token has expired.",
        ));
    }
    Ok(match grant.subject {
        Subject::Vendor(vendor_id) => Caller::Vendor {
            vendor_id,
            client_id: grant.client_id,
        },
        Subject::Customer(name) => Caller::Customer { name },
    })
}

fn invalid_token() -> Reply {
    Reply::error(
        401,
        "INVALID_ACCESS_TOKEN",
        "The access token is not valid.",
    )
}
