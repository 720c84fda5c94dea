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
