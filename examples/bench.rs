//! Benchmark and fault-storm suite (issue 9): runs the real operator binary as its own process
//! against the Kubernetes API test server and the Alexa API simulator (both in this process) and
//! writes docs/BENCHMARKS.md and docs/BENCHMARKS.json.
//!
//! ```sh
//! bash bench/run.sh                                   # everything, ~15 min on 2 cores
//! cargo run --release --example bench -- --all        # the same, once the release binary exists
//! cargo run --release --example bench -- --section 4  # one section; report to target/bench/report
//! cargo run --release --example bench -- --smoke      # tiny sizes, seconds (tests/bench_smoke.rs)
//! ```
//!
//! Sections: 1 convergence, 2 steady state, 3 memory/CPU, 4 throttling, 5 fault storm,
//! 6 ASK CLI side by side, 7 noisy neighbour, 8 adaptive rate, 9 scale (1k/10k/100k objects,
//! restart). Sections 1–3 share their runs.

#[path = "bench/adaptive.rs"]
mod adaptive;
#[path = "bench/askcli.rs"]
mod askcli;
#[path = "bench/converge.rs"]
mod converge;
#[path = "bench/env.rs"]
mod env;
#[path = "bench/noisy.rs"]
mod noisy;
#[path = "bench/proc.rs"]
mod proc;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/scale.rs"]
mod scale;
#[path = "bench/storm.rs"]
mod storm;
#[path = "bench/throttle.rs"]
mod throttle;
#[path = "bench/util.rs"]
mod util;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use alexa_simulator::RateLimit;
use serde_json::{Value, json};

/// Any section's failure, printed as is.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What every section needs to know.
pub struct Ctx {
    /// Repository root.
    pub root: PathBuf,
    /// Scratch folder for kubeconfigs, operator logs and the ASK CLI's HOME.
    pub work: PathBuf,
    /// The quick variant the test suite runs (tests/bench_smoke.rs): small counts, no ASK CLI.
    pub smoke: bool,
}

struct Args {
    sections: BTreeSet<u8>,
    smoke: bool,
    out: Option<PathBuf>,
    max_n: usize,
    sizes: Option<Vec<usize>>,
    scale_sizes: Option<Vec<usize>>,
    /// Only rewrite BENCHMARKS.md from this BENCHMARKS.json (and bench/analysis.md).
    report_only: Option<PathBuf>,
}

const USAGE: &str = "usage: bench [--all | --section 1,2,...] [--smoke] [--max-n N] [--out DIR]
  --all          every section (1 convergence, 2 steady state, 3 memory, 4 throttling,
                 5 fault storm, 6 ASK CLI, 7 noisy neighbour, 8 adaptive rate, 9 scale);
                 writes docs/BENCHMARKS.{md,json}
  --section L    only these sections (comma-separated); report to target/bench/report
  --smoke        tiny sizes and windows (seconds); report to target/bench/smoke
  --max-n N      largest convergence size (default 10000)
  --sizes L      convergence sizes instead of 100,1000,10000 (experiments)
  --scale-sizes L  section 9's sizes instead of 1000,10000,100000
  --out DIR      where BENCHMARKS.md and BENCHMARKS.json go
  --report-only F  rewrite BENCHMARKS.md next to BENCHMARKS.json F (after editing bench/analysis.md)
