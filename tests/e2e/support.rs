//! Test harness: the operator's real `run` code path against the in-process Kubernetes API test
//! server and the Alexa API simulator. Each test gets its own servers and namespace.
//!
//! With `ALEXA_E2E_KUBECONFIG` set (tests/control-plane/run.sh does), the same tests run against
//! that real cluster instead: each test in a fresh namespace of its own (deleted afterwards, also
//! when the test panics), the CRDs of `crds/` installed once, and the operator restricted to the
//! test's namespace with `--watch-namespace`, so tests running at once never see each other's
//! objects. The operator's client comes from `ALEXA_E2E_OPERATOR_KUBECONFIG` when set (a token
//! of its ServiceAccount bound to deploy/'s RBAC), so the real apiserver authorizes every
//! request it makes. Tests that need the test server's hooks (fault injection into the
//! Kubernetes API, its request log) return early there, saying why
//! ([`skip_on_real_server`]). `ALEXA_E2E_KSTATUS` names the control-plane binary whose
//! `kstatus` subcommand judges objects as Flux does ([`assert_kstatus`]).

use std::fmt::Debug;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use alexa_simulator::{Operation, SimConfig, Simulator, sandbox};
use alexa_skill_operator::cli::{Cli, Command};
use alexa_skill_operator::operator::{self, Running};
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_test_server::TestServer;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The test namespace on the in-process test server (on a real cluster each test has its own).
const TEST_SERVER_NS: &str = "skills";

/// Where deploy/ puts the operator and its leader-election Role: on a real cluster the tests'
/// Leases live here (under per-test names), so the shipped Role is what authorizes them.
const OPERATOR_NS: &str = "alexa-skill-operator-system";

/// How long a wait may take before the test fails. Passing tests wait well under a second per
/// step; the margin is for CI on 2 loaded cores, where up to 30 of these tests run at once.
pub const PATIENCE: Duration = Duration::from_secs(60);
pub const SKILL: &str = sandbox::SKILL_ID;

pub struct Harness {
    /// The in-process test server; `None` against a real cluster.
    kube: Option<TestServer>,
    /// An administrator's client: what the tests themselves use.
    pub client: kube::Client,
    /// The identity the operator runs with.
    operator_client: kube::Client,
    /// This test's namespace.
    pub ns: String,
    pub sim: Simulator,
    pub operator: Option<Running>,
    /// Deletes the test's namespace on a real cluster when the harness goes, panics included.
    _namespace: Option<NamespaceGuard>,
}

/// The real cluster named by `ALEXA_E2E_KUBECONFIG`, if any.
fn real_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("ALEXA_E2E_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Whether the tests run against a real cluster (`ALEXA_E2E_KUBECONFIG`).
pub fn on_real_server() -> bool {
    real_kubeconfig().is_some()
}

/// For tests that need a hook only the in-process test server has: on a real cluster, prints
/// why the test is skipped and returns true (the test then returns).
pub fn skip_on_real_server(needs: &str) -> bool {
    if on_real_server() {
        println!("skipped on the real apiserver: needs {needs}");
        return true;
    }
    false
}

async fn client_from(path: &PathBuf) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    kube::Client::try_from(config).expect("client")
}

