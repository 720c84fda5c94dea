//! The administration figures at scale: 100 000 users and 1 000 000 audit events are
//! seeded into a fresh database (after `portcullis migrate`, before the server starts),
//! then a signed-in administrator measures the median response time of the user search
//! and of the audit viewer (first page and filtered pages), and the server's resident
//! memory while it streams the whole log out as CSV and as JSON lines.
//!
//! Seeded audit rows carry empty hashes: to the chain they are the unverifiable prefix
//! that rows written before the chain existed also are, so the server's own appends
//! still chain from them. Every request is checked (status and content) before its time
//! counts.

use super::*;

use diesel::Connection;
use diesel::connection::SimpleConnection;

pub const USERS: u64 = 100_000;
pub const EVENTS: u64 = 1_000_000;
pub const TARGET_MEDIAN_MS: f64 = 50.0;
pub const TARGET_EXPORT_MIB: f64 = 64.0;
/// Sequential requests per URL: a few to warm caches, then the measured ones.
const WARM_REQUESTS: usize = 3;
const TIMED_REQUESTS: usize = 21;

const FIRST: [&str; 26] = [
    "alice", "bruno", "chloe", "david", "emma", "felix", "grace", "hugo", "iris", "jonas", "kira",
    "liam", "maya", "noah", "olga", "pablo", "quinn", "rosa", "sven", "tara", "umar", "vera",
    "wei", "xena", "yusuf", "zoe",
];
const LAST: [&str; 20] = [
    "smith", "garcia", "muller", "rossi", "novak", "kim", "silva", "dubois", "jensen", "khan",
    "ito", "lopez", "meyer", "olsen", "petrov", "quist", "ruiz", "sato", "tanaka", "weber",
];
/// (event, outcome) by `i % 20`: mostly sign-ins, some failures, the occasional change.
const EVENT_MIX: [(&str, &str); 20] = [
    ("login.succeeded", "success"),
    ("login.succeeded", "success"),
    ("login.succeeded", "success"),
    ("login.succeeded", "success"),
    ("login.succeeded", "success"),
    ("login.succeeded", "success"),
    ("login.succeeded", "success"),
    ("login.failed", "failure"),
    ("login.failed", "failure"),
    ("logout", "success"),
    ("logout", "success"),
    ("logout", "success"),
    ("mfa.succeeded", "success"),
    ("mfa.succeeded", "success"),
    ("mfa.failed", "failure"),
    ("token.issued", "success"),
    ("token.issued", "success"),
    ("consent.granted", "success"),
    ("password.changed", "success"),
    ("session.revoked", "success"),
];
/// Seconds between seeded events: 1 000 000 of them span about a year.
const EVENT_SPACING: i64 = 31;

pub struct Timing {
    pub what: String,
    pub median: Duration,
    pub max: Duration,
}

pub struct Export {
    pub format: &'static str,
    pub lines: u64,
    pub bytes: u64,
    pub took: Duration,
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
}

pub struct AdminResults {
    pub seeded_in: Duration,
    pub users: Vec<Timing>,
    pub audit: Vec<Timing>,
    pub exports: Vec<Export>,
}

/// `CASE expr WHEN 0 THEN 'a' WHEN 1 THEN 'b' … END`, the same SQL on both backends.
fn case_of(expr: &str, values: &[&str]) -> String {
    let mut s = format!("CASE {expr}");
    for (i, v) in values.iter().enumerate() {
        let _ = write!(s, " WHEN {i} THEN '{v}'");
    }
    s.push_str(" END");
    s
}

