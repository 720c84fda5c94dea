//! Storage: the only module that speaks diesel.
//!
//! One codebase serves SQLite (the embedded default) and PostgreSQL through
//! `#[derive(MultiConnection)]`. Repository functions are synchronous
//! (`fn(&mut AnyConnection, ..) -> QueryResult<T>`) and run on the blocking pool via
//! [`Db::run`], never on the async executor.

pub mod conn;
pub mod migrate;
pub mod repo;
pub mod schema;
mod sqlite_busy;

pub use conn::{AnyConnection, Db, DbError};

/// What a query returns, and how it fails: the layers above run their work in `Db::run`
/// and transactions with these, without speaking diesel themselves.
pub type QueryResult<T> = diesel::QueryResult<T>;
pub type QueryError = diesel::result::Error;

/// Ends a transaction with an error that is not the database's (a signature that does
/// not verify, a template that does not render): the transaction rolls back and the
/// error travels up as the cause.
pub fn abort(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> QueryError {
    diesel::result::Error::QueryBuilderError(cause.into())
}

use crate::config::DbBackend;

/// Picks the backend from the URL scheme. Unknown schemes are refused with a clear
/// message instead of falling through to SQLite (which would create a stray file).
pub fn backend_of(url: &str) -> Result<DbBackend, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DbBackend::Postgres)
    } else if url.starts_with("sqlite://") || url.starts_with("sqlite:") {
        Ok(DbBackend::Sqlite)
    } else {
        Err(format!(
            "unsupported database URL scheme in {:?}: use sqlite://PATH or postgres://…",
            url.split(':').next().unwrap_or("")
        ))
    }
}

/// The file path inside a `sqlite://` URL.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}
