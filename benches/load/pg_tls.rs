//! What TLS to PostgreSQL costs the server. The figures above connect over plain TCP
//! (`sslmode=disable`): the database is on loopback, as the tests' is. libpq's default
//! (`prefer`) would negotiate TLS whenever the server offers it, and Debian's
//! PostgreSQL does (`ssl = on`, snakeoil certificate), so without saying so the figures
//! would measure encryption nobody asked for. A deployment whose database is on another
//! host should ask for it (`sslmode=verify-full`), so this measures the difference: two
//! fresh servers on the same database and Redis, one per mode, each started, then
//! under the same sign-in load.

use super::*;

pub struct Mode {
    pub rss_start_kib: Option<u64>,
    pub rss_peak_kib: u64,
    pub sign_ins: Tally,
    /// libpq over TLS has been seen to crash at exit while pool threads close their
    /// connections (diesel-rs/diesel#3441); a graceful stop that fails is reported.
    pub stop: Result<Duration, String>,
}

pub struct TlsCost {
    pub plain: Mode,
    pub tls: Mode,
}

const LOAD: Duration = Duration::from_secs(3);

/// One server in one mode; the first (`create_user`) also creates the user both sign in.
async fn one(
    bin: &Path,
    data: &Path,
    extra: &[(String, String)],
    create_user: bool,
) -> Result<Mode, String> {
    let mut server = Server::start(bin, data, extra)?;
    server.wait_healthy(&plain_client()?).await?;
    // The pool has opened its first connection by the time /healthz answers.
    let rss_start_kib = server.rss_kib();
    if create_user {
        create_bench_user(bin, &server, &[])?;
    }
    let clients = SIGNIN_CLIENTS_PER_CORE * cores();
    let sampler = RssSampler::start(server.pid);
    let w = Window::new(WARMUP, LOAD);
    let sign_ins = join_tallies(sign_in_load(&server.base, clients, w), w).await;
    let rss_peak_kib = sampler.finish();
    let stop = server.stop();
    Ok(Mode {
        rss_start_kib,
        rss_peak_kib,
        sign_ins: sign_ins?,
        stop,
    })
}

pub async fn measure(bin: &Path) -> Result<TlsCost, String> {
    let data = DataDir::create()?;
    let redis = RedisPrefix::new();
    let db = PgDatabase::create()?;
    eprintln!("[PostgreSQL TLS] sign-ins with sslmode=disable, then with sslmode=require");
    let plain = one(bin, &data.path, &pg_redis_env(db.url(), &redis), true).await?;
    let tls_env = pg_redis_env(db.url_with("require"), &redis);
    let tls = one(bin, &data.path, &tls_env, false).await?;
    Ok(TlsCost { plain, tls })
}

pub fn report(out: &mut String, readme: &mut Vec<String>, r: &Result<TlsCost, String>) {
    let label = "PG TLS cost";
    match r {
        Ok(c) => {
            let start = |m: &Mode| {
                m.rss_start_kib
                    .map_or("unreadable".into(), |k| format!("{:.1}", mib(k)))
            };
            let line = format!(
                "fresh servers, plain TCP vs TLS to PostgreSQL (sslmode=require): RSS at start {} vs {} MiB, peak under {} s of sign-ins {:.1} vs {:.1} MiB, sign-ins {} vs {}/s",
                start(&c.plain),
                start(&c.tls),
                LOAD.as_secs(),
                mib(c.plain.rss_peak_kib),
                mib(c.tls.rss_peak_kib),
                rate(c.plain.sign_ins.rate()),
                rate(c.tls.sign_ins.rate()),
            );
            let _ = writeln!(out, "{label:<18} {line} (information)");
            for (n, m) in [("plain", &c.plain), ("TLS", &c.tls)] {
                if let Some(p) = m.sign_ins.problems() {
                    let _ = writeln!(out, "    {n}: {p}");
                }
                if let Err(e) = &m.stop {
                    let _ = writeln!(out, "    {n}: graceful stop failed: {e}");
                }
            }
            readme.push(format!("- PostgreSQL+Redis: {line}"));
        }
        Err(e) => {
            let _ = writeln!(out, "{label:<18} FAILED: {e}");
            readme.push(format!("- {label}: not measured ({})", snippet(e)));
        }
    }
}
