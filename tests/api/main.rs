//! One integration-test binary: every extra binary costs a link.
//! The same suite runs on SQLite (default) and on PostgreSQL + Redis when
//! `TEST_DATABASE_URL` / `TEST_REDIS_URL` are set (a run asked for them that cannot
//! reach them fails; it does not skip).

mod access;
mod account;
mod admin;
mod app_access;
mod app_context;
mod audit;
mod branding;
mod cli;
mod confirm;
mod data_dir;
mod device;
mod email;
mod faults;
mod field_errors;
mod forward;
mod fuzz;
mod gate;
mod grants;
mod groups;
mod helpers;
mod layers;
mod lockout;
mod login;
mod methods;
mod metrics;
mod mfa;
mod multi;
mod oidc;
mod operator;
mod par;
mod private_key_jwt;
mod processes;
mod properties;
mod register;
mod security;
mod self_service;
mod service_accounts;
mod sessions;
mod setup;
mod smtp_sink;
mod tokens;
mod webauthn;
