//! Sections 1–3: convergence at N objects (with and without a configured rate limit), the steady
//! state over one resync period, and the operator's memory and CPU.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use alexa_simulator::Operation;
use serde_json::{Value, json};

use crate::env::{Env, skill_id};
use crate::proc::OperatorProc;
use crate::util::{max_in_window, round, secs};
use crate::{BoxResult, Ctx};

/// One convergence run.
#[derive(Debug, Clone)]
pub struct ConvergeCfg {
    pub n: usize,
    pub label: String,
    /// Operator `--api-rate-limit` and `--api-burst`; `None` turns the limit off.
    pub rate_limit: Option<(f64, u32)>,
    /// `--resync-period`; `Some` also measures the steady state over one period.
    pub resync: Option<Duration>,
    pub timeout: Duration,
    /// Idle time after convergence (and the steady-state windows) before settled RSS is read.
    pub settle: Duration,
}

/// Kubernetes API requests answered by the test server, by kind of request.
fn kube_breakdown(env: &Env) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in env.kube.requests() {
        let what = if r.path.contains("/events") {
            "events"
        } else if r.path.contains("/secrets") {
            "secrets"
        } else if r.path.ends_with("/status") {
            "status"
        } else if r.path.contains("skillaccountlinkings") {
            "skillaccountlinkings"
        } else if r.path.contains("leases") {
            "leases"
        } else {
            "other"
        };
        *out.entry(format!("{} {what}", r.verb)).or_insert(0) += 1;
    }
    out
}

/// The Prometheus reconcile counter of SkillAccountLinking.
async fn reconciles(op: &OperatorProc) -> f64 {
    op.metric_sum(
        "alexa_operator_reconciles_total",
        &["kind=\"SkillAccountLinking\""],
    )
    .await
    .unwrap_or(f64::NAN)
}

