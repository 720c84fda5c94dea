//! Forward auth (`GET /auth/forward`, as a reverse proxy asks it), on SQLite or on
//! PostgreSQL + Redis: with a session against a signed-in `GET /account`; with 1 000
//! access rules against 10; with a personal access token (Bearer) against a session.
//! Each pair is measured with wrk in alternating turns (`wrk::in_turns`).
//!
//! Two fresh servers, each with its own data (and, on PostgreSQL, database and Redis
//! prefix), trusting 127.0.0.1 as a proxy: one with 10 rules, one with 1 000. The rules
//! name distinct domains and paths, and the one that matches the request is the last,
//! so every other rule is tried first.

use super::*;

pub const TARGET_FORWARD_VS_ACCOUNT: f64 = 0.9;
pub const TARGET_RULES: f64 = 0.8;
pub const TARGET_TOKEN_VS_SESSION: f64 = 0.8;

/// The site the proxy asks about; only the last rule names it.
const HOST: &str = "protected.example.com";
const URI: &str = "/reports/2026/q3?page=2";

pub struct ForwardResults {
    /// base: signed-in `GET /account`; endpoint: `/auth/forward` with the session.
    pub session: wrk::Paired,
    /// base: 10 rules; endpoint: 1 000 rules (sessions both).
    pub rules: wrk::Paired,
    /// base: a session; endpoint: a personal access token.
    pub token: wrk::Paired,
}

/// `n` rules as `PORTCULLIS_ACCESS_RULE` takes them: distinct domains and paths in
/// three common shapes (a group-only path, a closed wildcard subdomain, public paths),
/// then the rule for `HOST`.
fn rules(n: usize) -> String {
    let mut rules: Vec<serde_json::Value> = (1..n)
        .map(|i| match i % 3 {
            0 => serde_json::json!({"name": format!("r{i}"), "domain": format!("app-{i}.example.com"),
                "path": format!("/admin-{i}"), "subject": format!("group:team-{i}"), "policy": "one_factor"}),
            1 => serde_json::json!({"name": format!("r{i}"), "domain": format!("*.site-{i}.example.com"),
                "path": format!("/private-{i}"), "policy": "deny"}),
            _ => serde_json::json!({"name": format!("r{i}"), "domain": format!("app-{i}.example.com"),
                "path": [format!("/public-{i}"), format!("/assets-{i}")], "policy": "bypass"}),
        })
        .collect();
    rules.push(serde_json::json!({"name": "protected", "domain": HOST, "policy": "one_factor"}));
    serde_json::Value::Array(rules).to_string()
}

/// What a proxy sends with the request it asks about.
fn forward_request<'a>(credential: (&'a str, String)) -> wrk::Request<'a> {
    wrk::Request::get()
        .header("X-Forwarded-Proto", "https".into())
        .header("X-Forwarded-Host", HOST.into())
        .header("X-Forwarded-Uri", URI.into())
        .header("X-Forwarded-Method", "GET".into())
        .header(credential.0, credential.1)
}

/// A personal access token for the bench's user, from `portcullis token create`.
fn create_token(bin: &Path, server: &Server) -> Result<String, String> {
    let mut cli = Command::new(bin);
    cli.args(["token", "create", "--email", EMAIL, "--name", "bench"])
        .env_clear()
        .envs(server.env.iter().map(|(k, v)| (k, v)));
    let out = run_cmd(&mut cli, None, Duration::from_secs(60))?;
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .filter(|_| out.ok)
        .map(str::to_string)
        .ok_or_else(|| format!("portcullis token create: {}{}", out.stdout, out.stderr))
}

/// A started server with its user signed in, and what it must outlive.
struct Site {
    server: Server,
    cookie: String,
    _data: DataDir,
    _pg: Option<(PgDatabase, RedisPrefix)>,
}

async fn site(bin: &Path, pg: bool, rule_count: usize) -> Result<Site, String> {
    let data = DataDir::create()?;
    let pg = if pg {
        Some((PgDatabase::create()?, RedisPrefix::new()))
    } else {
        None
    };
    let mut extra = pg
        .as_ref()
        .map_or_else(Vec::new, |(db, redis)| pg_redis_env(db.url(), redis));
    extra.push(("PORTCULLIS_TRUSTED_PROXIES".into(), "127.0.0.1".into()));
    extra.push(("PORTCULLIS_ACCESS_RULE".into(), rules(rule_count)));
    // The token's own limit is still counted on every request (in Redis when there is
    // one, in the same round trip as the cache generation), but set above what the
    // bench sends, so that it measures answers rather than refusals.
    extra.push((
        "PORTCULLIS_PERSONAL_TOKEN_USES_PER_MINUTE".into(),
        "1000000".into(),
    ));
    let mut server = Server::start(bin, &data.path, &extra)?;
    server.wait_healthy(&plain_client()?).await?;
    create_bench_user(bin, &server, &[])?;
    let cookie = sign_in(&server).await?;
    let cookie = cookie.to_str().map_err(|e| e.to_string())?.to_string();
    Ok(Site {
        server,
        cookie,
        _data: data,
        _pg: pg,
    })
}

