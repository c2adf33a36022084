//! End-to-end: a kube-runtime `Controller` (finalizer helper, server-side-applied status, event
//! Recorder) converges against the test server and recovers after history compaction; kubectl
//! works against the listening server (apply/patch/delete, `get` with the CRDs' printer columns
//! and `-w`, `get events` and `describe` showing events.k8s.io Events; `$KUBECTL` picks another
//! kubectl, e.g. Debian's 1.20); the CRD lint passes on crds/ and names bad paths.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use kube_test_server::{TestServer, lint_crd, lint_crd_dir};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds");
const FINALIZER: &str = "gadgets.e2e.test.dev/cleanup";
const MANAGER: &str = "gadget-controller";

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "e2e.test.dev",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus",
    shortname = "gd"
)]
/// A toy custom resource the test controller reconciles.
pub struct GadgetSpec {
    /// The input the controller doubles into status.
    pub size: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
/// What the test controller writes.
pub struct GadgetStatus {
    /// The generation the status describes.
    pub observed_generation: Option<i64>,
    /// Twice `spec.size`.
    pub doubled: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    reconciles: AtomicUsize,
}

async fn apply_gadget(g: Arc<Gadget>, ctx: &Ctx) -> Result<Action, ReconcileError> {
    let ns = g.namespace().unwrap();
    let name = g.name_any();
    let size = g.spec.size;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("gadget-{name}")}, "data": {"doubled": (size * 2).to_string()}});
    cms.patch(
        &format!("gadget-{name}"),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await?;
    let api: Api<Gadget> = Api::namespaced(ctx.client.clone(), &ns);
    let status = json!({"apiVersion": "e2e.test.dev/v1", "kind": "Gadget", "status": {"observedGeneration": g.metadata.generation, "doubled": size * 2}});
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&status),
    )
    .await?;
    if g.status.as_ref().and_then(|s| s.observed_generation) != g.metadata.generation {
        let ev = KEvent {
            type_: EventType::Normal,
            reason: "Reconciled".into(),
            note: Some(format!("doubled={}", size * 2)),
            action: "Reconcile".into(),
            secondary: None,
        };
        ctx.recorder.publish(&ev, &g.object_ref(&())).await?;
    }
    Ok(Action::await_change())
}

async fn cleanup_gadget(g: Arc<Gadget>, ctx: &Ctx) -> Result<Action, ReconcileError> {
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &g.namespace().unwrap());
    match cms
        .delete(
            &format!("gadget-{}", g.name_any()),
            &DeleteParams::default(),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(st)) if st.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let ev = KEvent {
        type_: EventType::Normal,
        reason: "Deleted".into(),
        note: None,
        action: "Cleanup".into(),
        secondary: None,
    };
    ctx.recorder.publish(&ev, &g.object_ref(&())).await?;
    Ok(Action::await_change())
}

async fn reconcile(
    g: Arc<Gadget>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::runtime::finalizer::Error<ReconcileError>> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let api: Api<Gadget> = Api::namespaced(ctx.client.clone(), &g.namespace().unwrap());
    finalizer(&api, FINALIZER, g, |event| async {
        match event {
            Event::Apply(g) => apply_gadget(g, &ctx).await,
            Event::Cleanup(g) => cleanup_gadget(g, &ctx).await,
        }
    })
    .await
}

