//! Client configuration: where Amazon's APIs are, how fast and how patiently to call them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::backoff::Backoff;
use super::errors::AlexaError;
use super::observer::ApiObserver;
use super::throttle::RateLimit;

/// Amazon's SMAPI base URL.
pub const DEFAULT_SMAPI_URL: &str = "https://api.amazonalexa.com";
/// Login with Amazon's token endpoint.
pub const DEFAULT_LWA_URL: &str = "https://api.amazon.com/auth/o2/token";
/// Where customer endpoint discovery (`GET /v1/alexaApiEndpoint`) is asked.
pub const DEFAULT_CUSTOMER_DISCOVERY_URL: &str = "https://api.amazonalexa.com";
/// Customer API hosts tried in this order when discovery itself fails with 5xx or a network
/// error (North America, Europe, Far East), as Amazon's Skill Enablement reference says.
pub const FALLBACK_CUSTOMER_ENDPOINTS: [&str; 3] = [
    "api.amazonalexa.com",
    "api.eu.amazonalexa.com",
    "api.fe.amazonalexa.com",
];

/// Everything [`super::AlexaClient::new`] needs. `Default` gives Amazon's real URLs and the
/// operator's documented defaults.
#[derive(Clone)]
pub struct ClientConfig {
    /// SMAPI base URL (account linking, skill owner enablement).
    pub smapi_url: String,
    /// Login with Amazon token endpoint (full URL).
    pub lwa_url: String,
    /// Base URL where customer endpoint discovery is asked.
    pub customer_discovery_url: String,
    /// Alexa host name (as discovery returns it) → base URL to call instead of
    /// `https://HOST`; lets tests and regional proxies redirect customer calls.
    pub endpoint_overrides: HashMap<String, String>,
    /// Per-credential request rate budget; `None` disables it (Retry-After gates still apply).
    pub rate_limit: Option<RateLimit>,
    /// Back-off between in-call retries of throttling, server and network errors.
    pub backoff: Backoff,
    /// In-call retries of such errors before the error is returned (the controller then
    /// requeues with its own back-off).
    pub max_retries: u32,
    /// Longest wait a call sits out by itself, holding its worker: a `Retry-After` (the
    /// credential's gate) or a slot of the rate budget. A longer wait returns at once without
    /// sending (`Throttled` after a 429 this call got, [`AlexaError::Deferred`] otherwise) and the
    /// reconcile is requeued for the remaining time; the gate stays closed for the full time
    /// either way.
    pub max_in_call_wait: Duration,
    /// Total timeout of one HTTP request.
    pub timeout: Duration,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// How long before expiry an access token is refreshed.
    pub refresh_ahead: Duration,
    /// How long a credentials rejection by Login with Amazon is remembered before asking again,
    /// so many objects sharing bad credentials cannot hammer LWA.
    pub credentials_error_ttl: Duration,
    /// Extra trusted root certificates (PEM, any number), on top of the platform's trust store
    /// and Mozilla's roots: for TLS-intercepting proxies or a test server. Empty: none.
    pub extra_root_certificates_pem: Vec<u8>,
    /// Metrics hook.
    pub observer: Option<Arc<dyn ApiObserver>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            smapi_url: DEFAULT_SMAPI_URL.to_owned(),
            lwa_url: DEFAULT_LWA_URL.to_owned(),
            customer_discovery_url: DEFAULT_CUSTOMER_DISCOVERY_URL.to_owned(),
            endpoint_overrides: HashMap::new(),
            rate_limit: Some(RateLimit::default()),
            backoff: Backoff::default(),
            max_retries: 2,
            max_in_call_wait: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            refresh_ahead: Duration::from_secs(300),
            credentials_error_ttl: Duration::from_secs(30),
            extra_root_certificates_pem: Vec::new(),
            observer: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("smapi_url", &self.smapi_url)
            .field("lwa_url", &self.lwa_url)
            .field("customer_discovery_url", &self.customer_discovery_url)
            .field("endpoint_overrides", &self.endpoint_overrides)
            .field("rate_limit", &self.rate_limit)
            .field("backoff", &self.backoff)
            .field("max_retries", &self.max_retries)
            .field("max_in_call_wait", &self.max_in_call_wait)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("credentials_error_ttl", &self.credentials_error_ttl)
            .field(
                "extra_root_certificates_pem",
                &format_args!("{} bytes", self.extra_root_certificates_pem.len()),
            )
            .field("observer", &self.observer.as_ref().map(|_| "<observer>"))
            .finish()
    }
}

