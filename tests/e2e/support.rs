//! Test harness: the operator's real `run` code path against the in-process Kubernetes API test
//! server and the Alexa API simulator. Each test gets its own servers and namespace.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use alexa_simulator::{Operation, SimConfig, Simulator, sandbox};
use alexa_skill_operator::cli::{Cli, Command};
use alexa_skill_operator::operator::{self, Running};
use clap::Parser;
use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube_test_server::TestServer;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub const NS: &str = "skills";

/// How long a wait may take before the test fails. Passing tests wait well under a second per
/// step; the margin is for CI on 2 loaded cores, where up to 30 of these tests run at once.
pub const PATIENCE: Duration = Duration::from_secs(60);
pub const SKILL: &str = sandbox::SKILL_ID;

pub struct Harness {
    pub kube: TestServer,
    pub client: kube::Client,
    pub sim: Simulator,
    pub operator: Option<Running>,
}

/// A SkillAccountLinking for skill SKILL, stage development, credentials Secret `lwa`.
pub fn sal(name: &str, account_linking: Value) -> Value {
    json!({
        "apiVersion": "alexa.operator.dev/v1alpha1",
        "kind": "SkillAccountLinking",
        "metadata": {"name": name},
        "spec": {
            "skillId": SKILL,
            "stage": "development",
            "credentialsSecretRef": {"name": "lwa"},
            "accountLinking": account_linking,
        }
    })
}

/// An AUTH_CODE account linking whose client secret is in Secret `oauth`.
pub fn auth_code_linking() -> Value {
    json!({
        "type": "AUTH_CODE",
        "authorizationUrl": "https://auth.example.com/authorize",
        "accessTokenUrl": "https://auth.example.com/token",
        "accessTokenScheme": "HTTP_BASIC",
        "clientId": "alexa-skill",
        "clientSecretRef": {"name": "oauth", "key": "client-secret"},
        "scopes": ["profile", "email"],
        "domains": ["cdn.example.com"]
    })
}

/// An owner-mode SkillEnablement with credentials Secret `lwa`.
pub fn owner(name: &str, stage: &str) -> Value {
    json!({
        "apiVersion": "alexa.operator.dev/v1alpha1",
        "kind": "SkillEnablement",
        "metadata": {"name": name},
        "spec": {"skillId": SKILL, "stage": stage, "credentialsSecretRef": {"name": "lwa"}}
    })
}

pub fn crds_dir() -> String {
    format!("{}/crds", env!("CARGO_MANIFEST_DIR"))
}

impl Harness {
    /// Servers plus a running operator with fast test timings.
    pub async fn start() -> Harness {
        Self::start_with(&[]).await
    }

    /// Like `start`, with extra `run` flags (later flags win).
    pub async fn start_with(extra: &[&str]) -> Harness {
        let mut h = Self::servers(SimConfig::default()).await;
        h.start_operator(extra).await;
        h
    }

    /// Only the servers; call `start_operator` later.
    pub async fn servers(config: SimConfig) -> Harness {
        alexa_skill_operator::alexa::install_crypto_provider();
        let kube = TestServer::new()
            .with_crds_from_dir(crds_dir())
            .expect("load CRDs");
        let client = kube.client();
        let sim = Simulator::start(config).await.expect("start simulator");
        kube_ns(&client).await;
        Harness {
            kube,
            client,
            sim,
            operator: None,
        }
    }

