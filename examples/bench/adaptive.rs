//! Section 8 (issue 17, goal 2): how much of what a throttling server allows the operator uses.
//! The simulator allows R requests/s per credential (burst B) and answers 429 + Retry-After
//! beyond it for the whole run; the operator's own ceiling is far above R, so what it sends is
//! what it learned. Objects resync every second, so there is always more to send than R.

use std::time::{Duration, Instant};

use alexa_simulator::RateLimit;
use serde_json::{Value, json};

use crate::env::Env;
use crate::proc::OperatorProc;
use crate::util::{max_in_window, round};
use crate::{BoxResult, Ctx};

/// One run: the server's rate and Retry-After, and how long to measure.
#[derive(Debug, Clone)]
pub struct AdaptiveRun {
    pub rate: f64,
    pub retry_after: Duration,
    pub window: Duration,
}

/// The grid and what is common to every run.
#[derive(Debug, Clone)]
pub struct AdaptiveCfg {
    pub runs: Vec<AdaptiveRun>,
    /// The server's burst (B).
    pub burst: u32,
    /// The operator's `--api-rate-limit` and `--api-burst`: a ceiling it must never pass.
    pub ceiling: (f64, u32),
}

/// Requests arriving this soon after a 429 was answered were sent before the operator could
/// read it; later ones inside the Retry-After are violations (as in section 4).
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(100);

/// The 1-minute load average now (the machine is shared), as /proc/loadavg's first field.
fn load_now() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

pub async fn adaptive(cfg: &AdaptiveCfg, ctx: &Ctx) -> BoxResult<Value> {
    let mut runs = Vec::new();
    for run in &cfg.runs {
        runs.push(one(cfg, run, ctx).await?);
    }
    let sustained: Vec<f64> = runs
        .iter()
        .map(|r| r["sustainedUtilisation"].as_f64().unwrap_or(0.0))
        .collect();
    let min = sustained.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(json!({
        "serverBurst": cfg.burst,
        "operatorCeilingPerSecond": cfg.ceiling.0,
        "operatorBurst": cfg.ceiling.1,
        "inFlightGraceMs": IN_FLIGHT_GRACE.as_millis() as u64,
        "runs": runs,
        "minSustainedUtilisation": round(min, 3),
        "allAtLeast75Percent": min >= 0.75,
        "allWithinRatePlusBurst": runs.iter().all(|r| r["withinRatePlusBurst"] == json!(true)),
        "requestsInsideRetryAfter": runs.iter().map(|r| r["requestsInsideRetryAfter"].as_u64().unwrap_or(0)).sum::<u64>(),
    }))
}

