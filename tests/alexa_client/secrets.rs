//! No secret in debug output, errors or logs.

use std::sync::{Arc, Mutex};

use alexa_skill_operator::alexa::LwaCredentials;
use alexa_skill_operator::crd::common::Stage;
use serde_json::json;

use crate::{
    LINK_SECRET, Operation, Region, SKILL, ScriptedResponse, SimConfig, client, customer,
    enable_request, link_request, owner, sandbox, start,
};

/// Captures everything logged at any level, to check no secret ever reaches the logs.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn secrets_never_appear_in_debug_output_errors_or_logs() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    let cust = customer(Region::Na);
    let code = sandbox::partner_code(Region::Na, 4);
    let request = enable_request(&code);
    let mut texts = vec![
        format!("{creds:?}"),
        format!("{cust:?}"),
        format!("{:?}", link_request()),
        format!("{request:?}"),
        format!("{client:?}"),
    ];

    // A refresh after a 401, a throttled call, a credentials error, an echoed secret.
    client
        .update_account_linking(&creds, SKILL, Stage::Development, &link_request(), None)
        .await
        .unwrap();
    sim.expire_tokens();
    client
        .get_account_linking(&creds, SKILL, Stage::Development)
        .await
        .unwrap();
    sim.faults().script(
        Operation::UpdateAccountLinking,
        vec![ScriptedResponse::json(
            400,
            json!({"code": "INVALID_SECRET", "message": format!("clientSecret {LINK_SECRET} is too weak")}),
        )],
    );
    let err = client
        .update_account_linking(&creds, SKILL, Stage::Development, &link_request(), None)
        .await
        .unwrap_err();
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    // Echoed where the message is cut (at 1,000 characters), and where the validation details
    // the client re-serialises are cut (at 200): redaction runs before either cut.
    let pad = "x".repeat(995);
    sim.faults().script(
        Operation::UpdateAccountLinking,
        vec![
            ScriptedResponse::json(400, json!({"message": format!("{pad} {LINK_SECRET}")})),
            ScriptedResponse::json(
                400,
                json!({"message": "bad", "validationDetails": {"echo": format!("{} {LINK_SECRET}", &pad[..180])}}),
            ),
        ],
    );
    for _ in 0..2 {
        let err = client
            .update_account_linking(&creds, SKILL, Stage::Development, &link_request(), None)
            .await
            .unwrap_err();
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    sim.faults().script(
        Operation::CustomerEnable,
        vec![ScriptedResponse::json(
            400,
            json!({"code": "INVALID_AUTH_CODE", "message": format!("authCode {code} was already used")}),
        )],
    );
    let err = client
        .customer_enable(&cust, None, SKILL, &request)
        .await
        .unwrap_err();
    assert_eq!(err.error.code(), Some("INVALID_AUTH_CODE"));
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    let bad = LwaCredentials::new(
        sandbox::CLIENT_ID,
        "wrong-client-secret-value",
        "Atzr|revoked-token-value",
    );
    let err = client
        .stage_enabled(&bad, SKILL, Stage::Live)
        .await
        .unwrap_err();
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    let (_, status) = client
        .customer_enable(&cust, None, SKILL, &request)
        .await
        .unwrap();
    texts.push(format!("{status:?}"));

    drop(_guard);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    texts.push(logged.clone());
    assert!(
        logged.contains("401"),
        "the logs do show what happened: {logged}"
    );
    let secrets = [
        sandbox::CLIENT_SECRET,
        sandbox::REFRESH_TOKEN,
        sandbox::customer_refresh_token(Region::Na),
        LINK_SECRET,
        &LINK_SECRET[..8], // a part of it left by a cut
        code.as_str(),
        "wrong-client-secret-value",
        "Atzr|revoked-token-value",
        "Atza|", // every access token the simulator issues starts so
    ];
    for text in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
        }
    }
}
