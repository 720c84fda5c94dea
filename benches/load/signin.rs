//! Sign-in load: the measured window, the tally of outcomes, the sign-in clients and the
//! latency probe that runs beside them.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderValue, LOCATION};

use super::*;

/// Concurrent sign-in clients per core: enough to keep the server's hash queue full.
pub(crate) const SIGNIN_CLIENTS_PER_CORE: usize = 4;
/// The latency probe sends one request this often (about 3 per 10 ms).
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(3);
const PROBE_MAX_REQUESTS: usize = 5_000;

/// The measured part of a phase: after the warm-up, for `MEASURE`.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    start: Instant,
    pub(crate) end: Instant,
}

impl Window {
    pub(crate) fn new(warmup: Duration, measure: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            end: start + measure,
        }
    }

    pub(crate) fn contains(&self, t: Instant) -> bool {
        t >= self.start && t <= self.end
    }

    fn secs(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }
}

/// Outcomes of one load: `ok` counts only completions inside the window; unexpected
/// answers and transport errors are counted over the whole phase.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) unexpected: u64,
    pub(crate) errors: u64,
    pub(crate) first_problem: Option<String>,
    pub(crate) secs: f64,
}

impl Tally {
    pub(crate) fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.unexpected += other.unexpected;
        self.errors += other.errors;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }

    /// This load's rate ÷ `base`'s, 0 when `base` measured nothing.
    pub(crate) fn ratio_to(&self, base: &Tally) -> f64 {
        if base.rate() > 0.0 {
            self.rate() / base.rate()
        } else {
            0.0
        }
    }

    pub(crate) fn problem(&mut self, error: bool, what: String) {
        if error {
            self.errors += 1;
        } else {
            self.unexpected += 1;
        }
        if self.first_problem.is_none() {
            self.first_problem = Some(what);
        }
    }

    pub(crate) fn problems(&self) -> Option<String> {
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

pub(crate) async fn join_tallies(
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

pub(crate) fn sign_in_load(
    base: &str,
    clients: usize,
    w: Window,
) -> Vec<tokio::task::JoinHandle<Tally>> {
    (0..clients)
        .map(|_| tokio::spawn(sign_in_loop(base.to_string(), w)))
        .collect()
}

pub(crate) struct Probe {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) unexpected: u64,
    pub(crate) errors: u64,
    pub(crate) first_problem: Option<String>,
}

impl Probe {
    /// Nearest-rank percentile of the sorted latencies.
    pub(crate) fn percentile(&self, q: f64) -> Option<Duration> {
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
pub(crate) fn spawn_probe(
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
