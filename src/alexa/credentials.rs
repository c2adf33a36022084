//! Login with Amazon credentials as read from a Kubernetes Secret.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Hex characters of the SHA-256 kept in a fingerprint (64 bits: unique enough to key caches,
/// too short to brute-force anything from).
const FINGERPRINT_HEX_CHARS: usize = 16;

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
    /// SHA-256(client ID, NUL, refresh token). Keys the token cache and the rate budget, and is
    /// what logs show instead of any secret. A new refresh token gives a new fingerprint.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.client_id.as_bytes());
        hasher.update([0u8]);
        hasher.update(self.refresh_token.expose_secret().as_bytes());
        let mut hex = hex::encode(hasher.finalize());
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
        // Concatenation ambiguity is avoided by the separator.
        assert_ne!(
            LwaCredentials::new("ab", "", "c").fingerprint(),
            LwaCredentials::new("a", "", "bc").fingerprint()
        );
    }
}
