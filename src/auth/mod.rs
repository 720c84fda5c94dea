//! Application logic for end users: accounts, sign-in, sessions, throttling, audit.
//! Async functions that use `db` and `domain`; nothing here knows about actix or HTML.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod ceremony;
pub mod checkpoint;
pub mod gate;
pub mod issuer;
pub mod jose;
pub mod keyring;
pub mod login;
pub mod memo;
pub mod mfa;
pub mod oidc;
pub mod password;
pub mod rbac;
pub mod recovery;
pub mod roles;
pub mod session_state;
pub mod sessions;
pub mod settings;
pub mod setup;
pub mod throttle;
pub mod webauthn;

use crate::db::DbError;

/// Errors that are not the user's fault.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error("{0}")]
    Other(String),
}

impl From<diesel::result::Error> for InternalError {
    fn from(e: diesel::result::Error) -> Self {
        InternalError::Db(DbError::Query(e))
    }
}
