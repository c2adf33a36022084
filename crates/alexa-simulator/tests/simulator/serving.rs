//! Starting and serving: state files, refused configurations, scale, TLS, shutdown, unknown
//! paths, a bounded log, hostile input, and the `alexa-simulator` binary itself.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alexa_simulator::{
    Operation, SimConfig, SimState, Simulator, SimulatorError, Stage, TlsConfig, sandbox,
};
use reqwest::{Client, Method};
use serde_json::json;

use crate::support::{
    SKILL, auth_code_config, call, dev_token, enablement_url, http, linking_url, put_linking,
    refresh_form, run_steps, start, start_with, status_of, token_with,
};

#[tokio::test]
async fn example_state_file_loads_and_serves() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/sim-state.yaml"
    ))
    .unwrap();
    let state = SimState::from_yaml(&text).unwrap();
    let first_vendor = state.vendors[0].clone();
    let refresh = first_vendor.refresh_tokens[0].clone();
    let secret = state
        .lwa_clients
        .iter()
        .find(|c| c.client_id == refresh.client_id)
        .unwrap()
        .client_secret
        .clone();
    let skill = first_vendor.skills[0].id.clone();
    let sim = start_with(SimConfig {
        state,
        ..SimConfig::default()
    })
    .await;
    let token = token_with(&sim, &refresh.client_id, &secret, &refresh.token).await;
    let (status, body) = call(
        http()
            .get(linking_url(&sim.url(), &skill, "development"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200, "the example presets account linking");
    assert!(body.get("clientSecret").is_none());
    assert_eq!(
        body["redirectUrls"][0],
        "https://pitangui.amazon.com/api/skill/link/M2EXAMPLEVENDOR"
    );
    assert!(sim.stage_enabled(&skill, "development"));
    assert_eq!(
        sim.customer_enablement("alice", &skill).unwrap().stage,
        "live"
    );
    // The sandbox is gone: its refresh token is unknown here.
    let gone = http().post(sim.lwa_token_url()).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", sandbox::REFRESH_TOKEN),
        ("client_id", refresh.client_id.as_str()),
        ("client_secret", secret.as_str()),
    ]);
    assert_eq!(status_of(gone).await, 400);
}

#[tokio::test]
async fn invalid_state_and_non_loopback_addresses_are_refused() {
    let mut state = SimState::sandbox();
    state.vendors[0].skills[0]
        .account_linking
        .insert(Stage::Live, json!({"type": "AUTH_CODE"}));
    let err = Simulator::start(SimConfig {
        state,
        ..SimConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, SimulatorError::InvalidState(_)), "{err}");
    let err = Simulator::start(SimConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..SimConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, SimulatorError::NonLoopback { .. }), "{err}");
    assert!(SimState::from_yaml("vendors: [{id: V, unknownField: 1}]").is_err());
}

#[tokio::test]
async fn thousands_of_skills_can_be_added_and_used() {
    let sim = start().await;
    let started = Instant::now();
    for i in 0..10_000 {
        sim.add_skill(&format!("amzn1.ask.skill.bench-{i:05}"));
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let token = dev_token(&sim).await;
    let resp = put_linking(
        &sim,
        &token,
        "amzn1.ask.skill.bench-09999",
        "live",
        &auth_code_config(),
        None,
    )
    .await;
    assert_eq!(resp.status().as_u16(), 204);
    assert!(
        sim.account_linking("amzn1.ask.skill.bench-09999", "live")
            .is_some()
    );
}

#[tokio::test]
async fn tls_listener_serves_the_same_api() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let sim = start_with(SimConfig {
        tls: Some(TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert_pem: cert.cert.pem().into_bytes(),
            key_pem: cert.signing_key.serialize_pem().into_bytes(),
        }),
        ..SimConfig::default()
    })
    .await;
    let tls_url = sim.tls_url().unwrap();
    let port = tls_url.rsplit(':').next().unwrap().to_string();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let (_, token) = call(
        client
            .post(format!("{base}/auth/o2/token"))
            .form(&refresh_form(sandbox::REFRESH_TOKEN)),
    )
    .await;
    let token = token["access_token"].as_str().unwrap();
    let enable = client
        .put(enablement_url(&base, SKILL, "development"))
        .bearer_auth(token);
    assert_eq!(status_of(enable).await, 204);
    assert!(sim.stage_enabled(SKILL, "development"));
}

