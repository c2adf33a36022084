//! Section 9, scale (issue 17): 1,000 / 10,000 / 100,000 SkillAccountLinking objects. Per size:
//! apply → all Ready in an unlimited run (objects/s), operator CPU µs and heap growth per object,
//! peak RSS, the test servers' share of the CPU; then a restart of the operator: how long until
//! its watches synced, and what the reconcile of every object after it cost (Amazon GETs per
//! object, Kubernetes requests by verb and resource).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use alexa_simulator::Operation;
use serde_json::{Value, json};

use crate::env::Env;
use crate::proc::{OperatorProc, proc_stat};
use crate::util::{round, secs};
use crate::{BoxResult, Ctx};

/// The sizes to run and how long each may take to converge.
pub struct ScaleCfg {
    pub sizes: Vec<usize>,
    pub timeout: Duration,
}

/// The test server's requests by "verb resource[/subresource]", Leases left out.
pub fn kube_by_resource(env: &Env) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in env.kube.requests() {
        let parts: Vec<&str> = r.path.split('/').filter(|p| !p.is_empty()).collect();
        let resource = match parts.iter().position(|p| *p == "namespaces") {
            Some(i) if parts.len() > i + 2 => match parts.get(i + 4) {
                Some(sub) => format!("{}/{sub}", parts[i + 2]),
                None => parts[i + 2].to_string(),
            },
            _ => parts.last().copied().unwrap_or("").to_string(),
        };
        if resource != "leases" {
            *out.entry(format!("{} {resource}", r.verb)).or_insert(0) += 1;
        }
    }
    out
}

fn writes(requests: &BTreeMap<String, usize>) -> usize {
    requests
        .iter()
        .filter(|(k, _)| {
            !(k.starts_with("get ") || k.starts_with("list ") || k.starts_with("watch "))
        })
        .map(|(_, n)| n)
        .sum()
}

