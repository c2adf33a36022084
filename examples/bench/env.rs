//! One benchmark environment: the Kubernetes API test server (listening on loopback, with a
//! kubeconfig for the operator process), the Alexa API simulator, the benchmark's skills, Secrets
//! and SkillAccountLinking objects, and a watch that tracks which objects are Ready.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alexa_simulator::{
    LwaClientState, Operation, RefreshTokenState, RequestRecord, SimConfig, SimState, Simulator,
    VendorState, sandbox,
};
use alexa_skill_operator::crd::SkillAccountLinking;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube_test_server::{ListeningServer, TestServer};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::BoxResult;

/// Namespace of every benchmark object.
pub const NS: &str = "bench";
/// Credentials Secret shared by all objects (one Amazon developer account).
pub const CREDS: &str = "lwa";

/// Skill id of benchmark object `i`.
pub fn skill_id(i: usize) -> String {
    format!("amzn1.ask.skill.b3nch000-0000-4000-8000-{i:012}")
}

/// LWA client id of tenant `t` (one Amazon developer account per tenant, section 7).
pub fn tenant_client_id(t: usize) -> String {
    format!("amzn1.application-oa2-client.bench-{t}")
}

/// Credentials Secret of tenant `t`.
pub fn tenant_secret(t: usize) -> String {
    format!("lwa-{t}")
}

/// Simulator state with `tenants` developer accounts, each with its own LWA client and refresh
/// token (so the simulator's per-client faults and the operator's per-credential throttle tell
/// them apart), on top of the sandbox.
fn tenant_state(tenants: usize) -> SimState {
    let mut state = SimState::sandbox();
    for t in 0..tenants {
        state.lwa_clients.push(LwaClientState {
            client_id: tenant_client_id(t),
            client_secret: format!("bench-client-secret-{t}"),
        });
        state.vendors.push(VendorState {
            id: format!("BENCHVENDOR{t}"),
            refresh_tokens: vec![RefreshTokenState {
                token: format!("Atzr|bench-refresh-{t}"),
                client_id: tenant_client_id(t),
            }],
            ..VendorState::default()
        });
    }
    state
}

/// Object name of benchmark object `i`.
pub fn name(i: usize) -> String {
    format!("sal-{i:05}")
}

/// Every fifth object uses IMPLICIT (no client secret), the others AUTH_CODE with their own
/// client-secret Secret: the realistic mix.
pub fn is_implicit(i: usize) -> bool {
    i % 5 == 4
}

/// The client secret of object `i` (what its Secret holds and Amazon must end up with).
pub fn client_secret(i: usize) -> String {
    format!("bench-secret-{i}")
}

/// The `accountLinking` part of object `i`'s spec.
pub fn account_linking_spec(i: usize) -> Value {
    if is_implicit(i) {
        json!({
            "type": "IMPLICIT",
            "authorizationUrl": format!("https://auth.example.com/authorize?tenant={i}"),
            "clientId": format!("alexa-skill-{i}"),
            "scopes": ["profile"],
        })
    } else {
        json!({
            "type": "AUTH_CODE",
            "authorizationUrl": format!("https://auth.example.com/authorize?tenant={i}"),
            "accessTokenUrl": "https://auth.example.com/token",
            "accessTokenScheme": "HTTP_BASIC",
            "clientId": format!("alexa-skill-{i}"),
            "clientSecretRef": {"name": format!("oauth-{i}"), "key": "client-secret"},
            "scopes": ["profile", "email"],
            "domains": ["cdn.example.com"],
        })
    }
}

/// The `accountLinkingRequest` body the ASK CLI sends for object `i` (the same configuration,
/// client secret inline).
pub fn ask_cli_request(i: usize) -> Value {
    let mut spec = account_linking_spec(i);
    if let Some(obj) = spec.as_object_mut() {
        if obj.remove("clientSecretRef").is_some() {
            obj.insert("clientSecret".into(), json!(client_secret(i)));
        }
    }
    json!({ "accountLinkingRequest": spec })
}

/// The SkillAccountLinking object `i`.
pub fn object(i: usize) -> Value {
    json!({
        "apiVersion": "alexa.operator.dev/v1alpha1",
        "kind": "SkillAccountLinking",
        "metadata": {"name": name(i), "namespace": NS},
        "spec": {
            "skillId": skill_id(i),
            "stage": "development",
            "credentialsSecretRef": {"name": CREDS},
            "accountLinking": account_linking_spec(i),
        }
    })
}

