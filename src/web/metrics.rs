//! `/metrics` in the Prometheus text format, and the request middleware that feeds it.
//!
//! Counters and histograms go through the `metrics` facade into one process-wide
//! Prometheus recorder. Gauges that describe shared state (sessions, outbox depth,
//! pool use) are read when scraped, so every instance reports the same truth.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::error::AppError;
use super::state::AppState;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How often pending histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The recorder is global to the process (the facade allows one); every app in the
/// process (tests start several) shares it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Histogram samples wait in the recorder until they are folded into buckets,
        // which happens on a scrape or an upkeep. Without this, a server nobody scrapes
        // kept every request's latency: about 17 bytes a request, 5 MiB per 300 000.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("metrics upkeep thread not started: {e}");
        }
        // Fails only if another recorder was set first; then ours records nothing, and
        // /metrics shows only the scrape-time gauges.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        handle
    })
}

/// Counts and times every request by route pattern (bounded cardinality) and status.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    Ok(res)
}

/// A sign-in attempt by outcome (success, invalid, disabled, unverified, throttled,
/// mfa_pending) and method (password, passkey).
pub fn sign_in(method: &'static str, outcome: &'static str) {
    metrics::counter!("sign_ins_total", "method" => method, "outcome" => outcome).increment(1);
}

pub use crate::counters::{rate_limited, second_factor, token_issued};

/// Who may scrape: the configured bearer token, or, without one, a client on this host.
/// "Client" as everywhere else (`client::client_ip`): behind a trusted proxy the socket
/// peer is the proxy, so the peer alone would let the whole internet in.
fn allowed(req: &HttpRequest, st: &AppState) -> bool {
    match &st.config.metrics_token {
        Some(token) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| subtle::ConstantTimeEq::ct_eq(t.as_bytes(), token.as_bytes()).into()),
        None => crate::web::caller::client_ip(req, &st.config).is_loopback(),
    }
}

pub async fn scrape(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if !allowed(&req, &st) {
        return Err(AppError::NotFound);
    }
    let g = st.health.gauges().await?;
    let mut body = handle().render();
    body.push_str(&format!(
        "# TYPE sessions_active gauge\nsessions_active {}\n\
         # TYPE mail_outbox_depth gauge\nmail_outbox_depth {}\n\
         # TYPE db_pool_connections gauge\ndb_pool_connections{{state=\"idle\"}} {}\n\
         db_pool_connections{{state=\"in_use\"}} {}\n",
        g.sessions_active, g.outbox_depth, g.pool_idle, g.pool_in_use
    ));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}
