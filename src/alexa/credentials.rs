//! Login with Amazon credentials as read from a Kubernetes Secret.

use std::fmt;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Hex characters of the HMAC kept in a fingerprint (64 bits: unique enough to key caches and
/// tell credentials apart in logs).
const FINGERPRINT_HEX_CHARS: usize = 16;

/// Key of the fingerprint HMAC: set once at start-up from the installation's digest key, so
/// fingerprints are stable across restarts but nobody without the key can test a guessed
/// refresh token against a logged one. Until set (tests), a random key of this process.
static FINGERPRINT_KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// Sets the key fingerprints are made with; only the first call counts (one per process).
pub fn set_fingerprint_key(key: [u8; 32]) {
    let _ = FINGERPRINT_KEY.set(key);
}

/// The Login with Amazon (LWA) client and refresh token one set of calls is made with: the
/// skill owner's for SMAPI, a customer's for the customer enablement API. Secret parts are
/// [`SecretString`]s so they cannot end up in Debug output or logs by accident.
#[derive(Clone)]
pub struct LwaCredentials {
    /// LWA security profile client ID.
    pub client_id: String,
    /// LWA security profile client secret.
    pub client_secret: SecretString,
    /// Refresh token issued to that client for the account (skill owner or customer).
    pub refresh_token: SecretString,
}

impl LwaCredentials {
    /// Bundles the three values of a credentials Secret.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
        refresh_token: impl Into<SecretString>,
    ) -> LwaCredentials {
        LwaCredentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: refresh_token.into(),
        }
    }

    /// A stable, log-safe identifier of these credentials: the first 16 hex characters of
    /// HMAC-SHA256(fingerprint key, client ID, NUL, refresh token). Keys the rate budget and the
    /// Retry-After gate, and is what logs show instead of any secret. A new refresh token gives
    /// a new fingerprint.
    pub fn fingerprint(&self) -> String {
        let key = FINGERPRINT_KEY.get_or_init(rand::random);
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            return String::new(); // unreachable: HMAC takes keys of any length
        };
        mac.update(self.client_id.as_bytes());
        mac.update(&[0u8]);
        mac.update(self.refresh_token.expose_secret().as_bytes());
        let mut hex = hex::encode(mac.finalize().into_bytes());
        hex.truncate(FINGERPRINT_HEX_CHARS);
        hex
    }

    /// Key of the token cache: like the fingerprint but also covering the client secret, so a
    /// Secret with a wrong client secret can neither use nor poison the token (or remembered
    /// rejection) of a correct one. Never logged.
    pub(crate) fn cache_key(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            self.client_id.as_str(),
            self.refresh_token.expose_secret(),
            self.client_secret.expose_secret(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        hex::encode(hasher.finalize())
    }
}

impl fmt::Debug for LwaCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LwaCredentials")
            .field("client_id", &self.client_id)
            .field("fingerprint", &self.fingerprint())
            .field("client_secret", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let creds = LwaCredentials::new("client-1", "very-secret", "Atzr|refresh-me");
        let text = format!("{creds:?} {creds:#?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(!text.contains("Atzr|refresh-me"), "{text}");
        assert!(text.contains("client-1"));
        assert!(text.contains(&creds.fingerprint()));
    }

    #[test]
    fn fingerprint_is_stable_and_depends_on_client_and_refresh_token() {
        let a = LwaCredentials::new("c", "s1", "r");
        let b = LwaCredentials::new("c", "s2", "r");
        let c = LwaCredentials::new("c", "s1", "r2");
        let d = LwaCredentials::new("c2", "s1", "r");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(
            a.cache_key(),
            b.cache_key(),
            "the token cache tells secrets apart"
        );
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), d.fingerprint());
        assert_eq!(a.fingerprint().len(), FINGERPRINT_HEX_CHARS);
        // Keyed: the plain SHA-256 a reader of the logs could recompute is not what is shown.
        let mut plain = Sha256::new();
        plain.update(b"c\0r");
        assert!(!hex::encode(plain.finalize()).starts_with(&a.fingerprint()));
        // Concatenation ambiguity is avoided by the separator.
        assert_ne!(
            LwaCredentials::new("ab", "", "c").fingerprint(),
            LwaCredentials::new("a", "", "bc").fingerprint()
        );
    }
}
