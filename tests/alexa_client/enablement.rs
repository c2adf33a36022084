//! Skill stage enablement with the owner's credentials.

use alexa_skill_operator::crd::common::Stage;

use crate::{Operation, SKILL, SimConfig, client, owner, records, start};

#[tokio::test]
async fn stage_enablement_happy_path() {
    let sim = start(SimConfig::default()).await;
    let client = client(&sim);
    let creds = owner();
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Development)
            .await
            .unwrap()
    );
    client
        .enable_stage(&creds, SKILL, Stage::Development)
        .await
        .unwrap();
    assert!(
        client
            .stage_enabled(&creds, SKILL, Stage::Development)
            .await
            .unwrap()
    );
    assert!(sim.stage_enabled(SKILL, "development"));
    // Enabling live disables development, as Amazon does.
    client
        .enable_stage(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert!(
        client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Development)
            .await
            .unwrap()
    );
    client
        .disable_stage(&creds, SKILL, Stage::Live)
        .await
        .unwrap();
    assert!(
        !client
            .stage_enabled(&creds, SKILL, Stage::Live)
            .await
            .unwrap()
    );
    let paths: Vec<String> = records(&sim, Operation::EnableStage)
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        vec![
            format!("/v1/skills/{SKILL}/stages/development/enablement"),
            format!("/v1/skills/{SKILL}/stages/live/enablement"),
        ]
    );
}
