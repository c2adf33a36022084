//! Argo CD health: deploy/argocd/health.lua on the statuses the operator writes, and the
//! argocd-cm patch that embeds it.

use std::collections::BTreeSet;

use alexa_skill_operator::controller::conditions::{self, Outcome, Phase, Reason};
use alexa_skill_operator::crd::{SkillAccountLinkingStatus, SkillEnablementStatus};
use serde_json::{Value, json};

use crate::{parse_yaml_stream, read, repo, samples};

/// Runs deploy/argocd/health.lua on `object` as Argo CD would: the object as global `obj`,
/// the script's return value a table with `status` and `message`.
fn argo_health(object: &Value) -> (String, String) {
    use mlua::LuaSerdeExt;
    let lua = mlua::Lua::new();
    // JSON null becomes nil, as in Argo CD's conversion of the object.
    let options = mlua::SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua.to_value_with(object, options).expect("object to Lua");
    lua.globals().set("obj", obj).expect("set obj");
    let hs: mlua::Table = lua
        .load(read("deploy/argocd/health.lua"))
        .set_name("health.lua")
        .eval()
        .expect("health.lua runs");
    (
        hs.get::<String>("status").expect("status"),
        hs.get::<String>("message").expect("message"),
    )
}

/// The SkillAccountLinking sample with the status the operator writes for `outcome`.
fn with_status(kind: &str, outcome: &Outcome, generation: i64, observed: Option<i64>) -> Value {
    let conditions = conditions::build(&[], outcome, observed, k8s_openapi::jiff::Timestamp::now());
    let status = match kind {
        "SkillAccountLinking" => serde_json::to_value(SkillAccountLinkingStatus {
            observed_generation: observed,
            conditions,
            ..Default::default()
        }),
        _ => serde_json::to_value(SkillEnablementStatus {
            observed_generation: observed,
            conditions,
            ..Default::default()
        }),
    }
    .expect("status to JSON");
    let mut object = samples()
        .into_iter()
        .find(|o| o["kind"] == kind)
        .expect("sample of kind");
    object["metadata"]["generation"] = json!(generation);
    object["status"] = status;
    object
}

