//! Deleting a namespace: objects whose credentials went with it are let go (Amazon's side
//! orphaned, with a Warning event saying what is left and how to remove it), objects whose
//! credentials are still readable are cleaned up on Amazon, and the namespace goes. Also: an
//! object deleted behind the operator's back (finalizer removed by hand) leaves nothing in the
//! operator's memory or metrics.

use std::time::{Duration, Instant};

use alexa_simulator::{Operation, Region, sandbox};
use alexa_skill_operator::crd::{SkillAccountLinking, SkillEnablement};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::enablement::{customer, customer_secrets};
use crate::support::{
    Harness, PATIENCE, SKILL, auth_code_linking, is_ready, on_real_server, owner, reason, sal,
    settle,
};

const ORPHANED: &str = "OrphanedByNamespaceDeletion";

/// Notes of the events of `reason` about the test's Namespace (recorded in `default`: nothing
/// new can be created in a terminating namespace).
async fn namespace_events(h: &Harness, reason: &str) -> Vec<String> {
    let about_ns = |o: &serde_json::Value| {
        o["kind"] == "Event"
            && o["regarding"]["kind"] == "Namespace"
            && o["regarding"]["name"] == h.ns.as_str()
            && o["reason"] == reason
    };
    let events: Vec<serde_json::Value> = if on_real_server() {
        let api: Api<Event> = Api::namespaced(h.client.clone(), "default");
        let params = ListParams::default().fields(&format!("regarding.name={}", h.ns));
        let list = api.list(&params).await.expect("list events");
        list.items
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap();
                v["kind"] = json!("Event");
                v
            })
            .collect()
    } else {
        h.test_server().dump()
    };
    events
        .into_iter()
        .filter(about_ns)
        .map(|o| o["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn delete_namespace(h: &Harness) -> Instant {
    let api: Api<Namespace> = Api::all(h.client.clone());
    api.delete(&h.ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    Instant::now()
}

async fn namespace(h: &Harness) -> Option<Namespace> {
    let api: Api<Namespace> = Api::all(h.client.clone());
    api.get_opt(&h.ns).await.expect("get namespace")
}

/// Waits until the test's namespace is gone; how long that took since `since`.
async fn wait_namespace_gone(h: &Harness, since: Instant) -> Duration {
    while let Some(ns) = namespace(h).await {
        assert!(
            since.elapsed() < PATIENCE,
            "namespace still there: {:?}; Alexa requests: {:?}",
            ns.status,
            h.sim.requests()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    since.elapsed()
}

/// The `alexa_operator_objects` gauge summed over every state of `kind`.
fn objects_gauge(h: &Harness, kind: &str) -> i64 {
    let text = h.operator.as_ref().expect("operator").metrics.render();
    let prefix = format!("alexa_operator_objects{{kind=\"{kind}\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum()
}

/// The three objects (account linking, owner-mode and customer-mode enablement), Ready.
async fn three_ready_objects() -> Harness {
    let h = Harness::with_owner(&[], Some("client-secret")).await;
    customer_secrets(&h, Region::Na, &sandbox::partner_code(Region::Na, 1)).await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    h.apply::<SkillEnablement>(owner("dev", "development"))
        .await
        .unwrap();
    h.apply::<SkillEnablement>(customer("na-customer", "na-lwa", "na-code"))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    for name in ["dev", "na-customer"] {
        h.wait_for::<SkillEnablement, _>(name, "Ready", is_ready)
            .await;
    }
    h
}

#[tokio::test]
async fn deleting_a_namespace_orphans_what_its_gone_credentials_managed() {
    let h = three_ready_objects().await;
    let before = h.sim.requests().len();
    let started = delete_namespace(&h).await;
    let took = wait_namespace_gone(&h, started).await;
    println!("namespace gone {took:?} after its deletion");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let orphaned = namespace_events(&h, ORPHANED).await;
    let expected = [
        (
            "SkillAccountLinking",
            "weather",
            "ask smapi delete-account-linking-info --skill-id",
        ),
        (
            "SkillEnablement",
            "dev",
            "ask smapi delete-skill-enablement --skill-id",
        ),
        ("SkillEnablement", "na-customer", "the Alexa app"),
    ];
    if on_real_server() {
        // The namespace controller deletes Secrets and objects in no fixed order: an object that
        // still found its Secret was cleaned up on Amazon instead, which is right too.
        println!("orphaned on the real apiserver: {orphaned:?}");
        return h.shutdown().await;
    }
    // Here Secrets go when the objects are marked: every object is orphaned.
    for (kind, name, how) in expected {
        let object = format!("{kind} {}/{name}", h.ns);
        assert!(
            orphaned
                .iter()
                .any(|n| n.starts_with(&object) && n.contains(how)),
            "no Warning naming {object} and {how:?}: {orphaned:?}"
        );
    }
    assert_eq!(orphaned.len(), 3, "{orphaned:#?}");
    let sent = &h.sim.requests()[before..];
    assert!(
        sent.is_empty(),
        "nothing is sent without the credentials: {:?}",
        sent.iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    assert!(h.sim.account_linking(SKILL, "development").is_some());
    assert!(h.sim.stage_enabled(SKILL, "development"));
    assert!(
        h.sim
            .customer_enablement(sandbox::customer(Region::Na), SKILL)
            .is_some()
    );
    h.shutdown().await;
}

#[tokio::test]
async fn deleting_a_namespace_cleans_up_amazon_while_the_credentials_are_readable() {
    let h = Harness::with_owner(&[], Some("client-secret")).await;
    // A finalizer of someone else's keeps the credentials readable while the namespace goes.
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let hold = |finalizers: serde_json::Value| json!({"metadata": {"finalizers": finalizers}});
    secrets
        .patch(
            "lwa",
            &PatchParams::default(),
            &Patch::Merge(hold(json!(["e2e.alexa.operator.dev/hold"]))),
        )
        .await
        .expect("hold the Secret");
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    h.apply::<SkillEnablement>(owner("dev", "development"))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    h.wait_for::<SkillEnablement, _>("dev", "Ready", is_ready)
        .await;

    let started = delete_namespace(&h).await;
    h.wait_until("Amazon cleaned up", || {
        h.sim.account_linking(SKILL, "development").is_none()
            && !h.sim.stage_enabled(SKILL, "development")
    })
    .await;
    assert_eq!(h.count(Operation::DeleteAccountLinking), 1);
    assert_eq!(h.count(Operation::DisableStage), 1);
    h.wait_gone::<SkillAccountLinking>("weather").await;
    h.wait_gone::<SkillEnablement>("dev").await;
    let phase = namespace(&h)
        .await
        .and_then(|n| n.status?.phase)
        .unwrap_or_default();
    assert_eq!(phase, "Terminating", "held by the Secret's finalizer");
    assert_eq!(namespace_events(&h, ORPHANED).await, Vec::<String>::new());

    secrets
        .patch(
            "lwa",
            &PatchParams::default(),
            &Patch::Merge(hold(json!(null))),
        )
        .await
        .expect("let go of the Secret");
    let took = wait_namespace_gone(&h, started).await;
    println!("namespace gone {took:?} after its deletion");
    h.shutdown().await;
}

#[tokio::test]
async fn a_cleanup_without_credentials_outside_a_terminating_namespace_waits_and_a_force_delete_leaves_nothing_behind()
 {
    let h = Harness::with_owner(&[], Some("s")).await;
    h.apply::<SkillAccountLinking>(sal("weather", auth_code_linking()))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    // The gauge follows the reconcile that wrote Ready; wait for it rather than race it.
    h.wait_until("the object is counted", || {
        objects_gauge(&h, "SkillAccountLinking") == 1
    })
    .await;
    h.delete_secret("lwa").await;
    h.delete::<SkillAccountLinking>("weather").await;
    h.wait_for::<SkillAccountLinking, _>("weather", "waiting for its Secret", |o| {
        o.metadata.deletion_timestamp.is_some() && reason(o) == "SecretNotFound"
    })
    .await;
    settle().await;
    assert!(
        h.get::<SkillAccountLinking>("weather").await.is_some(),
        "the namespace is not going: the finalizer stays"
    );
    assert_eq!(namespace_events(&h, ORPHANED).await, Vec::<String>::new());
    assert_eq!(objects_gauge(&h, "SkillAccountLinking"), 1);

    // Force delete: the finalizer removed by hand.
    h.merge_patch::<SkillAccountLinking>("weather", json!({"metadata": {"finalizers": null}}))
        .await;
    h.wait_gone::<SkillAccountLinking>("weather").await;
    h.wait_until("the objects gauge counts what exists", || {
        objects_gauge(&h, "SkillAccountLinking") == 0
    })
    .await;
    h.shutdown().await;
}
