//! HTTPS with the client's own TLS stack.

use alexa_skill_operator::alexa::{AlexaClient, AlexaError};
use alexa_skill_operator::crd::common::Stage;

use crate::{Operation, SKILL, SimConfig, TlsConfig, client_config, owner, start};

/// The client's own TLS stack (rustls + ring, no process-wide provider installed in this test
/// binary) verifies certificates, and trusts configured extra roots.
#[tokio::test]
async fn https_verifies_certificates_and_trusts_configured_roots() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let sim = start(SimConfig {
        tls: Some(TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert_pem: cert.cert.pem().into_bytes(),
            key_pem: cert.signing_key.serialize_pem().into_bytes(),
        }),
        ..SimConfig::default()
    })
    .await;
    let tls_url = sim.tls_url().unwrap();
    let port = tls_url.rsplit(':').next().unwrap();
    let base = format!("https://localhost:{port}");
    let mut config = client_config(&sim);
    config.smapi_url = base.clone();
    config.lwa_url = format!("{base}/auth/o2/token");

    let untrusted = AlexaClient::new(config.clone()).unwrap();
    let err = untrusted
        .stage_enabled(&owner(), SKILL, Stage::Live)
        .await
        .unwrap_err();
    assert!(matches!(err, AlexaError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert_eq!(sim.count(Operation::Token), 0, "nothing got through");

    config.extra_root_certificates_pem = cert.cert.pem().into_bytes();
    let trusted = AlexaClient::new(config).unwrap();
    assert!(
        !trusted
            .stage_enabled(&owner(), SKILL, Stage::Live)
            .await
            .unwrap()
    );
    assert_eq!(sim.count(Operation::Token), 1);
    assert_eq!(sim.count(Operation::GetStageEnablement), 1);
}