environment (experiments; recorded in the report): BENCH_OPERATOR_BIN=PATH,
  BENCH_OPERATOR_ARGS='--flag value ...', BENCH_OPERATOR_ENV='K=V,...', BENCH_RUST_LOG=debug";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sections: BTreeSet::new(),
        smoke: false,
        out: None,
        max_n: 10_000,
        sizes: None,
        scale_sizes: None,
        report_only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--all" => args.sections.extend(1..=9),
            "--section" | "--sections" => {
                let list = it.next().ok_or("--section needs a list")?;
                for s in list.split(',') {
                    let n: u8 = s.trim().parse().map_err(|_| format!("bad section {s:?}"))?;
                    if !(1..=9).contains(&n) {
                        return Err(format!("no section {n}"));
                    }
                    args.sections.insert(n);
                }
            }
            "--smoke" => args.smoke = true,
            "--max-n" => {
                args.max_n = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--max-n needs a number")?;
            }
            "--scale-sizes" => {
                let list = it.next().ok_or("--scale-sizes needs a list")?;
                let sizes: Result<Vec<usize>, _> =
                    list.split(',').map(|v| v.trim().parse()).collect();
                args.scale_sizes = Some(sizes.map_err(|_| format!("bad --scale-sizes {list:?}"))?);
            }
            "--sizes" => {
                let list = it.next().ok_or("--sizes needs a list")?;
                let sizes: Result<Vec<usize>, _> =
                    list.split(',').map(|v| v.trim().parse()).collect();
                args.sizes = Some(sizes.map_err(|_| format!("bad --sizes {list:?}"))?);
            }
            "--report-only" => {
                args.report_only = Some(it.next().ok_or("--report-only needs a JSON file")?.into());
            }
            "--out" => args.out = Some(it.next().ok_or("--out needs a folder")?.into()),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.sections.is_empty() && args.report_only.is_none() {
        if args.smoke {
            args.sections.extend([1, 2, 3, 4, 5, 8, 9]);
        } else {
            return Err(USAGE.to_string());
        }
    }
    Ok(args)
}

/// mimalloc instead of glibc's malloc: the operator's work is many small short-lived
/// allocations (JSON of every watch event and request); profiled at 10,000 objects, malloc and
/// free were a large share of both processes' CPU (docs/BENCHMARKS.md section 9).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bench: finished, some sections failed (see the report)");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one section body, turning an error into `{"error": ...}` so the rest still runs.
async fn guarded(
    results: &mut serde_json::Map<String, Value>,
    key: &str,
    ok: &mut bool,
    fut: impl std::future::Future<Output = BoxResult<Value>>,
) {
    match fut.await {
        Ok(v) => {
            results.insert(key.to_string(), v);
        }
        Err(e) => {
            eprintln!("    {key} FAILED: {e}");
            *ok = false;
            results.insert(key.to_string(), json!({"error": e.to_string()}));
        }
    }
}

