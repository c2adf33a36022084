//! The operator as its own process (so its memory and CPU time can be read from /proc): spawn,
//! readiness, metrics, SIGKILL and SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::BoxResult;
use crate::env::Env;

/// Memory and CPU of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStat {
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size since start, KiB.
    pub hwm_kib: u64,
    /// User + system CPU time since start.
    pub cpu: Duration,
}

impl ProcStat {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Reads VmRSS, VmHWM and utime+stime of `pid`.
pub fn proc_stat(pid: u32) -> BoxResult<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start with field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let total = ticks(11) + ticks(12);
    let hz = clock_ticks().max(1);
    Ok(ProcStat {
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
        cpu: Duration::from_millis(total * 1000 / hz),
    })
}

/// Path of the operator binary: `BENCH_OPERATOR_BIN`, else the release build.
pub fn operator_binary() -> PathBuf {
    match std::env::var_os("BENCH_OPERATOR_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/alexa-skill-operator"),
    }
}

/// `BENCH_OPERATOR_ENV="K=V,K2=V2"`: extra environment for the operator process (for
/// experiments such as `MALLOC_ARENA_MAX=2`; recorded in the report).
pub fn extra_env() -> Vec<(String, String)> {
    std::env::var("BENCH_OPERATOR_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `BENCH_OPERATOR_ARGS="--flag value ..."`: extra operator flags for every run (experiments).
pub fn extra_args() -> Vec<(String, String)> {
    let text = std::env::var("BENCH_OPERATOR_ARGS").unwrap_or_default();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].to_string(), c[1].to_string()))
        .collect()
}

/// A running operator process.
pub struct OperatorProc {
    child: Child,
    pub pid: u32,
    pub metrics_url: String,
    pub started: Instant,
    /// Whether `/readyz` ever answered 200.
    pub readyz_ok: bool,
    http: reqwest::Client,
}

fn free_port() -> BoxResult<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl OperatorProc {
    /// Starts `alexa-skill-operator run` against the environment's API server and simulator.
    /// `extra` replaces or adds flags (`--flag value`).
    pub async fn spawn(env: &Env, extra: &[(&str, &str)], log: &Path) -> BoxResult<OperatorProc> {
        let bin = operator_binary();
        if !bin.exists() {
            return Err(format!(
                "{} not found: run `cargo build --release` first (bench/run.sh does)",
                bin.display()
            )
            .into());
        }
        let port = free_port()?;
        let mut flags: Vec<(String, String)> = vec![
            ("--smapi-url".into(), env.sim.url()),
            ("--lwa-url".into(), env.sim.lwa_token_url()),
            ("--customer-discovery-url".into(), env.sim.url()),
            ("--metrics-addr".into(), format!("127.0.0.1:{port}")),
            ("--resync-period".into(), "1h".into()),
            ("--api-rate-limit".into(), "0".into()),
            ("--shutdown-grace".into(), "5s".into()),
            ("--log-format".into(), "json".into()),
        ];
        let global = extra_args();
        let global_refs: Vec<(&str, &str)> = global
            .iter()
            .map(|(f, v)| (f.as_str(), v.as_str()))
            .collect();
        for (flag, value) in extra.iter().chain(global_refs.iter()) {
            match flags.iter_mut().find(|(f, _)| f == flag) {
                Some(entry) => entry.1 = value.to_string(),
                None => flags.push((flag.to_string(), value.to_string())),
            }
        }
        let overrides: Vec<String> = env
            .sim
            .endpoint_overrides()
            .into_iter()
            .map(|(h, u)| format!("{h}={u}"))
            .collect();
        // wait_synced looks for this process's first watch requests.
        env.kube.clear_requests();
        let mut cmd = Command::new(&bin);
        cmd.arg("run");
        for (flag, value) in &flags {
            cmd.arg(flag).arg(value);
        }
        cmd.arg("--endpoint-override").arg(overrides.join(","));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = cmd
            .env("KUBECONFIG", &env.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            // As the image sets it (Dockerfile): the numbers are the shipped configuration's.
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
            .envs(extra_env())
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("operator exited at once")?;
        Ok(OperatorProc {
            child,
            pid,
            metrics_url: format!("http://127.0.0.1:{port}"),
            started: Instant::now(),
            readyz_ok: false,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// Waits until the operator's watches have synced: `/readyz` answers 200, or (because
    /// `/readyz` never turns ready in this version, see the report) the test API server has
    /// received the operator's cluster-wide watch requests for both kinds, which kube-runtime
    /// sends right after the initial lists were read.
    pub async fn wait_synced(&mut self, env: &Env, timeout: Duration) -> BoxResult<Duration> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("operator exited before it was ready: {status}").into());
            }
            if let Ok(resp) = self
                .http
                .get(format!("{}/readyz", self.metrics_url))
                .send()
                .await
            {
                if resp.status().is_success() {
                    self.readyz_ok = true;
                    return Ok(self.started.elapsed());
                }
            }
            let watching = |plural: &str| {
                let path = format!("/apis/alexa.operator.dev/v1alpha1/{plural}");
                env.kube
                    .requests()
                    .iter()
                    .any(|r| r.verb == "watch" && r.path == path)
            };
            if watching("skillaccountlinkings") && watching("skillenablements") {
                return Ok(self.started.elapsed());
            }
            if start.elapsed() > timeout {
                return Err("operator did not sync its watches in time".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Memory and CPU now.
    pub fn stat(&self) -> BoxResult<ProcStat> {
        proc_stat(self.pid)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> BoxResult<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.metrics_url))
            .send()
            .await?
            .text()
            .await?)
    }

    /// Sum of a metric's samples whose line contains every `filter` (e.g. `kind="SkillAccountLinking"`).
    pub async fn metric_sum(&self, name: &str, filters: &[&str]) -> BoxResult<f64> {
        let text = self.metrics().await?;
        Ok(sum_metric(&text, name, filters))
    }

    /// SIGKILL, as a crashed node or OOM kill would.
    pub async fn kill9(mut self) -> BoxResult<()> {
        self.child.start_kill()?;
        let _ = self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM and wait (SIGKILL after 15 s).
    pub async fn stop(mut self) -> BoxResult<()> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => {
                self.child.start_kill()?;
                let _ = self.child.wait().await;
            }
        }
        Ok(())
    }
}

/// Sum of the samples of metric `name` in Prometheus text whose labels contain every filter.
pub fn sum_metric(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}
