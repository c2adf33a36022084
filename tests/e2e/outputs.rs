//! Issue 18: the exported redirect-URL ConfigMap (spec.exports.configMapName) and the
//! per-object resync period (annotation alexa.operator.dev/resync-period).

use alexa_simulator::Operation;
use alexa_skill_operator::crd::{SkillAccountLinking, SkillEnablement};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::support::{
    Harness, auth_code_linking, is_ready, message, on_real_server, owner, reason, sal, settle,
    stalled,
};

const CM: &str = "weather-redirect-urls";

fn exporting(name: &str, linking: Value) -> Value {
    let mut obj = sal(name, linking);
    obj["spec"]["exports"] = json!({ "configMapName": CM });
    obj
}

/// The ConfigMap's (redirect-urls, redirect-urls.json) data.
fn exported(cm: &ConfigMap) -> (String, String) {
    let data = cm.data.clone().unwrap_or_default();
    (
        data.get("redirect-urls").cloned().unwrap_or_default(),
        data.get("redirect-urls.json").cloned().unwrap_or_default(),
    )
}

/// Writes (create, patch, update) of ConfigMaps in the test server's request log.
fn config_map_writes(h: &Harness) -> usize {
    h.test_server()
        .requests()
        .iter()
        .filter(|r| {
            r.path.contains("/configmaps")
                && matches!(r.verb.as_str(), "create" | "patch" | "update")
        })
        .count()
}

fn as_lines(urls: &[String]) -> String {
    urls.iter().map(|u| format!("{u}\n")).collect()
}

