//! The four demo steps. They talk only to the API server (like kubectl) and to the simulator
//! (like a colleague in the developer console), never to the operator, so they run unchanged
//! whether the operator runs in this process or was started separately (`--no-operator`).

use std::time::Duration;

use alexa_simulator::{Simulator, sandbox};
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

use crate::Res;
use crate::objects::{self, Manifest};
use crate::out;
use crate::view::View;

pub struct Demo<'a> {
    /// Client of the API server through its TCP port.
    pub client: kube::Client,
    pub sim: &'a Simulator,
    pub view: &'a View,
    /// The operator's resync period, to say how long the drift repair may take.
    pub resync_period: Duration,
    /// Whether the operator was started separately (`--no-operator`).
    pub external_operator: bool,
    /// How long to wait for the operator to make the samples Ready: short with the in-process
    /// operator, long when a human still has to start one (`--no-operator`).
    pub first_ready_timeout: Duration,
}

/// How long a single reaction of a running operator may take (generous for a loaded laptop).
const REACTION: Duration = Duration::from_secs(30);

impl Demo<'_> {
    pub async fn run(&self) -> Res<()> {
        self.apply_samples().await?;
        self.drift_repair().await?;
        self.missing_secret().await?;
        self.shared_credentials().await?;
        Ok(())
    }

    /// Applies `manifests`, saying first which kubectl command does the same.
    async fn apply(&self, source: &str, manifests: &[Manifest]) -> Res<()> {
        out::line(format!(
            "$ kubectl apply --server-side --validate=false {source}"
        ));
        for manifest in manifests {
            for line in objects::apply(&self.client, manifest).await? {
                out::line(line);
            }
        }
        Ok(())
    }

    /// Step 1: the README's example objects become Ready.
    async fn apply_samples(&self) -> Res<()> {
        out::section(format!(
            "1/4  Applying the example objects of deploy/samples/ in namespace {}",
            objects::NAMESPACE
        ));
        self.apply("-k deploy/samples/", &objects::SAMPLES).await?;
        if self.external_operator {
            out::line(
                "waiting for an operator to make them Ready: start one with the command printed above",
            );
        }
        let all = [objects::SAL, objects::SEN_OWNER, objects::SEN_CUSTOMER];
        self.view
            .wait_for(
                "the three example objects to become Ready",
                self.first_ready_timeout,
                // The Synced event too, so it is printed before the next step starts.
                |s| {
                    all.iter()
                        .all(|name| s.ready(name) && s.has_event(name, "Synced"))
                },
            )
            .await?;
        out::line("OK   all three example objects are Ready: Amazon (the simulator) matches them");
        self.exported_redirect_urls().await
    }

    /// The sample's spec.exports: the redirect URLs to allow, in a ConfigMap the operator owns.
    async fn exported_redirect_urls(&self) -> Res<()> {
        let api: kube::Api<ConfigMap> =
            kube::Api::namespaced(self.client.clone(), objects::NAMESPACE);
        let deadline = tokio::time::Instant::now() + REACTION;
        let cm = loop {
            if let Some(cm) = api.get_opt(objects::EXPORTED_CONFIG_MAP).await? {
                break cm;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "no ConfigMap {} exported for {}",
                    objects::EXPORTED_CONFIG_MAP,
                    objects::SAL
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let urls = cm
            .data
            .as_ref()
            .and_then(|d| d.get("redirect-urls"))
            .cloned()
            .unwrap_or_default();
        out::line(format!(
            "OK   ConfigMap {} (spec.exports, owned by {}) lists the redirect URLs to allow in your OAuth server: {}",
            objects::EXPORTED_CONFIG_MAP,
            objects::SAL,
            urls.lines().collect::<Vec<_>>().join(" ")
        ));
        Ok(())
    }

    /// Step 2: an out-of-band change on "Amazon" is undone at the next resync.
    async fn drift_repair(&self) -> Res<()> {
        out::section("2/4  Drift repair: someone changes the account linking outside Kubernetes");
        let (skill, stage) = (sandbox::SKILL_ID, "development");
        let current = self
            .sim
            .account_linking(skill, stage)
            .ok_or("the simulator has no account linking for the sample skill")?;
        let mut edited = current.clone();
        let (edited_client_id, edited_scopes) =
            (json!("alexa-skill-edited-in-console"), json!(["profile"]));
        edited["clientId"] = edited_client_id.clone();
        edited["scopes"] = edited_scopes.clone();
        self.sim.set_account_linking(skill, stage, edited);
        out::line(format!(
            "a colleague edits the account linking in the developer console (here: directly on \
             the simulator): clientId {} -> {}, scopes {} -> {}",
            current["clientId"], edited_client_id, current["scopes"], edited_scopes
        ));
        out::line(format!(
            "the operator re-reads Amazon every {} (--resync-period) and should undo it...",
            humantime::format_duration(self.resync_period)
        ));
        self.view
            .wait_for(
                "a DriftRepaired event for sal/sandbox-skill-development",
                self.resync_period + REACTION,
                |s| s.has_event(objects::SAL, "DriftRepaired"),
            )
            .await?;
        let repaired = self
            .sim
            .account_linking(skill, stage)
            .ok_or("the account linking disappeared from the simulator")?;
        if repaired["clientId"] != current["clientId"] || !same_set(&repaired, &current, "scopes") {
            return Err(format!(
                "the operator reported DriftRepaired but the simulator holds clientId {} scopes {}",
                repaired["clientId"], repaired["scopes"]
            )
            .into());
        }
        out::line(format!(
            "OK   drift repaired: the simulator is back to clientId {}, scopes {}",
            repaired["clientId"], repaired["scopes"]
        ));
        Ok(())
    }

    /// Step 3: a reference to a missing Secret stalls with a clear message until it exists.
    async fn missing_secret(&self) -> Res<()> {
        out::section(
            "3/4  A mistake: a SkillAccountLinking whose clientSecretRef names a Secret that does not exist",
        );
        self.apply(
            &format!("-f {}", objects::MISSING_SECRET.path),
            std::slice::from_ref(&objects::MISSING_SECRET),
        )
        .await?;
        let name = objects::SAL_MISSING_SECRET;
        let stalled = self
            .view
            .wait_for(
                "missing-secret-demo to be Stalled with SecretNotFound",
                REACTION,
                |s| {
                    s.row(name)
                        .is_some_and(|r| r.stalled && r.reason == "SecretNotFound")
                        && s.has_event(name, "SecretNotFound")
                },
            )
            .await?;
        let message = stalled
            .row(name)
            .map(|r| r.message.clone())
            .unwrap_or_default();
        let sent = self
            .sim
            .requests()
            .iter()
            .filter(|r| r.skill_id.as_deref() == Some(sandbox::DEV_ONLY_SKILL_ID))
            .count();
        if sent > 0 {
            return Err(format!(
                "the operator sent {sent} request(s) to Amazon for a SkillAccountLinking whose Secret is missing"
            )
            .into());
        }
        out::line(format!(
            "OK   Stalled, reason SecretNotFound, nothing sent to Amazon; the message says what to do: {message}"
        ));
        out::line("fixing it: creating the Secret");
        self.apply(
            &format!("-f {}", objects::MISSING_SECRET_FIX.path),
            std::slice::from_ref(&objects::MISSING_SECRET_FIX),
        )
        .await?;
        self.view
            .wait_for("missing-secret-demo to become Ready", REACTION, |s| {
                s.ready(name) && s.has_event(name, "Synced")
            })
            .await?;
        out::line(
            "OK   the operator noticed the new Secret at once and missing-secret-demo is Ready",
        );
        Ok(())
    }
}

impl Demo<'_> {
    /// Step 4: a ClusterAlexaCredentials serves an object without a Secret of its own, once
    /// its namespace carries the label the credentials allow.
    async fn shared_credentials(&self) -> Res<()> {
        out::section(
            "4/4  Shared credentials: a SkillEnablement using a ClusterAlexaCredentials instead of a Secret",
        );
        let manifest = &objects::SHARED_CREDENTIALS;
        self.apply(
            &format!("-f {}", manifest.path),
            std::slice::from_ref(manifest),
        )
        .await?;
        let name = objects::SEN_SHARED;
        let refused = self
            .view
            .wait_for("shared-credentials-demo to be refused", REACTION, |s| {
                s.row(name)
                    .is_some_and(|r| r.stalled && r.reason == "NamespaceNotAllowed")
            })
            .await?;
        let message = refused
            .row(name)
            .map(|r| r.message.clone())
            .unwrap_or_default();
        out::line(format!(
            "OK   namespace {} is not allowed yet: {message}",
            objects::NAMESPACE
        ));
        out::line(format!(
            "$ kubectl label namespace {} alexa.operator.dev/skills=true",
            objects::NAMESPACE
        ));
        objects::label_namespace(&self.client, "alexa.operator.dev/skills", "true").await?;
        // Namespaces are not watched: ask for a reconcile instead of waiting for the slow retry.
        out::line(format!(
            "$ kubectl annotate {name} alexa.operator.dev/reconcile-requested-at=now --overwrite"
        ));
        objects::request_reconcile(&self.client, "shared-credentials-demo").await?;
        self.view
            .wait_for("shared-credentials-demo to become Ready", REACTION, |s| {
                s.ready(name)
            })
            .await?;
        let in_use = objects::credentials_in_use(&self.client, "sandbox-owner").await?;
        out::line(format!(
            "OK   shared-credentials-demo is Ready without a Secret of its own; \
             clusteralexacredentials/sandbox-owner is used by {in_use} object(s) \
             (kubectl get calc)"
        ));
        Ok(())
    }
}

/// Whether `a[key]` and `b[key]` hold the same strings in any order (Amazon does not keep order).
fn same_set(a: &Value, b: &Value, key: &str) -> bool {
    let sorted = |v: &Value| {
        let mut items: Vec<String> = v[key]
            .as_array()
            .map(|xs| xs.iter().map(Value::to_string).collect())
            .unwrap_or_default();
        items.sort();
        items
    };
    sorted(a) == sorted(b)
}