impl ClientConfig {
    /// Checks URLs and limits, so a bad flag fails at start-up instead of at the first call.
    pub fn validate(&self) -> Result<(), AlexaError> {
        check_url("smapi_url", &self.smapi_url)?;
        check_url("lwa_url", &self.lwa_url)?;
        check_url("customer_discovery_url", &self.customer_discovery_url)?;
        for (host, url) in &self.endpoint_overrides {
            check_url(&format!("endpoint override for {host}"), url)?;
        }
        let bad_rate = self
            .rate_limit
            .filter(|l| !(l.per_second.is_finite() && l.per_second > 0.0));
        if let Some(limit) = bad_rate {
            return Err(AlexaError::Config {
                message: format!(
                    "rate limit must be a positive number of requests per second, got {}",
                    limit.per_second
                ),
            });
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(AlexaError::Config {
                message: "timeouts must be longer than zero".into(),
            });
        }
        Ok(())
    }

    /// The customer API host `name` as the client may call it: one of Amazon's regional hosts
    /// or an `--endpoint-override` key (compared without case), spelled as configured. `None`
    /// for anything else (another host, a URL, `http://`): customer calls carry the customer's
    /// token and single-use code, so they go nowhere a status or discovery answer points to.
    pub fn allowed_customer_host(&self, name: &str) -> Option<String> {
        let name = name.trim();
        if let Some(key) = self
            .endpoint_overrides
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
        {
            return Some(key.clone());
        }
        FALLBACK_CUSTOMER_ENDPOINTS
            .iter()
            .find(|h| h.eq_ignore_ascii_case(name))
            .map(|h| (*h).to_owned())
    }

    /// Base URL for an allowed customer API host (see [`Self::allowed_customer_host`]): its
    /// override, else `https://HOST`; `None` when the host is not allowed.
    pub fn customer_base_url(&self, host: &str) -> Option<String> {
        let host = self.allowed_customer_host(host)?;
        Some(match self.endpoint_overrides.get(&host) {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://{host}"),
        })
    }
}

fn check_url(what: &str, url: &str) -> Result<(), AlexaError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(AlexaError::Config {
            message: format!("{what} must be an http(s) URL, got {url:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_amazons_and_valid() {
        let config = ClientConfig::default();
        assert_eq!(config.smapi_url, "https://api.amazonalexa.com");
        assert_eq!(config.lwa_url, "https://api.amazon.com/auth/o2/token");
        assert_eq!(config.max_retries, 2);
        assert_eq!(config.refresh_ahead, Duration::from_secs(300));
        config.validate().unwrap();
        assert!(format!("{config:?}").contains("api.amazonalexa.com"));
    }

    #[test]
    fn rejects_bad_values() {
        let bad_url = ClientConfig {
            smapi_url: "api.amazonalexa.com".into(),
            ..Default::default()
        };
        assert_eq!(bad_url.validate().unwrap_err().category(), "config");
        let bad_rate = ClientConfig {
            rate_limit: Some(RateLimit {
                per_second: 0.0,
                burst: 1,
            }),
            ..Default::default()
        };
        assert!(bad_rate.validate().is_err());
        let mut overrides = HashMap::new();
        overrides.insert("api.eu.amazonalexa.com".to_owned(), "ftp://x".to_owned());
        let bad_override = ClientConfig {
            endpoint_overrides: overrides,
            ..Default::default()
        };
        assert!(bad_override.validate().is_err());
    }

    #[test]
    fn maps_customer_hosts() {
        let mut config = ClientConfig::default();
        config.endpoint_overrides.insert(
            "api.eu.amazonalexa.com".into(),
            "http://127.0.0.1:9/eu/".into(),
        );
        let base = |host| config.customer_base_url(host);
        // (host, base URL): overrides and Amazon's hosts only, never a URL or another host.
        let cases = [
            ("api.eu.amazonalexa.com", Some("http://127.0.0.1:9/eu")),
            ("API.EU.amazonalexa.com", Some("http://127.0.0.1:9/eu")),
            ("api.amazonalexa.com", Some("https://api.amazonalexa.com")),
            (
                "api.fe.amazonalexa.com",
                Some("https://api.fe.amazonalexa.com"),
            ),
            ("http://localhost:1", None),
            ("https://api.amazonalexa.com", None),
            ("evil.example.com", None),
            ("api.amazonalexa.com.evil.example.com", None),
            ("", None),
        ];
        for (host, want) in cases {
            assert_eq!(base(host).as_deref(), want, "{host}");
        }
    }
}
