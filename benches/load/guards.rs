//! Clean-up: guards for the normal path, a registry for the watchdog, and the command
//! runner they use.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub(crate) const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// After this, the watchdog cleans up and exits whatever the bench is doing.
const HARD_DEADLINE: Duration = Duration::from_secs(1500);

pub(crate) struct Registry {
    pub(crate) pids: Vec<u32>,
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

pub(crate) fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn unregister<T: PartialEq>(list: impl FnOnce(&mut Registry) -> &mut Vec<T>, item: &T) {
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

pub(crate) fn start_watchdog() -> Arc<AtomicBool> {
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
pub(crate) struct DataDir {
    pub(crate) path: PathBuf,
}

impl DataDir {
    pub(crate) fn create() -> Result<Self, String> {
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
pub(crate) struct PgDatabase {
    name: String,
}

impl PgDatabase {
    pub(crate) fn create() -> Result<Self, String> {
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
    pub(crate) fn url(&self) -> String {
        self.url_with("disable")
    }

    pub(crate) fn url_with(&self, sslmode: &str) -> String {
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
pub(crate) struct RedisPrefix {
    pub(crate) prefix: String,
}

impl RedisPrefix {
    pub(crate) fn new() -> Self {
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

pub(crate) struct CmdOutput {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs a command to completion with a time limit, feeding `stdin` if given.
pub(crate) fn run_cmd(
    cmd: &mut Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<CmdOutput, String> {
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
