//! HTTP only: extract, call `auth`, render. No SQL here.

pub mod brand;
pub mod caller;
pub mod cookie_domain;
pub mod csrf;
pub mod ctx;
pub mod error;
pub mod form;
pub mod handlers;
pub mod headers;
pub mod metrics;
pub mod request_id;
pub mod routes;
pub mod session;
pub mod session_store;
pub mod state;
pub mod views;

/// Percent-encodes a query value (everything but ASCII letters and digits).
pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
