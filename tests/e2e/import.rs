//! Issue 18 item 3: `alexa-skill-operator import` round trip. What it prints for a skill stage
//! configured by hand, applied as is, is Ready with an empty status.drift and sends no write.

use alexa_simulator::{Operation, sandbox};
use alexa_skill_operator::cli::{Cli, Command, ImportArgs};
use alexa_skill_operator::crd::{SkillAccountLinking, SkillEnablement};
use clap::Parser;
use serde_json::{Value, json};

use crate::support::{Harness, SKILL, is_ready};

/// What a human set up in the developer console.
fn console_linking() -> Value {
    json!({
        "type": "AUTH_CODE",
        "authorizationUrl": "https://auth.example.com/authorize",
        "accessTokenUrl": "https://auth.example.com/token",
        "accessTokenScheme": "REQUEST_BODY_CREDENTIALS",
        "clientId": "hand-made",
        "clientSecret": "console-secret",
        "scopes": ["profile", "orders:read"],
        "domains": ["cdn.example.com"],
        "defaultTokenExpirationInSeconds": 1800,
        "voiceForwardAccountLinking": "ENABLED"
    })
}

fn import_args(h: &Harness, extra: &[&str]) -> ImportArgs {
    let (smapi, lwa) = (h.sim.url(), h.sim.lwa_token_url());
    let mut argv = vec![
        "alexa-skill-operator",
        "import",
        "--skill-id",
        SKILL,
        "--stage",
        "development",
        "--smapi-url",
        &smapi,
        "--lwa-url",
        &lwa,
    ];
    argv.extend(extra);
    match Cli::parse_from(argv).command {
        Command::Import(args) => *args,
        other => panic!("{other:?}"),
    }
}

/// The ASK CLI's variables, holding the sandbox owner's credentials.
fn ask_env(key: &str) -> Option<String> {
    match key {
        "ASK_LWA_CLIENT_ID" => Some(sandbox::CLIENT_ID.into()),
        "ASK_LWA_CLIENT_CONFIRMATION" => Some(sandbox::CLIENT_SECRET.into()),
        "ASK_REFRESH_TOKEN" => Some(sandbox::REFRESH_TOKEN.into()),
        _ => None,
    }
}

fn docs(text: &str) -> Vec<Value> {
    text.split("---\n")
        .skip(1)
        .map(|d| serde_saphyr::from_str(d).expect("import prints YAML"))
        .collect()
}

#[tokio::test]
async fn imported_objects_applied_as_printed_are_ready_without_drift_or_writes() {
    let h = Harness::start().await;
    h.sim
        .set_account_linking(SKILL, "development", console_linking());
    h.sim.set_stage_enabled(SKILL, "development", true);

    let args = import_args(&h, &["--name", "weather"]);
    let text = alexa_skill_operator::import::run(&args, None, &ask_env)
        .await
        .expect("import");
    println!("{text}");
    for secret in [
        sandbox::CLIENT_SECRET,
        sandbox::REFRESH_TOKEN,
        "console-secret",
    ] {
        assert!(!text.contains(secret), "a secret in the output: {text}");
    }
    assert!(text.contains("cannot be read back"), "{text}");
    assert!(text.contains("Create Secret lwa-credentials"), "{text}");
    let objects = docs(&text);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["SkillAccountLinking", "SkillEnablement"], "{text}");

    // What the header asks for: the credentials Secret and the client secret placeholder.
    h.secret(
        "lwa-credentials",
        &[
            ("client-id", sandbox::CLIENT_ID),
            ("client-secret", sandbox::CLIENT_SECRET),
            ("refresh-token", sandbox::REFRESH_TOKEN),
        ],
    )
    .await;
    h.secret(
        "weather-oauth-client",
        &[("client-secret", "console-secret")],
    )
    .await;
    let writes_before = [
        Operation::UpdateAccountLinking,
        Operation::EnableStage,
        Operation::DeleteAccountLinking,
        Operation::DisableStage,
    ]
    .map(|op| h.count(op));
    h.apply::<SkillAccountLinking>(objects[0].clone())
        .await
        .expect("the printed SkillAccountLinking applies");
    h.apply::<SkillEnablement>(objects[1].clone())
        .await
        .expect("the printed SkillEnablement applies");
    let sal = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    let status = sal.status.unwrap();
    assert!(status.drift.is_empty(), "drift: {:?}", status.drift);
    h.wait_for::<SkillEnablement, _>("weather", "Ready", is_ready)
        .await;
    let writes_after = [
        Operation::UpdateAccountLinking,
        Operation::EnableStage,
        Operation::DeleteAccountLinking,
        Operation::DisableStage,
    ]
    .map(|op| h.count(op));
    assert_eq!(writes_after, writes_before, "Observe mode wrote to Amazon");

    // With --credentials-secret the objects reference that Secret, in its namespace.
    let secret = format!("{}/lwa-credentials", h.ns);
    let args = import_args(&h, &["--credentials-secret", &secret]);
    let text = alexa_skill_operator::import::run(&args, Some(h.client.clone()), &|_| None)
        .await
        .expect("import through the Secret");
    let objects = docs(&text);
    assert_eq!(objects.len(), 2, "{text}");
    for o in &objects {
        assert_eq!(o["metadata"]["namespace"], h.ns.as_str());
        assert_eq!(o["spec"]["credentialsSecretRef"]["name"], "lwa-credentials");
        assert_eq!(
            o["metadata"]["name"],
            "skill-00000000-0000-0000-0000-000000000001-development"
        );
    }
    assert!(!text.contains("Create Secret"), "{text}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_stage_not_enabled_imports_only_the_account_linking() {
    let h = Harness::servers(Default::default()).await;
    h.sim
        .set_account_linking(SKILL, "development", console_linking());
    h.sim.set_stage_enabled(SKILL, "development", false);
    let text = alexa_skill_operator::import::run(&import_args(&h, &[]), None, &ask_env)
        .await
        .expect("import");
    let kinds: Vec<String> = docs(&text)
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["SkillAccountLinking"], "{text}");
    assert!(text.contains("not enabled for the skill owner"), "{text}");
    h.sim.delete_account_linking(SKILL, "development");
    let err = alexa_skill_operator::import::run(&import_args(&h, &[]), None, &ask_env)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing to import"), "{err}");
    h.shutdown().await;
}