fn error_policy(
    _g: Arc<Gadget>,
    _e: &kube::runtime::finalizer::Error<ReconcileError>,
    _ctx: Arc<Ctx>,
) -> Action {
    Action::requeue(Duration::from_millis(200))
}

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > timeout {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn gadget(s: &TestServer, name: &str) -> Option<Value> {
    s.get_object("e2e.test.dev/v1", "gadgets", Some("default"), name)
}

fn converged(s: &TestServer, name: &str, doubled: i64) -> bool {
    gadget(s, name).is_some_and(|g| {
        g["status"]["doubled"] == doubled
            && g["status"]["observedGeneration"] == g["metadata"]["generation"]
            && g["metadata"]["finalizers"] == json!([FINALIZER])
    }) && s
        .get_object(
            "v1",
            "configmaps",
            Some("default"),
            &format!("gadget-{name}"),
        )
        .is_some_and(|c| c["data"]["doubled"].as_str() == Some(doubled.to_string().as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_converges_and_recovers_after_compaction() {
    let s = TestServer::new().with_crd(Gadget::crd()).unwrap();
    let client = s.client();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: None,
            },
        ),
        reconciles: AtomicUsize::new(0),
    });
    let api: Api<Gadget> = Api::default_namespaced(client.clone());
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    // Create → finalizer added (JSON patch with test-null), status applied, ConfigMap, event.
    api.create(
        &PostParams::default(),
        &Gadget::new("g1", GadgetSpec { size: 2 }),
    )
    .await
    .unwrap();
    eventually("g1 converged", Duration::from_secs(20), || {
        converged(&s, "g1", 4)
    })
    .await;
    let g1 = gadget(&s, "g1").unwrap();
    let mf = g1["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        mf.iter().any(|e| e["manager"] == MANAGER
            && e["operation"] == "Apply"
            && e["subresource"] == "status"),
        "{mf:?}"
    );
    let events = || {
        s.dump()
            .into_iter()
            .filter(|o| o["apiVersion"] == "events.k8s.io/v1" && o["regarding"]["name"] == "g1")
            .collect::<Vec<_>>()
    };
    eventually("a Reconciled event", Duration::from_secs(10), || {
        events().iter().any(|e| e["reason"] == "Reconciled")
    })
    .await;

    // Converged means quiet: no-op status applies cause no watch events, so no reconcile loop.
    // Let in-flight events settle (the machine may be loaded), then expect silence.
    let mut quiet = ctx.reconciles.load(Ordering::SeqCst);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = ctx.reconciles.load(Ordering::SeqCst);
        if now == quiet {
            break;
        }
        quiet = now;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        ctx.reconciles.load(Ordering::SeqCst) <= quiet + 1,
        "controller keeps reconciling a converged object"
    );

    // Spec change → generation 2 → converges again.
    api.patch(
        "g1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 5}})),
    )
    .await
    .unwrap();
    eventually("g1 re-converged", Duration::from_secs(20), || {
        converged(&s, "g1", 10)
    })
    .await;
    assert_eq!(gadget(&s, "g1").unwrap()["metadata"]["generation"], 2);

    // Forced compaction + closed watches: the re-watch gets an in-stream 410 and relists.
    s.clear_requests();
    s.compact_history();
    s.close_watches();
    eventually("a relist after 410", Duration::from_secs(20), || {
        s.requests()
            .iter()
            .any(|r| r.verb == "list" && r.path.ends_with("/gadgets"))
    })
    .await;
    api.create(
        &PostParams::default(),
        &Gadget::new("g2", GadgetSpec { size: 7 }),
    )
    .await
    .unwrap();
    eventually(
        "g2 converged after recovery",
        Duration::from_secs(20),
        || converged(&s, "g2", 14),
    )
    .await;
    let reqs = s.requests();
    let first_watch = reqs
        .iter()
        .position(|r| r.verb == "watch" && r.path.ends_with("/gadgets"))
        .unwrap();
    let relist = reqs
        .iter()
        .position(|r| r.verb == "list" && r.path.ends_with("/gadgets"))
        .unwrap();
    assert!(first_watch < relist, "watch (410) then list: {reqs:#?}");

    // Delete → cleanup runs → finalizer removed → object gone, ConfigMap gone.
    api.delete("g1", &DeleteParams::default()).await.unwrap();
    eventually("g1 deleted", Duration::from_secs(20), || {
        gadget(&s, "g1").is_none()
    })
    .await;
    assert!(
        s.get_object("v1", "configmaps", Some("default"), "gadget-g1")
            .is_none()
    );
    eventually("a Deleted event", Duration::from_secs(10), || {
        events().iter().any(|e| e["reason"] == "Deleted")
    })
    .await;
    handle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_survives_injected_faults() {
    use kube_test_server::Fault;
    let s = TestServer::new().with_crd(Gadget::crd()).unwrap();
    s.inject_fault(Fault {
        method: Some(http::Method::PATCH),
        path_contains: Some("/status".into()),
        nth: 1,
        status: 500,
    });
    s.inject_fault(Fault {
        method: Some(http::Method::PATCH),
        path_contains: Some("/gadgets/".into()),
        nth: 1,
        status: 409,
    });
    let client = s.client();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: None,
            },
        ),
        reconciles: AtomicUsize::new(0),
    });
    let api: Api<Gadget> = Api::default_namespaced(client.clone());
    let handle = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    api.create(
        &PostParams::default(),
        &Gadget::new("g", GadgetSpec { size: 1 }),
    )
    .await
    .unwrap();
    eventually("converged despite faults", Duration::from_secs(20), || {
        converged(&s, "g", 2)
    })
    .await;
    assert!(s.requests().iter().any(|r| r.status == 500));
    assert!(s.requests().iter().any(|r| r.status == 409));
    handle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher_uses_send_initial_events() {
    let s = TestServer::new().with_crd(Gadget::crd()).unwrap();
    let api: Api<Gadget> = Api::default_namespaced(s.client());
    api.create(
        &PostParams::default(),
        &Gadget::new("a", GadgetSpec { size: 1 }),
    )
    .await
    .unwrap();
    let cfg = watcher::Config::default().streaming_lists();
    let mut stream = watcher(api.clone(), cfg).boxed();
    let mut got_init_done = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(watcher::Event::InitDone))) => {
                got_init_done = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(got_init_done);
    assert!(s.requests().iter().any(|r| {
        r.query
            .as_deref()
            .is_some_and(|q| q.contains("sendInitialEvents=true"))
    }));
}