#[tokio::test]
async fn shutdown_closes_the_listeners() {
    let sim = start().await;
    let url = format!("{}/__sim/counts", sim.url());
    assert_eq!(status_of(http().get(&url)).await, 200);
    sim.shutdown().await;
    assert!(http().get(&url).send().await.is_err());
}

#[tokio::test]
async fn unknown_paths_and_methods_get_amazon_style_errors() {
    let sim = start().await;
    let unknown_path = format!("{}/v1/nothing", sim.url());
    let cases = [
        (Method::GET, unknown_path.as_str(), 404),
        (Method::GET, &sim.lwa_token_url(), 405),
        (
            Method::PATCH,
            &enablement_url(&sim.url(), SKILL, "live"),
            405,
        ),
    ];
    for (method, url, expected) in cases {
        let (status, body) = call(http().request(method.clone(), url)).await;
        assert_eq!(status, expected, "{method} {url}");
        assert!(
            body["message"].is_string() && body["code"].is_string(),
            "{method} {url}: {body}"
        );
    }
    assert_eq!(sim.count(Operation::Unknown), 3);
}

#[tokio::test]
async fn request_log_is_bounded_while_counts_stay_exact() {
    let sim = start_with(SimConfig {
        log_capacity: 3,
        ..SimConfig::default()
    })
    .await;
    let token = dev_token(&sim).await;
    for _ in 0..5 {
        put_linking(&sim, &token, SKILL, "live", &auth_code_config(), None).await;
    }
    let records = sim.requests();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.operation == Operation::UpdateAccountLinking)
    );
    assert_eq!(
        records[2].body.as_ref().unwrap()["accountLinkingRequest"]["clientId"],
        "alexa-skill"
    );
    assert_eq!(sim.count(Operation::UpdateAccountLinking), 5);
    assert_eq!(sim.count(Operation::Token), 1);
    let (_, newest) = call(http().get(format!("{}/__sim/requests?limit=1", sim.url()))).await;
    assert_eq!(newest["requests"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn absurd_settings_and_bodies_never_break_the_simulator() {
    let sim = start().await;
    let admin = format!("{}/__sim", sim.url());
    let settings = json!({"tokenLifetime": 1e15});
    run_steps(
        None,
        &[(
            Method::PUT,
            &format!("{admin}/settings"),
            Some(settings),
            200,
        )],
    )
    .await;
    let token = dev_token(&sim).await;
    let url = enablement_url(&sim.url(), SKILL, "development");
    run_steps(Some(&token), &[(Method::GET, &url, None, 404)]).await;
    let garbage = http()
        .post(sim.lwa_token_url())
        .header("Content-Type", "application/json")
        .body(vec![0xff, 0xfe, 0x00]);
    assert_eq!(status_of(garbage).await, 400);
    let huge = http()
        .put(linking_url(&sim.url(), SKILL, "development"))
        .bearer_auth(&token)
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await;
    if let Ok(resp) = huge {
        assert_eq!(resp.status().as_u16(), 413);
    }
    let script = json!({"operation": "GetStageEnablement", "responses": [{"status": 1000, "headers": [["bad header", "x"]]}]});
    run_steps(
        None,
        &[(Method::POST, &format!("{admin}/script"), Some(script), 204)],
    )
    .await;
    // The impossible scripted answer becomes a 500; afterwards the simulator serves normally.
    run_steps(
        Some(&token),
        &[
            (Method::GET, &url, None, 500),
            (Method::GET, &url, None, 404),
        ],
    )
    .await;
}

/// The `alexa-simulator` binary (what `alexa-skill-operator simulate` execs and the container
/// image ships): starts from flags, prints where it listens, serves, and stops on SIGTERM.
#[cfg(unix)]
#[tokio::test]
async fn the_binary_serves_from_flags_until_terminated() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alexa-simulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--quiet",
            "--get-shape",
            "wrapped",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start alexa-simulator");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("Alexa API simulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    let (status, settings) = call(http().get(format!("{url}/__sim/settings"))).await;
    assert_eq!(
        (status, settings["getShape"].as_str()),
        (200, Some("wrapped"))
    );

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}");
}

#[test]
fn the_binary_refuses_bad_flags_with_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_alexa-simulator"))
        .args(["--error-rate", "2", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run alexa-simulator");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
