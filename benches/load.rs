//! `cargo bench --bench load`: starts the release binary of portcullis, once on SQLite
//! and once on PostgreSQL + Redis, and measures in one run the figures the README
//! quotes, each against a limit the bench measures itself on the same machine:
//!
//! 1. throughput of a signed-in `GET /account` ÷ throughput of `GET /healthz`, measured
//!    with wrk (`load/wrk.rs`) like every plain request rate here, in turns with
//!    `/healthz` so the machine's drift does not land in the ratio;
//! 2. sign-ins per second ÷ raw argon2id verifications per second (same parameters,
//!    measured in-process while the server is idle);
//! 3. p50/p99/max latency of `GET /account` while sign-ins saturate the CPU;
//! 4. resident memory of the server, idle and at its peak under load;
//! 5. the OpenID Connect endpoints (discovery, JWKS, client_credentials, refresh,
//!    introspection, userinfo), each next to `GET /healthz`, and the cost of a signature
//!    per algorithm (`load/oidc.rs`);
//! 6. on PostgreSQL + Redis, signed-in throughput of three instances against one
//!    (`load/scaling.rs`);
//! 7. with 100 000 users and 1 000 000 audit events seeded, the median time of the
//!    admin user search and audit viewer pages, and memory while the whole log is
//!    exported (`load/admin.rs`).
//!
//! The numbers are printed as measured, flattering or not. Every loop is bounded in count
//! and time; children, temporary directories, the PostgreSQL database and the Redis keys
//! are removed on every exit path (guards, Ctrl-C, and a watchdog for hangs).
//! `BENCH_SKIP_PG=1` skips the PostgreSQL + Redis configuration; `BENCH_ONLY=admin` runs
//! only the administration figures.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use portcullis::auth::password::Hasher;

#[path = "load/admin.rs"]
mod admin;
#[path = "load/oidc.rs"]
mod oidc;
#[path = "load/pg_tls.rs"]
mod pg_tls;
#[path = "load/reference.rs"]
mod reference;
#[path = "load/scaling.rs"]
mod scaling;
#[path = "load/wrk.rs"]
mod wrk;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{COOKIE, HeaderValue, LOCATION};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode, Url};
use wrk::{PAIRED_ROUNDS, PAIRED_TURN_SECS};

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "correct horse battery staple 42";
const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// argon2id parameters of the server's defaults (and of the raw measurement).
const ARGON2_M_KIB: u32 = 19456;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;

const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
const RAW_MEASURE: Duration = Duration::from_secs(5);
/// Concurrent requests for the throughput figure.
const HTTP_CONCURRENCY: usize = 32;
/// Concurrent sign-in clients per core: enough to keep the server's hash queue full.
const SIGNIN_CLIENTS_PER_CORE: usize = 4;
/// The latency probe sends one request this often (about 3 per 10 ms).
const PROBE_EVERY: Duration = Duration::from_millis(3);
const PROBE_MAX_REQUESTS: usize = 5_000;
/// Above this share of the CPU used by other processes in a phase, the report warns.
const OTHERS_WARN: f64 = 0.05;
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(100);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on iterations of any load loop, on top of its deadline.
const MAX_LOOP: u64 = 5_000_000;
/// After this, the watchdog cleans up and exits whatever the bench is doing.
const HARD_DEADLINE: Duration = Duration::from_secs(1500);

const TARGET_THROUGHPUT_SQLITE: f64 = 0.5;
const TARGET_THROUGHPUT_REDIS: f64 = 0.33;
const TARGET_SIGNIN: f64 = 0.9;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_RSS_IDLE_MIB: f64 = 20.0;
const TARGET_RSS_LOAD_MIB: f64 = 64.0;

// ---------------------------------------------------------------------------------------
// Clean-up: guards for the normal path, a registry for the watchdog.