#[tokio::test]
async fn listen_serves_http_on_a_tcp_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::new().with_namespaces(&["default"]);
    let l = s.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert!(l.url.starts_with("http://127.0.0.1:"));
    let mut conn = tokio::net::TcpStream::connect(l.addr).await.unwrap();
    conn.write_all(
        b"GET /api/v1/namespaces/default HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"kind\":\"Namespace\""));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    l.write_kubeconfig(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("server: {}", l.url)));
    l.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_from_written_kubeconfig_over_tcp() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let s = TestServer::new()
        .with_crd(Gadget::crd())
        .unwrap()
        .with_namespaces(&["default", "kube-system", "kube-public"]);
    let l = s.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    l.write_kubeconfig(&path).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    assert!(nss.list(&Default::default()).await.unwrap().items.len() >= 3);
    // Watches stream over the socket too.
    let api: Api<Gadget> = Api::default_namespaced(client);
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    api.create(
        &PostParams::default(),
        &Gadget::new("tcp", GadgetSpec { size: 1 }),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "no watch event for the created object"
        );
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(Ok(watcher::Event::Apply(g) | watcher::Event::InitApply(g))))
                if g.name_any() == "tcp" =>
            {
                break;
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(
        s.requests()
            .iter()
            .any(|r| r.verb == "create" && r.status == 201)
    );
    l.shutdown().await;
}

/// The kubectl to drive: `$KUBECTL` (e.g. Debian's 1.20 next to a newer one) or `kubectl`.
fn kubectl_bin() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// Whether kubectl runs; if not, say the test is skipped.
fn kubectl_installed(test: &str) -> bool {
    let ok = std::process::Command::new(kubectl_bin())
        .arg("version")
        .arg("--client")
        .output()
        .is_ok();
    if !ok {
        eprintln!(
            "SKIPPED {test}: kubectl is not installed (see .ci/install: apt-get install -y kubernetes-client)"
        );
    }
    ok
}