/// The seeding statements; `source` yields `i` from 0 to n-1 on the backend at hand.
fn seed_sql(source: impl Fn(u64) -> String, now: i64) -> String {
    let first = case_of("i % 26", &FIRST);
    let last = case_of("(i / 26) % 20", &LAST);
    let events: Vec<&str> = EVENT_MIX.iter().map(|(e, _)| *e).collect();
    let outcomes: Vec<&str> = EVENT_MIX.iter().map(|(_, o)| *o).collect();
    let event = case_of("i % 20", &events);
    let outcome = case_of("i % 20", &outcomes);
    let user_start = now - 400 * 86_400;
    let event_start = now - EVENTS as i64 * EVENT_SPACING;
    format!(
        "INSERT INTO users (id, email, email_normalized, display_name, password_hash,
            email_verified, disabled, created_at, updated_at, name_search)
         SELECT 'seed' || i,
                ({first}) || '.' || ({last}) || i || '@example.org',
                ({first}) || '.' || ({last}) || i || '@example.org',
                ({first}) || ' ' || ({last}),
                NULL, (i % 10 <> 0), (i % 50 = 0),
                {user_start} + i * 300, {user_start} + i * 300,
                ({first}) || ' ' || ({last})
         FROM {users};
         INSERT INTO audit_events (created_at, event, outcome, actor_id, target_id, ip,
            user_agent, request_id, details, prev_hash, hash)
         SELECT {event_start} + i * {EVENT_SPACING}, {event}, {outcome},
                'seed' || ((i * 7919) % {USERS}), 'seed' || ((i * 7919) % {USERS}),
                '10.' || (i % 40) || '.' || ((i / 40) % 125) || '.7',
                'Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0', NULL, '{{}}', '', ''
         FROM {events};",
        users = source(USERS),
        events = source(EVENTS),
    )
}

fn seed(database_url: Option<&str>, data_dir: &Path) -> Result<(), String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    match database_url {
        Some(url) => {
            let mut c = diesel::PgConnection::establish(url)
                .map_err(|e| format!("seed: connect to PostgreSQL: {e}"))?;
            let sql = seed_sql(
                |n| format!("generate_series(0::bigint, {}) AS g(i)", n - 1),
                now,
            );
            // What autovacuum would do shortly after a bulk load, done now so the
            // figures are those of a database in its steady state.
            c.batch_execute(&format!("BEGIN; {sql} COMMIT; ANALYZE;"))
                .map_err(|e| format!("seed (PostgreSQL): {e}"))
        }
        None => {
            let path = data_dir.join("portcullis.db");
            let mut c = diesel::SqliteConnection::establish(&path.display().to_string())
                .map_err(|e| format!("seed: open {}: {e}", path.display()))?;
            let sql = seed_sql(
                |n| {
                    format!(
                        "(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) SELECT i FROM n)",
                        n - 1
                    )
                },
                now,
            );
            // No ANALYZE here: the server must plan well on a database nobody analysed.
            c.batch_execute(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA cache_size = -65536; BEGIN; {sql} COMMIT;"
            ))
            .map_err(|e| format!("seed (SQLite): {e}"))
        }
    }
}

/// Median and max of sequential GETs of `path`; each answer must be 200 and contain
/// `expect`.
async fn time_get(
    client: &Client,
    server: &Server,
    cookie: &HeaderValue,
    what: &str,
    path: &str,
    expect: &str,
) -> Result<Timing, String> {
    let mut took = Vec::with_capacity(TIMED_REQUESTS);
    for n in 0..WARM_REQUESTS + TIMED_REQUESTS {
        let start = Instant::now();
        let res = client
            .get(server.url(path))
            .header(COOKIE, cookie.clone())
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = res.status();
        let body = res.text().await.map_err(|e| format!("GET {path}: {e}"))?;
        let elapsed = start.elapsed();
        if status != StatusCode::OK || !body.contains(expect) {
            return Err(format!(
                "GET {path}: {status}, expected {expect:?} in: {}",
                snippet(&body)
            ));
        }
        if n >= WARM_REQUESTS {
            took.push(elapsed);
        }
    }
    took.sort();
    Ok(Timing {
        what: what.to_string(),
        median: took[took.len() / 2],
        max: took[took.len() - 1],
    })
}

