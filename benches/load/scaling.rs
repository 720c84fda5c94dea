//! Scale-out on PostgreSQL + Redis: signed-in `GET /account` throughput of one
//! instance, then of three instances sharing the database, Redis and master key with
//! the same load spread over them (round robin), on the same machine. The machine, not
//! the design, bounds the three: the ratio says what running several costs.

use super::*;

pub const TARGET_SCALING: f64 = 0.9;

pub struct Scaling {
    pub one: Tally,
    pub three: Tally,
}

impl Scaling {
    pub fn ratio(&self) -> f64 {
        if self.one.rate() > 0.0 {
            self.three.rate() / self.one.rate()
        } else {
            0.0
        }
    }
}

/// `HTTP_CONCURRENCY` tasks, task i on `urls[i % n]`.
async fn spread(urls: &[String], cookie: &HeaderValue) -> Result<Tally, String> {
    let client = plain_client()?;
    let w = Window::new(WARMUP, MEASURE);
    let tasks = (0..HTTP_CONCURRENCY)
        .map(|i| {
            tokio::spawn(get_loop(
                client.clone(),
                urls[i % urls.len()].clone(),
                Some(cookie.clone()),
                w,
            ))
        })
        .collect();
    join_tallies(tasks, w).await
}

pub async fn measure(bin: &Path) -> Result<Scaling, String> {
    let data = DataDir::create()?;
    let redis = RedisPrefix::new();
    let db = PgDatabase::create()?;
    let extra = vec![
        ("DATABASE_URL".to_string(), db.url()),
        ("REDIS_URL".to_string(), REDIS_URL.to_string()),
        ("PORTCULLIS_REDIS_PREFIX".to_string(), redis.prefix.clone()),
    ];
    let mut a = Server::start(bin, &data.path, &extra)?;
    a.wait_healthy(&plain_client()?).await?;
    create_bench_user(bin, &a, &[])?;
    let cookie = sign_in(&a).await?;
    eprintln!("[scaling] GET /account on 1 instance, {HTTP_CONCURRENCY} concurrent");
    let one = spread(&[a.url("/account")], &cookie).await?;

    // Two more on the same data directory (the master key), database and Redis.
    let mut b = Server::start(bin, &data.path, &extra)?;
    b.wait_healthy(&plain_client()?).await?;
    let mut c = Server::start(bin, &data.path, &extra)?;
    c.wait_healthy(&plain_client()?).await?;
    eprintln!("[scaling] GET /account spread over 3 instances, {HTTP_CONCURRENCY} concurrent");
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
                "3 instances ÷ 1 instance, signed-in GET /account: {r:.2} ({} vs {} req/s, {HTTP_CONCURRENCY} concurrent spread round robin, same 2 cores) — target ≥ {TARGET_SCALING}",
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
