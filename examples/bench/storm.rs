//! Section 5: fault storm (5xx, latency, dropped connections) with a kill -9 of the operator in
//! the middle, then calm: everything must converge, nothing twice, nothing lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alexa_simulator::{Operation, RequestRecord};
use serde_json::{Value, json};

use crate::env::Env;
use crate::proc::OperatorProc;
use crate::util::{histogram, int_histogram, max_in_window, mean, percentile, round, secs};
use crate::{BoxResult, Ctx};

#[derive(Debug, Clone)]
pub struct StormCfg {
    pub n: usize,
    pub error_rate: f64,
    pub latency: Duration,
    pub drop_rate: f64,
    pub storm: Duration,
    /// When (from the apply) the operator is killed with SIGKILL and started again.
    pub kill_at: Duration,
    /// Operator `--backoff-base` / `--backoff-max`.
    pub backoff: (Duration, Duration),
    pub timeout: Duration,
}

fn failed(r: &RequestRecord) -> bool {
    r.status == 0 || r.status == 429 || r.status >= 500
}

fn hms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

pub async fn storm(cfg: &StormCfg, ctx: &Ctx) -> BoxResult<Value> {
    let n = cfg.n;
    eprintln!(
        "\n==> fault storm: {n} objects; {:.0}% 5xx, {:?} latency, {:.0}% dropped connections for {:?}; \
         kill -9 at {:?}",
        cfg.error_rate * 100.0,
        cfg.latency,
        cfg.drop_rate * 100.0,
        cfg.storm,
        cfg.kill_at
    );
    let dir = ctx.work.join("run-storm");
    let env = Env::start(n, (n * 60).max(50_000), &dir).await?;
    let base = hms(cfg.backoff.0);
    let max = hms(cfg.backoff.1);
    let flags = [
        ("--backoff-base", base.as_str()),
        ("--backoff-max", max.as_str()),
    ];
    let log_path = dir.join("operator.log");
    let mut op = OperatorProc::spawn(&env, &flags, &log_path).await?;
    op.wait_synced(&env, Duration::from_secs(60)).await?;
    env.sim.clear_requests();
    let faults = env.sim.faults();
    faults.set_error_rate(cfg.error_rate);
    faults.set_latency(cfg.latency);
    faults.set_drop_rate(cfg.drop_rate);
    let t0 = Instant::now();
    env.apply(0..n).await?;
    tokio::time::sleep(cfg.kill_at.saturating_sub(t0.elapsed())).await;
    let ready_at_kill = env.ready();
    let puts_ok_at_kill = crate::converge::count_puts_ok(&env);
    let t_kill = Instant::now();
    op.kill9().await?;
    let mut op = OperatorProc::spawn(&env, &flags, &log_path).await?;
    let restart = op.wait_synced(&env, Duration::from_secs(60)).await?;
    eprintln!(
        "    killed the operator (-9) at {:.1}s with {ready_at_kill}/{n} Ready and {puts_ok_at_kill} PUTs applied; \
         the new process synced in {:.2}s",
        t_kill.duration_since(t0).as_secs_f64(),
        restart.as_secs_f64()
    );
    tokio::time::sleep(cfg.storm.saturating_sub(t0.elapsed())).await;
    let ready_at_calm = env.ready();
    let reasons_at_calm = env.readiness.lock().not_ready_reasons();
    faults.clear();
    let t_calm = Instant::now();
    eprintln!(
        "    storm over at {:.1}s: {ready_at_calm}/{n} Ready, not ready by reason {reasons_at_calm:?}",
        t_calm.duration_since(t0).as_secs_f64()
    );
    let done = env.wait_ready(n, cfg.timeout, "storm").await;
    let stuck = env.readiness.lock().not_ready_reasons();
    op.stop().await?;

    // Per-skill request sequences.
    let log = env.smapi_requests();
    let mut by_skill: HashMap<String, Vec<&RequestRecord>> = HashMap::new();
    for r in &log {
        if let Some(s) = &r.skill_id {
            by_skill.entry(s.clone()).or_default().push(r);
        }
    }
    for v in by_skill.values_mut() {
        v.sort_by_key(|r| r.at);
    }
    let calls_per_object: Vec<usize> = by_skill.values().map(Vec::len).collect();
    let puts_per_object: Vec<usize> = by_skill
        .values()
        .map(|v| {
            v.iter()
                .filter(|r| r.operation == Operation::UpdateAccountLinking)
                .count()
        })
        .collect();
    let puts_ok_per_object: Vec<usize> = by_skill
        .values()
        .map(|v| {
            v.iter()
                .filter(|r| {
                    r.operation == Operation::UpdateAccountLinking && (200..300).contains(&r.status)
                })
                .count()
        })
        .collect();
    let duplicates = puts_ok_per_object.iter().filter(|c| **c > 1).count();
    // A second successful PUT of the same configuration after the kill: the first one landed but
    // the process died before writing status (and with it the client-secret hash, the only
    // record that Amazon has the write-only secret), so the new process sends it again.
    let mut duplicates_across_kill = 0;
    let mut duplicate_examples = Vec::new();
    for (skill, attempts) in &by_skill {
        let ok_puts: Vec<Instant> = attempts
            .iter()
            .filter(|r| {
                r.operation == Operation::UpdateAccountLinking && (200..300).contains(&r.status)
            })
            .map(|r| r.at)
            .collect();
        if ok_puts.len() > 1 {
            if ok_puts[0] < t_kill
                && ok_puts[1..].iter().all(|t| *t >= t_kill)
                && ok_puts.len() == 2
            {
                duplicates_across_kill += 1;
            }
            if duplicate_examples.len() < 5 {
                let seq: Vec<String> = attempts
                    .iter()
                    .map(|r| {
                        let op = match r.operation {
                            Operation::GetAccountLinking => "GET",
                            Operation::UpdateAccountLinking => "PUT",
                            _ => "other",
                        };
                        format!(
                            "{:+.2}s {op} {}",
                            r.at.saturating_duration_since(t0).as_secs_f64()
                                - t_kill.duration_since(t0).as_secs_f64(),
                            r.status
                        )
                    })
                    .collect();
                duplicate_examples.push(json!({"skill": skill, "requestsRelativeToKill": seq}));
            }
        }
    }
    let never_put = n.saturating_sub(puts_ok_per_object.iter().filter(|c| **c >= 1).count());
    let mismatches = env.config_mismatches();

    // Gaps after failed attempts: arrival of the next attempt of the same skill minus arrival of
    // the failed one, minus the injected latency the failed one waited for (during the storm).
    // Gaps across the kill are left out (they include the restart).
    let mut gaps_by_streak: HashMap<u32, Vec<f64>> = HashMap::new();
    let mut all_gaps = Vec::new();
    let mut max_10s = 0;
    let mut failing_objects = 0;
    for attempts in by_skill.values() {
        let times: Vec<Instant> = attempts.iter().map(|r| r.at).collect();
        max_10s = max_10s.max(max_in_window(&times, Duration::from_secs(10)));
        if attempts.iter().any(|r| failed(r)) {
            failing_objects += 1;
        }
        let mut streak = 0u32;
        for pair in attempts.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if failed(a) {
                streak += 1;
                let crosses_kill = a.at < t_kill && b.at >= t_kill;
                if !crosses_kill {
                    let latency = if a.at < t_calm {
                        cfg.latency
                    } else {
                        Duration::ZERO
                    };
                    let gap =
                        b.at.duration_since(a.at)
                            .saturating_sub(latency)
                            .as_secs_f64();
                    gaps_by_streak.entry(streak.min(8)).or_default().push(gap);
                    all_gaps.push(gap);
                }
            } else {
                streak = 0;
            }
        }
    }
    let base = cfg.backoff.0.as_secs_f64();
    let cap = cfg.backoff.1.as_secs_f64();
    let mut by_streak = Vec::new();
    let mut keys: Vec<u32> = gaps_by_streak.keys().copied().collect();
    keys.sort();
    for k in keys {
        let gaps = &gaps_by_streak[&k];
        let bound = (base * 2f64.powi(k as i32 - 1)).min(cap);
        by_streak.push(json!({
            "consecutiveFailures": if k >= 8 { "8+".to_string() } else { k.to_string() },
            "retries": gaps.len(),
            "meanDelaySeconds": round(mean(gaps), 3),
            "p50DelaySeconds": round(percentile(gaps, 50.0), 3),
            "p90DelaySeconds": round(percentile(gaps, 90.0), 3),
            "maxDelaySeconds": round(gaps.iter().cloned().fold(0.0, f64::max), 3),
            "backoffCapSeconds": round(bound, 3),
        }));
    }
    let edges = [0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
    let gap_hist = histogram(&all_gaps, &edges);
    let recover = done.map(|t| t.saturating_duration_since(t_calm));
    eprintln!(
        "    {} SMAPI requests; calls per object p50 {} p90 {} max {}; max {} calls for one object in 10 s; \
         successful PUTs: {duplicates} objects more than once, {never_put} never; config mismatches {}",
        log.len(),
        percentile(
            &calls_per_object
                .iter()
                .map(|c| *c as f64)
                .collect::<Vec<_>>(),
            50.0
        ),
        percentile(
            &calls_per_object
                .iter()
                .map(|c| *c as f64)
                .collect::<Vec<_>>(),
            90.0
        ),
        calls_per_object.iter().max().unwrap_or(&0),
        max_10s,
        mismatches.len()
    );
    for row in &by_streak {
        eprintln!("    retry delay after failures: {row}");
    }
    match recover {
        Some(d) => eprintln!(
            "    all {n} Ready {:.2}s after the storm ended",
            d.as_secs_f64()
        ),
        None => eprintln!(
            "    NOT all Ready {:?} after the storm: {stuck:?}",
            cfg.timeout
        ),
    }
    env.shutdown().await;
    Ok(json!({
        "objects": n,
        "errorRate": cfg.error_rate,
        "latencySeconds": cfg.latency.as_secs_f64(),
        "dropRate": cfg.drop_rate,
        "stormSeconds": secs(cfg.storm),
        "killAtSeconds": secs(t_kill.duration_since(t0)),
        "backoffBaseSeconds": base,
        "backoffMaxSeconds": cap,
        "readyAtKill": ready_at_kill,
        "restartSyncSeconds": secs(restart),
        "readyAtStormEnd": ready_at_calm,
        "notReadyReasonsAtStormEnd": reasons_at_calm,
        "allReady": done.is_some(),
        "recoverSecondsAfterStorm": recover.map(secs),
        "totalSecondsApplyToReady": done.map(|t| secs(t.duration_since(t0))),
        "stuck": stuck,
        "smapiRequests": log.len(),
        "failedRequests": log.iter().filter(|r| failed(r)).count(),
        "objectsWithFailures": failing_objects,
        "callsPerObjectHistogram": int_histogram(calls_per_object.iter().copied()),
        "putAttemptsPerObjectHistogram": int_histogram(puts_per_object.iter().copied()),
        "successfulPutsPerObjectHistogram": int_histogram(puts_ok_per_object.iter().copied()),
        "objectsWithDuplicateUpdates": duplicates,
        "duplicatesAcrossKill": duplicates_across_kill,
        "duplicateExamples": duplicate_examples,
        "implicitObjects": (0..n).filter(|i| crate::env::is_implicit(*i)).count(),
        "objectsNeverUpdated": never_put,
        "configMismatches": mismatches.len(),
        "maxCallsForOneObjectIn10s": max_10s,
        "retryDelayHistogram": gap_hist,
        "retryDelayByConsecutiveFailures": by_streak,
    }))
}
