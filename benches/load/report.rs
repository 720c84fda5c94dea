//! Report: one configuration's results, the rows and details printed for them, and the
//! whole report with its README lines.

use std::fmt::Write as _;
use std::time::Duration;

use super::wrk::{PAIRED_ROUNDS, PAIRED_TURN_SECS};
use super::*;

/// Above this share of the CPU used by other processes in a phase, the report warns.
const OTHERS_WARN: f64 = 0.05;

pub(crate) const TARGET_THROUGHPUT_SQLITE: f64 = 0.5;
pub(crate) const TARGET_THROUGHPUT_REDIS: f64 = 0.33;
const TARGET_SIGNIN: f64 = 0.9;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_RSS_IDLE_MIB: f64 = 20.0;
const TARGET_RSS_LOAD_MIB: f64 = 64.0;

pub(crate) struct Results {
    /// Signed-in `GET /account` in turns with `GET /healthz`.
    pub(crate) account: wrk::Paired,
    pub(crate) raw: Raw,
    /// The rates of the two raw measurements that bracket the sign-ins.
    pub(crate) raw_before_after: (f64, f64),
    pub(crate) sign_ins: Tally,
    pub(crate) sign_ins_clients: usize,
    pub(crate) probe: Probe,
    pub(crate) probe_load: Tally,
    pub(crate) rss_start_kib: Option<u64>,
    pub(crate) rss_idle_kib: Option<u64>,
    pub(crate) rss_peak_kib: u64,
    pub(crate) rss_peaks: Vec<(&'static str, u64)>,
    pub(crate) rss_after_kib: Option<u64>,
    pub(crate) startup: Duration,
    pub(crate) stop: Result<Duration, String>,
    pub(crate) logged: Vec<String>,
    pub(crate) cpu: Vec<CpuUse>,
    pub(crate) oidc: Result<oidc::OidcResults, String>,
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(crate) fn rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

pub(crate) fn mark(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) measured: String,
    pub(crate) target: String,
    pub(crate) pass: bool,
    pub(crate) readme: String,
}

fn rows(r: &Results, throughput_target: f64, node: &oidc::NodeAnchor) -> Vec<Row> {
    let mut rows = Vec::new();
    let ratio = r.account.ratio();
    let (account, healthz) = (r.account.endpoint.rate(), r.account.healthz.rate());
    rows.push(Row {
        figure: "GET /account ÷ GET /healthz throughput".into(),
        measured: format!(
            "{ratio:.2} ({} / {} req/s; {})",
            rate(account),
            rate(healthz),
            r.account.spread()
        ),
        target: format!("≥ {throughput_target}"),
        pass: ratio >= throughput_target,
        readme: format!(
            "signed-in GET /account throughput is {ratio:.2}× GET /healthz ({} vs {} req/s, wrk, {HTTP_CONCURRENCY} keep-alive connections, {PAIRED_ROUNDS} alternating turns of {PAIRED_TURN_SECS} s each; {}) — target ≥ {throughput_target}",
            rate(account),
            rate(healthz),
            r.account.spread()
        ),
    });
    let ratio = r.sign_ins.rate() / r.raw.rate();
    rows.push(Row {
        figure: "sign-ins/s ÷ raw argon2id verifications/s".into(),
        measured: format!(
            "{ratio:.2} ({} / {} per s)",
            rate(r.sign_ins.rate()),
            rate(r.raw.rate())
        ),
        target: format!("≥ {TARGET_SIGNIN}"),
        pass: ratio >= TARGET_SIGNIN,
        readme: format!(
            "sign-ins run at {ratio:.2}× the raw argon2id rate ({} sign-ins/s vs {} verifications/s on {} threads, m={ARGON2_M_KIB} KiB t={ARGON2_T} p={ARGON2_P}) — target ≥ {TARGET_SIGNIN}",
            rate(r.sign_ins.rate()),
            rate(r.raw.rate()),
            r.raw.threads
        ),
    });
    let (p50, p99, max) = (
        r.probe.percentile(0.50),
        r.probe.percentile(0.99),
        r.probe.latencies.last().copied(),
    );
    let n = r.probe.latencies.len();
    match (p50, p99, max) {
        (Some(p50), Some(p99), Some(max)) => {
            let p99ms = ms(p99);
            rows.push(Row {
                figure: "GET /account p99 during sign-in load".into(),
                measured: format!(
                    "{p99ms:.2} ms (p50 {:.2}, max {:.2}; n={n})",
                    ms(p50),
                    ms(max)
                ),
                target: format!("≤ {TARGET_P99_MS} ms"),
                pass: p99ms <= TARGET_P99_MS && r.probe.unexpected + r.probe.errors == 0,
                readme: format!(
                    "GET /account while sign-ins saturate the CPU: p50 {:.2} ms, p99 {p99ms:.2} ms, max {:.2} ms ({n} sequential requests) — target p99 ≤ {TARGET_P99_MS} ms",
                    ms(p50),
                    ms(max)
                ),
            });
        }
        _ => rows.push(Row {
            figure: "GET /account p99 during sign-in load".into(),
            measured: "no successful request".into(),
            target: format!("≤ {TARGET_P99_MS} ms"),
            pass: false,
            readme: "GET /account latency under sign-in load: no successful request".into(),
        }),
    }
    let idle = r.rss_idle_kib.map(mib);
    rows.push(Row {
        figure: "server RSS, idle after sign-in".into(),
        measured: idle.map_or("unreadable".into(), |m| format!("{m:.1} MiB")),
        target: format!("≤ {TARGET_RSS_IDLE_MIB} MiB"),
        pass: idle.is_some_and(|m| m <= TARGET_RSS_IDLE_MIB),
        readme: format!(
            "resident memory idle: {} — target ≤ {TARGET_RSS_IDLE_MIB} MiB",
            idle.map_or("unreadable".into(), |m| format!("{m:.1} MiB"))
        ),
    });
    let peak = mib(r.rss_peak_kib);
    rows.push(Row {
        figure: "server RSS, peak under load".into(),
        measured: format!("{peak:.1} MiB"),
        target: format!("≤ {TARGET_RSS_LOAD_MIB} MiB"),
        pass: r.rss_peak_kib > 0 && peak <= TARGET_RSS_LOAD_MIB,
        readme: format!(
            "resident memory peak under load (sampled every {} ms): {peak:.1} MiB — target ≤ {TARGET_RSS_LOAD_MIB} MiB",
            RSS_SAMPLE_EVERY.as_millis()
        ),
    });
    match &r.oidc {
        Ok(o) => rows.extend(oidc::rows(o, r.account.healthz.rate(), node)),
        Err(e) => rows.push(Row {
            figure: "OpenID Connect endpoints".into(),
            measured: format!("not measured: {}", snippet(e)),
            target: "—".into(),
            pass: false,
            readme: format!("OpenID Connect endpoints: not measured ({})", snippet(e)),
        }),
    }
    rows
}

fn details(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "    start-up to /healthz 200: {:.0} ms; graceful stop: {}",
        ms(r.startup),
        match &r.stop {
            Ok(d) => format!("{:.0} ms after SIGTERM", ms(*d)),
            Err(e) => e.clone(),
        }
    );
    let _ = writeln!(
        s,
        "    sign-ins: {} in {:.0} s with {} clients; during the latency probe: {} ({}/s)",
        r.sign_ins.ok,
        r.sign_ins.secs,
        r.sign_ins_clients,
        r.probe_load.ok,
        rate(r.probe_load.rate())
    );
    let _ = writeln!(
        s,
        "    raw argon2id: {} verifications in {:.2} s on {} threads ({}/s before the sign-ins, {}/s after)",
        r.raw.verifications,
        r.raw.secs,
        r.raw.threads,
        rate(r.raw_before_after.0),
        rate(r.raw_before_after.1)
    );
    let peaks: Vec<String> = r
        .rss_peaks
        .iter()
        .map(|(n, k)| format!("{n} {:.1} MiB", mib(*k)))
        .collect();
    let _ = writeln!(
        s,
        "    RSS at start (before any sign-in): {}; peaks by phase: {}; 1 s after the load: {}",
        r.rss_start_kib
            .map_or("unreadable".into(), |k| format!("{:.1} MiB", mib(k))),
        peaks.join(", "),
        r.rss_after_kib
            .map_or("unreadable".into(), |k| format!("{:.1} MiB", mib(k)))
    );
    for (name, t) in [
        ("GET /healthz", &r.account.healthz),
        ("GET /account", &r.account.endpoint),
        ("sign-ins", &r.sign_ins),
        ("sign-ins during probe", &r.probe_load),
    ] {
        if let Some(p) = t.problems() {
            let _ = writeln!(s, "    PROBLEM {name}: {p}");
        }
    }
    if r.probe.unexpected + r.probe.errors > 0 {
        let _ = writeln!(
            s,
            "    PROBLEM latency probe: {} unexpected answers, {} transport errors (excluded from percentiles); first: {}",
            r.probe.unexpected,
            r.probe.errors,
            r.probe.first_problem.as_deref().unwrap_or("?")
        );
    }
    let cpu: Vec<String> = r
        .cpu
        .iter()
        .map(|c| {
            format!(
                "{} {:.0}% ({:.0}%)",
                c.phase,
                c.busy * 100.0,
                c.others * 100.0
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "    machine CPU busy by phase (of which other processes): {}",
        cpu.join(", ")
    );
    if let Some(worst) = r.cpu.iter().max_by(|a, b| a.others.total_cmp(&b.others))
        && worst.others > OTHERS_WARN
    {
        let _ = writeln!(
            s,
            "    WARNING: other processes used {:.0}% of the CPU during \"{}\": these figures are disturbed; rerun on a quiet machine",
            worst.others * 100.0,
            worst.phase
        );
    }
    if r.logged.is_empty() {
        let _ = writeln!(
            s,
            "    server log: no warnings or errors (besides the first-run setup link)"
        );
    } else {
        let _ = writeln!(
            s,
            "    server log: {} warning/error lines, first ones:",
            r.logged.len()
        );
        for l in r.logged.iter().take(5) {
            let _ = writeln!(s, "      {l}");
        }
    }
    if let Ok(o) = &r.oidc {
        for p in oidc::problems(o) {
            let _ = writeln!(s, "    OIDC load problem: {p}");
        }
    }
    s
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub(crate) fn print_report(
    node: Option<&Result<reference::NodeRates, String>>,
    outcomes: &[(&str, f64, Result<Results, String>)],
    forwards: &[(&str, Result<forward::ForwardResults, String>)],
    scaling: Option<&Result<scaling::Scaling, String>>,
    pg_tls: Option<&Result<pg_tls::TlsCost, String>>,
    admins: &[(&str, Result<admin::AdminResults, String>)],
    skipped: Option<&str>,
) {
    let cores = cores();
    let mut out = String::new();
    let _ = writeln!(out, "\nportcullis load benchmark");
    let _ = writeln!(
        out,
        "conditions: {cores} cores ({}), Linux {}; release build; the load generator runs on the same cores",
        cpu_model(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let _ = writeln!(
        out,
        "  request rates: wrk, {HTTP_CONCURRENCY} keep-alive connections, {} s warm-up + {} s measured per endpoint (sign-ins, the latency probe and refresh chains: reqwest); a figure given ÷ GET /healthz takes {PAIRED_ROUNDS} turns of {PAIRED_TURN_SECS} s with /healthz (H E, E H, ...) after a warm-up each",
        WARMUP.as_secs(),
        MEASURE.as_secs()
    );
    let _ = writeln!(
        out,
        "  sign-ins: {} concurrent clients (POST /login, valid credentials), {} s warm-up + {} s measured; raw argon2id m={ARGON2_M_KIB} KiB t={ARGON2_T} p={ARGON2_P} on {cores} threads for {} s just before and {} s just after them, server idle",
        SIGNIN_CLIENTS_PER_CORE * cores,
        WARMUP.as_secs(),
        MEASURE.as_secs(),
        RAW_MEASURE.as_secs(),
        RAW_MEASURE.as_secs()
    );
    let _ = writeln!(
        out,
        "  latency: one sequential signed-in client, one GET /account every {} ms for {} s, while the sign-in load runs again",
        PROBE_EVERY.as_millis(),
        MEASURE.as_secs()
    );
    let _ = writeln!(
        out,
        "  memory: VmRSS of the server process, idle after start-up + one sign-in, peak sampled every {} ms during the load phases",
        RSS_SAMPLE_EVERY.as_millis()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<18} {:<42} {:<40} {:<10} result",
        "configuration", "figure", "measured", "target"
    );
    let _ = writeln!(out, "{}", "-".repeat(118));
    let mut readme = Vec::new();
    let not_run = Err("not run".to_string());
    let anchor = oidc::NodeAnchor::from(node.unwrap_or(&not_run));
    if let Some(n) = node {
        let line = match n {
            Ok(n) => format!(
                "node oidc-provider (reference, this run, one process, opaque tokens in memory): discovery {}, JWKS {}, client_credentials {} req/s; idle RSS {}",
                rate(n.discovery),
                rate(n.jwks),
                rate(n.client_credentials),
                n.idle_rss_kib
                    .map_or("unreadable".into(), |k| format!("{:.1} MiB", mib(k)))
            ),
            Err(e) => format!(
                "node oidc-provider (reference): not measured ({})",
                snippet(e)
            ),
        };
        let _ = writeln!(out, "{line}");
        readme.push(format!("- {line}"));
    }
    for (name, target, outcome) in outcomes {
        match outcome {
            Ok(r) => {
                for row in rows(r, *target, &anchor) {
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
                out.push_str(&details(r));
            }
            Err(e) => {
                let _ = writeln!(out, "{name:<18} FAILED: {e}");
                readme.push(format!("- {name}: not measured ({})", snippet(e)));
            }
        }
    }
    for (name, f) in forwards {
        forward::report(&mut out, &mut readme, name, f);
    }
    if let Some(s) = scaling {
        scaling::report(&mut out, &mut readme, s);
    }
    if let Some(t) = pg_tls {
        pg_tls::report(&mut out, &mut readme, t);
    }
    for (name, a) in admins {
        admin::report(&mut out, &mut readme, name, a);
    }
    if let Some(note) = skipped {
        let _ = writeln!(out, "{note}");
        readme.push(format!("- {note}"));
    }
    let _ = writeln!(out, "\nREADME lines:");
    for l in readme {
        let _ = writeln!(out, "{l}");
    }
    print!("{out}");
}
