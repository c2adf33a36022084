//! Section 4: the simulator answers 429 with Retry-After for a window while the operator works.

use std::time::{Duration, Instant};

use alexa_simulator::RateLimit;
use serde_json::{Value, json};

use crate::env::Env;
use crate::proc::OperatorProc;
use crate::util::{max_in_window, round, secs};
use crate::{BoxResult, Ctx};

#[derive(Debug, Clone)]
pub struct ThrottleCfg {
    pub n: usize,
    /// Operator budget: `--api-rate-limit`, `--api-burst`.
    pub budget: (f64, u32),
    /// What the simulator allows during the window (429 + Retry-After beyond it).
    pub sim_limit: RateLimit,
    pub window: Duration,
    pub timeout: Duration,
}

/// Requests that arrive this soon after a 429 was answered were already on their way (sent before
/// the operator could read the 429); later ones inside Retry-After are violations.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(100);

pub async fn throttle(cfg: &ThrottleCfg, ctx: &Ctx) -> BoxResult<Value> {
    let n = cfg.n;
    eprintln!(
        "\n==> throttling: {n} objects, operator budget {}/s burst {}, simulator allows {}/s burst {} \
         (429 + Retry-After {:?}) for {:?}",
        cfg.budget.0,
        cfg.budget.1,
        cfg.sim_limit.per_second,
        cfg.sim_limit.burst,
        cfg.sim_limit.retry_after,
        cfg.window
    );
    let dir = ctx.work.join("run-throttle");
    let env = Env::start(n, (n * 40).max(50_000), &dir).await?;
    let rate = format!("{}", cfg.budget.0);
    let burst = format!("{}", cfg.budget.1);
    let flags = [
        ("--api-rate-limit", rate.as_str()),
        ("--api-burst", burst.as_str()),
    ];
    let mut op = OperatorProc::spawn(&env, &flags, &dir.join("operator.log")).await?;
    op.wait_synced(&env, Duration::from_secs(60)).await?;
    env.sim.clear_requests();
    env.sim.faults().set_rate_limit(Some(cfg.sim_limit.clone()));
    let t0 = Instant::now();
    env.apply(0..n).await?;
    tokio::time::sleep(cfg.window.saturating_sub(t0.elapsed())).await;
    let reasons_at_end = env.readiness.lock().not_ready_reasons();
    let ready_at_end = env.ready();
    env.sim.faults().set_rate_limit(None);
    let t_end = Instant::now();
    eprintln!(
        "    window over: {ready_at_end}/{n} Ready, not ready by reason {reasons_at_end:?}; waiting for Ready"
    );
    let done = env.wait_ready(n, cfg.timeout, "throttle").await;
    let throttled_waits = op
        .metric_sum("alexa_operator_throttled_waits_total", &[])
        .await
        .unwrap_or(f64::NAN);
    op.stop().await?;

    let log = env.smapi_requests();
    let retry_after = cfg.sim_limit.retry_after;
    let in_window: Vec<_> = log.iter().filter(|r| r.at >= t0 && r.at < t_end).collect();
    let times: Vec<Instant> = in_window.iter().map(|r| r.at).collect();
    let max_1s = max_in_window(&times, Duration::from_secs(1));
    let answered_429: Vec<Instant> = log
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.at)
        .collect();
    let ok_in_window = in_window
        .iter()
        .filter(|r| (200..300).contains(&r.status) || r.status == 404)
        .count();
    // Every request arriving inside (t + grace, t + Retry-After) of any 429 at t is a violation.
    let mut violations = Vec::new();
    let mut in_flight = 0;
    for r in &log {
        let mut inside_gate = false;
        let mut inside_grace = false;
        for t in &answered_429 {
            if r.at > *t && r.at < *t + retry_after {
                if r.at <= *t + IN_FLIGHT_GRACE {
                    inside_grace = true;
                } else {
                    inside_gate = true;
                }
            }
        }
        if inside_gate {
            violations.push(r.at);
        } else if inside_grace {
            in_flight += 1;
        }
    }
    let budget_1s = cfg.budget.0 + f64::from(cfg.budget.1);
    let first_ok_after = log
        .iter()
        .filter(|r| r.at >= t_end && ((200..300).contains(&r.status) || r.status == 404))
        .map(|r| r.at)
        .min();
    let after: Vec<Instant> = log.iter().filter(|r| r.at >= t_end).map(|r| r.at).collect();
    let max_1s_after = max_in_window(&after, Duration::from_secs(1));
    let recover = done.map(|t| t.saturating_duration_since(t_end));
    eprintln!(
        "    window: {} requests, {} answered 429, {ok_in_window} succeeded; max {max_1s} requests in any 1 s \
         (budget {budget_1s}); {} requests inside a Retry-After (plus {in_flight} already in flight ≤{}ms after a 429)",
        in_window.len(),
        answered_429.iter().filter(|t| **t < t_end).count(),
        violations.len(),
        IN_FLIGHT_GRACE.as_millis()
    );
    match recover {
        Some(d) => eprintln!(
            "    recovered: all {n} Ready {:.2}s after the window (first success after it: {:.3}s)",
            d.as_secs_f64(),
            first_ok_after.map_or(f64::NAN, |t| t.duration_since(t_end).as_secs_f64())
        ),
        None => eprintln!(
            "    NOT all Ready within {:?} after the window",
            cfg.timeout
        ),
    }
    let stuck = env.readiness.lock().not_ready_reasons();
    env.shutdown().await;
    Ok(json!({
        "objects": n,
        "operatorBudgetPerSecond": cfg.budget.0,
        "operatorBurst": cfg.budget.1,
        "simulatorLimit": {"perSecond": cfg.sim_limit.per_second, "burst": cfg.sim_limit.burst,
                           "retryAfterSeconds": retry_after.as_secs_f64()},
        "windowSeconds": secs(cfg.window),
        "readyAtWindowEnd": ready_at_end,
        "notReadyReasonsAtWindowEnd": reasons_at_end,
        "requestsInWindow": in_window.len(),
        "answered429InWindow": answered_429.iter().filter(|t| **t < t_end).count(),
        "succeededInWindow": ok_in_window,
        "maxRequestsInAnySecondInWindow": max_1s,
        "budgetRequestsPerSecond": budget_1s,
        "withinBudget": (max_1s as f64) <= budget_1s,
        "requestsInsideRetryAfter": violations.len(),
        "requestsInFlightWhen429Sent": in_flight,
        "inFlightGraceMs": IN_FLIGHT_GRACE.as_millis() as u64,
        "operatorThrottledWaits": throttled_waits,
        "firstSuccessAfterWindowSeconds": first_ok_after.map(|t| round(t.duration_since(t_end).as_secs_f64(), 3)),
        "recoverSeconds": recover.map(secs),
        "maxRequestsInAnySecondAfterWindow": max_1s_after,
        "stuck": stuck,
    }))
}
