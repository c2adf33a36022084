//! Section 7: noisy neighbour. Several tenants (developer accounts, each with its own
//! credentials Secret and LWA client) share one operator; the simulator answers one tenant's
//! API requests 429 with a long `Retry-After` for a window. The other tenants must converge as
//! fast as when nobody is throttled, and the throttled tenant must send nothing inside its
//! Retry-After. Two runs: without and with the noisy tenant.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alexa_simulator::RequestRecord;
use serde_json::{Value, json};

use crate::env::{Env, name, tenant_client_id};
use crate::proc::OperatorProc;
use crate::util::{round, secs};
use crate::{BoxResult, Ctx};

#[derive(Debug, Clone)]
pub struct NoisyCfg {
    pub tenants: usize,
    pub per_tenant: usize,
    /// `Retry-After` the noisy tenant is answered with.
    pub retry_after: Duration,
    /// How long the noisy tenant is answered 429.
    pub window: Duration,
    /// Per-credential budget (`--api-rate-limit`, `--api-burst`): low enough that the
    /// tenants' own budgets, not the shared machine's CPU, bound their convergence time, so the
    /// two runs compare scheduling rather than load from other processes.
    pub budget: (f64, u32),
    /// Longest wait for the quiet tenants, and for everything, from the creates.
    pub timeout: Duration,
    /// Pairs of runs (without, with), alternating, so load from other processes on a shared
    /// machine hits both sides alike.
    pub pairs: usize,
}

/// Requests that arrive this soon after a 429 was answered were already on their way (sent
/// before the operator could read the 429); later ones inside Retry-After are violations.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(100);

/// Tenant 0 is the noisy one.
const NOISY: usize = 0;

pub async fn noisy(cfg: &NoisyCfg, ctx: &Ctx) -> BoxResult<Value> {
    eprintln!(
        "\n==> noisy neighbour: {} tenants × {} objects; tenant {NOISY} answered 429 \
         (Retry-After {:?}) for {:?} in the second run",
        cfg.tenants, cfg.per_tenant, cfg.retry_after, cfg.window
    );
    let mut without = Vec::new();
    let mut with = Vec::new();
    for _ in 0..cfg.pairs.max(1) {
        without.push(run(cfg, ctx, false).await?);
        with.push(run(cfg, ctx, true).await?);
    }
    let quiet_secs = |runs: &[Value]| -> Option<Vec<f64>> {
        runs.iter()
            .map(|r| r["quietTenantsAllReadySeconds"].as_f64())
            .collect()
    };
    let (base, noisy) = (quiet_secs(&without), quiet_secs(&with));
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let slowdown = base
        .as_ref()
        .zip(noisy.as_ref())
        .map(|(b, w)| round((mean(w) / mean(b) - 1.0) * 100.0, 1));
    let inside: u64 = with
        .iter()
        .filter_map(|r| r["noisy"]["requestsInsideRetryAfter"].as_u64())
        .sum();
    eprintln!(
        "    quiet tenants all Ready: {base:?} s alone, {noisy:?} s next to the noisy one \
         ({slowdown:?} % on average); noisy requests inside Retry-After: {inside}"
    );
    Ok(json!({
        "tenants": cfg.tenants,
        "objectsPerTenant": cfg.per_tenant,
        "retryAfterSeconds": secs(cfg.retry_after),
        "windowSeconds": secs(cfg.window),
        "operatorBudgetPerSecond": cfg.budget.0,
        "operatorBurst": cfg.budget.1,
        "pairs": cfg.pairs.max(1),
        "quietTenantsAllReadySecondsWithout": base,
        "quietTenantsAllReadySecondsWith": noisy,
        "quietSlowdownPercent": slowdown,
        "quietWithinTenPercent": slowdown.map(|p| p <= 10.0),
        "noisyRequestsInsideRetryAfter": inside,
        "withoutNoisy": without,
        "withNoisy": with,
    }))
}

