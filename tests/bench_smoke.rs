//! Keeps the benchmark (examples/bench.rs) from rotting: runs it with `--smoke` (20 objects,
//! windows of seconds) against the debug operator binary and checks that every section produced
//! its numbers and that the operator converged. Goals are not asserted here: timings on a loaded
//! debug build say nothing; docs/BENCHMARKS.md has the real measurements.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn bench_binary() -> Option<PathBuf> {
    // target/<profile>/deps/bench_smoke-<hash> → target/<profile>/examples/bench
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let bin = profile_dir.join("examples").join("bench");
    bin.exists().then_some(bin)
}

#[test]
fn bench_smoke_run_produces_every_section() -> Result<(), Box<dyn std::error::Error>> {
    let Some(bench) = bench_binary() else {
        return Err(
            "examples/bench was not built: run `cargo test` (which builds examples)".into(),
        );
    };
    let out = tempfile::tempdir()?;
    let started = Instant::now();
    let status = Command::new(&bench)
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .env(
            "BENCH_OPERATOR_BIN",
            env!("CARGO_BIN_EXE_alexa-skill-operator"),
        )
        .status()?;
    let took = started.elapsed();
    assert!(status.success(), "bench --smoke failed: {status}");
    assert!(
        took < Duration::from_secs(120),
        "bench --smoke took {took:?}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(
        out.path().join("BENCHMARKS.json"),
    )?)?;
    let md = std::fs::read_to_string(out.path().join("BENCHMARKS.md"))?;
    for heading in [
        "## 1. Convergence",
        "## 2. Steady state",
        "## 5. Fault storm",
        "## 8. Adaptive rate",
        "## 9. Scale",
    ] {
        assert!(md.contains(heading), "report lacks {heading}");
    }
    let r = &doc["results"];
    let adaptive = r["adaptiveRate"]["runs"]
        .as_array()
        .ok_or("no adaptive-rate runs")?;
    assert!(
        adaptive
            .iter()
            .all(|run| run["accepted"].as_u64() > Some(0)),
        "{adaptive:?}"
    );
    let runs = r["convergence"].as_array().ok_or("no convergence runs")?;
    assert_eq!(runs.len(), 2, "unlimited and rate-limited runs: {runs:?}");
    for run in runs {
        assert_eq!(run["configMismatches"], 0, "{run}");
        assert_eq!(
            run["requestsPerObjectByOperation"]["UpdateAccountLinking"], 1.0,
            "{run}"
        );
        assert!(run["peakRssMiB"].as_f64().is_some_and(|m| m > 0.0), "{run}");
    }
    assert!(runs[0]["steadyState"]["gets"].is_u64(), "{}", runs[0]);
    assert!(r["idle"]["settledRssMiB"].is_f64(), "{}", r["idle"]);
    assert!(
        r["throttling"]["answered429InWindow"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{}",
        r["throttling"]
    );
    assert!(
        r["throttling"]["recoverSeconds"].is_f64(),
        "{}",
        r["throttling"]
    );
    assert_eq!(r["storm"]["allReady"], true, "{}", r["storm"]);
    assert_eq!(r["storm"]["configMismatches"], 0, "{}", r["storm"]);
    let scale = &r["scale"]["runs"][0];
    assert_eq!(scale["restart"]["kubeWrites"], 0, "{scale}");
    assert_eq!(scale["restart"]["amazonGetsPerObject"], 1.0, "{scale}");
    Ok(())
}
