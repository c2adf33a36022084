//! Misconfigured URLs end to end: an answer that is not Amazon's API names the URL and the
//! setting to fix, and is never reported as bad credentials (issue 12).

use alexa_simulator::Operation;
use alexa_skill_operator::crd::{SkillAccountLinking, SkillEnablement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Harness, auth_code_linking, message, owner, reason, sal, stalled};

/// A server that answers every request with an HTML 404 page, like a web server or ingress
/// that is not Amazon's API. Returns its base URL; it lives until the test ends.
async fn html_404_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let body = "<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>";
                let reply = format!(
                    "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_token_url_answering_404_is_a_misconfigured_endpoint_not_bad_credentials() {
    let mut h = Harness::servers(Default::default()).await;
    let wrong = format!("{}/wrong/token", h.sim.url());
    h.start_operator(&["--lwa-url", &wrong]).await;
    h.owner_credentials().await;
    h.secret("oauth", &[("client-secret", "s")]).await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .expect("apply");
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "EndpointMisconfigured", |o| {
            reason(o) == "EndpointMisconfigured"
        })
        .await;
    let text = message(&obj);
    assert!(stalled(&obj), "Stalled: {text}");
    assert!(text.contains(&wrong), "names the URL: {text}");
    assert!(
        text.contains("--lwa-url (ALEXA_LWA_URL)"),
        "names the flag: {text}"
    );
    assert!(text.contains("not judged"), "{text}");
    assert!(!text.contains("rejected the credentials"), "{text}");
    // Without a token nothing reaches SMAPI.
    assert_eq!(h.count(Operation::GetAccountLinking), 0);
    assert_eq!(h.count(Operation::UpdateAccountLinking), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn an_smapi_url_answering_html_404_stalls_both_kinds_naming_the_setting() {
    let mut h = Harness::servers(Default::default()).await;
    let wrong = html_404_server().await;
    h.start_operator(&["--smapi-url", &wrong]).await;
    h.owner_credentials().await;
    h.secret("oauth", &[("client-secret", "s")]).await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .expect("apply");
    h.apply::<SkillEnablement>(owner("dev", "development"))
        .await
        .expect("apply");
    let sal = h
        .wait_for::<SkillAccountLinking, _>("weather", "EndpointMisconfigured", |o| {
            reason(o) == "EndpointMisconfigured"
        })
        .await;
    let en = h
        .wait_for::<SkillEnablement, _>("dev", "EndpointMisconfigured", |o| {
            reason(o) == "EndpointMisconfigured"
        })
        .await;
    for text in [message(&sal), message(&en)] {
        assert!(text.contains(&wrong), "names the URL: {text}");
        assert!(text.contains("--smapi-url (ALEXA_SMAPI_URL)"), "{text}");
        assert!(text.contains("HTML page"), "{text}");
        assert!(
            !text.contains("SkillNotFound") && !text.contains("no such resource"),
            "{text}"
        );
    }
    h.shutdown().await;
}

/// A customer endpoint override that points at something else than Amazon: the condition names
/// the `--endpoint-override` entry, and the single-use code never reaches another host.
#[tokio::test]
async fn a_customer_endpoint_override_answering_html_names_the_override() {
    use alexa_simulator::{Region, sandbox};
    let wrong = html_404_server().await;
    let override_entry = format!("{}={wrong}", Region::Na.host());
    let h = Harness::start_with(&["--endpoint-override", &override_entry]).await;
    h.secret(
        "na-lwa",
        &[
            ("client-id", sandbox::CLIENT_ID),
            ("client-secret", sandbox::CLIENT_SECRET),
            ("refresh-token", sandbox::customer_refresh_token(Region::Na)),
        ],
    )
    .await;
    h.secret(
        "na-code",
        &[("auth-code", &sandbox::partner_code(Region::Na, 1))],
    )
    .await;
    let obj = serde_json::json!({
        "apiVersion": "alexa.operator.dev/v1alpha1",
        "kind": "SkillEnablement",
        "metadata": {"name": "na-customer"},
        "spec": {
            "skillId": crate::support::SKILL,
            "stage": "live",
            "customer": {
                "tokenSecretRef": {"name": "na-lwa"},
                "accountLinkRequest": {
                    "type": "AUTH_CODE",
                    "redirectUri": "https://app.example.com/alexa/callback",
                    "authCodeSecretRef": {"name": "na-code", "key": "auth-code"}
                }
            }
        }
    });
    h.apply::<SkillEnablement>(obj).await.expect("apply");
    let en = h
        .wait_for::<SkillEnablement, _>("na-customer", "EndpointMisconfigured", |o| {
            reason(o) == "EndpointMisconfigured"
        })
        .await;
    let text = message(&en);
    assert!(text.contains(&wrong), "names the URL: {text}");
    assert!(
        text.contains("--endpoint-override"),
        "names the override: {text}"
    );
    assert_eq!(
        h.count(Operation::CustomerEnable),
        0,
        "the code went nowhere"
    );
    h.shutdown().await;
}
