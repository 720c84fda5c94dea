//! Application counters, recorded through the `metrics` facade into the process-wide
//! recorder that `/metrics` (web::metrics) exports. Kept out of `web` so the layers below
//! it (auth's token issuing, throttling and second step) can count without depending on HTTP.

/// A token issued, by grant.
pub fn token_issued(grant: &'static str) {
    metrics::counter!("tokens_issued_total", "grant" => grant).increment(1);
}

/// A request refused by a rate limit.
pub fn rate_limited(limit: &'static str) {
    metrics::counter!("rate_limit_rejections_total", "limit" => limit).increment(1);
}

/// A second-factor attempt by method (totp, recovery, webauthn) and outcome.
pub fn second_factor(method: &'static str, ok: bool) {
    let outcome = if ok { "success" } else { "failure" };
    metrics::counter!("second_factor_total", "method" => method, "outcome" => outcome).increment(1);
}