/// What Argo CD must show as the message of a health verdict.
enum Message {
    /// Anything (there is no status to take a message from).
    Any,
    /// The Ready condition's message, verbatim.
    Exactly(&'static str),
    /// A message that says this.
    Mentions(&'static str),
}

/// The object a row of `argo_cd_health_maps_every_state` checks.
enum State {
    /// The sample as created: no status at all.
    NoStatus,
    /// A status without conditions.
    EmptyStatus,
    /// The status the operator writes for the outcome, at (generation, observedGeneration).
    Written(Outcome, i64, i64),
}

#[test]
fn argo_cd_health_maps_every_state() {
    let ready = "Account linking matches the spec.";
    let paused = "Paused by annotation alexa.operator.dev/paused.";
    let stalled = "LWA refused the refresh token (invalid_grant).";
    let drift = "Observe mode: accountLinking.scopes differ from Amazon.";
    let throttled = "Amazon asked to retry after 30s.";
    // (what, object, Argo CD status, message)
    let rows: Vec<(&str, State, &str, Message)> = vec![
        (
            "no status yet",
            State::NoStatus,
            "Progressing",
            Message::Any,
        ),
        (
            "empty status",
            State::EmptyStatus,
            "Progressing",
            Message::Any,
        ),
        (
            "ready",
            State::Written(Outcome::ready(ready), 2, 2),
            "Healthy",
            Message::Exactly(ready),
        ),
        (
            "spec changed, not yet observed",
            State::Written(Outcome::ready(ready), 3, 2),
            "Progressing",
            Message::Mentions("generation 3"),
        ),
        (
            "paused",
            State::Written(Outcome::idle(Reason::Paused, paused), 2, 2),
            "Suspended",
            Message::Exactly(paused),
        ),
        (
            "stalled",
            State::Written(Outcome::stalled(Reason::CredentialsInvalid, stalled), 2, 2),
            "Degraded",
            Message::Exactly(stalled),
        ),
        (
            "drift in Observe mode",
            State::Written(Outcome::idle(Reason::DriftDetected, drift), 2, 2),
            "Degraded",
            Message::Exactly(drift),
        ),
        (
            "throttled",
            State::Written(Outcome::progressing(Reason::Throttled, throttled), 2, 2),
            "Progressing",
            Message::Exactly(throttled),
        ),
    ];
    for kind in ["SkillAccountLinking", "SkillEnablement"] {
        for (what, state, want_status, want_message) in &rows {
            let object = match state {
                State::NoStatus | State::EmptyStatus => {
                    let mut o = with_status(kind, &Outcome::ready("x"), 1, Some(1));
                    o.as_object_mut().unwrap().remove("status");
                    if matches!(state, State::EmptyStatus) {
                        o["status"] = json!({"conditions": []});
                    }
                    o
                }
                State::Written(outcome, generation, observed) => {
                    with_status(kind, outcome, *generation, Some(*observed))
                }
            };
            let (status, message) = argo_health(&object);
            assert_eq!(&status, want_status, "{kind}: {what}");
            match want_message {
                Message::Any => {}
                Message::Exactly(m) => assert_eq!(&message, m, "{kind}: {what}"),
                Message::Mentions(m) => assert!(message.contains(m), "{kind}: {what}: {message}"),
            }
        }
    }
}

#[test]
fn argo_cd_health_follows_the_kstatus_phase_for_every_reason() {
    for reason in Reason::ALL {
        for phase in [
            Phase::Ready,
            Phase::Progressing,
            Phase::Stalled,
            Phase::Idle,
        ] {
            let outcome = Outcome {
                phase,
                reason,
                message: format!("{reason} in {phase:?}"),
            };
            let want = match (phase, reason) {
                (Phase::Ready, _) => "Healthy",
                (_, Reason::Paused) => "Suspended",
                // Drift being repaired (Reconciling=True) is progress, not degradation.
                (Phase::Stalled, _) | (Phase::Idle, Reason::DriftDetected) => "Degraded",
                _ => "Progressing",
            };
            let (status, message) =
                argo_health(&with_status("SkillAccountLinking", &outcome, 4, Some(4)));
            assert_eq!(status, want, "{reason} in {phase:?}");
            assert_eq!(
                message, outcome.message,
                "message comes from the Ready condition"
            );
        }
    }
}

/// Header of deploy/argocd/argocd-cm-patch.yaml; the data keys follow, generated.
const ARGOCD_PATCH_HEADER: &str = "\
# Argo CD resource health for the operator's kinds, as a patch of argocd-cm. Apply with
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file deploy/argocd/argocd-cm-patch.yaml
# (or add it to the kustomization that installs Argo CD). Both values are deploy/argocd/health.lua
# verbatim: edit that file, then regenerate this one with
#   UPDATE_DEPLOY=1 cargo test --test deploy argo_cd_configmap
# (tests/deploy/ fails when they differ). Argo CD then shows these objects as Healthy,
# Progressing, Suspended (paused) or Degraded (stalled, or drifted in Observe mode), and a sync
# that waits for health waits for Ready.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
";

/// The argocd-cm patch as it must be: one key per kind, each holding health.lua.
fn argocd_patch(script: &str) -> String {
    let mut out = ARGOCD_PATCH_HEADER.to_string();
    for crd in alexa_skill_operator::crd::all() {
        out.push_str(&format!(
            "  resource.customizations.health.{}_{}: |\n",
            crd.spec.group, crd.spec.names.kind
        ));
        for line in script.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

#[test]
fn argo_cd_configmap_patch_embeds_the_health_script_for_both_kinds() {
    let script = read("deploy/argocd/health.lua");
    let want_text = argocd_patch(&script);
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::write(
            repo().join("deploy/argocd/argocd-cm-patch.yaml"),
            &want_text,
        )
        .expect("write argocd-cm-patch.yaml");
    }
    assert_eq!(
        read("deploy/argocd/argocd-cm-patch.yaml"),
        want_text,
        "deploy/argocd/argocd-cm-patch.yaml is stale: \
         UPDATE_DEPLOY=1 cargo test --test deploy argo_cd_configmap"
    );
    let patch = parse_yaml_stream(&read("deploy/argocd/argocd-cm-patch.yaml"), "argocd-cm");
    assert_eq!(patch.len(), 1);
    let cm = &patch[0];
    assert_eq!(
        (cm["kind"].as_str(), cm["metadata"]["name"].as_str()),
        (Some("ConfigMap"), Some("argocd-cm"))
    );
    let data = cm["data"].as_object().expect("data");
    let want: BTreeSet<String> = alexa_skill_operator::crd::all()
        .iter()
        .map(|c| {
            format!(
                "resource.customizations.health.{}_{}",
                c.spec.group, c.spec.names.kind
            )
        })
        .collect();
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), want);
    for (key, value) in data {
        assert_eq!(
            value.as_str(),
            Some(script.as_str()),
            "{key} differs from health.lua"
        );
    }
}
