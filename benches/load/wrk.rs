//! Request rates measured with wrk (Debian's `wrk` package), the load generator the
//! issue's anchors (node oidc-provider, Kanidm) were measured with, so those figures
//! compare like with like. The bench's own reqwest loops cost the shared two cores
//! several times more per request than wrk's event loop in C, which held every route,
//! `/healthz` included, near 50 000 req/s whatever the server did.
//!
//! wrk counts 4xx/5xx answers (and socket errors) but takes a 3xx for success, so each
//! caller first checks with one real request that the endpoint answers 200 to exactly
//! what wrk will send.

use super::*;

/// What wrk sends: method, extra headers, body.
pub struct Request<'a> {
    pub method: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<String>,
}

impl<'a> Request<'a> {
    pub fn get() -> Self {
        Self {
            method: "GET",
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn post_form(body: String) -> Self {
        Self {
            method: "POST",
            headers: vec![(
                "Content-Type",
                "application/x-www-form-urlencoded".to_string(),
            )],
            body: Some(body),
        }
    }

    pub fn header(mut self, name: &'a str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

fn lua_string(s: &str) -> String {
    format!("{s:?}")
}

/// The Lua script that makes wrk send `req`.
fn script(req: &Request) -> String {
    let mut s = format!("wrk.method = {}\n", lua_string(req.method));
    if let Some(b) = &req.body {
        s.push_str(&format!("wrk.body = {}\n", lua_string(b)));
    }
    for (k, v) in &req.headers {
        s.push_str(&format!(
            "wrk.headers[{}] = {}\n",
            lua_string(k),
            lua_string(v)
        ));
    }
    s
}

pub fn available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Checks with one request that `url` answers 200 to `req`.
async fn answers_ok(url: &str, req: &Request<'_>) -> Result<(), String> {
    let client = plain_client()?;
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut r = client.request(method, url);
    for (k, v) in &req.headers {
        r = r.header(*k, v);
    }
    if let Some(b) = &req.body {
        r = r.body(b.clone());
    }
    let res = r.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = res.status();
    if status != StatusCode::OK {
        let body = res.text().await.unwrap_or_default();
        return Err(format!("{url} answers {status}: {}", snippet(&body)));
    }
    Ok(())
}

fn run_wrk(
    url: &str,
    script_path: &Path,
    secs: u64,
    threads: usize,
    connections: usize,
) -> Result<Tally, String> {
    let out = run_cmd(
        Command::new("wrk").args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{secs}s"),
            "--timeout",
            &format!("{}s", REQUEST_TIMEOUT.as_secs()),
            "-s",
            &script_path.to_string_lossy(),
            url,
        ]),
        None,
        Duration::from_secs(secs) + REQUEST_TIMEOUT + Duration::from_secs(10),
    )?;
    if !out.ok {
        return Err(format!("wrk failed: {}{}", out.stdout, out.stderr));
    }
    parse(&out.stdout).ok_or_else(|| format!("wrk output not understood: {}", out.stdout))
}

/// Reads wrk's summary: "N requests in 5.00s", "Non-2xx or 3xx responses: M",
/// "Socket errors: connect a, read b, write c, timeout d".
fn parse(text: &str) -> Option<Tally> {
    let mut t = Tally::default();
    let mut total = None;
    for line in text.lines().map(str::trim) {
        if let Some((n, rest)) = line.split_once(" requests in ") {
            total = n.parse::<u64>().ok();
            let secs = rest.split(',').next()?.trim();
            t.secs = if let Some(ms) = secs.strip_suffix("ms") {
                ms.parse::<f64>().ok()? / 1000.0
            } else if let Some(m) = secs.strip_suffix('m') {
                m.parse::<f64>().ok()? * 60.0
            } else {
                secs.strip_suffix('s')?.parse().ok()?
            };
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            t.unexpected = n.trim().parse().ok()?;
        } else if let Some(errs) = line.strip_prefix("Socket errors:") {
            t.errors = errs
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        }
    }
    t.ok = total?.saturating_sub(t.unexpected);
    if t.unexpected + t.errors > 0 {
        t.first_problem = Some(format!(
            "wrk: {} answers ≥ 400, {} socket errors",
            t.unexpected, t.errors
        ));
    }
    Some(t)
}

/// Requests per second of `req` on `url`: a one-second warm-up run, then `MEASURE`,
/// `HTTP_CONCURRENCY` connections on one wrk thread per core.
pub async fn rate(url: &str, req: Request<'_>) -> Result<Tally, String> {
    rates(&[url.to_string()], req).await
}

/// The same load split over several addresses at once (one wrk process each, one
/// thread each, `HTTP_CONCURRENCY` connections in all), summed.
pub async fn rates(urls: &[String], req: Request<'_>) -> Result<Tally, String> {
    for url in urls {
        answers_ok(url, &req).await?;
    }
    let dir = DataDir::create()?;
    let path = dir.path.join("request.lua");
    std::fs::write(&path, script(&req)).map_err(|e| format!("write wrk script: {e}"))?;
    let (threads, connections) = match urls.len() {
        1 => (cores(), HTTP_CONCURRENCY),
        n => (1, HTTP_CONCURRENCY.div_ceil(n)),
    };
    let runs: Vec<_> = urls
        .iter()
        .map(|url| {
            let (url, path) = (url.clone(), path.clone());
            tokio::task::spawn_blocking(move || {
                run_wrk(&url, &path, WARMUP.as_secs().max(1), threads, connections)?;
                run_wrk(&url, &path, MEASURE.as_secs(), threads, connections)
            })
        })
        .collect();
    let mut total = Tally::default();
    for run in runs {
        let t = run.await.map_err(|e| format!("wrk: {e}"))??;
        total.secs = total.secs.max(t.secs);
        total.merge(t);
    }
    Ok(total)
}

/// Rounds in which a figure given as a ratio to `GET /healthz` and `/healthz` itself
/// take turns, and the length of each turn. This machine's speed drifts by a quarter
/// from minute to minute (`/healthz` alone measured 47 000 and 95 000 req/s in two runs
/// on one machine); two 5 s windows a minute apart measured the drift as much as the
/// server. Turns in the order H E, E H, H E, E H cancel a drift that is linear in time.
pub const PAIRED_ROUNDS: usize = 4;
pub const PAIRED_TURN_SECS: u64 = 2;

/// An endpoint's rate beside `GET /healthz` on the same server, from alternating turns.
pub struct Paired {
    pub endpoint: Tally,
    pub healthz: Tally,
    /// endpoint ÷ `/healthz` in each round, to show how far the rounds spread.
    pub rounds: Vec<f64>,
}

impl Paired {
    /// Requests served by the endpoint ÷ requests served by `/healthz`, each per second
    /// over all its turns.
    pub fn ratio(&self) -> f64 {
        self.endpoint.ratio_to(&self.healthz)
    }

    /// "rounds 0.61–0.74": the lowest and highest per-round ratio, for the report.
    pub fn spread(&self) -> String {
        if self.rounds.is_empty() {
            return "no round measured".into();
        }
        let lo = self.rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.rounds.iter().copied().fold(0.0, f64::max);
        format!("rounds {lo:.2}–{hi:.2}")
    }
}

/// `req` on `url` and a plain GET on `healthz_url`, each warmed up once and then
/// measured in `PAIRED_ROUNDS` alternating turns of `PAIRED_TURN_SECS`, with the same
/// connections and threads as `rate`.
pub async fn beside_healthz(
    healthz_url: &str,
    url: &str,
    req: Request<'_>,
) -> Result<Paired, String> {
    in_turns((healthz_url, Request::get()), (url, req)).await
}

/// Like `beside_healthz`, with any request as the base: `paired.healthz` is then the
/// base's tally, `paired.endpoint` the other's, and the rounds endpoint ÷ base.
pub async fn in_turns(
    base: (&str, Request<'_>),
    other: (&str, Request<'_>),
) -> Result<Paired, String> {
    let ((h_url, h_req), (e_url, e_req)) = (base, other);
    answers_ok(h_url, &h_req).await?;
    answers_ok(e_url, &e_req).await?;
    let dir = DataDir::create()?;
    let (h_script, e_script) = (dir.path.join("base.lua"), dir.path.join("request.lua"));
    std::fs::write(&h_script, script(&h_req)).map_err(|e| format!("write wrk script: {e}"))?;
    std::fs::write(&e_script, script(&e_req)).map_err(|e| format!("write wrk script: {e}"))?;
    let (h_url, e_url) = (h_url.to_string(), e_url.to_string());
    tokio::task::spawn_blocking(move || {
        let run = |url: &str, script: &Path, secs: u64| {
            run_wrk(url, script, secs, cores(), HTTP_CONCURRENCY)
        };
        run(&h_url, &h_script, WARMUP.as_secs().max(1))?;
        run(&e_url, &e_script, WARMUP.as_secs().max(1))?;
        let mut p = Paired {
            endpoint: Tally::default(),
            healthz: Tally::default(),
            rounds: Vec::new(),
        };
        for round in 0..PAIRED_ROUNDS {
            let (h, e) = if round % 2 == 0 {
                let h = run(&h_url, &h_script, PAIRED_TURN_SECS)?;
                (h, run(&e_url, &e_script, PAIRED_TURN_SECS)?)
            } else {
                let e = run(&e_url, &e_script, PAIRED_TURN_SECS)?;
                (run(&h_url, &h_script, PAIRED_TURN_SECS)?, e)
            };
            if h.rate() > 0.0 {
                p.rounds.push(e.ratio_to(&h));
            }
            add_turn(&mut p.healthz, h);
            add_turn(&mut p.endpoint, e);
        }
        Ok(p)
    })
    .await
    .map_err(|e| format!("wrk: {e}"))?
}

/// Adds one turn to a total: turns follow each other, so their times add up.
fn add_turn(total: &mut Tally, turn: Tally) {
    total.secs += turn.secs;
    total.merge(turn);
}
