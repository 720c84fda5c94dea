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
//! 7. forward auth: `GET /auth/forward` with a session against `GET /account`, with
//!    1 000 access rules against 10, with a personal access token against a session
//!    (`load/forward.rs`);
//! 8. with 100 000 users and 1 000 000 audit events seeded, the median time of the
//!    admin user search and audit viewer pages, and memory while the whole log is
//!    exported (`load/admin.rs`).
//!
//! The numbers are printed as measured, flattering or not. Every loop is bounded in count
//! and time; children, temporary directories, the PostgreSQL database and the Redis keys
//! are removed on every exit path (guards, Ctrl-C, and a watchdog for hangs).
//! `BENCH_SKIP_PG=1` skips the PostgreSQL + Redis configuration; `BENCH_ONLY=admin` runs
//! only the administration figures, `BENCH_ONLY=forward` only the forward-auth ones,
//! `BENCH_ONLY=main` only the rest; `BENCH_BIN` measures another build.

// Each module takes what it shares with the others through `use super::*`: the items of
// the modules glob-imported below, the phase timing, and (admin, oidc, pg_tls, reference,
// scaling and wrk) the std and reqwest names imported here.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, HeaderValue};
use reqwest::{Client, StatusCode, Url};

#[path = "load/admin.rs"]
mod admin;
#[path = "load/client.rs"]
mod client;
#[path = "load/configuration.rs"]
mod configuration;
#[path = "load/forward.rs"]
mod forward;
#[path = "load/guards.rs"]
mod guards;
#[path = "load/oidc.rs"]
mod oidc;
#[path = "load/pg_tls.rs"]
mod pg_tls;
#[path = "load/raw.rs"]
mod raw;
#[path = "load/reference.rs"]
mod reference;
#[path = "load/report.rs"]
mod report;
#[path = "load/sampling.rs"]
mod sampling;
#[path = "load/scaling.rs"]
mod scaling;
#[path = "load/server.rs"]
mod server;
#[path = "load/signin.rs"]
mod signin;
#[path = "load/wrk.rs"]
mod wrk;

use client::*;
use configuration::*;
use guards::*;
use raw::*;
use report::*;
use sampling::*;
use server::*;
use signin::*;

const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
/// Upper bound on iterations of any load loop, on top of its deadline.
const MAX_LOOP: u64 = 5_000_000;

async fn run() -> Result<bool, String> {
    if !wrk::available() {
        return Err("the request rates are measured with wrk: apt-get install wrk".into());
    }
    let bin = build_release()?;
    let started = Instant::now();
    let skip_pg = std::env::var("BENCH_SKIP_PG").is_ok_and(|v| v == "1");
    // `BENCH_ONLY=admin` or `=forward`: only those figures (they start their own servers).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let only = |phase: &str| only.is_empty() || only == phase;
    let mut outcomes = Vec::new();
    let mut scaled = None;
    let mut tls = None;
    let mut node = None;
    if only("main") {
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
    let mut forwards = Vec::new();
    if only("forward") {
        forwards.push(("SQLite", forward::measure(&bin, false, "SQLite").await));
        if !skip_pg {
            let pg = forward::measure(&bin, true, "PostgreSQL+Redis").await;
            forwards.push(("PostgreSQL+Redis", pg));
        }
    }
    let mut admins = Vec::new();
    if only("admin") {
        admins.push(("admin SQLite", admin::measure(&bin, false).await));
        if !skip_pg {
            admins.push(("admin PG+Redis", admin::measure(&bin, true).await));
        }
    }
    let skipped = skip_pg.then_some("PostgreSQL+Redis: skipped (BENCH_SKIP_PG=1)");
    print_report(
        node.as_ref(),
        &outcomes,
        &forwards,
        scaled.as_ref(),
        tls.as_ref(),
        &admins,
        skipped,
    );
    println!(
        "\n(measured in {:.0} s, build excluded)",
        started.elapsed().as_secs_f64()
    );
    Ok(outcomes.iter().all(|(_, _, o)| o.is_ok())
        && forwards.iter().all(|(_, f)| f.is_ok())
        && admins.iter().all(|(_, a)| a.is_ok()))
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
