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
    #[error("{0}")]
    Other(String),
}

impl From<crate::db::QueryError> for InternalError {
    fn from(e: crate::db::QueryError) -> Self {
        InternalError::Db(DbError::Query(e))
    }
}