pub async fn converge(cfg: &ConvergeCfg, ctx: &Ctx) -> BoxResult<Value> {
    let n = cfg.n;
    eprintln!("\n==> {}: {n} objects", cfg.label);
    let dir = ctx.work.join(format!("run-{}", cfg.label));
    let env = Env::start(n, (n * 12).max(50_000), &dir).await?;
    let mut flags: Vec<(&str, String)> = vec![];
    let resync = cfg.resync.unwrap_or(Duration::from_secs(3600));
    flags.push(("--resync-period", format!("{}ms", resync.as_millis())));
    if let Some((rate, burst)) = cfg.rate_limit {
        flags.push(("--api-rate-limit", format!("{rate}")));
        flags.push(("--api-burst", format!("{burst}")));
    }
    let flag_refs: Vec<(&str, &str)> = flags.iter().map(|(f, v)| (*f, v.as_str())).collect();
    let mut op = OperatorProc::spawn(&env, &flag_refs, &dir.join("operator.log")).await?;
    let synced = op.wait_synced(&env, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = op.stat()?;
    eprintln!(
        "    operator pid {} synced in {:.2}s ({}); RSS {:.1} MiB before any object",
        op.pid,
        synced.as_secs_f64(),
        if op.readyz_ok {
            "/readyz 200"
        } else {
            "/readyz still 503, sync seen from its watch requests"
        },
        before.rss_mib()
    );
    env.sim.clear_requests();
    env.kube.clear_requests();
    let rec0 = reconciles(&op).await;

    let bench_cpu0 = crate::proc::proc_stat(std::process::id())?.cpu;
    let t0 = Instant::now();
    let apply = env.apply(0..n).await?;
    eprintln!(
        "    applied {n} objects in {:.2}s; waiting for Ready",
        apply.as_secs_f64()
    );
    let done = env.wait_ready(n, cfg.timeout, &cfg.label).await;
    let after = op.stat()?;
    let bench_cpu = crate::proc::proc_stat(std::process::id())?
        .cpu
        .saturating_sub(bench_cpu0);
    let rec1 = reconciles(&op).await;
    let Some(t_ready) = done else {
        let reasons = env.readiness.lock().not_ready_reasons();
        op.stop().await?;
        env.shutdown().await;
        return Err(format!(
            "{}: only some objects Ready after {:?}: not ready {reasons:?}",
            cfg.label, cfg.timeout
        )
        .into());
    };
    let converge = t_ready.duration_since(t0);
    let kube_requests = kube_breakdown(&env);
    let smapi = env.smapi_requests();
    let smapi_until_ready: Vec<Instant> = smapi
        .iter()
        .filter(|r| r.at <= t_ready)
        .map(|r| r.at)
        .collect();
    let counts = env.counts();
    let per_op: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(op, c)| (op.as_str().to_string(), json!(c)))
        .collect();
    let per_object: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(op, c)| {
            (
                op.as_str().to_string(),
                json!(round(*c as f64 / n as f64, 3)),
            )
        })
        .collect();
    let smapi_total: usize = smapi_until_ready.len();
    let status_429 = smapi.iter().filter(|r| r.status == 429).count();
    let first = smapi_until_ready.iter().min().copied();
    let last = smapi_until_ready.iter().max().copied();
    let sending = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a),
        _ => Duration::ZERO,
    };
    let max_1s = max_in_window(&smapi_until_ready, Duration::from_secs(1));
    let cpu = after.cpu.saturating_sub(before.cpu);
    let reconcile_count = rec1 - rec0;
    let mismatches = env.config_mismatches();
    let puts_ok = count_puts_ok(&env);
    eprintln!(
        "    all {n} Ready in {:.2}s ({:.0} objects/s); SMAPI requests {smapi_total} ({:.2}/object); \
         operator CPU {:.2}s ({:.2} ms/reconcile); peak RSS {:.1} MiB; config mismatches {}",
        converge.as_secs_f64(),
        n as f64 / converge.as_secs_f64(),
        smapi_total as f64 / n as f64,
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / reconcile_count,
        after.hwm_mib(),
        mismatches.len()
    );
    let mut result = json!({
        "label": cfg.label,
        "objects": n,
        "operatorFlags": flags.iter().map(|(f, v)| format!("{f} {v}")).collect::<Vec<_>>(),
        "operatorSyncSeconds": secs(synced),
        "readyzAnswered200": op.readyz_ok,
        "applySeconds": secs(apply),
        "convergeSeconds": secs(converge),
        "objectsPerSecond": round(n as f64 / converge.as_secs_f64(), 1),
        "smapiRequests": smapi_total,
        "smapiRequestsPerObject": round(smapi_total as f64 / n as f64, 3),
        "requestsByOperation": per_op,
        "requestsPerObjectByOperation": per_object,
        "responses429": status_429,
        "successfulPutsPerObject": round(puts_ok as f64 / n as f64, 3),
        "maxRequestsInAnySecond": max_1s,
        "smapiSendingSeconds": secs(sending),
        "kubeRequests": kube_requests,
        "operatorCpuSeconds": round(cpu.as_secs_f64(), 3),
        "benchProcessCpuSeconds": round(bench_cpu.as_secs_f64(), 3),
        "reconciles": reconcile_count,
        "cpuMsPerReconcile": round(cpu.as_secs_f64() * 1000.0 / reconcile_count, 3),
        "cpuMsPerObject": round(cpu.as_secs_f64() * 1000.0 / n as f64, 3),
        "rssBeforeObjectsMiB": round(before.rss_mib(), 1),
        "rssAtReadyMiB": round(after.rss_mib(), 1),
        "peakRssMiB": round(after.hwm_mib(), 1),
        "configMismatches": mismatches.len(),
        "configMismatchExamples": mismatches.iter().take(3).map(|(i, w)| format!("{}: {w}", skill_id(*i))).collect::<Vec<_>>(),
    });
    if let Some((rate, burst)) = cfg.rate_limit {
        let achieved = if sending.is_zero() {
            0.0
        } else {
            (smapi_total.saturating_sub(1)) as f64 / sending.as_secs_f64()
        };
        let overall = smapi_total as f64 / converge.as_secs_f64();
        result["rateLimit"] = json!({
            "configuredPerSecond": rate,
            "configuredBurst": burst,
            "achievedPerSecondWhileSending": round(achieved, 2),
            "fractionUsedWhileSending": round(achieved / rate, 3),
            "achievedPerSecondApplyToReady": round(overall, 2),
            "fractionUsedApplyToReady": round(overall / rate, 3),
            "budgetForOneSecond": rate + f64::from(burst),
        });
        eprintln!(
            "    rate limit {rate}/s burst {burst}: {achieved:.1} req/s while sending ({:.1}% of the limit), \
             {overall:.1} req/s apply→Ready; max {max_1s} requests in any 1 s",
            achieved / rate * 100.0
        );
    }

    if let Some(period) = cfg.resync {
        let first_ready = env
            .readiness
            .lock()
            .first_ready
            .values()
            .min()
            .copied()
            .unwrap_or(t_ready);
        result["steadyState"] = steady_state(&env, &op, period, first_ready, t_ready).await?;
    }

    tokio::time::sleep(cfg.settle).await;
    let settled = op.stat()?;
    result["settledRssMiB"] = json!(round(settled.rss_mib(), 1));
    result["peakRssMiB"] = json!(round(settled.hwm_mib(), 1));
    eprintln!(
        "    settled RSS {:.1} MiB, peak {:.1} MiB",
        settled.rss_mib(),
        settled.hwm_mib()
    );
    op.stop().await?;
    env.shutdown().await;
    Ok(result)
}

