//! Operations: metrics and health endpoints, leader election, namespaced mode.

use std::time::{Duration, Instant};

use alexa_simulator::SimConfig;
use alexa_skill_operator::cli::{Cli, Command};
use alexa_skill_operator::crd::{SkillAccountLinking, SkillEnablement};
use alexa_skill_operator::operator::{self, Running};
use alexa_skill_operator::server::Role;
use clap::Parser;
use kube::api::{Api, Patch, PatchParams};
use kube_test_server::{LeaseAnswer, LeaseFault, LeaseWrite};
use serde_json::{Value, json};

use crate::support::{
    Harness, SKILL, auth_code_linking, is_ready, owner, sal, settle, skip_on_real_server,
};

fn implicit(name: &str) -> Value {
    sal(
        name,
        json!({"type": "IMPLICIT", "authorizationUrl": "https://auth.example.com/authorize", "clientId": name}),
    )
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder().build().expect("http client");
    let response = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_and_health_endpoints_report_a_reconcile() {
    let h = Harness::start().await;
    let addr = h.operator.as_ref().unwrap().metrics_addr;
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    h.owner_credentials().await;
    h.apply::<SkillAccountLinking>(implicit("weather"))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("weather", "Ready", is_ready)
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while http_get(addr, "/readyz").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "/readyz never became ready after the watches synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, text) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metric(
            &text,
            r#"alexa_operator_reconciles_total{kind="SkillAccountLinking",result="ready"}"#
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"alexa_operator_api_requests_total{operation="get_account_linking",status="404"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"alexa_operator_api_requests_total{operation="update_account_linking",status="204"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"alexa_operator_api_requests_total{operation="get_account_linking",status="200"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"alexa_operator_token_refreshes_total{result="ok"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"alexa_operator_objects{kind="SkillAccountLinking",ready="True",reason="Synced"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"alexa_operator_time_to_first_ready_seconds_count{kind="SkillAccountLinking"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(
        !text.contains("weather"),
        "object names never become labels"
    );
    h.shutdown().await;
}

async fn elected(h: &Harness) -> Running {
    elected_with(h, &[]).await
}

/// A replica with leader election on a 3 s Lease (renew deadline 2 s, retry period 400 ms),
/// with extra `run` flags.
async fn elected_with(h: &Harness, extra: &[&str]) -> Running {
    let lease = h.lease_args();
    // `extra` first: `run_args` reads flags in (flag, value) pairs.
    let mut flags = extra.to_vec();
    flags.extend(["--leader-election", "--lease-duration", "3s"]);
    flags.extend(lease.iter().map(String::as_str));
    let cli = Cli::parse_from(h.run_args(&flags));
    let Command::Run(args) = cli.command else {
        unreachable!()
    };
    operator::start(*args, h.operator_client())
        .await
        .expect("start")
}

async fn wait_role(op: &Running, role: Role) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while op.health.role() != role {
        assert!(
            Instant::now() < deadline,
            "expected role {role:?}, still {:?}",
            op.health.role()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let h = Harness::servers(SimConfig::default()).await;
    h.owner_credentials().await;
    let first = elected(&h).await;
    wait_role(&first, Role::Leader).await;
    let second = elected(&h).await;
    wait_role(&second, Role::Standby).await;
    assert!(
        second.health.readiness().is_ok(),
        "a healthy standby is ready"
    );

    h.apply::<SkillAccountLinking>(implicit("one"))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("one", "Ready", is_ready)
        .await;
    settle().await;
    assert!(
        first
            .metrics
            .render()
            .contains(r#"reconciles_total{kind="SkillAccountLinking",result="ready"}"#)
    );
    assert!(
        !second.metrics.render().contains("reconciles_total{"),
        "the standby never reconciles"
    );

    // The leader dies without releasing the Lease: the standby takes over once it expires.
    let first_id = h
        .lease_holder()
        .await
        .expect("the first replica holds the Lease");
    first.kill();
    wait_role(&second, Role::Leader).await;
    let second_id = h
        .lease_holder()
        .await
        .expect("the second replica holds the Lease");
    assert_ne!(first_id, second_id);
    // Never two leaders, from the Lease's records (the test server keeps every write): the
    // standby's first write comes a whole lease duration after the dead leader's last one.
    if let Some(history) = h.lease_history() {
        let handovers = assert_one_leader_at_a_time(&history);
        assert_eq!(handovers, vec![(first_id.clone(), second_id.clone())]);
    }
    h.apply::<SkillAccountLinking>(implicit("two"))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("two", "Ready", is_ready)
        .await;

    // Graceful shutdown releases the Lease for a fast hand-over.
    assert!(h.lease_holder().await.is_some());
    second.shutdown().await;
    assert_eq!(h.lease_holder().await, None, "Lease released on shutdown");
    h.shutdown().await;
}

/// Checks from the Lease's write history that no replica took the Lease while another's
/// record was valid: every change of holder follows a release, or comes at least the previous
/// record's `leaseDurationSeconds` after the previous holder's last write, both on the test
/// server's clock and between the records' own `renewTime` and `acquireTime`. Returns the
/// hand-overs as (from, to).
fn assert_one_leader_at_a_time(history: &[LeaseWrite]) -> Vec<(String, String)> {
    let time = |t: &Option<String>| -> k8s_openapi::jiff::Timestamp {
        t.as_deref()
            .expect("time written")
            .parse()
            .expect("RFC 3339 time")
    };
    let mut handovers = Vec::new();
    for pair in history.windows(2) {
        let (last, next) = (&pair[0], &pair[1]);
        let (Some(from), Some(to)) = (&last.holder, &next.holder) else {
            continue; // a release, or the first write after one: nothing was held
        };
        if from == to {
            continue;
        }
        let lease = Duration::from_secs(last.lease_duration_seconds.expect("duration") as u64);
        assert!(
            next.at.duration_since(last.at) >= lease,
            "{to} took the Lease {:?} after {from}'s last renewal, within its {lease:?}: {history:#?}",
            next.at.duration_since(last.at)
        );
        let gap = time(&next.acquire_time).duration_since(time(&last.renew_time));
        assert!(
            gap >= k8s_openapi::jiff::SignedDuration::try_from(lease).expect("duration"),
            "acquireTime of {to} only {gap:?} after renewTime of {from}: {history:#?}"
        );
        assert_eq!(
            next.lease_transitions,
            last.lease_transitions.map(|t| t + 1),
            "each new holder counts one transition"
        );
        handovers.push((from.clone(), to.clone()));
    }
    handovers
}

#[tokio::test]
async fn a_leader_whose_renewals_fail_stops_sending_before_the_standby_starts() {
    leader_without_renewals(LeaseAnswer::Status(500)).await;
}

#[tokio::test]
async fn a_leader_whose_renewals_hang_stops_sending_before_the_standby_starts() {
    leader_without_renewals(LeaseAnswer::Hang).await;
}

/// Two replicas; the API server answers the leader's Lease writes with `answer` from some
/// moment on: the leader must stop (aborting its reconciles) by its renew deadline, end its run
/// with an error, and Amazon must get nothing between then and the standby's take-over.
async fn leader_without_renewals(answer: LeaseAnswer) {
    if skip_on_real_server("failing one replica's Lease writes") {
        return;
    }
    let h = Harness::servers(SimConfig::default()).await;
    h.owner_credentials().await;
    // Short back-off so the leader sends to Amazon every few hundred milliseconds.
    let fast = ["--backoff-max", "300ms"];
    let mut first = elected_with(&h, &fast).await;
    wait_role(&first, Role::Leader).await;
    let second = elected_with(&h, &fast).await;
    wait_role(&second, Role::Standby).await;
    let first_id = h
        .lease_holder()
        .await
        .expect("the first replica holds the Lease");

    // Amazon answers every request with a server error: the leader keeps retrying 3 objects.
    h.sim.faults().set_error_rate(1.0);
    for name in ["a", "b", "c"] {
        h.apply::<SkillAccountLinking>(implicit(name))
            .await
            .unwrap();
    }
    h.wait_until("the leader is retrying", || h.sim.requests().len() >= 6)
        .await;

    // From now on the API server refuses the leader's Lease writes (reads still work).
    let server = h.test_server();
    let failing_from = Instant::now();
    server.fail_lease_writes(LeaseFault {
        holder: Some(first_id.clone()),
        answer,
    });
    let ended = tokio::time::timeout(Duration::from_secs(60), first.stopped())
        .await
        .expect("the leader stops once its renew deadline passed");
    let stopped_at = Instant::now();
    let err = ended.expect_err("losing leadership ends the run with an error (exit status 1)");
    assert!(
        matches!(err, operator::RunError::LeadershipLost(_)),
        "{err}"
    );
    assert!(err.to_string().contains("renew deadline"), "{err}");
    let why = first.health.liveness().expect_err("/healthz fails");
    assert!(why.contains("lost leadership"), "{why}");

    wait_role(&second, Role::Leader).await;
    let history = server.lease_history();
    let last_renewal = history
        .iter()
        .rfind(|w| w.holder.as_deref() == Some(first_id.as_str()))
        .expect("the leader's writes")
        .at;
    let took_over = history
        .iter()
        .find(|w| w.holder.is_some() && w.holder.as_deref() != Some(first_id.as_str()))
        .expect("the standby's first write")
        .at;
    assert_eq!(assert_one_leader_at_a_time(&history).len(), 1);

    // The leader's deadline: 2 s (2/3 of the 3 s lease) after its last successful renewal
    // started, which is no later than when the server stored it. Requests already on the wire
    // at that moment may arrive up to 50 ms later.
    let deadline = last_renewal + Duration::from_millis(2_050);
    let quiet_from = stopped_at.min(deadline);
    assert!(
        quiet_from < took_over,
        "the standby started before the leader stopped"
    );
    let requests = h.sim.requests();
    let between = |from: Instant, to: Instant| {
        requests
            .iter()
            .filter(|r| r.at >= from && r.at < to)
            .count()
    };
    assert!(
        between(failing_from, quiet_from) > 0,
        "the leader was sending while its renewals failed (else this test shows nothing)"
    );
    assert_eq!(
        between(quiet_from, took_over),
        0,
        "requests reached Amazon after the leader's deadline, before the standby led: {:#?}",
        requests
            .iter()
            .filter(|r| r.at >= quiet_from && r.at < took_over)
            .collect::<Vec<_>>()
    );
    println!(
        "{answer:?}: renewals failing from 0 ms; leader stopped at {:?}; standby leading at {:?}; {} requests in between",
        stopped_at - failing_from,
        took_over - failing_from,
        between(quiet_from, took_over)
    );

    // The standby carries on.
    h.sim.faults().set_error_rate(0.0);
    h.wait_for::<SkillAccountLinking, _>("c", "Ready", is_ready)
        .await;
    second.shutdown().await;
    h.shutdown().await;
}

#[tokio::test]
async fn namespaced_mode_ignores_other_namespaces() {
    let mut h = Harness::servers(SimConfig::default()).await;
    let ns = h.ns.clone();
    h.start_operator(&["--watch-namespace", &ns]).await;
    h.owner_credentials().await;
    let elsewhere = h.other_namespace("elsewhere").await;
    let other: Api<SkillAccountLinking> = Api::namespaced(h.client.clone(), &elsewhere);
    let mut obj = implicit("outside");
    obj["metadata"]["namespace"] = json!(elsewhere);
    other
        .patch("outside", &PatchParams::apply("e2e"), &Patch::Apply(&obj))
        .await
        .unwrap();
    h.apply::<SkillAccountLinking>(implicit("inside"))
        .await
        .unwrap();
    h.wait_for::<SkillAccountLinking, _>("inside", "Ready", is_ready)
        .await;
    settle().await;
    let outside = other.get("outside").await.unwrap();
    assert!(
        outside.status.is_none(),
        "objects outside the watched namespaces are never touched"
    );
    assert!(outside.metadata.finalizers.is_none());
    h.shutdown().await;
}

/// What Flux (always server-side apply) and Argo CD with server-side apply do when a user
/// deletes an optional reference from Git: the field must disappear. With granular objects
/// the apiserver would leave `null` behind and refuse or keep it (kubernetes#117447).
#[tokio::test]
async fn gitops_server_side_apply_can_drop_optional_references() {
    let h = Harness::servers(SimConfig::default()).await;
    let api: Api<SkillAccountLinking> = Api::namespaced(h.client.clone(), &h.ns);
    let apply = |obj: Value| {
        let api = api.clone();
        async move {
            api.patch("weather", &PatchParams::apply("flux"), &Patch::Apply(&obj))
                .await
        }
    };
    let mut obj = sal("weather", auth_code_linking());
    apply(obj.clone()).await.unwrap();
    // Switch to the implicit grant: the token endpoint and the client secret go.
    let linking = &mut obj["spec"]["accountLinking"];
    linking["type"] = json!("IMPLICIT");
    for field in ["accessTokenUrl", "accessTokenScheme", "clientSecretRef"] {
        linking.as_object_mut().unwrap().remove(field);
    }
    let obj = apply(obj).await.expect("the reference can be dropped");
    assert!(obj.spec.account_linking.client_secret_ref.is_none());
    let raw = h.raw("skillaccountlinkings", "weather").await.unwrap();
    assert!(
        raw["spec"]["accountLinking"]
            .get("clientSecretRef")
            .is_none(),
        "gone, not null: {}",
        raw["spec"]["accountLinking"]
    );

    // A SkillEnablement switching from customer mode to owner mode.
    let sen: Api<SkillEnablement> = Api::namespaced(h.client.clone(), &h.ns);
    let mut obj = json!({
        "apiVersion": "alexa.operator.dev/v1alpha1", "kind": "SkillEnablement",
        "metadata": {"name": "dev"},
        "spec": {"skillId": SKILL, "stage": "development", "customer": {
            "tokenSecretRef": {"name": "t"},
            "accountLinkRequest": {"type": "AUTH_CODE", "redirectUri": "https://app.example.com/cb",
                "authCodeSecretRef": {"name": "c", "key": "auth-code"},
                "codeVerifierSecretRef": {"name": "c", "key": "verifier"}}}}
    });
    sen.patch("dev", &PatchParams::apply("flux"), &Patch::Apply(&obj))
        .await
        .unwrap();
    obj["spec"]["customer"]["accountLinkRequest"]
        .as_object_mut()
        .unwrap()
        .remove("codeVerifierSecretRef");
    let out = sen
        .patch("dev", &PatchParams::apply("flux"), &Patch::Apply(&obj))
        .await
        .expect("the verifier reference can be dropped");
    let raw = serde_json::to_value(&out.spec).unwrap();
    assert!(
        raw["customer"]["accountLinkRequest"]
            .get("codeVerifierSecretRef")
            .is_none(),
        "{raw}"
    );
    obj["spec"].as_object_mut().unwrap().remove("customer");
    obj["spec"]["credentialsSecretRef"] = json!({"name": "lwa"});
    sen.patch("dev", &PatchParams::apply("flux"), &Patch::Apply(&obj))
        .await
        .expect("switching to owner mode passes the exactly-one-mode rule");
    let raw = h.raw("skillenablements", "dev").await.unwrap();
    assert!(raw["spec"].get("customer").is_none(), "{}", raw["spec"]);
    h.shutdown().await;
}

/// `(apiGroup, resource[/subresource], verb)` triples granted by the `rules:` of RBAC YAML
/// files written in the repository's one-line flow style.
fn granted(files: &[&str]) -> std::collections::BTreeSet<(String, String, String)> {
    fn list(line: &str) -> Vec<String> {
        let inner = line
            .split_once('[')
            .and_then(|(_, r)| r.rsplit_once(']'))
            .map(|(l, _)| l);
        inner
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty() || line.contains("\"\""))
            .collect()
    }
    let mut out = std::collections::BTreeSet::new();
    for file in files {
        let text =
            std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let (mut groups, mut resources) = (Vec::new(), Vec::new());
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("- apiGroups:") {
                groups = list(rest);
            } else if let Some(rest) = line.strip_prefix("resources:") {
                resources = list(rest);
            } else if let Some(rest) = line.strip_prefix("verbs:") {
                for g in &groups {
                    for r in &resources {
                        for v in list(rest) {
                            out.insert((g.clone(), r.clone(), v));
                        }
                    }
                }
            }
        }
    }
    out
}

/// `(apiGroup, resource[/subresource])` of an API path, e.g.
/// `/apis/alexa.operator.dev/v1alpha1/namespaces/skills/skillaccountlinkings/x/status`.
fn resource_of(path: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _v, rest @ ..] => (String::new(), rest),
        ["apis", g, _v, rest @ ..] => (g.to_string(), rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    match rest {
        [res] | [res, _] => Some((group, res.to_string())),
        [res, _, sub] => Some((group, format!("{res}/{sub}"))),
        _ => None,
    }
}

#[tokio::test]
async fn every_request_the_operator_makes_is_granted_by_the_deploy_rbac() {
    // On the real server the operator runs as its ServiceAccount under deploy/'s RBAC for the
    // whole suite, which checks the same thing for real.
    if skip_on_real_server("the test server's request log") {
        return;
    }
    let mut h = Harness::servers(SimConfig::default()).await;
    h.owner_credentials().await;
    h.secret("oauth", &[("client-secret", "s")]).await;
    let mut weather = sal("weather", auth_code_linking());
    weather["spec"]["exports"] = json!({"configMapName": "weather-redirect-urls"});
    h.apply::<SkillAccountLinking>(weather).await.unwrap();
    // The enablement uses shared credentials, so the credentials controller's requests count.
    h.apply::<alexa_skill_operator::crd::AlexaCredentials>(serde_json::json!({
        "apiVersion": "alexa.operator.dev/v1alpha1", "kind": "AlexaCredentials",
        "metadata": {"name": "team"}, "spec": {"secretRef": {"name": "lwa"}}}))
        .await
        .unwrap();
    let mut dev = owner("dev", "development");
    dev["spec"]["credentialsRef"] = serde_json::json!({"kind": "AlexaCredentials", "name": "team"});
    dev["spec"]
        .as_object_mut()
        .unwrap()
        .remove("credentialsSecretRef");
    h.apply::<SkillEnablement>(dev).await.unwrap();
    // From here on the test itself only reads the store directly and deletes the two objects,
    // so the request log holds the operator's requests (and those deletes).
    h.test_server().clear_requests();
    let lease = h.lease_args();
    let mut flags = vec!["--leader-election", "--lease-duration", "3s"];
    flags.extend(lease.iter().map(String::as_str));
    h.start_operator(&flags).await;
    let stored = |plural: &str, name: &str| {
        h.test_server()
            .get_object("alexa.operator.dev/v1alpha1", plural, Some(&h.ns), name)
    };
    let ready = |o: &Value| {
        o["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    };
    h.wait_until("both objects Ready", || {
        stored("skillaccountlinkings", "weather").is_some_and(|o| ready(&o))
            && stored("skillenablements", "dev").is_some_and(|o| ready(&o))
    })
    .await;
    h.delete::<SkillAccountLinking>("weather").await;
    h.delete::<SkillEnablement>("dev").await;
    h.wait_until("both objects gone", || {
        stored("skillaccountlinkings", "weather").is_none()
            && stored("skillenablements", "dev").is_none()
    })
    .await;
    h.delete::<alexa_skill_operator::crd::AlexaCredentials>("team")
        .await;
    h.wait_until("the credentials gone", || {
        stored("alexacredentials", "team").is_none()
    })
    .await;
    h.stop_operator().await;

    let rules = granted(&[
        "deploy/rbac/cluster-role.yaml",
        "deploy/base/leader-election-rbac.yaml",
        "deploy/base/digest-key-rbac.yaml",
    ]);
    let mut used = std::collections::BTreeSet::new();
    for r in h.test_server().requests() {
        if matches!(r.verb.as_str(), "discovery" | "health") {
            continue;
        }
        let (group, resource) = resource_of(&r.path)
            .unwrap_or_else(|| panic!("unexpected path {} {}", r.method, r.path));
        // The test's own two deletes; the operator never deletes its objects (it removes
        // the finalizer with a patch).
        if r.verb == "delete" && group == "alexa.operator.dev" {
            continue;
        }
        used.insert((group, resource, r.verb.clone()));
    }
    let missing: Vec<_> = used.difference(&rules).collect();
    assert!(
        missing.is_empty(),
        "the operator made requests deploy/ does not grant: {missing:?}"
    );
    for needed in [
        ("coordination.k8s.io", "leases", "patch"),
        ("alexa.operator.dev", "skillaccountlinkings/status", "patch"),
        ("alexa.operator.dev", "skillenablements", "patch"),
        ("events.k8s.io", "events", "create"),
        ("", "secrets", "get"),
        ("", "secrets", "create"), // the digest key, on first start
        ("", "configmaps", "get"), // spec.exports
        ("", "configmaps", "create"),
    ] {
        let key = (
            needed.0.to_string(),
            needed.1.to_string(),
            needed.2.to_string(),
        );
        assert!(
            used.contains(&key),
            "scenario did not exercise {needed:?}: {used:?}"
        );
    }
    h.shutdown().await;
}