struct Registry {
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
    dbs: Vec<String>,
    redis_prefixes: Vec<String>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: Vec::new(),
    dirs: Vec::new(),
    dbs: Vec::new(),
    redis_prefixes: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn unregister<T: PartialEq>(list: impl FnOnce(&mut Registry) -> &mut Vec<T>, item: &T) {
    let mut r = registry();
    list(&mut r).retain(|x| x != item);
}

/// Last resort (watchdog): kill every child, drop every database, remove every directory.
fn emergency_cleanup() {
    let (pids, dbs, dirs, prefixes) = {
        let mut r = registry();
        (
            std::mem::take(&mut r.pids),
            std::mem::take(&mut r.dbs),
            std::mem::take(&mut r.dirs),
            std::mem::take(&mut r.redis_prefixes),
        )
    };
    for pid in pids {
        let _ = run_cmd(
            Command::new("kill").args(["-KILL", &pid.to_string()]),
            None,
            Duration::from_secs(5),
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    for db in dbs {
        drop_pg_database(&db);
    }
    for p in prefixes {
        delete_redis_keys(&p);
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn start_watchdog() -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < HARD_DEADLINE {
            if flag.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!(
            "bench: still running after {} s; cleaning up and exiting",
            HARD_DEADLINE.as_secs()
        );
        emergency_cleanup();
        std::process::exit(3);
    });
    done
}

/// A fresh data directory, removed on drop.
struct DataDir {
    path: PathBuf,
}

impl DataDir {
    fn create() -> Result<Self, String> {
        let path =
            std::env::temp_dir().join(format!("portcullis-bench-{:016x}", rand::random::<u64>()));
        registry().dirs.push(path.clone());
        std::fs::create_dir(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        unregister(|r| &mut r.dirs, &self.path);
    }
}

/// A PostgreSQL database created for this run, dropped on drop.
struct PgDatabase {
    name: String,
}

impl PgDatabase {
    fn create() -> Result<Self, String> {
        let name = format!("portcullis_bench_{:016x}", rand::random::<u64>());
        registry().dbs.push(name.clone());
        let guard = Self { name };
        let out = run_cmd(
            Command::new("psql").args([
                PG_ADMIN_URL,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atqc",
                &format!("CREATE DATABASE {}", guard.name),
            ]),
            None,
            Duration::from_secs(30),
        )?;
        if !out.ok {
            return Err(format!(
                "psql CREATE DATABASE failed: {}",
                out.stderr.trim()
            ));
        }
        Ok(guard)
    }

    /// Plain TCP on loopback, as the tests connect: see `pg_tls` for why it is said
    /// explicitly and for what TLS costs.
    fn url(&self) -> String {
        self.url_with("disable")
    }

    fn url_with(&self, sslmode: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:5432/{}?sslmode={sslmode}",
            self.name
        )
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        drop_pg_database(&self.name);
        unregister(|r| &mut r.dbs, &self.name);
    }
}

fn drop_pg_database(name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    match run_cmd(
        Command::new("psql").args([PG_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-Atqc", &sql]),
        None,
        Duration::from_secs(30),
    ) {
        Ok(o) if o.ok => {}
        Ok(o) => eprintln!("bench: could not drop database {name}: {}", o.stderr.trim()),
        Err(e) => eprintln!("bench: could not drop database {name}: {e}"),
    }
}

/// The Redis key prefix of this run; its keys are deleted on drop.
struct RedisPrefix {
    prefix: String,
}

impl RedisPrefix {
    fn new() -> Self {
        let prefix = format!("bench{:016x}", rand::random::<u64>());
        registry().redis_prefixes.push(prefix.clone());
        Self { prefix }
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        delete_redis_keys(&self.prefix);
        unregister(|r| &mut r.redis_prefixes, &self.prefix);
    }
}

fn delete_redis_keys(prefix: &str) {
    let pattern = format!("{prefix}:*");
    let keys = match run_cmd(
        Command::new("redis-cli").args(["-u", REDIS_URL, "--scan", "--pattern", &pattern]),
        None,
        Duration::from_secs(30),
    ) {
        Ok(o) if o.ok => o.stdout,
        Ok(o) => {
            eprintln!("bench: redis-cli --scan failed: {}", o.stderr.trim());
            return;
        }
        Err(e) => {
            eprintln!("bench: could not delete Redis keys {pattern}: {e}");
            return;
        }
    };
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    for chunk in keys.chunks(500) {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-u", REDIS_URL, "DEL"]).args(chunk);
        if let Err(e) = run_cmd(&mut cmd, None, Duration::from_secs(30)) {
            eprintln!("bench: redis-cli DEL failed: {e}");
            return;
        }
    }
}

struct CmdOutput {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs a command to completion with a time limit, feeding `stdin` if given.
fn run_cmd(cmd: &mut Command, stdin: Option<&str>, timeout: Duration) -> Result<CmdOutput, String> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits early closes the pipe: its status tells the story.
        let _ = pipe.write_all(input.as_bytes());
    }
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("{program}: {e}")),
        }
    };
    Ok(CmdOutput {
        ok: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------
// The server under test.

struct Server {
    child: Child,
    pid: u32,
    base: String,
    env: Vec<(String, String)>,
    log: PathBuf,
    stopped: bool,
}

impl Server {
    fn start(bin: &Path, data_dir: &Path, extra: &[(String, String)]) -> Result<Self, String> {
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
            ("PORTCULLIS_LOGIN_FAILURES_BEFORE_BACKOFF", "1000000".into()),
            // The per-client token limit would otherwise be what the OIDC figures measure.
            (
                "PORTCULLIS_TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE",
                "100000000".into(),
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Warnings and errors the server logged, except the expected first-run setup link.
    fn logged_problems(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                (l.contains("WARN") || l.contains("ERROR")) && !l.contains("no administrator yet")
            })
            .map(|l| l.chars().take(240).collect())
            .collect()
    }

    async fn wait_healthy(&mut self, client: &Client) -> Result<Duration, String> {
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

    fn rss_kib(&self) -> Option<u64> {
        read_rss_kib(self.pid)
    }

    /// SIGTERM, then up to 5 s for a graceful exit, then SIGKILL. Returns how long the
    /// graceful stop took, or why it did not happen.
    fn stop(&mut self) -> Result<Duration, String> {
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

fn read_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU time counters (clock ticks): the whole machine, and this process plus the server.
#[derive(Clone, Copy)]
struct CpuMark {
    busy: u64,
    total: u64,
    ours: u64,
}

fn cpu_mark(server_pid: u32) -> Option<CpuMark> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    if v.len() < 8 {
        return None;
    }
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    let total = busy + v[3] + v[4];
    let ours = process_cpu("self")? + process_cpu(&server_pid.to_string())?;
    Some(CpuMark { busy, total, ours })
}

/// utime + stime of a process, all its threads included.
fn process_cpu(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// How busy the machine was in a phase, and how much of it was neither the bench nor
/// the server (another build, say): the figures are only as good as this is small.
struct CpuUse {
    phase: &'static str,
    busy: f64,
    others: f64,
}

struct CpuWatch {
    pid: u32,
    phase: &'static str,
    start: Option<CpuMark>,
}

impl CpuWatch {
    fn start(pid: u32, phase: &'static str) -> Self {
        Self {
            pid,
            phase,
            start: cpu_mark(pid),
        }
    }

    fn finish(self, into: &mut Vec<CpuUse>) {
        if let (Some(a), Some(b)) = (self.start, cpu_mark(self.pid)) {
            let total = b.total.saturating_sub(a.total) as f64;
            if total > 0.0 {
                let busy = b.busy.saturating_sub(a.busy) as f64;
                let ours = b.ours.saturating_sub(a.ours) as f64;
                into.push(CpuUse {
                    phase: self.phase,
                    busy: busy / total,
                    others: (busy - ours) / total,
                });
            }
        }
    }
}

/// Samples the server's RSS every 100 ms on its own thread, keeping the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(read_rss_kib(pid).unwrap_or(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let handle = std::thread::spawn(move || {
            // 100 ms × 1200 = 2 minutes at most.
            for _ in 0..1200 {
                if let Some(kib) = read_rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                if s.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(RSS_SAMPLE_EVERY);
            }
        });
        Self { stop, peak, handle }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        self.peak.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------
// HTTP.

fn plain_client() -> Result<Client, String> {
    Client::builder()
        .redirect(Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(HTTP_CONCURRENCY)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("http client: {e}"))
}

fn csrf_from(html: &str) -> Result<String, String> {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse(r#"input[name="csrf_token"]"#)
        .map_err(|e| format!("selector: {e}"))?;
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr("value"))
        .map(str::to_string)
        .ok_or_else(|| "no csrf_token input on /login".to_string())
}

/// Creates the bench's user (EMAIL / PASSWORD, verified, with `roles`) through the CLI,
/// with the server's own environment.
fn create_bench_user(bin: &Path, server: &Server, roles: &[&str]) -> Result<(), String> {
    let mut cli = Command::new(bin);
    cli.args(["user", "create", "--email", EMAIL, "--verified"]);
    for r in roles {
        cli.args(["--role", r]);
    }
    cli.env_clear().envs(server.env.iter().map(|(k, v)| (k, v)));
    let out = run_cmd(
        &mut cli,
        Some(&format!("{PASSWORD}\n")),
        Duration::from_secs(60),
    )?;
    if !out.ok {
        return Err(format!(
            "portcullis user create failed: {}{}",
            out.stdout.trim(),
            out.stderr.trim()
        ));
    }
    Ok(())
}

/// Signs in like a browser (cookie jar, form token); returns the signed-in Cookie header.
async fn sign_in(server: &Server) -> Result<HeaderValue, String> {
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let page = client
        .get(server.url("/login"))
        .send()
        .await
        .map_err(|e| format!("GET /login: {e}"))?;
    if page.status() != StatusCode::OK {
        return Err(format!("GET /login: {}", page.status()));
    }
    let token = csrf_from(&page.text().await.map_err(|e| format!("GET /login: {e}"))?)?;
    let res = client
        .post(server.url("/login"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .map_err(|e| format!("POST /login: {e}"))?;
    let location = res
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if res.status() != StatusCode::SEE_OTHER || location != "/account" {
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        return Err(format!(
            "POST /login: expected 303 to /account, got {status} to {location:?}: {}",
            snippet(&body)
        ));
    }
    let base = Url::parse(&server.base).map_err(|e| e.to_string())?;
    let cookie = jar
        .cookies(&base)
        .ok_or_else(|| "no cookies after sign-in".to_string())?;
    let text = cookie.to_str().map_err(|e| e.to_string())?;
    if !text.split("; ").any(|c| c.starts_with("portcullis=")) || !text.contains("portcullis_csrf=")
    {
        return Err(format!("unexpected cookies after sign-in: {text}"));
    }
    // The explicit header must be enough on its own.
    let check = plain_client()?
        .get(server.url("/account"))
        .header(COOKIE, cookie.clone())
        .send()
        .await
        .map_err(|e| format!("GET /account: {e}"))?;
    let status = check.status();
    let body = check.text().await.unwrap_or_default();
    if status != StatusCode::OK || !body.contains(EMAIL) {
        return Err(format!(
            "GET /account after sign-in: {status}: {}",
            snippet(&body)
        ));
    }
    Ok(cookie)
}

fn snippet(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    s.chars().take(160).collect()
}

/// The measured part of a phase: after the warm-up, for `MEASURE`.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn new(warmup: Duration, measure: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            end: start + measure,
        }
    }

    fn contains(&self, t: Instant) -> bool {
        t >= self.start && t <= self.end
    }

    fn secs(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }
}

/// Outcomes of one load: `ok` counts only completions inside the window; unexpected
/// answers and transport errors are counted over the whole phase.
#[derive(Default)]
struct Tally {
    ok: u64,
    unexpected: u64,
    errors: u64,
    first_problem: Option<String>,
    secs: f64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.unexpected += other.unexpected;
        self.errors += other.errors;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
    }

    fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }

    /// This load's rate ÷ `base`'s, 0 when `base` measured nothing.
    fn ratio_to(&self, base: &Tally) -> f64 {
        if base.rate() > 0.0 {
            self.rate() / base.rate()
        } else {
            0.0
        }
    }

    fn problem(&mut self, error: bool, what: String) {
        if error {
            self.errors += 1;
        } else {
            self.unexpected += 1;
        }
        if self.first_problem.is_none() {
            self.first_problem = Some(what);
        }
    }

    fn problems(&self) -> Option<String> {
        (self.unexpected + self.errors > 0).then(|| {
            format!(
                "{} unexpected answers, {} transport errors; first: {}",
                self.unexpected,
                self.errors,
                self.first_problem.as_deref().unwrap_or("?")
            )
        })
    }
}

async fn join_tallies(
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
    w: Window,
) -> Result<Tally, String> {
    let limit = tokio::time::Instant::from_std(w.end + REQUEST_TIMEOUT + Duration::from_secs(5));
    let mut total = Tally {
        secs: w.secs(),
        ..Tally::default()
    };
    for task in tasks {
        match tokio::time::timeout_at(limit, task).await {
            Ok(Ok(t)) => total.merge(t),
            Ok(Err(e)) => return Err(format!("load task failed: {e}")),
            Err(_) => return Err("load task did not finish in time".into()),
        }
    }
    Ok(total)
}

/// One sign-in client: takes a CSRF seed and token once, then signs in over and over.
/// It never stores the session cookie, so the anonymous token stays valid.
async fn sign_in_loop(base: String, w: Window) -> Tally {
    let mut t = Tally::default();
    let client = match plain_client() {
        Ok(c) => c,
        Err(e) => {
            t.problem(true, e);
            return t;
        }
    };
    let seeded = async {
        let r = client
            .get(format!("{base}/login"))
            .send()
            .await
            .map_err(|e| format!("GET /login: {e}"))?;
        let seed = r
            .cookies()
            .find(|c| c.name() == "portcullis_csrf")
            .map(|c| c.value().to_string())
            .ok_or("GET /login set no portcullis_csrf cookie")?;
        let token = csrf_from(&r.text().await.map_err(|e| format!("GET /login: {e}"))?)?;
        let cookie =
            HeaderValue::from_str(&format!("portcullis_csrf={seed}")).map_err(|e| e.to_string())?;
        Ok::<_, String>((cookie, token))
    }
    .await;
    let (cookie, token) = match seeded {
        Ok(v) => v,
        Err(e) => {
            t.problem(true, e);
            return t;
        }
    };
    let form = [
        ("csrf_token", token.as_str()),
        ("email", EMAIL),
        ("password", PASSWORD),
    ];
    for _ in 0..MAX_LOOP {
        if Instant::now() >= w.end {
            break;
        }
        let res = client
            .post(format!("{base}/login"))
            .header(COOKIE, cookie.clone())
            .form(&form)
            .send()
            .await;
        let outcome = match res {
            Ok(r) => {
                let status = r.status();
                let to_account = r.headers().get(LOCATION).is_some_and(|l| l == "/account");
                r.bytes()
                    .await
                    .map(|b| (status, to_account, b))
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let done = Instant::now();
        match outcome {
            Ok((s, true, _)) if s == StatusCode::SEE_OTHER => {
                if w.contains(done) {
                    t.ok += 1;
                }
            }
            Ok((s, _, body)) => t.problem(
                false,
                format!("{s}: {}", snippet(&String::from_utf8_lossy(&body))),
            ),
            Err(e) => {
                t.problem(true, e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    t
}

fn sign_in_load(base: &str, clients: usize, w: Window) -> Vec<tokio::task::JoinHandle<Tally>> {
    (0..clients)
        .map(|_| tokio::spawn(sign_in_loop(base.to_string(), w)))
        .collect()
}

struct Probe {
    latencies: Vec<Duration>,
    unexpected: u64,
    errors: u64,
    first_problem: Option<String>,
}

impl Probe {
    /// Nearest-rank percentile of the sorted latencies.
    fn percentile(&self, q: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank =
            ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        Some(self.latencies[rank - 1])
    }
}

/// A single sequential signed-in client on its own thread and runtime (so it does not
/// queue behind the load generator's tasks), one request every `PROBE_EVERY` in `w`.
fn spawn_probe(
    url: String,
    cookie: HeaderValue,
    w: Window,
) -> std::thread::JoinHandle<Result<Probe, String>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("probe runtime: {e}"))?;
        rt.block_on(async move {
            let client = plain_client()?;
            let mut p = Probe {
                latencies: Vec::with_capacity(PROBE_MAX_REQUESTS),
                unexpected: 0,
                errors: 0,
                first_problem: None,
            };
            // Open the keep-alive connection during the warm-up.
            let _ = client.get(&url).header(COOKIE, cookie.clone()).send().await;
            tokio::time::sleep_until(tokio::time::Instant::from_std(w.start)).await;
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for _ in 0..PROBE_MAX_REQUESTS {
                tick.tick().await;
                if Instant::now() >= w.end {
                    break;
                }
                let t0 = Instant::now();
                let outcome = match client.get(&url).header(COOKIE, cookie.clone()).send().await {
                    Ok(r) => {
                        let status = r.status();
                        r.bytes().await.map(|_| status).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                };
                let took = t0.elapsed();
                match outcome {
                    Ok(s) if s == StatusCode::OK => p.latencies.push(took),
                    Ok(s) => {
                        p.unexpected += 1;
                        p.first_problem.get_or_insert_with(|| s.to_string());
                    }
                    Err(e) => {
                        p.errors += 1;
                        p.first_problem.get_or_insert(e);
                    }
                }
            }
            p.latencies.sort_unstable();
            Ok(p)
        })
    })
}

// ---------------------------------------------------------------------------------------
// Raw argon2id.

struct Raw {
    verifications: u64,
    secs: f64,
    threads: usize,
}

impl Raw {
    fn rate(&self) -> f64 {
        self.verifications as f64 / self.secs
    }

    /// Two measurements as one: their verifications over their time.
    fn and(&self, other: &Raw) -> Raw {
        Raw {
            verifications: self.verifications + other.verifications,
            secs: self.secs + other.secs,
            threads: self.threads,
        }
    }
}

/// Raw verifications per second on `threads` OS threads, in this process.
fn raw_argon2(threads: usize) -> Result<Raw, String> {
    let hasher =
        Hasher::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, threads).map_err(|e| e.to_string())?;
    let phc = hasher.hash_blocking(PASSWORD).map_err(|e| e.to_string())?;
    if !hasher.verify_blocking_for_bench(&phc, PASSWORD)
        || hasher.verify_blocking_for_bench(&phc, "wrong password")
    {
        return Err("argon2 self-check failed".into());
    }
    let start = Instant::now();
    let end = start + RAW_MEASURE;
    let counts: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while n < MAX_LOOP && Instant::now() < end {
                        if !hasher.verify_blocking_for_bench(&phc, PASSWORD) {
                            return Err("a verification failed".to_string());
                        }
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    // Each thread finishes the verification it started before the deadline: divide by
    // the real elapsed time, not the nominal one.
    let secs = start.elapsed().as_secs_f64();
    let mut verifications = 0;
    for c in counts {
        verifications += c?;
    }
    Ok(Raw {
        verifications,
        secs,
        threads,
    })
}

// ---------------------------------------------------------------------------------------
// One configuration.

struct Results {
    /// Signed-in `GET /account` in turns with `GET /healthz`.
    account: wrk::Paired,
    raw: Raw,
    /// The rates of the two raw measurements that bracket the sign-ins.
    raw_before_after: (f64, f64),
    sign_ins: Tally,
    sign_ins_clients: usize,
    probe: Probe,
    probe_load: Tally,
    rss_start_kib: Option<u64>,
    rss_idle_kib: Option<u64>,
    rss_peak_kib: u64,
    rss_peaks: Vec<(&'static str, u64)>,
    rss_after_kib: Option<u64>,
    startup: Duration,
    stop: Result<Duration, String>,
    logged: Vec<String>,
    cpu: Vec<CpuUse>,
    oidc: Result<oidc::OidcResults, String>,
}

async fn measure(
    bin: &Path,
    extra: Vec<(String, String)>,
    label: &str,
    data: &DataDir,
) -> Result<Results, String> {
    let cores = cores();
    let mut server = Server::start(bin, &data.path, &extra)?;
    let startup = server.wait_healthy(&plain_client()?).await?;
    eprintln!(
        "[{label}] up on {} after {startup:.2?}; creating the user",
        server.base
    );
    let rss_start_kib = server.rss_kib();

    create_bench_user(bin, &server, &[])?;
    let cookie = sign_in(&server).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle_kib = server.rss_kib();
    let mut rss_peaks = Vec::new();
    let mut cpu = Vec::new();

    eprintln!(
        "[{label}] wrk: GET /healthz and GET /account (signed in) in turns, {HTTP_CONCURRENCY} connections"
    );
    let sampler = RssSampler::start(server.pid);
    let watch = CpuWatch::start(server.pid, "GET /healthz + /account");
    let account = wrk::beside_healthz(
        &server.url("/healthz"),
        &server.url("/account"),
        wrk::Request::get().header(
            "Cookie",
            cookie.to_str().map_err(|e| e.to_string())?.to_string(),
        ),
    )
    .await?;
    watch.finish(&mut cpu);
    rss_peaks.push(("GET load", sampler.finish()));

    let sampler = RssSampler::start(server.pid);
    let watch = CpuWatch::start(server.pid, "OIDC endpoints");
    let oidc = oidc::measure(&server, bin, &cookie, label).await;
    watch.finish(&mut cpu);
    rss_peaks.push(("OIDC endpoints", sampler.finish()));

    // Raw argon2 just before and just after the sign-ins, so the denominator brackets
    // them: this machine's speed drifts by ±10 % over minutes.
    let raw_phase = async |phase: &'static str, cpu: &mut Vec<CpuUse>| {
        eprintln!("[{label}] {phase}: {cores} threads, server idle");
        let watch = CpuWatch::start(server.pid, phase);
        let raw = tokio::task::spawn_blocking(move || raw_argon2(cores))
            .await
            .map_err(|e| format!("raw argon2: {e}"))?;
        watch.finish(cpu);
        raw
    };
    let raw = raw_phase("raw argon2id", &mut cpu).await?;

    let clients = SIGNIN_CLIENTS_PER_CORE * cores;
    eprintln!("[{label}] sign-ins, {clients} concurrent clients");
    let sampler = RssSampler::start(server.pid);
    let watch = CpuWatch::start(server.pid, "sign-ins");
    let w = Window::new(WARMUP, MEASURE);
    let sign_ins = join_tallies(sign_in_load(&server.base, clients, w), w).await?;
    watch.finish(&mut cpu);
    rss_peaks.push(("sign-ins", sampler.finish()));

    let raw_after = raw_phase("raw argon2id (after)", &mut cpu).await?;
    let raw_before_rate = raw.rate();
    let raw = raw.and(&raw_after);

    eprintln!("[{label}] GET /account latency during sign-ins");
    let sampler = RssSampler::start(server.pid);
    let watch = CpuWatch::start(server.pid, "sign-ins + probe");
    let w = Window::new(WARMUP, MEASURE);
    let load = sign_in_load(&server.base, clients, w);
    let probe = spawn_probe(server.url("/account"), cookie, w);
    let probe_load = join_tallies(load, w).await?;
    let probe = tokio::task::spawn_blocking(move || probe.join())
        .await
        .map_err(|e| format!("probe: {e}"))?
        .map_err(|_| "probe thread panicked".to_string())??;
    watch.finish(&mut cpu);
    rss_peaks.push(("sign-ins + probe", sampler.finish()));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after_kib = server.rss_kib();
    let logged = server.logged_problems();
    let stop = server.stop();
    Ok(Results {
        account,
        raw_before_after: (raw_before_rate, raw_after.rate()),
        raw,
        sign_ins,
        sign_ins_clients: clients,
        probe,
        probe_load,
        rss_start_kib,
        rss_idle_kib,
        rss_peak_kib: rss_peaks.iter().map(|(_, k)| *k).max().unwrap_or(0),
        rss_peaks,
        rss_after_kib,
        startup,
        stop,
        logged,
        cpu,
        oidc,
    })
}

async fn run_sqlite(bin: &Path) -> Result<Results, String> {
    let data = DataDir::create()?;
    measure(bin, Vec::new(), "SQLite", &data).await
}

/// What puts a server on a PostgreSQL database and a Redis key prefix of its own.
fn pg_redis_env(database_url: String, redis: &RedisPrefix) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".to_string(), database_url),
        ("REDIS_URL".to_string(), REDIS_URL.to_string()),
        ("PORTCULLIS_REDIS_PREFIX".to_string(), redis.prefix.clone()),
    ]
}

async fn run_postgres(bin: &Path) -> Result<Results, String> {
    let data = DataDir::create()?;
    let redis = RedisPrefix::new();
    let db = PgDatabase::create()?;
    let extra = pg_redis_env(db.url(), &redis);
    // The server (inside `measure`) is gone before the database, prefix and directory.
    measure(bin, extra, "PostgreSQL+Redis", &data).await
}

// ---------------------------------------------------------------------------------------
// Report.

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

fn mark(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Row {
    figure: String,
    measured: String,
    target: String,
    pass: bool,
    readme: String,
}

fn rows(r: &Results, throughput_target: f64, node: &oidc::NodeAnchor) -> Vec<Row> {
    let mut rows = Vec::new();
    let ratio = r.account.ratio();
    let (account, healthz) = (r.account.endpoint.rate(), r.account.healthz.rate());
    rows.push(Row {
        figure: "GET /account ÷ GET /healthz throughput".into(),
        measured: format!(
            "{ratio:.2} ({} / {} req/s; {})",
            rate(account),
            rate(healthz),
            r.account.spread()
        ),
        target: format!("≥ {throughput_target}"),
        pass: ratio >= throughput_target,
        readme: format!(
            "signed-in GET /account throughput is {ratio:.2}× GET /healthz ({} vs {} req/s, wrk, {HTTP_CONCURRENCY} keep-alive connections, {PAIRED_ROUNDS} alternating turns of {PAIRED_TURN_SECS} s each; {}) — target ≥ {throughput_target}",
            rate(account),
            rate(healthz),
            r.account.spread()
        ),
    });
    let ratio = r.sign_ins.rate() / r.raw.rate();
    rows.push(Row {
        figure: "sign-ins/s ÷ raw argon2id verifications/s".into(),
        measured: format!(
            "{ratio:.2} ({} / {} per s)",
            rate(r.sign_ins.rate()),
            rate(r.raw.rate())
        ),
        target: format!("≥ {TARGET_SIGNIN}"),
        pass: ratio >= TARGET_SIGNIN,
        readme: format!(
            "sign-ins run at {ratio:.2}× the raw argon2id rate ({} sign-ins/s vs {} verifications/s on {} threads, m={ARGON2_M_KIB} KiB t={ARGON2_T} p={ARGON2_P}) — target ≥ {TARGET_SIGNIN}",
            rate(r.sign_ins.rate()),
            rate(r.raw.rate()),
            r.raw.threads
        ),
    });
    let (p50, p99, max) = (
        r.probe.percentile(0.50),
        r.probe.percentile(0.99),
        r.probe.latencies.last().copied(),
    );
    let n = r.probe.latencies.len();
    match (p50, p99, max) {
        (Some(p50), Some(p99), Some(max)) => {
            let p99ms = ms(p99);
            rows.push(Row {
                figure: "GET /account p99 during sign-in load".into(),
                measured: format!(
                    "{p99ms:.2} ms (p50 {:.2}, max {:.2}; n={n})",
                    ms(p50),
                    ms(max)
                ),
                target: format!("≤ {TARGET_P99_MS} ms"),
                pass: p99ms <= TARGET_P99_MS && r.probe.unexpected + r.probe.errors == 0,
                readme: format!(
                    "GET /account while sign-ins saturate the CPU: p50 {:.2} ms, p99 {p99ms:.2} ms, max {:.2} ms ({n} sequential requests) — target p99 ≤ {TARGET_P99_MS} ms",
                    ms(p50),
                    ms(max)
                ),
            });
        }
        _ => rows.push(Row {
            figure: "GET /account p99 during sign-in load".into(),
            measured: "no successful request".into(),
            target: format!("≤ {TARGET_P99_MS} ms"),
            pass: false,
            readme: "GET /account latency under sign-in load: no successful request".into(),
        }),
    }
    let idle = r.rss_idle_kib.map(mib);
    rows.push(Row {
        figure: "server RSS, idle after sign-in".into(),
        measured: idle.map_or("unreadable".into(), |m| format!("{m:.1} MiB")),
        target: format!("≤ {TARGET_RSS_IDLE_MIB} MiB"),
        pass: idle.is_some_and(|m| m <= TARGET_RSS_IDLE_MIB),
        readme: format!(
            "resident memory idle: {} — target ≤ {TARGET_RSS_IDLE_MIB} MiB",
            idle.map_or("unreadable".into(), |m| format!("{m:.1} MiB"))
        ),
    });
    let peak = mib(r.rss_peak_kib);
    rows.push(Row {
        figure: "server RSS, peak under load".into(),
        measured: format!("{peak:.1} MiB"),
        target: format!("≤ {TARGET_RSS_LOAD_MIB} MiB"),
        pass: r.rss_peak_kib > 0 && peak <= TARGET_RSS_LOAD_MIB,
        readme: format!(
            "resident memory peak under load (sampled every {} ms): {peak:.1} MiB — target ≤ {TARGET_RSS_LOAD_MIB} MiB",
            RSS_SAMPLE_EVERY.as_millis()
        ),
    });
    match &r.oidc {
        Ok(o) => rows.extend(oidc::rows(o, r.account.healthz.rate(), node)),
        Err(e) => rows.push(Row {
            figure: "OpenID Connect endpoints".into(),
            measured: format!("not measured: {}", snippet(e)),
            target: "—".into(),
            pass: false,
            readme: format!("OpenID Connect endpoints: not measured ({})", snippet(e)),
        }),
    }
    rows
}

fn details(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "    start-up to /healthz 200: {:.0} ms; graceful stop: {}",
        ms(r.startup),
        match &r.stop {
            Ok(d) => format!("{:.0} ms after SIGTERM", ms(*d)),
            Err(e) => e.clone(),
        }
    );
    let _ = writeln!(
        s,
        "    sign-ins: {} in {:.0} s with {} clients; during the latency probe: {} ({}/s)",
        r.sign_ins.ok,
        r.sign_ins.secs,
        r.sign_ins_clients,
        r.probe_load.ok,
        rate(r.probe_load.rate())
    );
    let _ = writeln!(
        s,
        "    raw argon2id: {} verifications in {:.2} s on {} threads ({}/s before the sign-ins, {}/s after)",
        r.raw.verifications,
        r.raw.secs,
        r.raw.threads,
        rate(r.raw_before_after.0),
        rate(r.raw_before_after.1)
    );
    let peaks: Vec<String> = r
        .rss_peaks
        .iter()
        .map(|(n, k)| format!("{n} {:.1} MiB", mib(*k)))
        .collect();
    let _ = writeln!(
        s,
        "    RSS at start (before any sign-in): {}; peaks by phase: {}; 1 s after the load: {}",
        r.rss_start_kib
            .map_or("unreadable".into(), |k| format!("{:.1} MiB", mib(k))),
        peaks.join(", "),
        r.rss_after_kib
            .map_or("unreadable".into(), |k| format!("{:.1} MiB", mib(k)))
    );
    for (name, t) in [
        ("GET /healthz", &r.account.healthz),
        ("GET /account", &r.account.endpoint),
        ("sign-ins", &r.sign_ins),
        ("sign-ins during probe", &r.probe_load),
    ] {
        if let Some(p) = t.problems() {
            let _ = writeln!(s, "    PROBLEM {name}: {p}");
        }
    }
    if r.probe.unexpected + r.probe.errors > 0 {
        let _ = writeln!(
            s,
            "    PROBLEM latency probe: {} unexpected answers, {} transport errors (excluded from percentiles); first: {}",
            r.probe.unexpected,
            r.probe.errors,
            r.probe.first_problem.as_deref().unwrap_or("?")
        );
    }
    let cpu: Vec<String> = r
        .cpu
        .iter()
        .map(|c| {
            format!(
                "{} {:.0}% ({:.0}%)",
                c.phase,
                c.busy * 100.0,
                c.others * 100.0
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "    machine CPU busy by phase (of which other processes): {}",
        cpu.join(", ")
    );
    if let Some(worst) = r.cpu.iter().max_by(|a, b| a.others.total_cmp(&b.others))
        && worst.others > OTHERS_WARN
    {
        let _ = writeln!(
            s,
            "    WARNING: other processes used {:.0}% of the CPU during \"{}\": these figures are disturbed; rerun on a quiet machine",
            worst.others * 100.0,
            worst.phase
        );
    }
    if r.logged.is_empty() {
        let _ = writeln!(
            s,
            "    server log: no warnings or errors (besides the first-run setup link)"
        );
    } else {
        let _ = writeln!(
            s,
            "    server log: {} warning/error lines, first ones:",
            r.logged.len()
        );
        for l in r.logged.iter().take(5) {
            let _ = writeln!(s, "      {l}");
        }
    }
    if let Ok(o) = &r.oidc {
        for p in oidc::problems(o) {
            let _ = writeln!(s, "    OIDC load problem: {p}");
        }
    }
    s
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn print_report(
    node: Option<&Result<reference::NodeRates, String>>,
    outcomes: &[(&str, f64, Result<Results, String>)],
    scaling: Option<&Result<scaling::Scaling, String>>,
    pg_tls: Option<&Result<pg_tls::TlsCost, String>>,
    admins: &[(&str, Result<admin::AdminResults, String>)],
    skipped: Option<&str>,
) {
    let cores = cores();
    let mut out = String::new();
    let _ = writeln!(out, "\nportcullis load benchmark");
    let _ = writeln!(
        out,
        "conditions: {cores} cores ({}), Linux {}; release build; the load generator runs on the same cores",
        cpu_model(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let _ = writeln!(
        out,
        "  request rates: wrk, {HTTP_CONCURRENCY} keep-alive connections, {} s warm-up + {} s measured per endpoint (sign-ins, the latency probe and refresh chains: reqwest); a figure given ÷ GET /healthz takes {PAIRED_ROUNDS} turns of {PAIRED_TURN_SECS} s with /healthz (H E, E H, ...) after a warm-up each",
        WARMUP.as_secs(),
        MEASURE.as_secs()
    );
    let _ = writeln!(
        out,
        "  sign-ins: {} concurrent clients (POST /login, valid credentials), {} s warm-up + {} s measured; raw argon2id m={ARGON2_M_KIB} KiB t={ARGON2_T} p={ARGON2_P} on {cores} threads for {} s just before and {} s just after them, server idle",
        SIGNIN_CLIENTS_PER_CORE * cores,
        WARMUP.as_secs(),
        MEASURE.as_secs(),
        RAW_MEASURE.as_secs(),
        RAW_MEASURE.as_secs()
    );
    let _ = writeln!(
        out,
        "  latency: one sequential signed-in client, one GET /account every {} ms for {} s, while the sign-in load runs again",
        PROBE_EVERY.as_millis(),
        MEASURE.as_secs()
    );
    let _ = writeln!(
        out,
        "  memory: VmRSS of the server process, idle after start-up + one sign-in, peak sampled every {} ms during the load phases",
        RSS_SAMPLE_EVERY.as_millis()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<18} {:<42} {:<40} {:<10} result",
        "configuration", "figure", "measured", "target"
    );
    let _ = writeln!(out, "{}", "-".repeat(118));
    let mut readme = Vec::new();
    let not_run = Err("not run".to_string());
    let anchor = oidc::NodeAnchor::from(node.unwrap_or(&not_run));
    if let Some(n) = node {
        let line = match n {
            Ok(n) => format!(
                "node oidc-provider (reference, this run, one process, opaque tokens in memory): discovery {}, JWKS {}, client_credentials {} req/s; idle RSS {}",
                rate(n.discovery),
                rate(n.jwks),
                rate(n.client_credentials),
                n.idle_rss_kib
                    .map_or("unreadable".into(), |k| format!("{:.1} MiB", mib(k)))
            ),
            Err(e) => format!(
                "node oidc-provider (reference): not measured ({})",
                snippet(e)
            ),
        };
        let _ = writeln!(out, "{line}");
        readme.push(format!("- {line}"));
    }
    for (name, target, outcome) in outcomes {
        match outcome {
            Ok(r) => {
                for row in rows(r, *target, &anchor) {
                    let _ = writeln!(
                        out,
                        "{:<18} {:<42} {:<40} {:<10} {}",
                        name,
                        row.figure,
                        row.measured,
                        row.target,
                        mark(row.pass)
                    );
                    readme.push(format!("- {name}: {}: {}", row.readme, mark(row.pass)));
                }
                out.push_str(&details(r));
            }
            Err(e) => {
                let _ = writeln!(out, "{name:<18} FAILED: {e}");
                readme.push(format!("- {name}: not measured ({})", snippet(e)));
            }
        }
    }
    if let Some(s) = scaling {
        scaling::report(&mut out, &mut readme, s);
    }
    if let Some(t) = pg_tls {
        pg_tls::report(&mut out, &mut readme, t);
    }
    for (name, a) in admins {
        admin::report(&mut out, &mut readme, name, a);
    }
    if let Some(note) = skipped {
        let _ = writeln!(out, "{note}");
        readme.push(format!("- {note}"));
    }
    let _ = writeln!(out, "\nREADME lines:");
    for l in readme {
        let _ = writeln!(out, "{l}");
    }
    print!("{out}");
}

// ---------------------------------------------------------------------------------------

fn build_release() -> Result<PathBuf, String> {
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

async fn run() -> Result<bool, String> {
    if !wrk::available() {
        return Err("the request rates are measured with wrk: apt-get install wrk".into());
    }
    let bin = build_release()?;
    let started = Instant::now();
    let skip_pg = std::env::var("BENCH_SKIP_PG").is_ok_and(|v| v == "1");
    // `BENCH_ONLY=admin`: only the administration figures (they seed their own data).
    let only_admin = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "admin");
    let mut outcomes = Vec::new();
    let mut scaled = None;
    let mut tls = None;
    let mut node = None;
    if !only_admin {
        node = Some(reference::measure().await);
        outcomes.push(("SQLite", TARGET_THROUGHPUT_SQLITE, run_sqlite(&bin).await));
        if !skip_pg {
            outcomes.push((
                "PostgreSQL+Redis",
                TARGET_THROUGHPUT_REDIS,
                run_postgres(&bin).await,
            ));
            scaled = Some(scaling::measure(&bin).await);
            tls = Some(pg_tls::measure(&bin).await);
        }
    }
    let mut admins = vec![("admin SQLite", admin::measure(&bin, false).await)];
    if !skip_pg {
        admins.push(("admin PG+Redis", admin::measure(&bin, true).await));
    }
    let skipped = skip_pg.then_some("PostgreSQL+Redis: skipped (BENCH_SKIP_PG=1)");
    print_report(
        node.as_ref(),
        &outcomes,
        scaled.as_ref(),
        tls.as_ref(),
        &admins,
        skipped,
    );
    println!(
        "\n(measured in {:.0} s, build excluded)",
        started.elapsed().as_secs_f64()
    );
    Ok(outcomes.iter().all(|(_, _, o)| o.is_ok()) && admins.iter().all(|(_, a)| a.is_ok()))
}

fn main() -> ExitCode {
    let done = start_watchdog();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        tokio::select! {
            r = run() => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        }
    });
    drop(rt);
    done.store(true, Ordering::Relaxed);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