    pub fn run_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "alexa-skill-operator",
            "run",
            "--smapi-url",
            &self.sim.url(),
            "--lwa-url",
            &self.sim.lwa_token_url(),
            "--customer-discovery-url",
            &self.sim.url(),
            "--metrics-addr",
            "127.0.0.1:0",
            "--resync-period",
            "1h",
            "--backoff-base",
            "200ms",
            "--backoff-max",
            "2s",
            "--api-rate-limit",
            "0",
            "--shutdown-grace",
            "2s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (host, url) in self.sim.endpoint_overrides() {
            args.push("--endpoint-override".into());
            args.push(format!("{host}={url}"));
        }
        // Later flags replace the defaults above (clap rejects repeated single-value flags).
        for pair in extra.chunks(2) {
            if let Some(pos) = args.iter().position(|a| a == pair[0]) {
                if pair[0] != "--endpoint-override" && pair.len() == 2 {
                    args[pos + 1] = pair[1].to_string();
                    continue;
                }
            }
            args.extend(pair.iter().map(|s| s.to_string()));
        }
        args
    }

    pub async fn start_operator(&mut self, extra: &[&str]) {
        let cli = Cli::parse_from(self.run_args(extra));
        let Command::Run(args) = cli.command else {
            unreachable!()
        };
        let running = operator::start(*args, self.client.clone())
            .await
            .expect("operator starts");
        self.operator = Some(running);
    }

    pub async fn stop_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            op.shutdown().await;
        }
    }

    /// Creates or replaces a Secret in the test namespace.
    pub async fn secret(&self, name: &str, pairs: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), NS);
        let obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
        api.patch(
            name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&obj),
        )
        .await
        .expect("apply Secret");
    }

    pub async fn delete_secret(&self, name: &str) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), NS);
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete Secret");
    }

    /// The sandbox skill owner's LWA credentials as Secret `lwa`.
    pub async fn owner_credentials(&self) {
        self.secret(
            "lwa",
            &[
                ("client-id", sandbox::CLIENT_ID),
                ("client-secret", sandbox::CLIENT_SECRET),
                ("refresh-token", sandbox::REFRESH_TOKEN),
            ],
        )
        .await;
    }

    /// Server-side applies an object (JSON with apiVersion/kind/metadata.name) in the namespace.
    pub async fn apply<K>(&self, obj: Value) -> Result<K, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), NS);
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&obj),
        )
        .await
    }

    pub async fn merge_patch<K>(&self, name: &str, patch: Value)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), NS);
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("merge patch");
    }

    pub async fn delete<K>(&self, name: &str)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), NS);
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    pub async fn get<K>(&self, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), NS);
        api.get_opt(name).await.expect("get")
    }

    /// Polls until `check` holds (see [`PATIENCE`]); on timeout fails with the object and the
    /// simulator's request log.
    pub async fn wait_for<K, F>(&self, name: &str, what: &str, check: F) -> K
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
        F: Fn(&K) -> bool,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let current = self.get::<K>(name).await;
            if let Some(obj) = &current {
                if check(obj) {
                    return obj.clone();
                }
            }
            if Instant::now() > deadline {
                let log: Vec<String> = self
                    .sim
                    .requests()
                    .iter()
                    .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
                    .collect();
                panic!(
                    "timed out waiting for {name} to be {what}; object: {current:#?}\nAlexa requests: {log:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_gone<K>(&self, name: &str)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let deadline = Instant::now() + PATIENCE;
        while self.get::<K>(name).await.is_some() {
            assert!(
                Instant::now() < deadline,
                "{name} was not deleted: {:#?}",
                self.get::<K>(name).await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls (at most [`PATIENCE`]) until `done` holds, e.g. the simulator's state after a repair.
    pub async fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn count(&self, op: Operation) -> usize {
        self.sim.count(op)
    }

    /// Waits (at most [`PATIENCE`]) for an event of `reason` about object `name` whose note passes
    /// `check`; events are published just after the status write, so poll.
    pub async fn wait_event(
        &self,
        name: &str,
        reason: &str,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let events = self.events_for(name);
            if let Some((_, note)) = events.iter().find(|(r, n)| r == reason && check(n)) {
                return note.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {reason} event for {name}: {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Events recorded for an object (reasons and notes), in order.
    pub fn events_for(&self, name: &str) -> Vec<(String, String)> {
        self.kube
            .dump()
            .into_iter()
            .filter(|o| o["kind"] == "Event" && o["regarding"]["name"] == name)
            .map(|o| {
                (
                    o["reason"].as_str().unwrap_or("").to_string(),
                    o["note"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    pub async fn shutdown(mut self) {
        self.stop_operator().await;
        self.sim.shutdown().await;
    }
}

async fn kube_ns(client: &kube::Client) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    api.patch(NS, &PatchParams::apply("e2e"), &Patch::Apply(&ns))
        .await
        .expect("namespace");
}

/// The Ready condition's (status, reason, message) of any object, read from its JSON.
pub fn ready_of<K: serde::Serialize>(obj: &K) -> Option<(String, String, String)> {
    let value = serde_json::to_value(obj).ok()?;
    let conditions = value["status"]["conditions"].as_array()?.clone();
    conditions
        .into_iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (text("status"), text("reason"), text("message"))
        })
}

/// Ready=True for the object's current generation.
pub fn is_ready<K: serde::Serialize + Resource>(obj: &K) -> bool {
    let value = serde_json::to_value(obj).unwrap_or_default();
    ready_of(obj).is_some_and(|(status, _, _)| status == "True")
        && value["status"]["observedGeneration"] == value["metadata"]["generation"]
}

/// Whether the Stalled condition is True.
pub fn stalled<K: serde::Serialize>(obj: &K) -> bool {
    let value = serde_json::to_value(obj).unwrap_or_default();
    value["status"]["conditions"]
        .as_array()
        .is_some_and(|list| {
            list.iter()
                .any(|c| c["type"] == "Stalled" && c["status"] == "True")
        })
}

/// The Ready condition's reason ("" when none).
pub fn reason<K: serde::Serialize>(obj: &K) -> String {
    ready_of(obj).map(|(_, r, _)| r).unwrap_or_default()
}

/// The Ready condition's message ("" when none).
pub fn message<K: serde::Serialize>(obj: &K) -> String {
    ready_of(obj).map(|(_, _, m)| m).unwrap_or_default()
}

/// Waits a little so that any unwanted extra reconcile would have happened.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}