async fn kubectl(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    args: &[&str],
) -> (bool, String) {
    let out = tokio::process::Command::new(kubectl_bin())
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--cache-dir={}", cache.display()))
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_apply_patch_delete() {
    if !kubectl_installed("kubectl_get_apply_patch_delete") {
        return;
    }
    let s = TestServer::new()
        .with_crds_from_dir(CRDS)
        .unwrap()
        .with_namespaces(&["default", "kube-system", "kube-public"]);
    let l = s.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let cache = dir.path().join("cache");
    l.write_kubeconfig(&kc).unwrap();
    let manifest = dir.path().join("sal.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: alexa.operator.dev/v1alpha1\nkind: SkillAccountLinking\nmetadata:\n  name: demo\nspec:\n  skillId: amzn1.ask.skill.1\n  stage: development\n  credentialsSecretRef:\n    name: creds\n  accountLinking:\n    type: IMPLICIT\n    authorizationUrl: https://a.example/auth\n    clientId: cid\n",
    )
    .unwrap();
    let m = manifest.display().to_string();

    let (ok, out) = kubectl(&kc, &cache, &["apply", "--validate=false", "-f", &m]).await;
    assert!(ok, "apply: {out}");
    assert!(out.contains("created"), "{out}");
    let obj = s
        .get_object(
            "alexa.operator.dev/v1alpha1",
            "skillaccountlinkings",
            Some("default"),
            "demo",
        )
        .unwrap();
    assert!(
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    let (ok, out) = kubectl(&kc, &cache, &["get", "sal", "demo", "-o", "json"]).await;
    assert!(ok, "get: {out}");
    let got: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(got["spec"]["deletionPolicy"], "Delete");
    let (ok, out) = kubectl(&kc, &cache, &["get", "alexa"]).await;
    assert!(ok && out.contains("demo"), "get by category: {out}");
    let (ok, out) = kubectl(&kc, &cache, &["get", "namespaces"]).await;
    assert!(ok && out.contains("kube-system"), "get ns: {out}");

    // Re-apply with a change (client-side apply computes a merge patch).
    std::fs::write(
        &manifest,
        std::fs::read_to_string(&manifest)
            .unwrap()
            .replace("clientId: cid", "clientId: cid2"),
    )
    .unwrap();
    let (ok, out) = kubectl(&kc, &cache, &["apply", "--validate=false", "-f", &m]).await;
    assert!(ok && out.contains("configured"), "re-apply: {out}");
    let (ok, out) = kubectl(
        &kc,
        &cache,
        &[
            "patch",
            "sal",
            "demo",
            "--type=merge",
            "-p",
            r#"{"spec":{"managementPolicy":"Observe"}}"#,
        ],
    )
    .await;
    assert!(ok, "patch: {out}");
    let obj = s
        .get_object(
            "alexa.operator.dev/v1alpha1",
            "skillaccountlinkings",
            Some("default"),
            "demo",
        )
        .unwrap();
    assert_eq!(obj["spec"]["accountLinking"]["clientId"], "cid2");
    assert_eq!(obj["spec"]["managementPolicy"], "Observe");
    // Server-side apply through kubectl.
    let (ok, out) = kubectl(
        &kc,
        &cache,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "--force-conflicts",
            "-f",
            &m,
        ],
    )
    .await;
    assert!(ok, "server-side apply: {out}");
    // Validation errors reach kubectl.
    let (ok, out) = kubectl(
        &kc,
        &cache,
        &[
            "patch",
            "sal",
            "demo",
            "--type=merge",
            "-p",
            r#"{"spec":{"skillId":"other"}}"#,
        ],
    )
    .await;
    assert!(
        !ok && out.contains("skillId is immutable"),
        "immutable: {out}"
    );
    let (ok, out) = kubectl(&kc, &cache, &["delete", "sal", "demo", "--timeout=20s"]).await;
    assert!(ok && out.contains("deleted"), "delete: {out}");
    assert!(
        s.get_object(
            "alexa.operator.dev/v1alpha1",
            "skillaccountlinkings",
            Some("default"),
            "demo"
        )
        .is_none()
    );
    l.shutdown().await;
}

/// Words of each line of kubectl's table output.
fn table_lines(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

async fn set_ready(api: &Api<DynamicObject>, status: &str, reason: &str) {
    let st = json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": reason,
        "message": "m", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}});
    api.patch_status("demo", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
}