async fn run(args: Args) -> BoxResult<bool> {
    alexa_skill_operator::alexa::install_crypto_provider();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Some(json_path) = &args.report_only {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(json_path)?)?;
        let analysis = std::fs::read_to_string(root.join("bench/analysis.md")).unwrap_or_default();
        let md_path = json_path.with_file_name("BENCHMARKS.md");
        std::fs::write(&md_path, report::markdown(&doc, &analysis))?;
        eprintln!("bench: wrote {}", md_path.display());
        return Ok(true);
    }
    let work = root.join(if args.smoke {
        "target/bench/smoke-work"
    } else {
        "target/bench/work"
    });
    std::fs::create_dir_all(&work)?;
    let ctx = Ctx {
        root: root.clone(),
        work,
        smoke: args.smoke,
    };
    let out = args.out.clone().unwrap_or_else(|| {
        if args.smoke {
            root.join("target/bench/smoke")
        } else if args.sections.len() == 8 && args.max_n >= 10_000 {
            root.join("docs")
        } else {
            root.join("target/bench/report")
        }
    });
    let started = Instant::now();
    let machine = report::machine();
    eprintln!(
        "bench: sections {:?}{}; operator binary {}; {}",
        args.sections,
        if args.smoke { " (smoke)" } else { "" },
        proc::operator_binary().display(),
        machine["summary"].as_str().unwrap_or("")
    );
    let mut results = serde_json::Map::new();
    let mut ok = true;
    let s = &args.sections;
    let smoke = args.smoke;

    if s.contains(&1) || s.contains(&2) || s.contains(&3) {
        let sizes: Vec<usize> = if smoke {
            vec![20]
        } else if let Some(sizes) = &args.sizes {
            sizes.clone()
        } else {
            [100, 1_000, 10_000]
                .into_iter()
                .filter(|n| *n <= args.max_n)
                .collect()
        };
        let mut runs = Vec::new();
        for n in sizes {
            // Long enough that every object is Ready within 0.6 periods (see converge.rs).
            let steady = match n {
                _ if !s.contains(&2) => None,
                _ if smoke => Some(Duration::from_secs(4)),
                1_000 => Some(Duration::from_secs(20)),
                10_000 => Some(Duration::from_secs(40)),
                _ => None,
            };
            let cfg = converge::ConvergeCfg {
                n,
                label: format!("unlimited-{n}"),
                rate_limit: None,
                resync: steady,
                timeout: Duration::from_secs(if n >= 10_000 { 600 } else { 180 }),
                settle: Duration::from_secs(if smoke { 1 } else { 10 }),
            };
            let mut one = serde_json::Map::new();
            guarded(
                &mut one,
                &cfg.label,
                &mut ok,
                converge::converge(&cfg, &ctx),
            )
            .await;
            runs.extend(one.into_iter().map(|(_, v)| v));
            save_partial(&ctx, &results, &runs);
        }
        if s.contains(&1) {
            let n = if smoke { 20 } else { 1_000.min(args.max_n) };
            let cfg = converge::ConvergeCfg {
                n,
                label: format!("limited-{n}"),
                rate_limit: Some((50.0, 10)),
                resync: None,
                timeout: Duration::from_secs(300),
                settle: Duration::from_secs(1),
            };
            let mut one = serde_json::Map::new();
            guarded(&mut one, "limited", &mut ok, converge::converge(&cfg, &ctx)).await;
            runs.extend(one.into_iter().map(|(_, v)| v));
        }
        results.insert("convergence".into(), Value::Array(runs));
        if s.contains(&3) {
            let wait = Duration::from_secs(if smoke { 1 } else { 10 });
            guarded(
                &mut results,
                "idle",
                &mut ok,
                converge::idle_memory(&ctx, wait),
            )
            .await;
        }
        save_partial(&ctx, &results, &[]);
    }
    if s.contains(&4) {
        let cfg = if smoke {
            throttle::ThrottleCfg {
                n: 20,
                budget: (50.0, 10),
                sim_limit: RateLimit {
                    per_second: 5.0,
                    burst: 2,
                    retry_after: Duration::from_secs(1),
                },
                window: Duration::from_secs(3),
                timeout: Duration::from_secs(30),
            }
        } else {
            throttle::ThrottleCfg {
                n: 500,
                budget: (50.0, 10),
                sim_limit: RateLimit {
                    per_second: 20.0,
                    burst: 5,
                    retry_after: Duration::from_secs(2),
                },
                window: Duration::from_secs(20),
                timeout: Duration::from_secs(180),
            }
        };
        guarded(
            &mut results,
            "throttling",
            &mut ok,
            throttle::throttle(&cfg, &ctx),
        )
        .await;
        save_partial(&ctx, &results, &[]);
    }
    if s.contains(&5) {
        let cfg = if smoke {
            storm::StormCfg {
                n: 20,
                error_rate: 0.3,
                latency: Duration::from_millis(200),
                drop_rate: 0.05,
                storm: Duration::from_secs(4),
                kill_at: Duration::from_secs(2),
                backoff: (Duration::from_millis(100), Duration::from_secs(1)),
                timeout: Duration::from_secs(30),
            }
        } else {
            storm::StormCfg {
                n: 1_000,
                error_rate: 0.3,
                latency: Duration::from_secs(2),
                drop_rate: 0.05,
                storm: Duration::from_secs(60),
                kill_at: Duration::from_secs(25),
                backoff: (Duration::from_secs(1), Duration::from_secs(300)),
                timeout: Duration::from_secs(400),
            }
        };
        guarded(&mut results, "storm", &mut ok, storm::storm(&cfg, &ctx)).await;
        save_partial(&ctx, &results, &[]);
    }
    if s.contains(&6) {
        let n = if smoke { 5 } else { 100 };
        guarded(&mut results, "askCli", &mut ok, askcli::ask_cli(n, &ctx)).await;
        save_partial(&ctx, &results, &[]);
    }
    if s.contains(&7) {
        let cfg = if smoke {
            noisy::NoisyCfg {
                tenants: 3,
                per_tenant: 5,
                retry_after: Duration::from_secs(3),
                window: Duration::from_secs(6),
                timeout: Duration::from_secs(60),
                budget: (5.0, 10),
                pairs: 1,
            }
        } else {
            noisy::NoisyCfg {
                tenants: 10,
                per_tenant: 100,
                retry_after: Duration::from_secs(60),
                window: Duration::from_secs(120),
                timeout: Duration::from_secs(480),
                budget: (3.0, 10),
                pairs: 2,
            }
        };
        guarded(
            &mut results,
            "noisyNeighbour",
            &mut ok,
            noisy::noisy(&cfg, &ctx),
        )
        .await;
    }
    if s.contains(&9) {
        let cfg = scale::ScaleCfg {
            sizes: match (&args.scale_sizes, smoke) {
                (Some(sizes), _) => sizes.clone(),
                (None, true) => vec![30],
                (None, false) => vec![1_000, 10_000, 100_000],
            },
            timeout: Duration::from_secs(if smoke { 60 } else { 1_800 }),
        };
        guarded(&mut results, "scale", &mut ok, scale::scale(&cfg, &ctx)).await;
        save_partial(&ctx, &results, &[]);
    }

    if s.contains(&8) {
        guarded(
            &mut results,
            "adaptiveRate",
            &mut ok,
            adaptive::adaptive(&adaptive_cfg(smoke), &ctx),
        )
        .await;
        save_partial(&ctx, &results, &[]);
    }

    let total = started.elapsed();
    let doc = json!({
        "date": report::today(),
        "command": if smoke { "cargo run --release --example bench -- --smoke" } else { "bash bench/run.sh" },
        "sections": args.sections.iter().collect::<Vec<_>>(),
        "smoke": smoke,
        "totalSeconds": util::secs(total),
        "machine": machine,
        "operatorBinary": proc::operator_binary().display().to_string(),
        "operatorExtraArgs": std::env::var("BENCH_OPERATOR_ARGS").unwrap_or_default(),
        "operatorExtraEnv": std::env::var("BENCH_OPERATOR_ENV").unwrap_or_default(),
        "results": Value::Object(results),
    });
    std::fs::create_dir_all(&out)?;
    let json_path = out.join("BENCHMARKS.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc)? + "\n")?;
    let analysis = std::fs::read_to_string(root.join("bench/analysis.md")).unwrap_or_default();
    let md_path = out.join("BENCHMARKS.md");
    std::fs::write(&md_path, report::markdown(&doc, &analysis))?;
    eprintln!(
        "\nbench: done in {:.0}s; wrote {} and {}",
        total.as_secs_f64(),
        md_path.display(),
        json_path.display()
    );
    Ok(ok)
}

