//! The machine description and the Markdown report generated from the JSON results.

use std::fmt::Write;

use serde_json::{Value, json};

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn command(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Today's date (UTC), YYYY-MM-DD.
pub fn today() -> String {
    let d = command("date", &["-u", "+%Y-%m-%d"]);
    if d.is_empty() { "unknown".into() } else { d }
}

/// nproc, memory, CPU model, kernel, rustc and node versions, load at start.
pub fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let rustc = command("rustc", &["--version"]);
    let node = command("node", &["--version"]);
    let kernel = command("uname", &["-r"]);
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let mem_gib = mem_kib as f64 / 1024.0 / 1024.0;
    json!({
        "nproc": cpus,
        "memoryGiB": (mem_gib * 10.0).round() / 10.0,
        "cpuModel": model,
        "kernel": kernel,
        "rustc": rustc,
        "node": node,
        "loadAverageAtStart": load,
        "summary": format!("{cpus} CPUs ({model}), {mem_gib:.1} GiB, Linux {kernel}, {rustc}, load {load}"),
    })
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => {
            if *b {
                "yes".into()
            } else {
                "no".into()
            }
        }
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    format!("{f:.0}")
                } else {
                    format!("{f}")
                }
            } else {
                n.to_string()
            }
        }
        other => other.to_string(),
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

fn goal_row(out: &mut String, goal: &str, measured: String, ok: Option<bool>) {
    let verdict = match ok {
        Some(ok) => met(ok),
        None => "not measured",
    };
    let _ = writeln!(out, "| {goal} | {measured} | {verdict} |");
}