/// Reads kubectl's stdout line by line until one has all of `words` (or fails after 20s).
async fn wait_for_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seen: &mut Vec<String>,
    words: &[&str],
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                seen.push(line.clone());
                let w: Vec<&str> = line.split_whitespace().collect();
                if words.iter().all(|x| w.contains(x)) {
                    return;
                }
            }
            other => {
                panic!("no line with {words:?} from kubectl get -w ({other:?}); got {seen:#?}")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_prints_printer_columns_and_describe_shows_events() {
    use tokio::io::AsyncBufReadExt;
    if !kubectl_installed("kubectl_get_prints_printer_columns_and_describe_shows_events") {
        return;
    }
    let s = TestServer::new()
        .with_crds_from_dir(CRDS)
        .unwrap()
        .with_namespaces(&["default", "kube-system", "kube-public"]);
    let l = s.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let cache = dir.path().join("cache");
    l.write_kubeconfig(&kc).unwrap();
    let ar = ApiResource {
        group: "alexa.operator.dev".into(),
        version: "v1alpha1".into(),
        api_version: "alexa.operator.dev/v1alpha1".into(),
        kind: "SkillAccountLinking".into(),
        plural: "skillaccountlinkings".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(s.client(), "default", &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "alexa.operator.dev/v1alpha1", "kind": "SkillAccountLinking",
        "metadata": {"name": "demo"},
        "spec": {"skillId": "amzn1.ask.skill.1", "stage": "development", "credentialsSecretRef": {"name": "creds"},
            "accountLinking": {"type": "IMPLICIT", "authorizationUrl": "https://a.example/auth", "clientId": "cid"}}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    set_ready(&api, "False", "SecretNotFound").await;
    // The operator records events.k8s.io/v1 Events, as kube's Recorder does.
    let recorder = Recorder::new(
        s.client(),
        Reporter {
            controller: "alexa-skill-operator".into(),
            instance: None,
        },
    );
    let note = "Secret default/creds was not found";
    let ev = KEvent {
        type_: EventType::Warning,
        reason: "SecretNotFound".into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder
        .publish(&ev, &created.object_ref(&ar))
        .await
        .unwrap();

    // The CRD's printer columns.
    let (ok, out) = kubectl(&kc, &cache, &["get", "sal"]).await;
    assert!(ok, "get sal: {out}");
    let rows = table_lines(&out);
    assert_eq!(
        rows[0],
        ["NAME", "SKILL", "STAGE", "READY", "REASON", "AGE"],
        "{out}"
    );
    assert_eq!(
        rows[1][..5],
        [
            "demo",
            "amzn1.ask.skill.1",
            "development",
            "False",
            "SecretNotFound"
        ],
        "{out}"
    );
    assert!(rows[1][5].ends_with('s'), "age: {out}");
    let (ok, out) = kubectl(&kc, &cache, &["get", "sal", "--all-namespaces"]).await;
    assert!(ok, "get sal -A: {out}");
    let rows = table_lines(&out);
    assert_eq!(rows[0][..2], ["NAMESPACE", "NAME"], "{out}");
    assert_eq!(rows[1][..2], ["default", "demo"], "{out}");
    let (ok, out) = kubectl(&kc, &cache, &["get", "secrets,sal"]).await;
    assert!(
        ok && out.contains("skillaccountlinking.alexa.operator.dev/demo"),
        "{out}"
    );

    // The Event, through core v1.
    let (ok, out) = kubectl(&kc, &cache, &["get", "events"]).await;
    assert!(ok, "get events: {out}");
    let rows = table_lines(&out);
    assert_eq!(
        rows[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("Warning")
            && l.contains("SecretNotFound")
            && l.contains("skillaccountlinking/demo")
            && l.contains(note)),
        "{out}"
    );
    let (ok, out) = kubectl(&kc, &cache, &["describe", "sal", "demo"]).await;
    assert!(ok, "describe: {out}");
    let events = out
        .split_once("Events:")
        .map(|(_, e)| e.to_string())
        .unwrap_or_default();
    assert!(
        events.lines().any(|l| l.contains("Warning")
            && l.contains("SecretNotFound")
            && l.contains("alexa-skill-operator")
            && l.contains(note)),
        "no event in describe:\n{out}"
    );
    assert!(!events.contains("<none>"), "{out}");

    // kubectl get -w streams rows.
    let mut child = tokio::process::Command::new(kubectl_bin())
        .arg(format!("--kubeconfig={}", kc.display()))
        .arg(format!("--cache-dir={}", cache.display()))
        .args(["get", "sal", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    wait_for_line(&mut lines, &mut seen, &["NAME", "SKILL", "READY", "REASON"]).await;
    wait_for_line(&mut lines, &mut seen, &["demo", "False", "SecretNotFound"]).await;
    set_ready(&api, "True", "Linked").await;
    wait_for_line(&mut lines, &mut seen, &["demo", "True", "Linked"]).await;
    assert_eq!(
        seen.iter().filter(|l| l.contains("NAME")).count(),
        1,
        "headers once: {seen:#?}"
    );
    child.kill().await.unwrap();
    l.shutdown().await;
}

#[test]
fn crd_lint_passes_on_project_crds() {
    let issues = lint_crd_dir(CRDS).unwrap();
    assert!(
        issues.is_empty(),
        "CRD lint failures:\n{}",
        issues
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // And on kube-derive output.
    assert!(lint_crd(&serde_json::to_value(Gadget::crd()).unwrap()).is_empty());
}

#[test]
fn crd_lint_names_offending_paths() {
    let bad = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "wrong.name"},
        "spec": {"group": "bad.dev", "scope": "Namespaced", "names": {"kind": "Bad", "plural": "bads"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "properties": {
                        "untyped": {"description": "no type"},
                        "ref": {"$ref": "#/definitions/x", "type": "object"},
                        "uniq": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                        "pat": {"type": "object", "patternProperties": {"^a": {"type": "string"}}},
                        "both": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
                        "lm": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                        "ok": {"x-kubernetes-int-or-string": true},
                        "free": {"x-kubernetes-preserve-unknown-fields": true}
                    },
                    "x-kubernetes-validations": [
                        {"rule": "self.a == request.user"},
                        {"rule": "self.a ==", "message": "broken"},
                        {"rule": "self == oldSelf"}
                    ]}
                }
            }}}]}
    });
    let issues = lint_crd(&bad);
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    let base = "spec.versions[0].schema.openAPIV3Schema.properties.spec";
    for want in [
        "metadata.name".to_string(),
        format!("{base}.properties.untyped"),
        format!("{base}.properties.ref.$ref"),
        format!("{base}.properties.uniq.uniqueItems"),
        format!("{base}.properties.pat.patternProperties"),
        format!("{base}.properties.both.additionalProperties"),
        format!("{base}.properties.lm.items.properties.name"),
        format!("{base}.x-kubernetes-validations[0].rule"),
        format!("{base}.x-kubernetes-validations[1].rule"),
    ] {
        assert!(
            paths.contains(&want.as_str()),
            "{want} missing from {issues:#?}"
        );
    }
    for fine in [
        format!("{base}.properties.ok"),
        format!("{base}.properties.free"),
        format!("{base}.x-kubernetes-validations[2].rule"),
    ] {
        assert!(
            !paths.contains(&fine.as_str()),
            "{fine} wrongly reported: {issues:#?}"
        );
    }
    assert!(
        issues.iter().any(|i| i.message.contains("request")),
        "{issues:#?}"
    );
}
