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