/// Successful (2xx) account-linking PUTs in the simulator log.
pub fn count_puts_ok(env: &Env) -> usize {
    env.sim
        .requests()
        .iter()
        .filter(|r| {
            r.operation == Operation::UpdateAccountLinking && (200..300).contains(&r.status)
        })
        .count()
}

/// After convergence: each object's first resync falls in [ready + 0.9 P, ready + 1.1 P] and its
/// second one not before ready + 1.8 P. So, when the objects became Ready within 0.6 P, the
/// window W = [first_ready + 0.9 P − 0.5 s, t_ready + 1.1 P + 1 s] holds exactly one resync of
/// every object, [t_ready + 1 s, first_ready + 0.9 P − 0.5 s] (before it) and
/// [end of W, first_ready + 1.8 P − 0.5 s] (after it) must see no call at all.
async fn steady_state(
    env: &Env,
    op: &OperatorProc,
    period: Duration,
    first_ready: Instant,
    t_ready: Instant,
) -> BoxResult<Value> {
    let n = env.skills;
    let p = period.as_secs_f64();
    let half = Duration::from_millis(500);
    let quiet1 = (
        t_ready + Duration::from_secs(1),
        first_ready + period.mul_f64(0.9) - half,
    );
    let wave = (
        quiet1.1,
        t_ready + period.mul_f64(1.1) + Duration::from_secs(1),
    );
    let quiet2 = (wave.1, first_ready + period.mul_f64(1.8) - half);
    let spread = t_ready.duration_since(first_ready);
    eprintln!(
        "    steady state: resync period {p:.0}s (±10% jitter); objects became Ready within {:.2}s; \
         watching until {:.0}s after convergence",
        spread.as_secs_f64(),
        quiet2
            .1
            .max(wave.1)
            .saturating_duration_since(t_ready)
            .as_secs_f64()
    );
    if spread > period.mul_f64(0.6) {
        return Ok(json!({
            "periodSeconds": p,
            "skipped": format!("objects became Ready over {:.1}s, more than 0.6 × the period: the windows would overlap", spread.as_secs_f64()),
        }));
    }
    // CPU and Kubernetes writes over the resync wave.
    sleep_until(wave.0).await;
    let cpu0 = op.stat()?.cpu;
    env.kube.clear_requests();
    sleep_until(wave.1).await;
    let cpu1 = op.stat()?.cpu;
    let kube_wave = kube_breakdown(env);
    if quiet2.1 > quiet2.0 {
        sleep_until(quiet2.1).await;
    }
    let log = env.sim.requests();
    let in_range = |a: Instant, b: Instant| -> Vec<&alexa_simulator::RequestRecord> {
        log.iter().filter(|r| r.at >= a && r.at < b).collect()
    };
    let q1 = in_range(quiet1.0, quiet1.1);
    let w = in_range(wave.0, wave.1);
    let q2 = if quiet2.1 > quiet2.0 {
        in_range(quiet2.0, quiet2.1)
    } else {
        Vec::new()
    };
    let gets = w
        .iter()
        .filter(|r| r.operation == Operation::GetAccountLinking)
        .count();
    let puts = w
        .iter()
        .filter(|r| r.operation == Operation::UpdateAccountLinking)
        .count();
    let others = w.len() - gets - puts;
    let mut per_skill: HashMap<&str, usize> = HashMap::new();
    for r in w
        .iter()
        .filter(|r| r.operation == Operation::GetAccountLinking)
    {
        *per_skill
            .entry(r.skill_id.as_deref().unwrap_or(""))
            .or_insert(0) += 1;
    }
    let skills_once = per_skill.values().filter(|c| **c == 1).count();
    let skills_twice = per_skill.values().filter(|c| **c > 1).count();
    let resync_cpu = cpu1.saturating_sub(cpu0);
    let exact = gets == n && puts == 0 && others == 0 && skills_once == n;
    eprintln!(
        "    resync wave ({:.1}s): {gets} GETs ({} objects once, {skills_twice} more than once), {puts} PUTs, \
         {others} other calls → {}; quiet windows {:.1}s and {:.1}s: {} and {} calls; \
         CPU {:.3}s ({:.3} ms per resync)",
        wave.1.duration_since(wave.0).as_secs_f64(),
        skills_once,
        if exact {
            "exactly N GETs, 0 PUTs"
        } else {
            "NOT as expected"
        },
        quiet1.1.saturating_duration_since(quiet1.0).as_secs_f64(),
        quiet2.1.saturating_duration_since(quiet2.0).as_secs_f64(),
        q1.len(),
        q2.len(),
        resync_cpu.as_secs_f64(),
        resync_cpu.as_secs_f64() * 1000.0 / n as f64,
    );
    Ok(json!({
        "periodSeconds": p,
        "readySpreadSeconds": secs(spread),
        "waveWindowSeconds": secs(wave.1.duration_since(wave.0)),
        "gets": gets,
        "puts": puts,
        "otherCalls": others,
        "objectsResyncedOnce": skills_once,
        "objectsResyncedMoreThanOnce": skills_twice,
        "exactlyNGetsZeroPuts": exact,
        "quietWindowBeforeSeconds": secs(quiet1.1.saturating_duration_since(quiet1.0)),
        "callsInQuietWindowBefore": q1.len(),
        "quietWindowAfterSeconds": secs(quiet2.1.saturating_duration_since(quiet2.0)),
        "callsInQuietWindowAfter": q2.len(),
        "cpuMsPerResync": round(resync_cpu.as_secs_f64() * 1000.0 / n as f64, 3),
        "kubeRequestsDuringWave": kube_wave,
    }))
}

async fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        tokio::time::sleep(t - now).await;
    }
}

/// Section 3 at 0 objects: the idle operator.
pub async fn idle_memory(ctx: &Ctx, wait: Duration) -> BoxResult<Value> {
    eprintln!("\n==> memory with 0 objects");
    let dir = ctx.work.join("run-idle");
    let env = Env::start(0, 1000, &dir).await?;
    let mut op = OperatorProc::spawn(&env, &[], &dir.join("operator.log")).await?;
    let synced = op.wait_synced(&env, Duration::from_secs(60)).await?;
    tokio::time::sleep(wait).await;
    let stat = op.stat()?;
    eprintln!(
        "    synced in {:.2}s; after {:.0}s idle: RSS {:.1} MiB, peak {:.1} MiB, CPU {:.3}s",
        synced.as_secs_f64(),
        wait.as_secs_f64(),
        stat.rss_mib(),
        stat.hwm_mib(),
        stat.cpu.as_secs_f64()
    );
    op.stop().await?;
    env.shutdown().await;
    Ok(json!({
        "objects": 0,
        "syncSeconds": secs(synced),
        "settledRssMiB": round(stat.rss_mib(), 1),
        "peakRssMiB": round(stat.hwm_mib(), 1),
        "cpuSecondsSinceStart": round(stat.cpu.as_secs_f64(), 3),
    }))
}
