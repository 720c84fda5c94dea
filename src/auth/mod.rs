//! Application logic for end users: accounts, sign-in, sessions, throttling, audit.
//! Async functions that use `db` and `domain`; nothing here knows about actix or HTML.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod health;
pub mod mfa;
pub mod oauth;
pub mod password;
pub mod sessions;
pub mod settings;
pub mod sign_in;
pub mod throttle;

use crate::db::DbError;

/// Errors that are not the user's fault.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error(transparent)]
    Signing(#[from] crate::auth::oauth::signing_keys::SigningError),
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    /// The audit log's writer did not confirm an event (it stopped, or its write failed).
    #[error("the audit event was not written")]
    AuditNotWritten,
    /// A row the request depends on is gone (e.g. the signed-in user, deleted meanwhile).
    #[error("{0} not found")]
    Missing(&'static str),
    /// A stored value that should have been valid when it was written.
    #[error("stored {what} is not valid: {why}")]
    Corrupt { what: &'static str, why: String },
    #[error("webauthn")]
    Webauthn(#[from] webauthn_rs::prelude::WebauthnError),
    #[error("json")]
    Json(#[from] serde_json::Error),
    /// The session store refused a write (its cause kept for the log).
    #[error("session store")]
    Session(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<crate::db::QueryError> for InternalError {
    fn from(e: crate::db::QueryError) -> Self {
        InternalError::Db(DbError::Query(e))
    }
}