/// A fresh namespace name, recognisable from the test's name (the test thread is named after
/// it) and unique across tests and runs.
fn unique_namespace() -> String {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    let test = test.rsplit("::").next().unwrap_or(test);
    let mut base: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    base = base.trim_matches('-').to_string();
    format!("e2e-{base}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Applies the CRDs of `crds/` once per test process and waits until they are Established.
async fn install_crds(client: &kube::Client) {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let api: Api<CustomResourceDefinition> = Api::all(client.clone());
            let mut names = Vec::new();
            for entry in std::fs::read_dir(crds_dir()).expect("crds/") {
                let path = entry.expect("crds/ entry").path();
                if path.extension().is_none_or(|e| e != "yaml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read CRD");
                let crd: Value = serde_saphyr::from_str(&text).expect("CRD YAML");
                let name = crd["metadata"]["name"]
                    .as_str()
                    .expect("CRD name")
                    .to_string();
                api.patch(
                    &name,
                    &PatchParams::apply("e2e").force(),
                    &Patch::Apply(&crd),
                )
                .await
                .unwrap_or_else(|e| panic!("the apiserver refuses {}: {e}", path.display()));
                names.push(name);
            }
            let deadline = Instant::now() + PATIENCE;
            for name in names {
                loop {
                    let crd = api.get(&name).await.expect("get CRD");
                    let established = crd.status.and_then(|s| s.conditions).is_some_and(|c| {
                        c.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    });
                    if established {
                        break;
                    }
                    assert!(Instant::now() < deadline, "CRD {name} never Established");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
        .await;
}

/// Deletes a test namespace of the real cluster when dropped. The finalizers of the operator's
/// objects are removed first: the operator is gone by then, and they would keep the namespace
/// Terminating for the rest of the run.
struct NamespaceGuard {
    kubeconfig: PathBuf,
    names: Vec<String>,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let names = std::mem::take(&mut self.names);
        // The test's runtime may be unwinding: clean up from a runtime (and client) of our own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let client = client_from(&kubeconfig).await;
                for ns in names {
                    for plural in [
                        "skillaccountlinkings",
                        "skillenablements",
                        "alexacredentials",
                    ] {
                        clear_finalizers(&client, &ns, plural).await;
                    }
                    let api: Api<Namespace> = Api::all(client.clone());
                    if let Err(e) = api.delete(&ns, &DeleteParams::background()).await {
                        eprintln!("could not delete test namespace {ns}: {e}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn clear_finalizers(client: &kube::Client, ns: &str, plural: &str) {
    let resource = kube::discovery::ApiResource {
        group: "alexa.operator.dev".into(),
        version: "v1alpha1".into(),
        api_version: "alexa.operator.dev/v1alpha1".into(),
        kind: String::new(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let Ok(list) = api.list(&ListParams::default()).await else {
        return;
    };
    for obj in list {
        if let Some(name) = obj.metadata.name {
            let patch = json!({"metadata": {"finalizers": null}});
            let _ = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
    }
}

/// kstatus' verdict on an object (`Current`, `InProgress`, `Failed`, `Terminating`, ...), from
/// the control-plane binary named by `ALEXA_E2E_KSTATUS`; `None` when it is not set.
pub fn kstatus<K: serde::Serialize>(obj: &K) -> Option<(String, String)> {
    let binary = std::env::var_os("ALEXA_E2E_KSTATUS").filter(|v| !v.is_empty())?;
    let mut child = Process::new(binary)
        .arg("kstatus")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the kstatus helper");
    let json = serde_json::to_vec(obj).expect("object JSON");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&json)
        .expect("write to kstatus");
    let out = child.wait_with_output().expect("kstatus output");
    assert!(
        out.status.success(),
        "kstatus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Value = serde_json::from_slice(&out.stdout).expect("kstatus JSON");
    let text = |k: &str| verdicts[0][k].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("message")))
}

/// Asserts what Flux's kstatus concludes about `obj` (e.g. as returned by `wait_for`); a no-op
/// unless `ALEXA_E2E_KSTATUS` is set (run.sh sets it for the real-server run).
pub fn assert_kstatus<K: serde::Serialize>(obj: &K, expected: &str) {
    if let Some((status, message)) = kstatus(obj) {
        let conditions = serde_json::to_value(obj).unwrap_or_default()["status"].clone();
        assert_eq!(
            status, expected,
            "kstatus says {status} ({message}); status: {conditions}"
        );
    }
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

    /// The usual prelude: servers and operator (with extra `run` flags), the skill owner's
    /// credentials as Secret `lwa`, and, when given, a client secret as Secret `oauth` (key
    /// `client-secret`, what [`auth_code_linking`] references).
    pub async fn with_owner(extra: &[&str], client_secret: Option<&str>) -> Harness {
        let h = Self::start_with(extra).await;
        h.owner_credentials().await;
        if let Some(secret) = client_secret {
            h.secret("oauth", &[("client-secret", secret)]).await;
        }
        // Let the operator's Secret watch report these Secrets before the test creates objects
        // that use them: a report that reaches the controller after an object's first
        // reconcile started earns that object one more reconcile (one more Amazon GET), which
        // tests counting requests would see (seen once on a real apiserver).
        settle().await;
        h
    }

    /// Forces one reconcile of SkillAccountLinking `name` now (what a resync does) by setting
    /// the reconcile-requested-at annotation to `value` (a new value each time).
    pub async fn request_reconcile(&self, name: &str, value: &str) {
        self.merge_patch::<alexa_skill_operator::crd::SkillAccountLinking>(
            name,
            json!({"metadata": {"annotations": {"alexa.operator.dev/reconcile-requested-at": value}}}),
        )
        .await;
    }

    /// Only the servers; call `start_operator` later.
    pub async fn servers(config: SimConfig) -> Harness {
        alexa_skill_operator::alexa::install_crypto_provider();
        let sim = Simulator::start(config).await.expect("start simulator");
        let Some(kubeconfig) = real_kubeconfig() else {
            let kube = TestServer::new()
                .with_crds_from_dir(crds_dir())
                .expect("load CRDs");
            let client = kube.client();
            kube_ns(&client, TEST_SERVER_NS).await;
            return Harness {
                kube: Some(kube),
                operator_client: client.clone(),
                client,
                ns: TEST_SERVER_NS.to_string(),
                sim,
                operator: None,
                _namespace: None,
            };
        };
        let client = client_from(&kubeconfig).await;
        let operator_client = match std::env::var_os("ALEXA_E2E_OPERATOR_KUBECONFIG") {
            Some(path) if !path.is_empty() => client_from(&PathBuf::from(path)).await,
            _ => client.clone(),
        };
        install_crds(&client).await;
        let ns = unique_namespace();
        let guard = NamespaceGuard {
            kubeconfig,
            names: vec![ns.clone()],
        };
        kube_ns(&client, &ns).await;
        Harness {
            kube: None,
            client,
            operator_client,
            ns,
            sim,
            operator: None,
            _namespace: Some(guard),
        }
    }

    /// The in-process test server, for tests that use its hooks; they call
    /// [`skip_on_real_server`] first.
    pub fn test_server(&self) -> &TestServer {
        self.kube
            .as_ref()
            .expect("a test-server hook on a real cluster: call skip_on_real_server first")
    }

    /// The client the operator runs with (the ServiceAccount's on a real cluster).
    pub fn operator_client(&self) -> kube::Client {
        self.operator_client.clone()
    }

    /// Another namespace for this test (created; on a real cluster also deleted afterwards).
    pub async fn other_namespace(&mut self, suffix: &str) -> String {
        let ns = format!("{}-{suffix}", self.ns);
        kube_ns(&self.client, &ns).await;
        if let Some(guard) = &mut self._namespace {
            guard.names.push(ns.clone());
        }
        ns
    }

    /// `--lease-namespace`/`--lease-name` for a leader-election test: on a real cluster the
    /// operator namespace of deploy/ (whose Role grants Leases there) and a per-test name.
    pub fn lease_args(&self) -> [String; 4] {
        let (ns, name) = self.lease();
        ["--lease-namespace".into(), ns, "--lease-name".into(), name]
    }

    /// The Lease's (namespace, name) of [`Harness::lease_args`].
    pub fn lease(&self) -> (String, String) {
        if self.kube.is_some() {
            (self.ns.clone(), "alexa-skill-operator".into())
        } else {
            (OPERATOR_NS.into(), self.ns.clone())
        }
    }

    /// The Lease's current holder.
    pub async fn lease_holder(&self) -> Option<String> {
        let (ns, name) = self.lease();
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &ns);
        let lease = api.get_opt(&name).await.expect("get Lease")?;
        lease.spec?.holder_identity
    }

    /// Every accepted write of any Lease (the test server's record); None on a real cluster.
    pub fn lease_history(&self) -> Option<Vec<kube_test_server::LeaseWrite>> {
        self.kube.as_ref().map(TestServer::lease_history)
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
        // On a real cluster other tests run beside this one: watch only this test's namespace.
        if self.kube.is_none() && !args.iter().any(|a| a == "--watch-namespace") {
            args.extend(["--watch-namespace".to_string(), self.ns.clone()]);
        }
        args
    }

    pub async fn start_operator(&mut self, extra: &[&str]) {
        let cli = Cli::parse_from(self.run_args(extra));
        let Command::Run(args) = cli.command else {
            unreachable!()
        };
        let running = operator::start(*args, self.operator_client.clone())
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
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
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
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete Secret");
    }

    /// The keyed digest the operator records in status for `value`, made with the key it
    /// stored in its namespace (`--lease-namespace`'s default) on start-up.
    pub async fn digest(&self, value: &str) -> String {
        use alexa_skill_operator::controller::digest;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), OPERATOR_NS);
        let key = api
            .get(digest::KEY_SECRET_NAME)
            .await
            .expect("digest key Secret");
        digest::from_secret(&key, OPERATOR_NS)
            .expect("usable digest key")
            .digest(value)
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
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
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
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
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
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
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
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
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
            let events = self.events_for(name).await;
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

    /// Events recorded for an object (reasons and notes), oldest first on a real cluster.
    pub async fn events_for(&self, name: &str) -> Vec<(String, String)> {
        let text = |o: &Value, k: &str| o[k].as_str().unwrap_or("").to_string();
        if let Some(kube) = &self.kube {
            return kube
                .dump()
                .into_iter()
                .filter(|o| o["kind"] == "Event" && o["regarding"]["name"] == name)
                .map(|o| (text(&o, "reason"), text(&o, "note")))
                .collect();
        }
        // Lists come in name order: sort by time for the order they were recorded in.
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let params = ListParams::default().fields(&format!("regarding.name={name}"));
        let mut events = api.list(&params).await.expect("list events").items;
        events.sort_by_key(|e| {
            let time = e.event_time.as_ref().map(|t| t.0);
            (time, e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .map(|o| (text(&o, "reason"), text(&o, "note")))
            .collect()
    }

    /// Every object of the test a user could read without Secret access (custom resources and
    /// events), as JSON.
    pub async fn visible_objects(&self) -> Vec<Value> {
        if let Some(kube) = &self.kube {
            return kube
                .dump()
                .into_iter()
                .filter(|o| o["kind"] != "Secret")
                .collect();
        }
        let mut out = Vec::new();
        for plural in ["skillaccountlinkings", "skillenablements"] {
            out.extend(self.raw_list(plural).await);
        }
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        for e in events.list(&ListParams::default()).await.expect("events") {
            out.push(serde_json::to_value(e).expect("event JSON"));
        }
        out
    }

    async fn raw_list(&self, plural: &str) -> Vec<Value> {
        let api = self.raw_api(plural);
        let list = api.list(&ListParams::default()).await.expect("list");
        list.items
            .into_iter()
            .map(|o| serde_json::to_value(o).expect("object JSON"))
            .collect()
    }

    fn raw_api(&self, plural: &str) -> Api<kube::api::DynamicObject> {
        let kind = match plural {
            "skillaccountlinkings" => "SkillAccountLinking",
            _ => "SkillEnablement",
        };
        let resource = kube::discovery::ApiResource {
            group: "alexa.operator.dev".into(),
            version: "v1alpha1".into(),
            api_version: "alexa.operator.dev/v1alpha1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::namespaced_with(self.client.clone(), &self.ns, &resource)
    }

    /// A custom resource exactly as stored (JSON), e.g. to see that a field is absent rather
    /// than null.
    pub async fn raw(&self, plural: &str, name: &str) -> Option<Value> {
        let obj = self.raw_api(plural).get_opt(name).await.expect("get")?;
        Some(serde_json::to_value(obj).expect("object JSON"))
    }

    pub async fn shutdown(mut self) {
        self.stop_operator().await;
        self.sim.shutdown().await;
    }
}

async fn kube_ns(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.patch(name, &PatchParams::apply("e2e"), &Patch::Apply(&ns))
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