#[tokio::test]
async fn the_exported_config_map_follows_amazons_redirect_urls_and_is_written_only_on_change() {
    let h = Harness::with_owner(&[], Some("s3cret")).await;
    h.apply::<SkillAccountLinking>(exporting("weather", auth_code_linking()))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    let urls = obj.status.clone().unwrap().redirect_urls;
    assert!(!urls.is_empty());
    let cm = h.get::<ConfigMap>(CM).await.expect("ConfigMap exported");
    assert_eq!(
        exported(&cm),
        (as_lines(&urls), serde_json::to_string(&urls).unwrap())
    );
    let owners = cm.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        (
            owners[0].kind.as_str(),
            owners[0].uid.clone(),
            owners[0].controller
        ),
        ("SkillAccountLinking", obj.uid().unwrap(), Some(true))
    );
    assert_eq!(
        cm.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("alexa-skill-operator")
    );
    let events = h.events_for("weather").await;
    assert_eq!(
        events.iter().filter(|(r, _)| r == "Exported").count(),
        1,
        "{events:?}"
    );

    // Resyncs with the same URLs read the ConfigMap but never write it.
    for value in ["one", "two"] {
        h.request_reconcile("weather", value).await;
        h.wait_for::<SkillAccountLinking, _>("weather", "resynced", |o| {
            o.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some(value)
        })
        .await;
    }
    settle().await;
    let again = h.get::<ConfigMap>(CM).await.unwrap();
    assert_eq!(
        again.metadata.resource_version, cm.metadata.resource_version,
        "no write when nothing changed"
    );
    // An apiserver does not bump the resourceVersion of a no-op patch: count the requests.
    if !on_real_server() {
        assert_eq!(
            config_map_writes(&h),
            1,
            "only the create: resyncs with the same URLs send no write"
        );
    }

    // IMPLICIT grants get other redirect URLs from Amazon: the ConfigMap follows.
    h.apply::<SkillAccountLinking>(exporting(
        "weather",
        json!({"type": "IMPLICIT", "authorizationUrl": "https://auth.example.com/authorize", "clientId": "alexa-skill"}),
    ))
    .await
    .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "Ready with new URLs", |o| {
            is_ready(o) && o.status.as_ref().is_some_and(|s| s.redirect_urls != urls)
        })
        .await;
    let new_urls = obj.status.unwrap().redirect_urls;
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    loop {
        let cm = h.get::<ConfigMap>(CM).await.unwrap();
        if exported(&cm).0 == as_lines(&new_urls) {
            assert_eq!(exported(&cm).1, serde_json::to_string(&new_urls).unwrap());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{cm:?}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_config_map_owned_by_someone_else_is_never_overwritten() {
    let h = Harness::with_owner(&[], Some("s3cret")).await;
    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    let theirs: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CM},
        "data": {"redirect-urls": "mine\n"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &theirs).await.unwrap();
    h.apply::<SkillAccountLinking>(exporting("weather", auth_code_linking()))
        .await
        .unwrap();
    let obj = h
        .wait_for::<SkillAccountLinking, _>("weather", "ExportConflict", |o| {
            reason(o) == "ExportConflict"
        })
        .await;
    let text = message(&obj);
    assert!(stalled(&obj), "Stalled: {text}");
    assert!(
        text.contains(&format!("ConfigMap {}/{CM}", h.ns))
            && text.contains("not owned by this SkillAccountLinking")
            && text.contains("spec.exports.configMapName"),
        "{text}"
    );
    // Amazon's side was still configured; only the export is refused.
    assert!(!obj.status.unwrap().redirect_urls.is_empty());
    settle().await;
    let cm = h.get::<ConfigMap>(CM).await.unwrap();
    assert_eq!(exported(&cm).0, "mine\n", "left as it was");
    assert!(cm.metadata.owner_references.is_none());

    // Once their ConfigMap is gone, the next reconcile creates the operator's own.
    api.delete(CM, &Default::default()).await.unwrap();
    h.request_reconcile("weather", "after-delete").await;
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    let cm = h.get::<ConfigMap>(CM).await.expect("created");
    assert!(exported(&cm).0.starts_with("https://"), "{cm:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn the_resync_period_annotation_overrides_the_flag_for_that_object_only() {
    // Every object resyncs each second, except the one annotated with an hour.
    let h = Harness::with_owner(&["--resync-period", "1s"], Some("s3cret")).await;
    let mut weather = sal("weather", auth_code_linking());
    weather["metadata"]["annotations"] = json!({"alexa.operator.dev/resync-period": "1h"});
    h.apply::<SkillAccountLinking>(weather).await.unwrap();
    h.apply::<SkillEnablement>(owner("dev", "development"))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    h.wait_for::<SkillEnablement, _>("dev", "Ready", is_ready)
        .await;
    let linking_reads = h.count(Operation::GetAccountLinking);
    let enablement_reads = h.count(Operation::GetStageEnablement);
    h.wait_until("the unannotated object resynced three times", || {
        h.count(Operation::GetStageEnablement) >= enablement_reads + 3
    })
    .await;
    assert_eq!(
        h.count(Operation::GetAccountLinking),
        linking_reads,
        "the object annotated with 1h was not re-read"
    );
    let events = h.events_for("weather").await;
    assert!(
        !events.iter().any(|(r, _)| r == "InvalidResyncPeriod"),
        "{events:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_bad_resync_period_is_warned_about_once_and_the_default_applies() {
    let h = Harness::with_owner(&[], Some("s3cret")).await;
    let mut weather = sal("weather", auth_code_linking());
    weather["metadata"]["annotations"] = json!({"alexa.operator.dev/resync-period": "5s"});
    h.apply::<SkillAccountLinking>(weather).await.unwrap();
    let note = h
        .wait_event("weather", "InvalidResyncPeriod", |_| true)
        .await;
    assert!(
        note.contains("alexa.operator.dev/resync-period")
            && note.contains("\"5s\"")
            && note.contains("between 1m and 1day")
            && note.contains("every 1h (--resync-period)"),
        "{note}"
    );
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    let warnings = |events: &[(String, String)]| {
        events
            .iter()
            .filter(|(r, _)| r == "InvalidResyncPeriod")
            .count()
    };
    for value in ["one", "two"] {
        h.request_reconcile("weather", value).await;
        h.wait_for::<SkillAccountLinking, _>("weather", "reconciled", |o| {
            o.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some(value)
        })
        .await;
    }
    settle().await;
    assert_eq!(
        warnings(&h.events_for("weather").await),
        1,
        "once per value"
    );
    h.merge_patch::<SkillAccountLinking>(
        "weather",
        json!({"metadata": {"annotations": {"alexa.operator.dev/resync-period": "often"}}}),
    )
    .await;
    let note = h
        .wait_event("weather", "InvalidResyncPeriod", |n| n.contains("often"))
        .await;
    assert!(
        note.contains("30m"),
        "says what a valid value looks like: {note}"
    );
    assert_eq!(warnings(&h.events_for("weather").await), 2);
    h.shutdown().await;
}