pub async fn scale(cfg: &ScaleCfg, ctx: &Ctx) -> BoxResult<Value> {
    let mut runs = Vec::new();
    for &n in &cfg.sizes {
        runs.push(one(n, cfg.timeout, ctx).await?);
    }
    Ok(json!({"runs": runs}))
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn one(n: usize, timeout: Duration, ctx: &Ctx) -> BoxResult<Value> {
    eprintln!("\n==> scale: {n} objects (load {})", load());
    let dir = ctx.work.join(format!("run-scale-{n}"));
    let setup = Instant::now();
    let env = Env::start(n, (n * 6).max(50_000), &dir).await?;
    let setup = setup.elapsed();
    let log = dir.join("operator.log");
    let mut op = OperatorProc::spawn(&env, &[], &log).await?;
    op.wait_synced(&env, Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = op.stat()?;
    env.kube.clear_requests();
    let bench0 = proc_stat(std::process::id())?.cpu;
    let t0 = Instant::now();
    let load_start = load();
    env.apply(0..n).await?;
    let Some(t_ready) = env.wait_ready(n, timeout, &format!("scale-{n}")).await else {
        op.stop().await?;
        env.shutdown().await;
        return Err(format!("scale {n}: not all Ready within {timeout:?}").into());
    };
    let converge = t_ready.duration_since(t0);
    let after = op.stat()?;
    let bench_cpu = proc_stat(std::process::id())?.cpu.saturating_sub(bench0);
    let cpu = after.cpu.saturating_sub(before.cpu);
    let converge_requests = kube_by_resource(&env);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = op.stat()?;
    let per_object = |mib: f64| round(mib * 1024.0 * 1024.0 / n as f64, 0);
    eprintln!(
        "    all Ready in {:.1}s ({:.0}/s); operator CPU {:.1}s ({:.0} µs/object), test servers {:.1}s; \
         RSS before {:.1} MiB, peak {:.1}, settled {:.1} ({:.0} B/object)",
        converge.as_secs_f64(),
        n as f64 / converge.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64,
        bench_cpu.as_secs_f64(),
        before.rss_mib(),
        after.hwm_mib().max(settled.hwm_mib()),
        settled.rss_mib(),
        per_object(settled.rss_mib() - before.rss_mib())
    );
    op.stop().await?;
    let restart = restart(&env, n, &log).await;
    env.shutdown().await;
    let restart = restart?;
    let cpu_share = bench_cpu.as_secs_f64() / (bench_cpu + cpu).as_secs_f64().max(1e-9);
    Ok(json!({
        "objects": n,
        "loadAverageAtApply": load_start,
        "setupSeconds": secs(setup),
        "convergeSeconds": secs(converge),
        "objectsPerSecond": round(n as f64 / converge.as_secs_f64(), 1),
        "operatorCpuSeconds": round(cpu.as_secs_f64(), 2),
        "cpuMicrosPerObject": round(cpu.as_secs_f64() * 1e6 / n as f64, 0),
        "testServersCpuSeconds": round(bench_cpu.as_secs_f64(), 2),
        "testServersCpuShare": round(cpu_share, 3),
        "rssBeforeObjectsMiB": round(before.rss_mib(), 1),
        "peakRssMiB": round(after.hwm_mib().max(settled.hwm_mib()), 1),
        "settledRssMiB": round(settled.rss_mib(), 1),
        "bytesPerObjectSettled": per_object(settled.rss_mib() - before.rss_mib()),
        "bytesPerObjectPeak": per_object(after.hwm_mib().max(settled.hwm_mib()) - before.rss_mib()),
        "kubeRequestsApplyToReady": converge_requests,
        "restart": restart,
    }))
}

/// A new operator process over the `n` Ready objects: time to synced watches, then until every
/// object was reconciled once (one account-linking GET each), and what that cost.
async fn restart(env: &Env, n: usize, log: &std::path::Path) -> BoxResult<Value> {
    env.sim.clear_requests();
    let gets0 = env.sim.count(Operation::GetAccountLinking);
    let puts0 = env.sim.count(Operation::UpdateAccountLinking);
    let mut op = OperatorProc::spawn(env, &[], log).await?;
    let synced = op.wait_synced(env, Duration::from_secs(120)).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while env.sim.count(Operation::GetAccountLinking) < gets0 + n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_read = op.started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let gets = env.sim.count(Operation::GetAccountLinking) - gets0;
    let puts = env.sim.count(Operation::UpdateAccountLinking) - puts0;
    let stat = op.stat()?;
    let requests = kube_by_resource(env);
    let secret_gets = requests.get("get secrets").copied().unwrap_or(0);
    eprintln!(
        "    restart: watches synced after {:.2}s, every object read after {:.1}s; {gets} GETs, \
         {puts} PUTs; Kubernetes writes {}, Secret GETs {secret_gets}; peak RSS {:.1} MiB",
        synced.as_secs_f64(),
        all_read.as_secs_f64(),
        writes(&requests),
        stat.hwm_mib()
    );
    op.stop().await?;
    Ok(json!({
        "syncedSeconds": secs(synced),
        "everyObjectReadSeconds": secs(all_read),
        "amazonGetsPerObject": round(gets as f64 / n as f64, 3),
        "amazonPuts": puts,
        "kubeWrites": writes(&requests),
        "secretGets": secret_gets,
        "kubeRequests": requests,
        "peakRssMiB": round(stat.hwm_mib(), 1),
    }))
}

/// The report section, when it ran.
pub fn markdown(o: &mut String, sc: &Value) {
    let Some(runs) = sc["runs"].as_array() else {
        if !sc.is_null() {
            let _ = writeln!(o, "## 9. Scale\n\nNot measured: {}\n", sc["error"]);
        }
        return;
    };
    let _ = writeln!(
        o,
        "## 9. Scale: 1,000 / 10,000 / 100,000 objects\n\n\
         Unlimited run (no `--api-rate-limit`), one process per size; after all are Ready the \
         operator is restarted over the same objects. CPU is the operator's own; \"test servers\" \
         is the benchmark process (Kubernetes API test server, Alexa simulator, driver) on the \
         same 2 cores. Bytes per object: (settled RSS − RSS before any object) / N. Load average \
         is the machine's at the start of the apply (other builds shared it).\n"
    );
    let _ = writeln!(
        o,
        "| objects | load | Ready in | objects/s | operator CPU µs/object | test servers' CPU share | peak RSS MiB | bytes/object | restart: synced s | restart: all read s | restart GETs/object | restart Kubernetes writes | restart Secret GETs |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in runs {
        let rs = &r["restart"];
        let _ = writeln!(
            o,
            "| {} | {} | {} s | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["objects"],
            r["loadAverageAtApply"].as_str().unwrap_or(""),
            r["convergeSeconds"],
            r["objectsPerSecond"],
            r["cpuMicrosPerObject"],
            r["testServersCpuShare"],
            r["peakRssMiB"],
            r["bytesPerObjectSettled"],
            rs["syncedSeconds"],
            rs["everyObjectReadSeconds"],
            rs["amazonGetsPerObject"],
            rs["kubeWrites"],
            rs["secretGets"],
        );
    }
    let _ = writeln!(o);
}