/// The report. `analysis` (bench/analysis.md) is appended as written.
pub fn markdown(doc: &Value, analysis: &str) -> String {
    let r = &doc["results"];
    let m = &doc["machine"];
    let mut o = String::new();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Measured on **{}** with `{}` (which builds the release binary, installs the ASK CLI into \
         `target/bench/ask-cli` and runs `cargo run --release --example bench -- --all`; {} s in total). \
         This file and [`BENCHMARKS.json`](BENCHMARKS.json) are generated; the analysis at the end is \
         `bench/analysis.md`.\n",
        s(&doc["date"]),
        s(&doc["command"]),
        s(&doc["totalSeconds"])
    );
    let _ = writeln!(
        o,
        "Machine: {} CPUs ({}), {} GiB memory, Linux {}, {}, Node {}; load average at start {}. \
        The operator runs as its own process (release build); the Kubernetes API test server, the Alexa \
        API simulator and the benchmark driver share the same 2 cores in the benchmark process, so every \
        time below includes their CPU use too.\n",
        s(&m["nproc"]),
        s(&m["cpuModel"]),
        s(&m["memoryGiB"]),
        s(&m["kernel"]),
        s(&m["rustc"]),
        s(&m["node"]),
        s(&m["loadAverageAtStart"])
    );

    let conv: Vec<&Value> = r["convergence"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let by_n = |n: u64, limited: bool| -> Option<&Value> {
        conv.iter().copied().find(|c| {
            c["objects"].as_u64() == Some(n)
                && c.get("rateLimit").is_some() == limited
                && c.get("error").is_none()
        })
    };

    // Goals.
    let _ = writeln!(
        o,
        "## Goals\n\n| goal | measured | verdict |\n|---|---|---|"
    );
    let limited = conv.iter().copied().find(|c| c.get("rateLimit").is_some());
    match limited {
        Some(c) => goal_row(
            &mut o,
            "configured rate limit used ≥ 90 %",
            format!(
                "{:.1} % of {}/s while requests were pending ({:.1} % from apply to all Ready), N = {}",
                f(&c["rateLimit"]["fractionUsedWhileSending"]) * 100.0,
                s(&c["rateLimit"]["configuredPerSecond"]),
                f(&c["rateLimit"]["fractionUsedApplyToReady"]) * 100.0,
                s(&c["objects"])
            ),
            Some(f(&c["rateLimit"]["fractionUsedWhileSending"]) >= 0.9),
        ),
        None => goal_row(
            &mut o,
            "configured rate limit used ≥ 90 %",
            "–".into(),
            None,
        ),
    }
    let steady_runs: Vec<&Value> = conv
        .iter()
        .copied()
        .filter(|c| c.get("steadyState").is_some())
        .collect();
    let measured: Vec<&Value> = steady_runs
        .iter()
        .copied()
        .filter(|c| c["steadyState"].get("gets").is_some())
        .collect();
    if measured.is_empty() {
        goal_row(
            &mut o,
            "one resync period: exactly N GETs, 0 PUTs",
            "–".into(),
            None,
        );
    }
    for c in &measured {
        let st = &c["steadyState"];
        goal_row(
            &mut o,
            "one resync period: exactly N GETs, 0 PUTs",
            format!(
                "N = {}, period {} s: {} GETs ({} objects once), {} PUTs, {} other calls",
                s(&c["objects"]),
                s(&st["periodSeconds"]),
                s(&st["gets"]),
                s(&st["objectsResyncedOnce"]),
                s(&st["puts"]),
                s(&st["otherCalls"])
            ),
            Some(st["exactlyNGetsZeroPuts"] == json!(true)),
        );
        let quiet = st["callsInQuietWindowBefore"].as_u64().unwrap_or(1)
            + st["callsInQuietWindowAfter"].as_u64().unwrap_or(1);
        goal_row(
            &mut o,
            "between resyncs: 0 calls",
            format!(
                "N = {}: {} calls in {} s before and {} calls in {} s after the resync wave",
                s(&c["objects"]),
                s(&st["callsInQuietWindowBefore"]),
                s(&st["quietWindowBeforeSeconds"]),
                s(&st["callsInQuietWindowAfter"]),
                s(&st["quietWindowAfterSeconds"])
            ),
            Some(quiet == 0),
        );
    }
    let idle = &r["idle"];
    if idle.get("settledRssMiB").is_some() {
        goal_row(
            &mut o,
            "idle RSS ≤ 20 MiB",
            format!(
                "{} MiB settled, {} MiB peak",
                s(&idle["settledRssMiB"]),
                s(&idle["peakRssMiB"])
            ),
            Some(f(&idle["peakRssMiB"]) <= 20.0),
        );
    } else {
        goal_row(&mut o, "idle RSS ≤ 20 MiB", "–".into(), None);
    }
    for (n, limit) in [(1000u64, 40.0), (10000u64, 100.0)] {
        let goal = format!("RSS at {n} objects ≤ {limit:.0} MiB");
        match by_n(n, false) {
            Some(c) => goal_row(
                &mut o,
                &goal,
                format!(
                    "{} MiB peak, {} MiB settled",
                    s(&c["peakRssMiB"]),
                    s(&c["settledRssMiB"])
                ),
                Some(f(&c["peakRssMiB"]) <= limit),
            ),
            None => goal_row(&mut o, &goal, "–".into(), None),
        }
    }
    let t = &r["throttling"];
    if t.get("maxRequestsInAnySecondInWindow").is_some() {
        goal_row(
            &mut o,
            "throttled: request rate within the configured budget",
            format!(
                "max {} requests in any 1 s (budget {}/s + burst {} = {})",
                s(&t["maxRequestsInAnySecondInWindow"]),
                s(&t["operatorBudgetPerSecond"]),
                s(&t["operatorBurst"]),
                s(&t["budgetRequestsPerSecond"])
            ),
            Some(t["withinBudget"] == json!(true)),
        );
        goal_row(
            &mut o,
            "throttled: no call before Retry-After expires",
            format!(
                "{} calls inside a Retry-After ({} were already in flight ≤ {} ms after the 429)",
                s(&t["requestsInsideRetryAfter"]),
                s(&t["requestsInFlightWhen429Sent"]),
                s(&t["inFlightGraceMs"])
            ),
            Some(t["requestsInsideRetryAfter"].as_u64() == Some(0)),
        );
    }
    let nn = &r["noisyNeighbour"];
    if nn.get("withNoisy").is_some() {
        goal_row(
            &mut o,
            "noisy neighbour: the other tenants converge as fast as alone (within 10 %)",
            format!(
                "{} s alone, {} s next to the throttled tenant ({} % on average)",
                s(&nn["quietTenantsAllReadySecondsWithout"]),
                s(&nn["quietTenantsAllReadySecondsWith"]),
                s(&nn["quietSlowdownPercent"])
            ),
            nn["quietWithinTenPercent"].as_bool(),
        );
        goal_row(
            &mut o,
            "noisy neighbour: the throttled tenant sends nothing inside its Retry-After",
            format!(
                "{} requests after the in-flight grace of {} ms",
                s(&nn["noisyRequestsInsideRetryAfter"]),
                s(&nn["withNoisy"][0]["noisy"]["inFlightGraceMs"])
            ),
            Some(nn["noisyRequestsInsideRetryAfter"].as_u64() == Some(0)),
        );
    }
    crate::adaptive::goal_rows(&mut o, &r["adaptiveRate"]);
    let st = &r["storm"];
    if st.get("allReady").is_some() {
        goal_row(
            &mut o,
            "fault storm + kill -9: all Ready, none stuck",
            format!(
                "{} of {} Ready {} s after the storm",
                if st["allReady"] == json!(true) {
                    s(&st["objects"])
                } else {
                    "not all".into()
                },
                s(&st["objects"]),
                s(&st["recoverSecondsAfterStorm"])
            ),
            Some(st["allReady"] == json!(true)),
        );
        let dups = st["objectsWithDuplicateUpdates"]
            .as_u64()
            .unwrap_or(u64::MAX);
        let across = st["duplicatesAcrossKill"].as_u64().unwrap_or(0);
        let why = if dups > 0 {
            format!(
                " ({across} of them: the same configuration re-sent by the restarted process \
                 after the kill, see the analysis, §6)"
            )
        } else {
            String::new()
        };
        goal_row(
            &mut o,
            "fault storm: no duplicate or lost update",
            format!(
                "{} configurations differ from the spec, {} objects never updated; \
                 {dups} objects got a second successful PUT{why}",
                s(&st["configMismatches"]),
                s(&st["objectsNeverUpdated"]),
            ),
            Some(
                dups == 0
                    && st["configMismatches"].as_u64() == Some(0)
                    && st["objectsNeverUpdated"].as_u64() == Some(0),
            ),
        );
    }
    let a = &r["askCli"];
    if a.get("speedup").is_some() {
        goal_row(
            &mut o,
            "≥ 20× faster than the ASK CLI",
            format!(
                "{}× ({}× counting the operator's own start-up)",
                s(&a["speedup"]),
                s(&a["speedupIncludingOperatorStartup"])
            ),
            Some(f(&a["speedup"]) >= 20.0),
        );
    } else if a.get("error").is_some() {
        goal_row(
            &mut o,
            "≥ 20× faster than the ASK CLI",
            format!(
                "not measured: {}",
                s(&a["error"]).lines().next().unwrap_or("")
            ),
            None,
        );
    }
    let _ = writeln!(o);

    // 1.
    let _ = writeln!(o, "## 1. Convergence\n");
    let _ = writeln!(
        o,
        "N SkillAccountLinking objects (4 of 5 AUTH_CODE with their own client-secret Secret, 1 of 5 IMPLICIT; one shared credentials Secret) are created at once (32 requests in flight) into a running, synced operator; the clock runs from the first create to the moment the last object is seen Ready (condition `Ready=True` with `observedGeneration == generation`, through a watch). Defaults otherwise (`--concurrency 16`). \"Test servers' CPU\" is the benchmark process (Kubernetes API test server, simulator, readiness watch) over the same interval: with 2 cores, create → all Ready is bounded by the sum of both CPU columns.\n"
    );
    let _ = writeln!(
        o,
        "| run | N | operator rate limit | create all (s) | create → all Ready (s) | objects/s | SMAPI requests/object (GET + PUT) | LWA token requests | max requests in 1 s | operator CPU (s) | CPU ms/reconcile | test servers' CPU (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in &conv {
        if c.get("error").is_some() {
            let _ = writeln!(
                o,
                "| {} | | | | failed: {} | | | | | | | |",
                s(&c["label"]),
                s(&c["error"])
            );
            continue;
        }
        let limit = c.get("rateLimit").map_or("off".to_string(), |l| {
            format!(
                "{}/s, burst {}",
                s(&l["configuredPerSecond"]),
                s(&l["configuredBurst"])
            )
        });
        let per = &c["requestsPerObjectByOperation"];
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} ({} + {}) | {} | {} | {} | {} | {} |",
            s(&c["label"]),
            s(&c["objects"]),
            limit,
            s(&c["applySeconds"]),
            s(&c["convergeSeconds"]),
            s(&c["objectsPerSecond"]),
            s(&c["smapiRequestsPerObject"]),
            s(&per["GetAccountLinking"]),
            s(&per["UpdateAccountLinking"]),
            s(&c["requestsByOperation"]["Token"]),
            s(&c["maxRequestsInAnySecond"]),
            s(&c["operatorCpuSeconds"]),
            s(&c["cpuMsPerReconcile"]),
            s(&c["benchProcessCpuSeconds"])
        );
    }
    if let Some(c) = limited {
        let l = &c["rateLimit"];
        let _ = writeln!(
            o,
            "\nWith `--api-rate-limit {} --api-burst {}` (N = {} so that the run stays near a minute: {} SMAPI requests at {}/s), the simulator saw {} requests/s on average while requests were pending ({:.1} % of the limit) and {} requests/s from the first create to the last Ready ({:.1} %); at most {} in any second (budget {}). The simulator itself did not limit this run.\n",
            s(&l["configuredPerSecond"]),
            s(&l["configuredBurst"]),
            s(&c["objects"]),
            s(&c["smapiRequests"]),
            s(&l["configuredPerSecond"]),
            s(&l["achievedPerSecondWhileSending"]),
            f(&l["fractionUsedWhileSending"]) * 100.0,
            s(&l["achievedPerSecondApplyToReady"]),
            f(&l["fractionUsedApplyToReady"]) * 100.0,
            s(&c["maxRequestsInAnySecond"]),
            s(&l["budgetForOneSecond"])
        );
    }
    let _ = writeln!(
        o,
        "\nKubernetes API requests during convergence (all clients: the operator, the benchmark's creates and its readiness watch), per object:\n"
    );
    let _ = writeln!(o, "| run | requests by kind |\n|---|---|");
    for c in &conv {
        if let (Some(k), Some(n)) = (c["kubeRequests"].as_object(), c["objects"].as_f64()) {
            let parts: Vec<String> = k
                .iter()
                .map(|(key, v)| format!("{key} {:.2}", f(v) / n))
                .collect();
            let _ = writeln!(o, "| {} | {} |", s(&c["label"]), parts.join(", "));
        }
    }
    let _ = writeln!(o);

    // 2.
    let _ = writeln!(o, "## 2. Steady state\n");
    let _ = writeln!(
        o,
        "After a run converged, with a short `--resync-period` (each object's next resync is jittered by ±10 %): every object's first resync must fall inside one window and its second one cannot start before 1.8 periods after the first object became Ready, so the request log is checked in three windows (this needs all objects Ready within 0.6 periods).\n"
    );
    if steady_runs.is_empty() {
        let _ = writeln!(o, "Not measured in this run.\n");
    }
    for c in &steady_runs {
        let st = &c["steadyState"];
        if st.get("gets").is_none() {
            let _ = writeln!(
                o,
                "N = {}: not measured: {}\n",
                s(&c["objects"]),
                s(&st["skipped"])
            );
            continue;
        }
        let _ = writeln!(
            o,
            "N = {}, `--resync-period {}s`, all objects Ready within {} s:\n",
            s(&c["objects"]),
            s(&st["periodSeconds"]),
            s(&st["readySpreadSeconds"])
        );
        let _ = writeln!(
            o,
            "| window | length (s) | GET | PUT | other calls | expected |\n|---|---|---|---|---|---|"
        );
        let _ = writeln!(
            o,
            "| after convergence, before any resync is due | {} | {} calls in total | | | 0 calls |",
            s(&st["quietWindowBeforeSeconds"]),
            s(&st["callsInQuietWindowBefore"])
        );
        let _ = writeln!(
            o,
            "| the resync wave | {} | {} ({} objects once, {} more than once) | {} | {} | N GETs, 0 PUTs |",
            s(&st["waveWindowSeconds"]),
            s(&st["gets"]),
            s(&st["objectsResyncedOnce"]),
            s(&st["objectsResyncedMoreThanOnce"]),
            s(&st["puts"]),
            s(&st["otherCalls"])
        );
        let _ = writeln!(
            o,
            "| after the wave, before the next one is due | {} | {} calls in total | | | 0 calls |",
            s(&st["quietWindowAfterSeconds"]),
            s(&st["callsInQuietWindowAfter"])
        );
        let _ = writeln!(
            o,
            "\nCPU per resync: {} ms. Kubernetes API requests during the wave: {}.\n",
            s(&st["cpuMsPerResync"]),
            s(&st["kubeRequestsDuringWave"])
        );
    }
    // 3.
    let _ = writeln!(o, "## 3. Memory and CPU\n");
    let _ = writeln!(
        o,
        "VmHWM (peak) and VmRSS (settled, 10 s after convergence and after the steady-state windows) of the operator process from `/proc/<pid>/status`; CPU time (utime + stime from `/proc/<pid>/stat`) over the convergence, divided by the reconciles counted by `alexa_operator_reconciles_total` (one per object; the finalizer-adding first pass is not counted there).\n"
    );
    let _ = writeln!(
        o,
        "| objects | peak RSS (MiB) | settled RSS (MiB) | goal (MiB) | CPU ms per reconcile | CPU ms per object |\n|---|---|---|---|---|---|"
    );
    if idle.get("peakRssMiB").is_some() {
        let _ = writeln!(
            o,
            "| 0 | {} | {} | 20 | – | – |",
            s(&idle["peakRssMiB"]),
            s(&idle["settledRssMiB"])
        );
    }
    for c in conv
        .iter()
        .filter(|c| c.get("rateLimit").is_none() && c.get("peakRssMiB").is_some())
    {
        let goal = match c["objects"].as_u64() {
            Some(1000) => "40",
            Some(10000) => "100",
            _ => "–",
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            s(&c["objects"]),
            s(&c["peakRssMiB"]),
            s(&c["settledRssMiB"]),
            goal,
            s(&c["cpuMsPerReconcile"]),
            s(&c["cpuMsPerObject"])
        );
    }
    let _ = writeln!(o);

    // 4.
    let _ = writeln!(o, "## 4. Throttling discipline\n");
    if t.get("requestsInWindow").is_some() {
        let _ = writeln!(
            o,
            "{} objects are created into an operator with a budget of {}/s (burst {}) while the simulator allows only {}/s (burst {}) per client and answers 429 with `Retry-After: {}` beyond that, for a window of {} s; then the limit is lifted.\n",
            s(&t["objects"]),
            s(&t["operatorBudgetPerSecond"]),
            s(&t["operatorBurst"]),
            s(&t["simulatorLimit"]["perSecond"]),
            s(&t["simulatorLimit"]["burst"]),
            s(&t["simulatorLimit"]["retryAfterSeconds"]),
            s(&t["windowSeconds"])
        );
        let _ = writeln!(o, "| measure | value |\n|---|---|");
        for (label, key) in [
            ("requests during the window", "requestsInWindow"),
            ("answered 429", "answered429InWindow"),
            ("succeeded", "succeededInWindow"),
            (
                "max requests in any 1 s of the window",
                "maxRequestsInAnySecondInWindow",
            ),
            (
                "configured budget for 1 s (rate + burst)",
                "budgetRequestsPerSecond",
            ),
            (
                "requests arriving inside a Retry-After (after the in-flight grace)",
                "requestsInsideRetryAfter",
            ),
            (
                "requests already in flight when a 429 was answered",
                "requestsInFlightWhen429Sent",
            ),
            ("objects Ready when the window ended", "readyAtWindowEnd"),
            (
                "first success after the window (s)",
                "firstSuccessAfterWindowSeconds",
            ),
            ("window end → all Ready (s)", "recoverSeconds"),
            (
                "max requests in any 1 s after the window",
                "maxRequestsInAnySecondAfterWindow",
            ),
        ] {
            let _ = writeln!(o, "| {label} | {} |", s(&t[key]));
        }
        let _ = writeln!(
            o,
            "\nNot Ready at the end of the window, by reason: {}.\n",
            s(&t["notReadyReasonsAtWindowEnd"])
        );
    } else {
        let _ = writeln!(o, "Not measured: {}\n", s(&t["error"]));
    }

    // 5.
    let _ = writeln!(o, "## 5. Fault storm\n");
    if st.get("allReady").is_some() {
        let _ = writeln!(
            o,
            "{} objects are created while the simulator answers {:.0} % of SMAPI requests with 500/503, delays every answer by {} s and drops {:.0} % of connections without an answer, for {} s; the operator is killed with SIGKILL {} s after the creates and started again at once (`--backoff-base {}s --backoff-max {}s`, the defaults). Then the faults are cleared.\n",
            s(&st["objects"]),
            f(&st["errorRate"]) * 100.0,
            s(&st["latencySeconds"]),
            f(&st["dropRate"]) * 100.0,
            s(&st["stormSeconds"]),
            s(&st["killAtSeconds"]),
            s(&st["backoffBaseSeconds"]),
            s(&st["backoffMaxSeconds"])
        );
        let _ = writeln!(o, "| measure | value |\n|---|---|");
        for (label, key) in [
            ("Ready when killed", "readyAtKill"),
            ("restarted process synced (s)", "restartSyncSeconds"),
            ("Ready when the storm ended", "readyAtStormEnd"),
            ("storm end → all Ready (s)", "recoverSecondsAfterStorm"),
            ("create → all Ready (s)", "totalSecondsApplyToReady"),
            ("stuck objects", "stuck"),
            ("SMAPI requests", "smapiRequests"),
            ("failed requests (5xx, dropped, 429)", "failedRequests"),
            ("objects that saw a failure", "objectsWithFailures"),
            (
                "objects with more than one successful PUT",
                "objectsWithDuplicateUpdates",
            ),
            (
                "… of which first PUT before the kill, the repeat after it",
                "duplicatesAcrossKill",
            ),
            ("objects never updated", "objectsNeverUpdated"),
            (
                "configurations on Amazon that differ from the spec",
                "configMismatches",
            ),
            (
                "most calls for one object in any 10 s",
                "maxCallsForOneObjectIn10s",
            ),
        ] {
            let _ = writeln!(o, "| {label} | {} |", s(&st[key]));
        }
        let _ = writeln!(
            o,
            "\nNot Ready at the end of the storm, by reason: {}.\n",
            s(&st["notReadyReasonsAtStormEnd"])
        );
        let hist = |v: &Value| -> String {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| format!("{}: {}", s(&p[0]), s(&p[1])))
                        .collect::<Vec<_>>()
                        .join(" · ")
                })
                .unwrap_or_default()
        };
        if let Some(ex) = st["duplicateExamples"].as_array().filter(|a| !a.is_empty()) {
            let _ = writeln!(
                o,
                "Objects with a second successful PUT (that skill's requests: time relative \
                 to the kill, method, status):\n"
            );
            for e in ex {
                let seq: Vec<String> = e["requestsRelativeToKill"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default();
                let _ = writeln!(o, "* `{}`: {}", s(&e["skill"]), seq.join(" → "));
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(
            o,
            "Calls per object (calls: objects): {}\n",
            hist(&st["callsPerObjectHistogram"])
        );
        let _ = writeln!(
            o,
            "PUT attempts per object: {}\n",
            hist(&st["putAttemptsPerObjectHistogram"])
        );
        let _ = writeln!(
            o,
            "Successful PUTs per object: {}\n",
            hist(&st["successfulPutsPerObjectHistogram"])
        );
        let _ = writeln!(
            o,
            "Delay before the next call of an object after a failed call (arrival to arrival, minus the injected latency; across the kill left out), seconds: {}\n",
            hist(&st["retryDelayHistogram"])
        );
        let _ = writeln!(
            o,
            "The same by the number of consecutive failed calls of that object. Each failed call is retried inside the reconcile up to twice after a full-jitter delay (uniform in [0, min(max, base · 2^(k−1))]); after the third failure the reconcile fails and the object is requeued with the same schedule on its failure count, so the back-off after k failures is at most the cap in the last column and about half of it on average. A measured gap is back-off plus any wait for one of the 16 reconcile slots (every call takes 2 s during the storm), so it may exceed the cap; a hot loop would show as many gaps far below the mean:\n"
        );
        let _ = writeln!(
            o,
            "| consecutive failures | retries | mean (s) | p50 (s) | p90 (s) | max (s) | cap base · 2^(k−1) (s) |\n|---|---|---|---|---|---|---|"
        );
        if let Some(rows) = st["retryDelayByConsecutiveFailures"].as_array() {
            for row in rows {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    s(&row["consecutiveFailures"]),
                    s(&row["retries"]),
                    s(&row["meanDelaySeconds"]),
                    s(&row["p50DelaySeconds"]),
                    s(&row["p90DelaySeconds"]),
                    s(&row["maxDelaySeconds"]),
                    s(&row["backoffCapSeconds"])
                );
            }
        }
        let _ = writeln!(o);
    } else {
        let _ = writeln!(o, "Not measured: {}\n", s(&st["error"]));
    }

    // 6.
    let _ = writeln!(o, "## 6. Side by side with the ASK CLI\n");
    if a.get("speedup").is_some() {
        let _ = writeln!(
            o,
            "The same {} account-linking configurations applied by `ask smapi update-account-linking-info` (ask-cli {} on Node {}, installed by `bench/install-ask-cli.sh`, one process per skill in a shell loop, pointed at the simulator with `ASK_SMAPI_SERVER_BASE_URL` / `ASK_LWA_TOKEN_HOST` and an environment profile in a temporary `HOME`) and by the operator (from the first create to all Ready; its process was already running and synced).\n",
            s(&a["objects"]),
            s(&a["askCliVersion"]),
            s(&a["node"])
        );
        let _ = writeln!(
            o,
            "| client | time (s) | per configuration (s) | requests to Amazon | by operation | configurations wrong |\n|---|---|---|---|---|---|"
        );
        let ask = &a["askCli"];
        let op = &a["operator"];
        let _ = writeln!(
            o,
            "| ASK CLI loop | {} | {} | {} | {} | {} |",
            s(&ask["seconds"]),
            s(&ask["secondsPerConfiguration"]),
            s(&ask["requests"]),
            s(&ask["requestsByOperation"]),
            s(&ask["configMismatches"])
        );
        let per = f(&op["seconds"]) / f(&a["objects"]);
        let _ = writeln!(
            o,
            "| operator | {} | {:.4} | {} | {} | {} |",
            s(&op["seconds"]),
            per,
            s(&op["requests"]),
            s(&op["requestsByOperation"]),
            s(&op["configMismatches"])
        );
        let _ = writeln!(
            o,
            "\nThe operator is **{}×** faster ({}× if its own start-up, {} s, is counted too). It sends more requests per configuration (it reads the current state first and reads it back after writing, so it never writes what is already there and can report the redirect URLs), but fetches one LWA token for all of them where the CLI fetches one per invocation.\n",
            s(&a["speedup"]),
            s(&a["speedupIncludingOperatorStartup"]),
            s(&op["secondsIncludingStartup"])
        );
    } else {
        let _ = writeln!(o, "Not measured: {}\n", s(&a["error"]));
    }
    noisy_section(&mut o, nn);
    crate::adaptive::section(&mut o, &r["adaptiveRate"]);
    crate::scale::markdown(&mut o, &r["scale"]);
    if !analysis.trim().is_empty() {
        let _ = writeln!(o, "{}", analysis.trim_end());
    }
    o
}