fn save_partial(ctx: &Ctx, results: &serde_json::Map<String, Value>, runs: &[Value]) {
    let doc = json!({"results": results, "convergenceSoFar": runs});
    if let Ok(text) = serde_json::to_string_pretty(&doc) {
        let _ = std::fs::write(ctx.work.join("partial.json"), text);
    }
}

/// Section 8's grid: R = 5, 20, 50 requests/s with Retry-After 1 s (60 s runs) and 10 s (180 s
/// runs: the search for the limit is over in the first half); one 6 s run for the smoke test.
fn adaptive_cfg(smoke: bool) -> adaptive::AdaptiveCfg {
    let run = |rate: f64, retry_after: u64, window: u64| adaptive::AdaptiveRun {
        rate,
        retry_after: Duration::from_secs(retry_after),
        window: Duration::from_secs(window),
    };
    let runs = if smoke {
        vec![run(5.0, 1, 6)]
    } else {
        let mut runs: Vec<_> = [5.0, 20.0, 50.0].map(|r| run(r, 1, 60)).into();
        runs.extend([5.0, 20.0, 50.0].map(|r| run(r, 10, 180)));
        runs
    };
    adaptive::AdaptiveCfg {
        runs,
        burst: 5,
        ceiling: (100.0, 10),
    }
}
