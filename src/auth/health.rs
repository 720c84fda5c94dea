//! What `/readyz` and `/metrics` report about the service's own state: whether the
//! database answers, and the gauges read from it.

use crate::auth::InternalError;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::{outbox, sessions};

#[derive(Clone)]
pub struct Health {
    db: Db,
    clock: Clock,
}

/// Gauges read at scrape time.
pub struct Gauges {
    pub sessions_active: i64,
    pub outbox_depth: i64,
    pub pool_idle: u32,
    pub pool_in_use: u32,
}

impl Health {
    pub fn new(db: Db, clock: Clock) -> Self {
        Self { db, clock }
    }

    /// Whether the database answers.
    pub async fn database_ready(&self) -> bool {
        self.db.ping().await
    }

    pub async fn gauges(&self) -> Result<Gauges, InternalError> {
        let now = self.clock.now();
        let (sessions_active, outbox_depth) = self
            .db
            .run(move |c| {
                Ok::<_, InternalError>((sessions::count_active(c, now)?, outbox::pending_count(c)?))
            })
            .await?;
        let pool = self.db.pool_state();
        Ok(Gauges {
            sessions_active,
            outbox_depth,
            pool_idle: pool.idle_connections,
            pool_in_use: pool.connections - pool.idle_connections,
        })
    }
}