/// Section 7, when it ran.
fn noisy_section(o: &mut String, nn: &Value) {
    if nn.is_null() {
        return;
    }
    let _ = writeln!(
        o,
        "## 7. Noisy neighbour
"
    );
    if nn.get("withNoisy").is_none() {
        let _ = writeln!(o, "Not measured: {}\n", s(&nn["error"]));
        return;
    }
    let _ = writeln!(
        o,
        "{} tenants (developer accounts, each with its own credentials Secret and LWA client) with {} SkillAccountLinking objects each are created at once into one operator (`--concurrency 16`, the default; `--api-rate-limit {}`, `--api-burst {}`, so each tenant's own budget bounds its time rather than the shared CPU; the 10 s in-call wait bound). In every second run the simulator answers every API request of tenant 0 with 429 and `Retry-After: {}` for {} s (`--throttle-client`).\n",
        s(&nn["tenants"]),
        s(&nn["objectsPerTenant"]),
        s(&nn["operatorBudgetPerSecond"]),
        s(&nn["operatorBurst"]),
        s(&nn["retryAfterSeconds"]),
        s(&nn["windowSeconds"])
    );
    if let Some(note) = nn["note"].as_str() {
        let _ = writeln!(o, "{note}\n");
    }
    let empty = Vec::new();
    let without = nn["withoutNoisy"].as_array().unwrap_or(&empty);
    let with = nn["withNoisy"].as_array().unwrap_or(&empty);
    let _ = writeln!(
        o,
        "Runs alternate (without, with, …) so load from other processes on the machine hits both alike.\n"
    );
    let mut header = String::from("| measure |");
    let mut rule = String::from("|---|");
    for i in 0..without.len().min(with.len()) {
        let _ = write!(header, " without #{} | with #{} |", i + 1, i + 1);
        rule.push_str("---|---|");
    }
    let _ = writeln!(o, "{header}\n{rule}");
    let row = |o: &mut String, label: &str, get: &dyn Fn(&Value) -> String| {
        let mut line = format!("| {label} |");
        for (a, b) in without.iter().zip(with.iter()) {
            let _ = write!(line, " {} | {} |", get(a), get(b));
        }
        let _ = writeln!(o, "{line}");
    };
    for (label, key) in [
        ("load average at start", "loadAverageAtStart"),
        (
            "other tenants: create → all Ready (s)",
            "quietTenantsAllReadySeconds",
        ),
        ("every object: create → all Ready (s)", "allReadySeconds"),
        ("requests of the other tenants", "quietTenantRequests"),
        (
            "operator's throttled waits (metric)",
            "operatorThrottledWaits",
        ),
    ] {
        row(o, label, &|r: &Value| s(&r[key]));
    }
    for (label, key) in [
        ("tenant 0: requests", "requests"),
        ("tenant 0: answered 429", "answered429"),
        (
            "tenant 0: requests inside a Retry-After, after the in-flight grace",
            "requestsInsideRetryAfter",
        ),
        ("… ms after the 429", "insideRetryAfterMsAfterThe429"),
        (
            "tenant 0: requests within the grace after a 429 (in flight)",
            "requestsInFlightWhen429Sent",
        ),
        (
            "tenant 0: 429 waves at (s after the creates)",
            "secondsOf429Waves",
        ),
    ] {
        row(o, label, &|r: &Value| s(&r["noisy"][key]));
    }
    let b = with.last().unwrap_or(&Value::Null);
    let _ = writeln!(
        o,
        "\nOn average the other tenants were {} % slower next to the throttled one. Not Ready at the end of the last run with it: {}.\n",
        s(&nn["quietSlowdownPercent"]),
        match b["notReadyAtEnd"].as_object() {
            Some(m) if m.is_empty() => "none".to_string(),
            _ => s(&b["notReadyAtEnd"]),
        }
    );
}