async fn one(cfg: &AdaptiveCfg, run: &AdaptiveRun, ctx: &Ctx) -> BoxResult<Value> {
    let rate = run.rate;
    // Four objects per allowed request/s, each resynced every second: demand ≈ 4 R.
    let n = ((rate * 4.0) as usize).max(8);
    eprintln!(
        "\n==> adaptive rate: server allows {rate}/s burst {} (429 + Retry-After {:?}), operator \
         ceiling {}/s burst {}, {n} objects resynced every 1 s, {:?}",
        cfg.burst, run.retry_after, cfg.ceiling.0, cfg.ceiling.1, run.window
    );
    let dir = ctx
        .work
        .join(format!("run-adaptive-{rate}-{}", run.retry_after.as_secs()));
    let expected = (rate as usize + cfg.burst as usize) * (run.window.as_secs() as usize + 60);
    let env = Env::start(n, (expected * 4).max(50_000), &dir).await?;
    env.sim.faults().set_rate_limit(Some(RateLimit {
        per_second: rate,
        burst: cfg.burst,
        retry_after: run.retry_after,
    }));
    let ceiling = format!("{}", cfg.ceiling.0);
    let burst = format!("{}", cfg.ceiling.1);
    let flags = [
        ("--api-rate-limit", ceiling.as_str()),
        ("--api-burst", burst.as_str()),
        ("--resync-period", "1s"),
    ];
    let mut op = OperatorProc::spawn(&env, &flags, &dir.join("operator.log")).await?;
    op.wait_synced(&env, Duration::from_secs(60)).await?;
    env.sim.clear_requests();
    let load_start = load_now();
    let t0 = Instant::now();
    env.apply(0..n).await?;
    tokio::time::sleep(run.window.saturating_sub(t0.elapsed())).await;
    let t_end = Instant::now();
    let reductions = op
        .metric_sum("alexa_operator_api_rate_reductions_total", &[])
        .await
        .unwrap_or(f64::NAN);
    let load_end = load_now();
    op.stop().await?;
    let log: Vec<_> = env
        .smapi_requests()
        .into_iter()
        .filter(|r| r.at >= t0 && r.at < t_end)
        .collect();
    env.shutdown().await;
    let result = analyse(&log, cfg, run, t0, t_end);
    let mut result = result;
    result["objects"] = json!(n);
    result["rateReductions"] = json!(reductions);
    result["loadAverage1mStartEnd"] = json!([load_start, load_end]);
    eprintln!(
        "    R={rate}/s Retry-After {:?}: {} accepted/s over the window ({} %), {} accepted/s in its \
         second half ({} %); {} answered 429; max {} requests in any 1 s (R + B = {}); {} inside a \
         Retry-After; {} rate reductions; load {load_start:.2} → {load_end:.2}",
        run.retry_after,
        result["acceptedPerSecond"],
        result["utilisationPercent"],
        result["sustainedPerSecond"],
        result["sustainedPercent"],
        result["answered429"],
        result["maxRequestsInAnySecond"],
        result["ratePlusBurst"],
        result["requestsInsideRetryAfter"],
        reductions
    );
    Ok(result)
}

/// Where the busiest 1 s window starts (sorted times).
fn busiest_second(times: &[Instant]) -> Option<Instant> {
    let mut best = (0, None);
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]) >= Duration::from_secs(1) {
            lo += 1;
        }
        if hi - lo + 1 > best.0 {
            best = (hi - lo + 1, Some(times[lo]));
        }
    }
    best.1
}

