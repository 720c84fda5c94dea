//! The server under test: its release build, start-up and stop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};

use super::*;

pub(crate) struct Server {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) base: String,
    pub(crate) env: Vec<(String, String)>,
    log: PathBuf,
    stopped: bool,
}

impl Server {
    pub(crate) fn start(
        bin: &Path,
        data_dir: &Path,
        extra: &[(String, String)],
    ) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let mut env: Vec<(String, String)> = ["PATH", "HOME"]
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        for (k, v) in [
            ("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}")),
            ("PORTCULLIS_PUBLIC_URL", base.clone()),
            ("PORTCULLIS_DATA_DIR", data_dir.display().to_string()),
            ("RUST_LOG", "warn".into()),
            (
                "PORTCULLIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE",
                "1000000".into(),
            ),
            ("PORTCULLIS_LOGIN_FAILURES_BEFORE_BACKOFF", "1000".into()),
            // The per-client token limit would otherwise be what the OIDC figures measure.
            // The largest allowed (about 16 700 a second) is above what two cores issue.
            (
                "PORTCULLIS_TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE",
                "1000000".into(),
            ),
        ] {
            env.push((k.to_string(), v));
        }
        env.extend(extra.iter().cloned());
        let log = data_dir.join("server.log");
        let file = std::fs::File::create(&log).map_err(|e| format!("server log: {e}"))?;
        let file2 = file.try_clone().map_err(|e| format!("server log: {e}"))?;
        let child = Command::new(bin)
            .arg("serve")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        registry().pids.push(pid);
        Ok(Self {
            child,
            pid,
            base,
            env,
            log,
            stopped: false,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Warnings and errors the server logged, except the expected first-run setup link.
    pub(crate) fn logged_problems(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                (l.contains("WARN") || l.contains("ERROR")) && !l.contains("no administrator yet")
            })
            .map(|l| l.chars().take(240).collect())
            .collect()
    }

    pub(crate) async fn wait_healthy(&mut self, client: &Client) -> Result<Duration, String> {
        let start = Instant::now();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped = true;
                return Err(format!(
                    "server exited during start-up ({status}):\n{}",
                    self.log_tail(20)
                ));
            }
            if let Ok(r) = client.get(self.url("/healthz")).send().await
                && r.status() == StatusCode::OK
            {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "server not healthy after {:?}:\n{}",
            start.elapsed(),
            self.log_tail(20)
        ))
    }

    pub(crate) fn rss_kib(&self) -> Option<u64> {
        read_rss_kib(self.pid)
    }

    /// SIGTERM, then up to 5 s for a graceful exit, then SIGKILL. Returns how long the
    /// graceful stop took, or why it did not happen.
    pub(crate) fn stop(&mut self) -> Result<Duration, String> {
        if self.stopped {
            return Ok(Duration::ZERO);
        }
        self.stopped = true;
        let start = Instant::now();
        let sent = run_cmd(
            Command::new("kill").args(["-TERM", &self.pid.to_string()]),
            None,
            Duration::from_secs(5),
        );
        let result = loop {
            match self.child.try_wait() {
                Ok(Some(s)) if s.success() => break Ok(start.elapsed()),
                Ok(Some(s)) => break Err(format!("exited with {s} after SIGTERM")),
                Ok(None) if start.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break Err(match sent {
                        Ok(_) => "still running 5 s after SIGTERM; killed".to_string(),
                        Err(e) => format!("kill -TERM failed ({e}); killed"),
                    });
                }
                Err(e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break Err(format!("wait failed: {e}"));
                }
            }
        };
        unregister(|r| &mut r.pids, &self.pid);
        result
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The release binary to measure: `BENCH_BIN` when set (another build, say an
/// earlier commit's, measured by this same harness for a before/after in one run),
/// else this tree's, built now.
pub(crate) fn build_release() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("BENCH_BIN").map(PathBuf::from) {
        eprintln!("bench: measuring {}", bin.display());
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("BENCH_BIN {} is not a file", bin.display()))
        };
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("bench: cargo build --release --bin portcullis");
    let status = Command::new(&cargo)
        .args(["build", "--release", "--bin", "portcullis"])
        .current_dir(root)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --release failed ({status})"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join("portcullis");
    if !bin.is_file() {
        return Err(format!("{} not found after the build", bin.display()));
    }
    Ok(bin)
}
