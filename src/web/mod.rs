//! HTTP only: extract, call `auth`, render. No SQL here.

pub mod client;
pub mod csrf;
pub mod ctx;
pub mod error;
pub mod handlers;
pub mod headers;
pub mod metrics;
pub mod request_id;
pub mod routes;
pub mod session;
pub mod session_store;
pub mod state;
pub mod views;