/// Whether the configuration stored by the simulator for object `i` is the spec (with the
/// client secret read from its Secret). Returns the first differing field.
pub fn config_mismatch(i: usize, stored: Option<&Value>) -> Option<String> {
    let Some(stored) = stored else {
        return Some("no account linking on Amazon".into());
    };
    let stored = stored.get("accountLinkingRequest").unwrap_or(stored);
    let mut expected = account_linking_spec(i);
    if let Some(obj) = expected.as_object_mut() {
        if obj.remove("clientSecretRef").is_some() {
            obj.insert("clientSecret".into(), json!(client_secret(i)));
        }
    }
    let expected = expected.as_object()?;
    for (key, want) in expected {
        if stored.get(key) != Some(want) {
            return Some(format!(
                "{key}: want {want}, Amazon has {}",
                stored.get(key).cloned().unwrap_or(Value::Null)
            ));
        }
    }
    None
}

/// Readiness of every object, fed by a watch.
#[derive(Default)]
pub struct Readiness {
    /// name → (ready, Ready reason).
    objects: HashMap<String, (bool, String)>,
    ready: usize,
    /// When each object was first seen Ready.
    pub first_ready: HashMap<String, Instant>,
    /// When the ready count last went up.
    pub last_ready_at: Option<Instant>,
}

impl Readiness {
    fn update(&mut self, obj: &SkillAccountLinking) {
        let Some(name) = obj.metadata.name.clone() else {
            return;
        };
        let cond = obj
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        let generation_ok =
            obj.status.as_ref().and_then(|s| s.observed_generation) == obj.metadata.generation;
        let ready = generation_ok && cond.is_some_and(|c| c.status == "True");
        let reason = cond.map(|c| c.reason.clone()).unwrap_or_default();
        let was = self
            .objects
            .insert(name.clone(), (ready, reason))
            .is_some_and(|(r, _)| r);
        match (was, ready) {
            (false, true) => {
                self.ready += 1;
                let now = Instant::now();
                self.first_ready.entry(name).or_insert(now);
                self.last_ready_at = Some(now);
            }
            (true, false) => self.ready -= 1,
            _ => {}
        }
    }

    fn remove(&mut self, obj: &SkillAccountLinking) {
        if let Some(name) = &obj.metadata.name {
            if let Some((true, _)) = self.objects.remove(name) {
                self.ready -= 1;
            }
        }
    }

    /// Objects seen Ready now.
    pub fn ready(&self) -> usize {
        self.ready
    }

    /// Not-Ready objects grouped by Ready reason (empty reason: no status yet).
    pub fn not_ready_reasons(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for (ready, reason) in self.objects.values() {
            if !ready {
                let key = if reason.is_empty() {
                    "(no status yet)".to_string()
                } else {
                    reason.clone()
                };
                *out.entry(key).or_insert(0) += 1;
            }
        }
        out
    }
}

/// Servers, paths and the readiness watch of one benchmark run.
pub struct Env {
    pub kube: TestServer,
    pub client: kube::Client,
    pub sim: Simulator,
    pub kubeconfig: PathBuf,
    pub readiness: Arc<Mutex<Readiness>>,
    _listening: ListeningServer,
    watch_task: tokio::task::JoinHandle<()>,
    /// Skills registered in the simulator.
    pub skills: usize,
    /// Tenants (section 7): object `i` belongs to tenant `i % tenants`, with its own
    /// credentials; 0 means everything uses [`CREDS`].
    pub tenants: usize,
}

impl Env {
    /// Starts both servers and creates `n` skills in the simulator, the namespace, the
    /// credentials Secret and the client-secret Secrets of `n` objects.
    pub async fn start(n: usize, log_capacity: usize, dir: &Path) -> BoxResult<Env> {
        Env::start_tenants(n, 0, log_capacity, dir).await
    }

