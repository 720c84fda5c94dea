//! The session registry: "list my sessions", "revoke this one" and "sign out everywhere"
//! work the same whichever store holds the state. Revoking deletes the registry row and
//! the state itself, so the revoked cookie is refused on its very next request, on every
//! instance (the state is gone from Redis or the database; a DB-cached state is evicted).

use std::sync::Arc;

use dashmap::DashMap;

use super::InternalError;
use super::session_state::StateBackend;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::sessions::{self as repo, SessionRow};

#[derive(Clone)]
pub struct Sessions {
    db: Db,
    clock: Clock,
    pub idle_secs: i64,
    pub lifetime_secs: i64,
    pub state: StateBackend,
    /// sid -> last seen, written behind (never on the request path).
    seen: Arc<DashMap<String, (i64, i64)>>,
}

impl Sessions {
    pub fn new(
        db: Db,
        clock: Clock,
        state: StateBackend,
        idle_secs: i64,
        lifetime_secs: i64,
    ) -> Self {
        Self {
            db,
            clock,
            idle_secs,
            lifetime_secs,
            state,
            seen: Arc::new(DashMap::new()),
        }
    }

    /// Records a new signed-in session and returns its public id.
    pub async fn establish(
        &self,
        user_id: &str,
        ip: &str,
        user_agent: &str,
    ) -> Result<String, InternalError> {
        let now = self.clock.now();
        let row = SessionRow {
            sid: crate::domain::tokens::generate(),
            user_id: user_id.to_string(),
            key_hash: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.idle_secs.min(self.lifetime_secs),
            ip: ip.chars().take(64).collect(),
            user_agent: user_agent.chars().take(512).collect(),
        };
        let sid = row.sid.clone();
        self.db
            .run(move |c| repo::insert(c, &row).map_err(InternalError::from))
            .await?;
        Ok(sid)
    }

    /// Ties the registry row to the store entry once the store has minted the key.
    pub async fn link(&self, sid: &str, key_hash: &str) -> Result<(), InternalError> {
        let (s, k) = (sid.to_string(), key_hash.to_string());
        self.db
            .run(move |c| {
                repo::set_key_hash(c, &s, &k)
                    .map(|_| ())
                    .map_err(InternalError::from)
            })
            .await
    }

    /// Hot path: memory only.
    pub fn touch(&self, sid: &str, created_at: i64) {
        self.seen
            .insert(sid.to_string(), (self.clock.now(), created_at));
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<SessionRow>, InternalError> {
        let now = self.clock.now();
        let uid = user_id.to_string();
        let mut rows = self
            .db
            .run(move |c| repo::list_for_user(c, &uid, now).map_err(InternalError::from))
            .await?;
        for r in &mut rows {
            if let Some(seen) = self.seen.get(&r.sid) {
                r.last_seen_at = r.last_seen_at.max(seen.0);
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.last_seen_at));
        Ok(rows)
    }

    async fn drop_states(&self, rows: &[SessionRow]) -> Result<(), InternalError> {
        for r in rows {
            self.seen.remove(&r.sid);
            if let Some(kh) = &r.key_hash {
                self.state.remove(kh).await?;
            }
        }
        Ok(())
    }

    /// Revokes one session of `user_id`; false when there is no such session of theirs.
    pub async fn revoke(&self, user_id: &str, sid: &str) -> Result<bool, InternalError> {
        let (u, s) = (user_id.to_string(), sid.to_string());
        let row = self
            .db
            .run(move |c| repo::delete_for_user(c, &u, &s).map_err(InternalError::from))
            .await?;
        match row {
            Some(r) => {
                self.drop_states(std::slice::from_ref(&r)).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Revokes every session of the user except `keep`; returns how many ended.
    pub async fn revoke_all(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<usize, InternalError> {
        let (u, k) = (user_id.to_string(), keep.map(str::to_string));
        let rows = self
            .db
            .run(move |c| repo::delete_where_user(c, &u, k.as_deref()).map_err(InternalError::from))
            .await?;
        self.drop_states(&rows).await?;
        Ok(rows.len())
    }

    /// Write-behind: last-seen times and expiry extensions; purge expired rows.
    pub async fn flush(&self) -> Result<(), InternalError> {
        let now = self.clock.now();
        let mut batch = Vec::new();
        self.seen.retain(|sid, (seen, created)| {
            batch.push((
                sid.clone(),
                *seen,
                (*seen + self.idle_secs).min(*created + self.lifetime_secs),
            ));
            // Keep recent entries so the sessions page shows the freshest time.
            *seen + self.idle_secs > now
        });
        if !batch.is_empty() {
            self.db
                .run(move |c| {
                    use diesel::Connection;
                    c.transaction(|c| {
                        for (sid, seen, exp) in &batch {
                            repo::touch(c, sid, *seen, *exp)?;
                        }
                        Ok::<_, diesel::result::Error>(())
                    })
                    .map_err(InternalError::from)
                })
                .await?;
        }
        self.db
            .run(move |c| {
                repo::purge_expired(c, now)
                    .map(|_| ())
                    .map_err(InternalError::from)
            })
            .await?;
        self.state.flush().await
    }
}