/// The numbers of one run from the simulator's request log of its window.
fn analyse(
    log: &[alexa_simulator::RequestRecord],
    cfg: &AdaptiveCfg,
    run: &AdaptiveRun,
    t0: Instant,
    t_end: Instant,
) -> Value {
    let window = t_end.duration_since(t0).as_secs_f64();
    let half = t0 + t_end.duration_since(t0) / 2;
    let accepted = |from: Instant| {
        log.iter()
            .filter(|r| r.at >= from && r.status != 429 && r.status != 0)
            .count()
    };
    let all = accepted(t0);
    let second_half = accepted(half);
    let refused: Vec<Instant> = log
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.at)
        .collect();
    let mut times: Vec<Instant> = log.iter().map(|r| r.at).collect();
    times.sort();
    let max_1s = max_in_window(&times, Duration::from_secs(1));
    let busiest_at = busiest_second(&times).map(|t| round(t.duration_since(t0).as_secs_f64(), 2));
    let first_429 = refused
        .first()
        .map(|t| round(t.duration_since(t0).as_secs_f64(), 2));
    let allowed = run.rate + f64::from(cfg.burst);
    let (mut inside, mut in_flight) = (0, 0);
    for r in log {
        let after: Vec<Duration> = refused
            .iter()
            .filter(|t| r.at > **t && r.at < **t + run.retry_after)
            .map(|t| r.at.duration_since(*t))
            .collect();
        if after.iter().any(|d| *d > IN_FLIGHT_GRACE) {
            inside += 1;
        } else if !after.is_empty() {
            in_flight += 1;
        }
    }
    let per_s = all as f64 / window;
    let sustained = second_half as f64 / (window / 2.0);
    json!({
        "serverPerSecond": run.rate,
        "retryAfterSeconds": run.retry_after.as_secs_f64(),
        "windowSeconds": round(window, 1),
        "requests": log.len(),
        "accepted": all,
        "answered429": refused.len(),
        "acceptedPerSecond": round(per_s, 2),
        "utilisationPercent": round(100.0 * per_s / run.rate, 1),
        "sustainedPerSecond": round(sustained, 2),
        "sustainedUtilisation": round(sustained / run.rate, 3),
        "sustainedPercent": round(100.0 * sustained / run.rate, 1),
        "maxRequestsInAnySecond": max_1s,
        "ratePlusBurst": allowed,
        "withinRatePlusBurst": max_1s as f64 <= allowed,
        "busiestSecondStartsAtSeconds": busiest_at,
        "first429AtSeconds": first_429,
        "requestsInsideRetryAfter": inside,
        "requestsInFlightWhen429Sent": in_flight,
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

/// The section's rows of the report's goal table, when it ran.
pub fn goal_rows(o: &mut String, v: &Value) {
    use std::fmt::Write;
    if v.get("runs").is_none() {
        return;
    }
    let _ = writeln!(
        o,
        "| throttling server: sustained rate ≥ 75 % of what it allows (R = 5, 20, 50; Retry-After 1 s, 10 s) | lowest {} % | {} |",
        round(
            v["minSustainedUtilisation"].as_f64().unwrap_or(0.0) * 100.0,
            1
        ),
        verdict(v["allAtLeast75Percent"] == json!(true))
    );
    let _ = writeln!(
        o,
        "| throttling server: never more than R + burst requests in any second, nothing inside a Retry-After | {} within R + burst; {} inside a Retry-After | {} |",
        if v["allWithinRatePlusBurst"] == json!(true) {
            "all runs"
        } else {
            "not all runs"
        },
        text(&v["requestsInsideRetryAfter"]),
        verdict(
            v["allWithinRatePlusBurst"] == json!(true) && v["requestsInsideRetryAfter"] == json!(0)
        )
    );
}

/// Section 8 of the report, when it ran.
pub fn section(o: &mut String, v: &Value) {
    use std::fmt::Write;
    if v.is_null() {
        return;
    }
    let _ = writeln!(o, "## 8. Adaptive rate against a throttling server\n");
    let Some(runs) = v["runs"].as_array() else {
        let _ = writeln!(o, "Not measured: {}\n", text(&v["error"]));
        return;
    };
    let _ = writeln!(
        o,
        "The simulator allows R requests/s per credential (burst {}) and answers 429 with \
         `Retry-After` beyond it, for the whole run. The operator runs with `--api-rate-limit {}` \
         `--api-burst {}` (a ceiling far above R, so what it sends is what it learned) and \
         `--resync-period 1s` over 4 R objects, so it always has more to send than R. Counted \
         from the simulator's request log: accepted = answered anything but 429; sustained = \
         accepted per second in the second half of the window (after learning); requests \
         within {} ms of a 429 were sent before the operator could read it and are not counted \
         as inside its Retry-After. Load = 1-minute load average at start and end of the run \
         (the machine is shared).\n",
        text(&v["serverBurst"]),
        text(&v["operatorCeilingPerSecond"]),
        text(&v["operatorBurst"]),
        text(&v["inFlightGraceMs"])
    );
    let _ = writeln!(
        o,
        "| R /s | Retry-After | window s | accepted /s (whole window) | sustained /s (2nd half) | 429s (first at s) | max in any 1 s (R + B), from s | inside Retry-After | rate reductions | load |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in runs {
        let load = r["loadAverage1mStartEnd"]
            .as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(" → "))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "| {} | {} s | {} | {} ({} %) | **{} ({} %)** | {} ({}) | {} ({}), {} | {} | {} | {} |",
            text(&r["serverPerSecond"]),
            text(&r["retryAfterSeconds"]),
            text(&r["windowSeconds"]),
            text(&r["acceptedPerSecond"]),
            text(&r["utilisationPercent"]),
            text(&r["sustainedPerSecond"]),
            text(&r["sustainedPercent"]),
            text(&r["answered429"]),
            text(&r["first429AtSeconds"]),
            text(&r["maxRequestsInAnySecond"]),
            text(&r["ratePlusBurst"]),
            text(&r["busiestSecondStartsAtSeconds"]),
            text(&r["requestsInsideRetryAfter"]),
            text(&r["rateReductions"]),
            load
        );
    }
    let _ = writeln!(o);
}
