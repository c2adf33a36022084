//! Section 6: the official ASK CLI applying the same account-linking configurations one
//! `ask smapi update-account-linking-info` at a time, against the operator.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alexa_simulator::{Operation, sandbox};
use serde_json::{Value, json};

use crate::env::{Env, ask_cli_request, skill_id};
use crate::proc::OperatorProc;
use crate::util::{round, secs};
use crate::{BoxResult, Ctx};

fn ask_binary(ctx: &Ctx) -> PathBuf {
    ctx.root.join("target/bench/ask-cli/node_modules/.bin/ask")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Installs the CLI with bench/install-ask-cli.sh when it is not there yet.
async fn ensure_installed(ctx: &Ctx) -> Result<String, String> {
    let ask = ask_binary(ctx);
    if !ask.exists() {
        eprintln!("    installing ask-cli with bench/install-ask-cli.sh (npm)");
        let out = tokio::process::Command::new("bash")
            .arg(ctx.root.join("bench/install-ask-cli.sh"))
            .output()
            .await
            .map_err(|e| format!("cannot run bench/install-ask-cli.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "bench/install-ask-cli.sh failed ({}):\n{}\n{}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stdout), 10),
                tail(&String::from_utf8_lossy(&out.stderr), 20)
            ));
        }
    }
    let out = tokio::process::Command::new(&ask)
        .arg("--version")
        .env("ASK_SHARE_USAGE", "false")
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", ask.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`ask --version` failed: {}",
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub async fn ask_cli(n: usize, ctx: &Ctx) -> BoxResult<Value> {
    eprintln!("\n==> ASK CLI side by side: {n} account-linking configurations");
    let version = match ensure_installed(ctx).await {
        Ok(v) => v,
        Err(why) => {
            eprintln!("    ASK CLI unavailable: {why}");
            return Ok(json!({"objects": n, "installed": false, "error": why}));
        }
    };
    let node = tokio::process::Command::new("node")
        .arg("--version")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    eprintln!("    ask-cli {version} on node {node}");

    // ASK CLI: one process per configuration, as a shell loop would run it.
    let dir = ctx.work.join("run-ask-cli");
    let env = Env::start(n, 50_000, &dir).await?;
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    let ask = ask_binary(ctx);
    let mut script = String::from("set -u\nfail=0\n");
    for i in 0..n {
        script.push_str(&format!(
            "\"$ASK\" smapi update-account-linking-info -s {} -g development --account-linking-request '{}' >>\"$OUT\" 2>&1 || fail=$((fail+1))\n",
            skill_id(i),
            ask_cli_request(i)
        ));
    }
    script.push_str("echo \"failures: $fail\"\n[ \"$fail\" = 0 ]\n");
    let script_path = dir.join("ask-loop.sh");
    std::fs::write(&script_path, &script)?;
    let out_path = dir.join("ask-cli.out");
    let t0 = Instant::now();
    let out = tokio::process::Command::new("bash")
        .arg(&script_path)
        .env("ASK", &ask)
        .env("OUT", &out_path)
        .env("HOME", &home)
        .env("ASK_SHARE_USAGE", "false")
        .env("AWS_ACCESS_KEY_ID", "dummy")
        .env("AWS_SECRET_ACCESS_KEY", "dummy")
        .env("ASK_LWA_CLIENT_ID", sandbox::CLIENT_ID)
        .env("ASK_LWA_CLIENT_CONFIRMATION", sandbox::CLIENT_SECRET)
        .env("ASK_REFRESH_TOKEN", sandbox::REFRESH_TOKEN)
        .env("ASK_VENDOR_ID", sandbox::VENDOR_ID)
        .env("ASK_SMAPI_SERVER_BASE_URL", env.sim.url())
        .env("ASK_LWA_TOKEN_HOST", env.sim.url())
        .output()
        .await?;
    let ask_time = t0.elapsed();
    let ask_ok = out.status.success();
    let ask_counts: Vec<(Operation, usize)> = env.counts();
    let ask_total: usize = Operation::ALL
        .iter()
        .filter(|op| **op != Operation::Admin)
        .map(|op| env.sim.count(*op))
        .sum();
    let ask_mismatches = env.config_mismatches().len();
    eprintln!(
        "    ASK CLI: {:.1}s for {n} ({:.2}s each), {ask_total} requests, {ask_mismatches} configurations wrong, {}",
        ask_time.as_secs_f64(),
        ask_time.as_secs_f64() / n as f64,
        String::from_utf8_lossy(&out.stdout).trim()
    );
    if !ask_ok {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        eprintln!("    ASK CLI output (last lines):\n{}", tail(&text, 15));
    }
    env.shutdown().await;

    // The operator, same configurations, fresh servers.
    let dir = ctx.work.join("run-ask-operator");
    let env = Env::start(n, 50_000, &dir).await?;
    let spawned = Instant::now();
    let mut op = OperatorProc::spawn(&env, &[], &dir.join("operator.log")).await?;
    let synced = op.wait_synced(&env, Duration::from_secs(60)).await?;
    env.sim.clear_requests();
    let t0 = Instant::now();
    env.apply(0..n).await?;
    let done = env
        .wait_ready(n, Duration::from_secs(120), "ask-cli operator")
        .await
        .ok_or("operator did not make all objects Ready")?;
    let op_time = done.duration_since(t0);
    let op_counts = env.counts();
    let op_total: usize = Operation::ALL
        .iter()
        .filter(|op| **op != Operation::Admin)
        .map(|op| env.sim.count(*op))
        .sum();
    let op_mismatches = env.config_mismatches().len();
    op.stop().await?;
    env.shutdown().await;
    let ratio = ask_time.as_secs_f64() / op_time.as_secs_f64();
    let with_start = done.duration_since(spawned);
    let ratio_with_start = ask_time.as_secs_f64() / with_start.as_secs_f64();
    eprintln!(
        "    operator: {:.3}s apply→all Ready ({:.2}s including process start and sync), {op_total} requests, \
         {op_mismatches} configurations wrong → {ratio:.0}× faster ({ratio_with_start:.0}× counting its start-up)",
        op_time.as_secs_f64(),
        with_start.as_secs_f64()
    );
    let counts_json = |counts: &[(Operation, usize)]| -> Value {
        Value::Object(
            counts
                .iter()
                .map(|(op, c)| (op.as_str().to_string(), json!(c)))
                .collect(),
        )
    };
    Ok(json!({
        "objects": n,
        "installed": true,
        "askCliVersion": version,
        "node": node,
        "askCli": {
            "seconds": secs(ask_time),
            "secondsPerConfiguration": round(ask_time.as_secs_f64() / n as f64, 3),
            "allSucceeded": ask_ok,
            "requests": ask_total,
            "requestsByOperation": counts_json(&ask_counts),
            "configMismatches": ask_mismatches,
        },
        "operator": {
            "seconds": round(op_time.as_secs_f64(), 3),
            "secondsIncludingStartup": secs(with_start),
            "syncSeconds": secs(synced),
            "requests": op_total,
            "requestsByOperation": counts_json(&op_counts),
            "configMismatches": op_mismatches,
        },
        "speedup": round(ratio, 1),
        "speedupIncludingOperatorStartup": round(ratio_with_start, 1),
    }))
}
