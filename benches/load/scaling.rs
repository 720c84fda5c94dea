//! Scale-out on PostgreSQL + Redis: signed-in `GET /account` throughput of one
//! instance, then of three instances sharing the database, Redis and master key with
//! the same load spread over them, on the same machine. The machine, not the design,
//! bounds the three: the ratio says what running several costs. The load is three wrk
//! processes both times (all three on the one instance, then one per instance), so
//! only the number of servers changes between the two figures.

use super::*;

pub const TARGET_SCALING: f64 = 0.9;

pub struct Scaling {
    pub one: Tally,
    pub three: Tally,
}

impl Scaling {
    pub fn ratio(&self) -> f64 {
        self.three.ratio_to(&self.one)
    }
}

/// Three wrk processes, process i on `urls[i % n]`.
async fn spread(urls: &[String], cookie: &HeaderValue) -> Result<Tally, String> {
    let cookie = cookie.to_str().map_err(|e| e.to_string())?.to_string();
    let targets: Vec<String> = (0..3).map(|i| urls[i % urls.len()].clone()).collect();
    wrk::rates(&targets, wrk::Request::get().header("Cookie", cookie)).await
}

pub async fn measure(bin: &Path) -> Result<Scaling, String> {
    if !wrk::available() {
        return Err("wrk is not installed (apt-get install wrk)".into());
    }
    let data = DataDir::create()?;
    let redis = RedisPrefix::new();
    let db = PgDatabase::create()?;
    let extra = pg_redis_env(db.url(), &redis);
    let mut a = Server::start(bin, &data.path, &extra)?;
    a.wait_healthy(&plain_client()?).await?;
    create_bench_user(bin, &a, &[])?;
    let cookie = sign_in(&a).await?;
    eprintln!("[scaling] wrk: GET /account on 1 instance, {HTTP_CONCURRENCY} connections");
    let one = spread(&[a.url("/account")], &cookie).await?;

    // Two more on the same data directory (the master key), database and Redis.
    let mut b = Server::start(bin, &data.path, &extra)?;
    b.wait_healthy(&plain_client()?).await?;
    let mut c = Server::start(bin, &data.path, &extra)?;
    c.wait_healthy(&plain_client()?).await?;
    eprintln!(
        "[scaling] wrk: GET /account spread over 3 instances, {HTTP_CONCURRENCY} connections"
    );
    let three = spread(
        &[a.url("/account"), b.url("/account"), c.url("/account")],
        &cookie,
    )
    .await?;
    for s in [&mut c, &mut b, &mut a] {
        let _ = s.stop();
    }
    Ok(Scaling { one, three })
}

pub fn report(out: &mut String, readme: &mut Vec<String>, s: &Result<Scaling, String>) {
    match s {
        Ok(s) => {
            let r = s.ratio();
            let line = format!(
                "3 instances ÷ 1 instance, signed-in GET /account: {r:.2} ({} vs {} req/s, wrk, {HTTP_CONCURRENCY} connections in three wrk processes, same 2 cores) — target ≥ {TARGET_SCALING}",
                rate(s.three.rate()),
                rate(s.one.rate())
            );
            let _ = writeln!(
                out,
                "{:<18} {line}: {}",
                "PG+Redis scaling",
                mark(r >= TARGET_SCALING)
            );
            for (n, t) in [("1 instance", &s.one), ("3 instances", &s.three)] {
                if let Some(p) = t.problems() {
                    let _ = writeln!(out, "    {n}: {p}");
                }
            }
            readme.push(format!(
                "- PostgreSQL+Redis: {line}: {}",
                mark(r >= TARGET_SCALING)
            ));
        }
        Err(e) => {
            let _ = writeln!(out, "{:<18} FAILED: {e}", "PG+Redis scaling");
            readme.push(format!(
                "- PostgreSQL+Redis scaling: not measured ({})",
                snippet(e)
            ));
        }
    }
}