/// One run: every object created at once into a synced operator with default flags.
async fn run(cfg: &NoisyCfg, ctx: &Ctx, with_noisy: bool) -> BoxResult<Value> {
    let n = cfg.tenants * cfg.per_tenant;
    let label = if with_noisy {
        "with-noisy"
    } else {
        "without-noisy"
    };
    let dir = ctx.work.join(format!("run-noisy-{label}"));
    let env = Env::start_tenants(n, cfg.tenants, (n * 40).max(50_000), &dir).await?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (rate, burst) = (cfg.budget.0.to_string(), cfg.budget.1.to_string());
    let flags = [
        ("--api-rate-limit", rate.as_str()),
        ("--api-burst", burst.as_str()),
    ];
    let mut op = OperatorProc::spawn(&env, &flags, &dir.join("operator.log")).await?;
    op.wait_synced(&env, Duration::from_secs(60)).await?;
    env.sim.clear_requests();
    let noisy_client = tenant_client_id(NOISY);
    if with_noisy {
        env.sim
            .faults()
            .throttle_client(&noisy_client, cfg.retry_after, cfg.window);
    }
    let t0 = Instant::now();
    env.apply(0..n).await?;
    let quiet_names: Vec<String> = (0..n)
        .filter(|i| i % cfg.tenants != NOISY)
        .map(name)
        .collect();
    let quiet_done = wait_all(&env, &quiet_names, t0 + cfg.timeout).await;
    let quiet_secs = quiet_done.map(|t| secs(t.duration_since(t0)));
    eprintln!("    [{label}] quiet tenants all Ready after {quiet_secs:?} s");
    let all_done = env
        .wait_ready(
            n,
            (t0 + cfg.timeout).saturating_duration_since(Instant::now()),
            label,
        )
        .await;
    let throttled_waits = op
        .metric_sum("alexa_operator_throttled_waits_total", &[])
        .await
        .unwrap_or(f64::NAN);
    op.stop().await?;
    let log = env.smapi_requests();
    let noisy_log: Vec<&RequestRecord> = log
        .iter()
        .filter(|r| r.client.as_deref() == Some(noisy_client.as_str()))
        .collect();
    let stuck = env.readiness.lock().not_ready_reasons();
    env.shutdown().await;
    Ok(json!({
        "objects": n,
        "loadAverageAtStart": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "quietTenantsAllReadySeconds": quiet_secs,
        "allReadySeconds": all_done.map(|t| secs(t.duration_since(t0))),
        "quietTenantRequests": log.len() - noisy_log.len(),
        "noisy": noisy_stats(&noisy_log, cfg.retry_after, t0),
        "operatorThrottledWaits": throttled_waits,
        "notReadyAtEnd": stuck,
    }))
}

/// What the noisy tenant sent: requests, 429s, and requests inside a Retry-After.
fn noisy_stats(log: &[&RequestRecord], retry_after: Duration, t0: Instant) -> Value {
    let answered_429: Vec<Instant> = log
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.at)
        .collect();
    let mut inside = Vec::new();
    let mut in_flight = 0;
    for r in log {
        let gates: Vec<&Instant> = answered_429
            .iter()
            .filter(|t| r.at > **t && r.at < **t + retry_after)
            .collect();
        if let Some(first) = gates.iter().min() {
            if r.at > **first + IN_FLIGHT_GRACE {
                inside.push(r.at.duration_since(**first).as_millis() as u64);
            } else {
                in_flight += 1;
            }
        }
    }
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for r in log {
        *by_status.entry(r.status).or_default() += 1;
    }
    let waves: Vec<f64> = answered_429
        .iter()
        .map(|t| round(t.duration_since(t0).as_secs_f64(), 1))
        .fold(Vec::new(), |mut acc, t| {
            if acc.last().is_none_or(|last| t - last >= 1.0) {
                acc.push(t);
            }
            acc
        });
    json!({
        "requests": log.len(),
        "byStatus": by_status,
        "answered429": answered_429.len(),
        "requestsInsideRetryAfter": inside.len(),
        "insideRetryAfterMsAfterThe429": inside,
        "requestsInFlightWhen429Sent": in_flight,
        "inFlightGraceMs": IN_FLIGHT_GRACE.as_millis() as u64,
        "secondsOf429Waves": waves,
    })
}

/// Waits until every object in `names` has been seen Ready; returns when the last one was.
async fn wait_all(env: &Env, names: &[String], deadline: Instant) -> Option<Instant> {
    loop {
        {
            let r = env.readiness.lock();
            let times: Option<Vec<Instant>> = names
                .iter()
                .map(|n| r.first_ready.get(n).copied())
                .collect();
            if let Some(times) = times {
                return times.into_iter().max();
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