pub async fn measure(bin: &Path, pg: bool, label: &str) -> Result<ForwardResults, String> {
    let ten = site(bin, pg, 10).await?;
    let thousand = site(bin, pg, 1000).await?;
    let token = create_token(bin, &ten.server)?;
    let forward = |s: &Site| s.server.url("/auth/forward");
    let session = |s: &Site| forward_request(("Cookie", s.cookie.clone()));

    eprintln!("[forward {label}] /auth/forward (session) and GET /account in turns");
    let account = wrk::Request::get().header("Cookie", ten.cookie.clone());
    let session_vs_account = wrk::in_turns(
        (&ten.server.url("/account"), account),
        (&forward(&ten), session(&ten)),
    )
    .await?;
    eprintln!("[forward {label}] /auth/forward with 1 000 rules and with 10 in turns");
    let rules = wrk::in_turns(
        (&forward(&ten), session(&ten)),
        (&forward(&thousand), session(&thousand)),
    )
    .await?;
    eprintln!("[forward {label}] /auth/forward with a token (Bearer) and a session in turns");
    let bearer = forward_request(("Authorization", format!("Bearer {token}")));
    let token = wrk::in_turns((&forward(&ten), session(&ten)), (&forward(&ten), bearer)).await?;
    Ok(ForwardResults {
        session: session_vs_account,
        rules,
        token,
    })
}

fn rows(f: &ForwardResults) -> Vec<Row> {
    let conditions = format!(
        "wrk, {HTTP_CONCURRENCY} keep-alive connections, {PAIRED_ROUNDS} alternating turns of {PAIRED_TURN_SECS} s each",
        PAIRED_ROUNDS = wrk::PAIRED_ROUNDS,
        PAIRED_TURN_SECS = wrk::PAIRED_TURN_SECS
    );
    [
        (
            "/auth/forward (session) ÷ GET /account",
            "GET /auth/forward with a session (10 rules, the last matching) ÷ signed-in GET /account",
            &f.session,
            TARGET_FORWARD_VS_ACCOUNT,
        ),
        (
            "/auth/forward, 1 000 rules ÷ 10 rules",
            "GET /auth/forward with a session, 1 000 rules ÷ 10 rules (the last matching; two servers)",
            &f.rules,
            TARGET_RULES,
        ),
        (
            "/auth/forward, token ÷ session",
            "GET /auth/forward with a personal access token (Bearer) ÷ with a session (10 rules)",
            &f.token,
            TARGET_TOKEN_VS_SESSION,
        ),
    ]
    .into_iter()
    .map(|(figure, long, p, target)| {
        let r = p.ratio();
        let (e, b) = (rate(p.endpoint.rate()), rate(p.healthz.rate()));
        Row {
            figure: figure.into(),
            measured: format!("{r:.2} ({e} / {b} req/s; {})", p.spread()),
            target: format!("≥ {target}"),
            pass: r >= target,
            readme: format!(
                "{long}: {r:.2} ({e} vs {b} req/s, {conditions}; {}) — target ≥ {target}",
                p.spread()
            ),
        }
    })
    .collect()
}

pub fn report(
    out: &mut String,
    readme: &mut Vec<String>,
    name: &str,
    f: &Result<ForwardResults, String>,
) {
    match f {
        Ok(f) => {
            for row in rows(f) {
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
            for (n, p) in [
                ("session", &f.session),
                ("rules", &f.rules),
                ("token", &f.token),
            ] {
                for t in [&p.healthz, &p.endpoint] {
                    if let Some(problem) = t.problems() {
                        let _ = writeln!(out, "    PROBLEM forward {n}: {problem}");
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(out, "{name:<18} forward auth FAILED: {e}");
            readme.push(format!(
                "- {name}: forward auth not measured ({})",
                snippet(e)
            ));
        }
    }
}