/// Streams the whole log in `format`, reading and discarding the body while the
/// server's resident memory is sampled.
async fn export(
    client: &Client,
    server: &Server,
    cookie: &HeaderValue,
    format: &'static str,
) -> Result<Export, String> {
    let path = format!("/admin/audit/export?format={format}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before_kib = server.rss_kib().unwrap_or(0);
    let sampler = RssSampler::start(server.pid);
    let start = Instant::now();
    let mut res = client
        .get(server.url(&path))
        .header(COOKIE, cookie.clone())
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    if res.status() != StatusCode::OK {
        let _ = sampler.finish();
        return Err(format!("GET {path}: {}", res.status()));
    }
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = res.chunk().await.map_err(|e| format!("GET {path}: {e}"))? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let took = start.elapsed();
    let rss_peak_kib = sampler.finish();
    // Seeded events plus the few the server wrote itself (user created, signed in…);
    // CSV also has its header line.
    if lines < EVENTS {
        return Err(format!(
            "GET {path}: {lines} lines, expected at least {EVENTS}"
        ));
    }
    Ok(Export {
        format,
        lines,
        bytes,
        took,
        rss_before_kib,
        rss_peak_kib,
    })
}

pub async fn measure(bin: &Path, postgres: bool) -> Result<AdminResults, String> {
    let label = if postgres {
        "admin PG+Redis"
    } else {
        "admin SQLite"
    };
    let data = DataDir::create()?;
    let (db, redis) = if postgres {
        (Some(PgDatabase::create()?), Some(RedisPrefix::new()))
    } else {
        (None, None)
    };
    let mut extra = vec![(
        "PORTCULLIS_ADMIN_REQUIRES_SECOND_FACTOR".to_string(),
        "false".to_string(),
    )];
    if let (Some(db), Some(redis)) = (&db, &redis) {
        extra.extend(pg_redis_env(db.url(), redis));
    }
    let env: Vec<(String, String)> = ["PATH", "HOME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .chain([(
            "PORTCULLIS_DATA_DIR".to_string(),
            data.path.display().to_string(),
        )])
        .chain(extra.iter().cloned())
        .collect();
    let out = run_cmd(
        Command::new(bin)
            .arg("migrate")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v))),
        None,
        Duration::from_secs(60),
    )?;
    if !out.ok {
        return Err(format!("portcullis migrate: {}", out.stderr.trim()));
    }

    eprintln!("[{label}] seeding {USERS} users and {EVENTS} audit events");
    let started = Instant::now();
    let url = db.as_ref().map(|d| d.url());
    let dir = data.path.clone();
    tokio::task::spawn_blocking(move || seed(url.as_deref(), &dir))
        .await
        .map_err(|e| format!("seed: {e}"))??;
    let seeded_in = started.elapsed();

    let mut server = Server::start(bin, &data.path, &extra)?;
    server.wait_healthy(&plain_client()?).await?;
    create_bench_user(bin, &server, &["admin"])?;
    let cookie = sign_in(&server).await?;
    let client = plain_client()?;

    eprintln!("[{label}] /admin/users and /admin/audit, {TIMED_REQUESTS} sequential requests each");
    // A user near the middle of the seeded range, by email: the audit filter resolves it.
    let someone = 54_321u64;
    let someone_email = format!(
        "{}.{}{someone}@example.org",
        FIRST[(someone % 26) as usize],
        LAST[((someone / 26) % 20) as usize]
    );
    let mut users = Vec::new();
    for (what, path, expect) in [
        (
            "q=<prefix> (~3 850 match)",
            "/admin/users?q=ali".to_string(),
            "\">alice.".to_string(),
        ),
        (
            "q=<one user's email>",
            format!("/admin/users?q={someone_email}"),
            format!("\">{someone_email}</a>"),
        ),
        (
            "q=<name prefix> (\"maya k\", ~380 match)",
            "/admin/users?q=maya+k".to_string(),
            "\">maya.k".to_string(),
        ),
        (
            "first page, no filter",
            "/admin/users".to_string(),
            "<tr class=\"user\">".to_string(),
        ),
        (
            "status=disabled",
            "/admin/users?status=disabled".to_string(),
            "<td>Disabled</td>".to_string(),
        ),
        (
            "mfa=no",
            "/admin/users?mfa=no".to_string(),
            "<tr class=\"user\">".to_string(),
        ),
    ] {
        users.push(time_get(&client, &server, &cookie, what, &path, &expect).await?);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let day = |days_ago: i64| {
        chrono::DateTime::from_timestamp(now - days_ago * 86_400, 0)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    let mut audit = Vec::new();
    for (what, path, expect) in [
        (
            "first page, no filter",
            "/admin/audit".to_string(),
            "<tr class=\"event\">".to_string(),
        ),
        (
            "event=login.failed",
            "/admin/audit?event=login.failed".to_string(),
            "class=\"event-name\">login.failed<".to_string(),
        ),
        (
            "outcome=failure",
            "/admin/audit?outcome=failure".to_string(),
            "<td>failure</td>".to_string(),
        ),
        (
            "user=<email>",
            format!("/admin/audit?user={someone_email}"),
            format!("<td>{someone_email}</td>"),
        ),
        (
            "ip=<address>",
            "/admin/audit?ip=10.17.99.7".to_string(),
            "<td>10.17.99.7</td>".to_string(),
        ),
        (
            "from..to: one week, half a year ago",
            format!("/admin/audit?from={}&to={}", day(187), day(181)),
            "<tr class=\"event\">".to_string(),
        ),
        (
            "event + outcome + week",
            format!(
                "/admin/audit?event=login.failed&outcome=failure&from={}&to={}",
                day(187),
                day(181)
            ),
            "class=\"event-name\">login.failed<".to_string(),
        ),
    ] {
        audit.push(time_get(&client, &server, &cookie, what, &path, &expect).await?);
    }

    eprintln!("[{label}] exporting the whole log as CSV and as JSON lines");
    let mut exports = Vec::new();
    for format in ["csv", "jsonl"] {
        exports.push(export(&client, &server, &cookie, format).await?);
    }
    let _ = server.stop();
    Ok(AdminResults {
        seeded_in,
        users,
        audit,
        exports,
    })
}

pub fn report(
    out: &mut String,
    readme: &mut Vec<String>,
    name: &str,
    r: &Result<AdminResults, String>,
) {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "{name:<18} FAILED: {e}");
            readme.push(format!("- {name}: not measured ({})", snippet(e)));
            return;
        }
    };
    let _ = writeln!(
        out,
        "{name:<18} seeded {USERS} users + {EVENTS} audit events in {:.1} s",
        r.seeded_in.as_secs_f64()
    );
    for (page, timings) in [("/admin/users", &r.users), ("/admin/audit", &r.audit)] {
        for t in timings {
            let median = ms(t.median);
            let pass = median < TARGET_MEDIAN_MS;
            let line = format!(
                "{page} {}: median {median:.1} ms (max {:.1})",
                t.what,
                ms(t.max)
            );
            let _ = writeln!(
                out,
                "{name:<18} {line:<70} < {TARGET_MEDIAN_MS} ms  {}",
                mark(pass)
            );
            readme.push(format!("- {name}: {line}: {}", mark(pass)));
        }
    }
    for e in &r.exports {
        let peak = mib(e.rss_peak_kib);
        let pass = peak < TARGET_EXPORT_MIB;
        let line = format!(
            "export {} of {} lines ({:.0} MiB) in {:.1} s: RSS {:.1} MiB before, peak {peak:.1} MiB",
            e.format,
            e.lines,
            e.bytes as f64 / 1_048_576.0,
            e.took.as_secs_f64(),
            mib(e.rss_before_kib),
        );
        let _ = writeln!(
            out,
            "{name:<18} {line:<70} < {TARGET_EXPORT_MIB} MiB {}",
            mark(pass)
        );
        readme.push(format!("- {name}: {line}: {}", mark(pass)));
    }
}
