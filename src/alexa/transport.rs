//! HTTP plumbing shared by the SMAPI calls and the LWA token refresh: the reqwest client (rustls
//! with the ring provider, independent of any process-wide default), size-limited body reads,
//! header helpers and URL-free transport errors.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{ETAG, HeaderMap, HeaderValue, RETRY_AFTER};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::config::ClientConfig;
use super::errors::{AlexaError, MAX_TRANSPORT_CHARS, parse_retry_after, truncate};

/// Largest response body read; Amazon's answers are a few KiB, anything bigger is refused
/// rather than buffered.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// `User-Agent` of every request: names the operator and its version for Amazon's logs.
pub const USER_AGENT: &str = concat!("alexa-skill-operator/", env!("CARGO_PKG_VERSION"));

/// Installs ring as rustls' process-wide default crypto provider, for libraries that rely on it
/// (kube's client). Idempotent: a provider already installed (ours or another) is kept.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: some provider is then installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Builds the HTTP client: rustls with ring and an explicitly built TLS config (so it works
/// whether or not a default provider is installed), the platform's trust store plus Mozilla's
/// roots (so a minimal container image without CA files still verifies Amazon), HTTP/2 via
/// ALPN, pooled connections, no redirects (an Authorization header never follows one).
pub(crate) fn build_http_client(config: &ClientConfig) -> Result<reqwest::Client, AlexaError> {
    let tls_error = |e: rustls::Error| AlexaError::Config {
        message: format!("cannot set up TLS: {e}"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec();
    roots.extend(extra_roots(&config.extra_root_certificates_pem)?);
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())
            .map_err(tls_error)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(USER_AGENT)
        .timeout(config.timeout)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AlexaError::Config {
            message: format!("cannot build the HTTP client: {}", error_chain(&e)),
        })
}

/// Parses the configured extra root certificates.
fn extra_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, AlexaError> {
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AlexaError::Config {
            message: format!("extra root certificates are not valid PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(AlexaError::Config {
            message: "extra root certificates hold no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// Reads a response body up to [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let mut buf = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The connection failed while reading.
    Read(reqwest::Error),
    /// The body exceeded the size limit.
    TooLarge,
}

/// A transport error without the request URL (which can carry identifiers) and without any
/// header: what failed, against which host, and the underlying cause.
pub(crate) fn transport_error(err: &reqwest::Error, host: &str) -> AlexaError {
    let what = if err.is_timeout() {
        "request timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    AlexaError::Transport {
        // Cut only after redaction ([`AlexaError::redact`]); bounded here against runaway chains.
        message: truncate(
            &format!("{what} ({host}){}", error_chain(err)),
            4 * MAX_TRANSPORT_CHARS,
        ),
    }
}

/// The `: cause: cause` chain of an error's sources, skipping reqwest's own URL-bearing text.
fn error_chain(err: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Host (and port) of a URL for messages; never the path or query.
pub(crate) fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| "unknown host".to_owned())
}

/// The `Retry-After` header as a delay, when present and readable.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// The `ETag` header verbatim (quotes and weak prefix kept), when present.
pub(crate) fn etag(headers: &HeaderMap) -> Option<String> {
    headers
        .get(ETAG)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .filter(|v| !v.is_empty())
}

/// A header value from caller data, refusing characters HTTP does not allow.
pub(crate) fn header_value(what: &str, value: &str) -> Result<HeaderValue, AlexaError> {
    HeaderValue::from_str(value).map_err(|_| AlexaError::Config {
        message: format!("{what} contains characters not allowed in an HTTP header"),
    })
}

/// `Bearer <token>` with a title-case scheme (Amazon answers 400 to `bearer`), marked
/// sensitive so HTTP-level debug logging never prints it.
pub(crate) fn bearer(token: &str) -> Result<HeaderValue, AlexaError> {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| AlexaError::Decode {
            operation: super::observer::Operation::LwaToken,
            message: "access token contains characters not allowed in an HTTP header".into(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_client_builds_without_a_default_provider() {
        // Whatever the process default is, our client brings its own provider.
        build_http_client(&ClientConfig::default()).unwrap();
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        build_http_client(&ClientConfig::default()).unwrap();
    }

    #[test]
    fn extra_roots_must_be_pem_certificates() {
        assert!(extra_roots(b"").unwrap().is_empty());
        assert!(extra_roots(b" \n").unwrap().is_empty());
        assert_eq!(extra_roots(b"not pem").unwrap_err().category(), "config");
        let bad = ClientConfig {
            extra_root_certificates_pem:
                b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n".to_vec(),
            ..ClientConfig::default()
        };
        assert!(build_http_client(&bad).is_err());
    }

    #[test]
    fn header_helpers() {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("W/\"abc\""));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(etag(&headers).as_deref(), Some("W/\"abc\""));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        assert!(header_value("ETag", "bad\nvalue").is_err());
        let b = bearer("Atza|token").unwrap();
        assert!(b.is_sensitive());
        assert_eq!(b.to_str().unwrap(), "Bearer Atza|token");
        assert_eq!(host_of("http://127.0.0.1:8080/v1/x?y=z"), "127.0.0.1:8080");
        assert_eq!(
            host_of("https://api.amazonalexa.com/v1"),
            "api.amazonalexa.com"
        );
        assert_eq!(
            USER_AGENT,
            format!("alexa-skill-operator/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