    /// [`Env::start`] with `tenants` developer accounts (0: the one of [`CREDS`]): skill and
    /// object `i` belong to tenant `i % tenants`, whose credentials Secret is [`tenant_secret`].
    pub async fn start_tenants(
        n: usize,
        tenants: usize,
        log_capacity: usize,
        dir: &Path,
    ) -> BoxResult<Env> {
        let crds = format!("{}/crds", env!("CARGO_MANIFEST_DIR"));
        let kube = TestServer::with_history_limit(1_000_000).with_crds_from_dir(crds)?;
        let listening = kube.listen("127.0.0.1:0".parse()?).await?;
        std::fs::create_dir_all(dir)?;
        let kubeconfig = dir.join("kubeconfig");
        listening.write_kubeconfig(&kubeconfig)?;
        let client = kube.client();
        let mut config = SimConfig {
            log_capacity,
            ..SimConfig::default()
        };
        if tenants > 0 {
            config.state = tenant_state(tenants);
        }
        let sim = Simulator::start(config).await?;
        for i in 0..n {
            match tenants {
                0 => sim.add_skill(&skill_id(i)),
                _ => sim.add_skill_for_vendor(&skill_id(i), &format!("BENCHVENDOR{}", i % tenants)),
            }
        }
        let ns: Api<Namespace> = Api::all(client.clone());
        ns.patch(
            NS,
            &PatchParams::apply("bench"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            ),
        )
        .await?;
        let readiness = Arc::new(Mutex::new(Readiness::default()));
        let watch_task = tokio::spawn(track(client.clone(), readiness.clone()));
        let env = Env {
            kube,
            client,
            sim,
            kubeconfig,
            readiness,
            _listening: listening,
            watch_task,
            skills: n,
            tenants,
        };
        for t in 0..tenants {
            env.secret(
                &tenant_secret(t),
                &[
                    ("client-id", &tenant_client_id(t)),
                    ("client-secret", &format!("bench-client-secret-{t}")),
                    ("refresh-token", &format!("Atzr|bench-refresh-{t}")),
                ],
            )
            .await?;
        }
        env.secret(
            CREDS,
            &[
                ("client-id", sandbox::CLIENT_ID),
                ("client-secret", sandbox::CLIENT_SECRET),
                ("refresh-token", sandbox::REFRESH_TOKEN),
            ],
        )
        .await?;
        let secrets: Api<Secret> = Api::namespaced(env.client.clone(), NS);
        futures::stream::iter((0..n).filter(|i| !is_implicit(*i)))
            .map(|i| {
                let secrets = secrets.clone();
                async move {
                    let s: Secret = serde_json::from_value(json!({
                        "apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": format!("oauth-{i}"), "namespace": NS},
                        "stringData": {"client-secret": client_secret(i)},
                    }))?;
                    secrets.create(&PostParams::default(), &s).await?;
                    Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(env)
    }

    async fn secret(&self, name: &str, pairs: &[(&str, &str)]) -> BoxResult<()> {
        let data: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), NS);
        let obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
        api.patch(
            name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&obj),
        )
        .await?;
        Ok(())
    }

    /// Creates objects `range` at once (32 requests in flight); returns how long it took.
    pub async fn apply(&self, range: std::ops::Range<usize>) -> BoxResult<Duration> {
        let start = Instant::now();
        let api: Api<SkillAccountLinking> = Api::namespaced(self.client.clone(), NS);
        futures::stream::iter(range)
            .map(|i| {
                let api = api.clone();
                let tenants = self.tenants;
                async move {
                    let mut value = object(i);
                    if tenants > 0 {
                        value["spec"]["credentialsSecretRef"]["name"] =
                            json!(tenant_secret(i % tenants));
                    }
                    let obj: SkillAccountLinking = serde_json::from_value(value)?;
                    api.create(&PostParams::default(), &obj).await?;
                    Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(start.elapsed())
    }

    /// Ready objects now.
    pub fn ready(&self) -> usize {
        self.readiness.lock().ready()
    }

    /// Waits until `n` objects are Ready or `timeout` passes; prints progress every 5 s.
    /// Returns when the last one became Ready, or `None` on timeout.
    pub async fn wait_ready(&self, n: usize, timeout: Duration, label: &str) -> Option<Instant> {
        let start = Instant::now();
        let mut next_print = start + Duration::from_secs(5);
        loop {
            {
                let r = self.readiness.lock();
                if r.ready() >= n {
                    return r.last_ready_at.or(Some(Instant::now()));
                }
            }
            let now = Instant::now();
            if now >= start + timeout {
                return None;
            }
            if now >= next_print {
                let r = self.readiness.lock();
                eprintln!(
                    "    [{label}] {:>5.1}s: {}/{n} Ready; not ready: {:?}",
                    start.elapsed().as_secs_f64(),
                    r.ready(),
                    r.not_ready_reasons()
                );
                next_print = now + Duration::from_secs(5);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Simulator request log restricted to SMAPI operations (what costs API quota).
    pub fn smapi_requests(&self) -> Vec<RequestRecord> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.operation.is_smapi())
            .collect()
    }

    /// Counts of the operations the operator uses.
    pub fn counts(&self) -> Vec<(Operation, usize)> {
        [
            Operation::GetAccountLinking,
            Operation::UpdateAccountLinking,
            Operation::DeleteAccountLinking,
            Operation::Token,
        ]
        .iter()
        .map(|op| (*op, self.sim.count(*op)))
        .collect()
    }

    /// Objects whose configuration on Amazon differs from the spec, with the first difference.
    pub fn config_mismatches(&self) -> Vec<(usize, String)> {
        (0..self.skills)
            .filter_map(|i| {
                let stored = self.sim.account_linking(&skill_id(i), "development");
                config_mismatch(i, stored.as_ref()).map(|why| (i, why))
            })
            .collect()
    }

    /// Stops the watch and the simulator.
    pub async fn shutdown(self) {
        self.watch_task.abort();
        self.sim.shutdown().await;
    }
}

async fn track(client: kube::Client, readiness: Arc<Mutex<Readiness>>) {
    let api: Api<SkillAccountLinking> = Api::namespaced(client, NS);
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(o)) | Ok(Event::InitApply(o)) => readiness.lock().update(&o),
            Ok(Event::Delete(o)) => readiness.lock().remove(&o),
            Ok(_) => {}
            Err(err) => {
                eprintln!("    readiness watch error: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
