//! One configuration (SQLite, or PostgreSQL + Redis): its server and the phases measured on it.

use std::path::Path;
use std::time::Duration;

use super::*;

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

pub(crate) async fn run_sqlite(bin: &Path) -> Result<Results, String> {
    let data = DataDir::create()?;
    measure(bin, Vec::new(), "SQLite", &data).await
}

/// What puts a server on a PostgreSQL database and a Redis key prefix of its own.
pub(crate) fn pg_redis_env(database_url: String, redis: &RedisPrefix) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".to_string(), database_url),
        ("REDIS_URL".to_string(), REDIS_URL.to_string()),
        ("PORTCULLIS_REDIS_PREFIX".to_string(), redis.prefix.clone()),
    ]
}

pub(crate) async fn run_postgres(bin: &Path) -> Result<Results, String> {
    let data = DataDir::create()?;
    let redis = RedisPrefix::new();
    let db = PgDatabase::create()?;
    let extra = pg_redis_env(db.url(), &redis);
    // The server (inside `measure`) is gone before the database, prefix and directory.
    measure(bin, extra, "PostgreSQL+Redis", &data).await
}
