//! Embedded migrations, one set per backend with identical version names.
//! `build.rs` tells cargo to rebuild when a migration file changes.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{AnyConnection, Db, DbError};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Applies pending migrations and returns how many ran.
pub fn run(db: &Db) -> Result<usize, DbError> {
    db.run_sync(|conn| {
        let set = match conn {
            AnyConnection::Sqlite(_) => SQLITE,
            AnyConnection::Postgresql(_) => POSTGRES,
        };
        conn.run_pending_migrations(set)
            .map(|v| v.len())
            .map_err(|e| DbError::Pool(format!("migration failed: {e}")))
    })
}
