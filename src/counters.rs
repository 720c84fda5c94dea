//! Application counters, recorded through the `metrics` facade into the process-wide
//! recorder that `/metrics` (web::metrics) exports. Kept out of `web` so the layers below
//! it (auth's token issuing and throttling) can count without depending on HTTP.

/// A token issued, by grant.
pub fn token_issued(grant: &'static str) {
    metrics::counter!("tokens_issued_total", "grant" => grant).increment(1);
}

/// A request refused by a rate limit.
pub fn rate_limited(limit: &'static str) {
    metrics::counter!("rate_limit_rejections_total", "limit" => limit).increment(1);
}
