//! The session registry: "list my sessions", "revoke this one" and "sign out everywhere"
//! work the same whichever store holds the state. Revoking deletes the state first and
//! the registry row after it, so a failure half-way leaves the session still listed
//! (and revocable again), never alive but unlisted. The revoked cookie is refused on
//! its very next request, on every instance. A user's own revocations are audited in
//! the same call that makes them, so one cannot happen without the other.

pub mod store;

use std::sync::Arc;

use dashmap::DashMap;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record_alone};
use crate::auth::oauth::authorize::{self, GrantsEnd};
use crate::auth::oauth::cache::BackChannelCache;
use crate::auth::sessions::store::StateBackend;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::sessions as repo;
pub use crate::db::repo::sessions::SessionRow;
use crate::domain::audit::{AuditAction, Outcome};

/// What the sessions page shows.
pub struct Overview {
    /// Live sessions, most recently seen first.
    pub sessions: Vec<SessionRow>,
    /// Whether some app holds a live grant (signed in through OAuth).
    pub apps_signed_in: bool,
}

/// Why sessions end: a revocation must win over a sign-in still storing its state.
#[derive(Clone, Copy)]
enum Ending {
    Revoked,
    Expired,
}

/// What the hot path records, written behind.
#[derive(Clone, Copy)]
struct Seen {
    at: i64,
    created: i64,
    dirty: bool,
}

#[derive(Clone)]
pub struct Sessions {
    db: Db,
    clock: Clock,
    pub idle_secs: i64,
    pub lifetime_secs: i64,
    pub state: StateBackend,
    seen: Arc<DashMap<String, Seen>>,
    /// What "sign out everywhere else" invalidates besides sessions: apps' grants.
    cache: BackChannelCache,
}

impl Sessions {
    pub fn new(
        db: Db,
        clock: Clock,
        state: StateBackend,
        idle_secs: i64,
        lifetime_secs: i64,
        cache: BackChannelCache,
    ) -> Self {
        Self {
            db,
            clock,
            idle_secs,
            lifetime_secs,
            state,
            seen: Arc::new(DashMap::new()),
            cache,
        }
    }

    /// A session's state by the hash of its key (its idle timeout extended), with the
    /// back-channel cache's generation counter when `with_generation` and both live in
    /// Redis: one round trip for forward auth, which needs both.
    pub async fn load(
        &self,
        key_hash: &str,
        with_generation: bool,
    ) -> Result<(Option<store::StateMap>, Option<u64>), InternalError> {
        match self.cache.redis_key() {
            Some(counter) if with_generation => {
                self.state
                    .load_reading(key_hash, self.idle_secs, counter)
                    .await
            }
            _ => Ok((self.state.load(key_hash, self.idle_secs).await?, None)),
        }
    }

    /// The registry row of a session about to be signed in, with a new public id.
    /// Private to `auth`, and called by the sign-in gate (`auth::sign_in::gate`) alone: no
    /// session is written without its check.
    pub(super) fn new_row(
        &self,
        user_id: &str,
        ip: &str,
        user_agent: &str,
        key_hash: Option<String>,
    ) -> SessionRow {
        let now = self.clock.now();
        SessionRow {
            sid: crate::domain::tokens::generate(),
            user_id: user_id.to_string(),
            key_hash,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.idle_secs.min(self.lifetime_secs),
            ip: ip.chars().take(64).collect(),
            user_agent: user_agent.chars().take(512).collect(),
        }
    }

    /// Ties the registry row to the store entry once the store has minted the key.
    /// False when the row is gone (revoked meanwhile): the caller must drop the state.
    pub async fn link(&self, sid: &str, key_hash: &str) -> Result<bool, InternalError> {
        let (s, k) = (sid.to_string(), key_hash.to_string());
        self.db
            .run(move |c| {
                repo::set_key_hash(c, &s, &k)
                    .map(|n| n == 1)
                    .map_err(InternalError::from)
            })
            .await
    }

    /// Whether the registry row `sid` is still there and tied to `key_hash`: checked
    /// after the state of a session registered with its key is stored. False when it
    /// was revoked meanwhile: the caller must drop the state.
    pub async fn registered(&self, sid: &str, key_hash: &str) -> Result<bool, InternalError> {
        let (s, k) = (sid.to_string(), key_hash.to_string());
        self.db
            .run(move |c| {
                Ok::<_, InternalError>(
                    repo::find(c, &s)?.is_some_and(|r| r.key_hash.as_deref() == Some(&k)),
                )
            })
            .await
    }

    /// Hot path: memory only.
    pub fn touch(&self, sid: &str, created_at: i64) {
        let at = self.clock.now();
        self.seen.insert(
            sid.to_string(),
            Seen {
                at,
                created: created_at,
                dirty: true,
            },
        );
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
                r.last_seen_at = r.last_seen_at.max(seen.at);
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.last_seen_at));
        Ok(rows)
    }

    /// The user's sessions and whether any app is signed in as them.
    pub async fn overview(&self, user_id: &str) -> Result<Overview, InternalError> {
        let sessions = self.list(user_id).await?;
        let apps_signed_in = authorize::has_live_grant(&self.db, user_id).await?;
        Ok(Overview {
            sessions,
            apps_signed_in,
        })
    }

    async fn audit_revoked(
        &self,
        user_id: &str,
        details: serde_json::Value,
        ctx: &AuditCtx,
    ) -> Result<(), InternalError> {
        record_alone(
            &self.db,
            self.clock.now(),
            ctx,
            AuditAction::SessionRevoked,
            Outcome::Success,
            Some(user_id.to_string()),
            details,
        )
        .await
    }

    /// The user signs out one of their own sessions (another user's `sid` is simply not
    /// found: false), audited as `session.revoked`.
    pub async fn revoke_own(
        &self,
        user_id: &str,
        sid: &str,
        ctx: &AuditCtx,
    ) -> Result<bool, InternalError> {
        if !self.revoke(user_id, sid).await? {
            return Ok(false);
        }
        self.audit_revoked(user_id, json!({"count": 1}), ctx)
            .await?;
        Ok(true)
    }

    /// "Sign out everywhere else": every session of the user but `keep`, audited, and
    /// every app's grant. A lost device's app is signed in as much as its browser is;
    /// the consents stay, so each app asks only for a sign-in. Returns how many
    /// sessions ended.
    pub async fn revoke_others(
        &self,
        user_id: &str,
        keep: &str,
        ctx: &AuditCtx,
    ) -> Result<usize, InternalError> {
        let n = self.revoke_all(user_id, Some(keep)).await?;
        self.audit_revoked(user_id, json!({"count": n, "scope": "all_others"}), ctx)
            .await?;
        authorize::end_app_grants_now(
            &self.db,
            &self.clock,
            &self.cache,
            user_id,
            GrantsEnd::SignedOutEverywhere,
            ctx,
        )
        .await?;
        Ok(n)
    }

    /// Drops the states of `rows`. A revocation marks each key as revoked in the store
    /// (`StateBackend::revoke`) so that a password sign-in still storing its state
    /// cannot bring it back; expired rows need no marker (a sign-in's row is new).
    async fn drop_states(&self, rows: &[SessionRow], ending: Ending) -> Result<(), InternalError> {
        for r in rows {
            self.seen.remove(&r.sid);
            if let Some(kh) = &r.key_hash {
                match ending {
                    Ending::Revoked => self.state.revoke(kh).await?,
                    Ending::Expired => self.state.remove(kh).await?,
                }
            }
        }
        Ok(())
    }

    /// Deletes the rows, then drops once more the states they were tied to at that
    /// moment: a sign-in whose state was stored after `drop_states` ran (a password
    /// sign-in ties its row before storing the state; others link it after) is ended
    /// here, not left alive and unlisted. Its own check after storing sees the row
    /// gone only if it runs after this delete, so both are needed. (In Redis the
    /// password sign-in needs no check: `drop_states` marked its key already, and the
    /// rows deleted here are the ones it saw, so no second marker is needed.)
    async fn delete_rows(&self, rows: Vec<SessionRow>) -> Result<(), InternalError> {
        let sids: Vec<String> = rows.into_iter().map(|r| r.sid).collect();
        let tied = self
            .db
            .run(move |c| repo::delete_many_returning_keys(c, &sids).map_err(InternalError::from))
            .await?;
        for kh in tied.into_iter().flatten() {
            self.state.remove(&kh).await?;
        }
        Ok(())
    }

    /// Revokes one session of `user_id`; false when there is no such session of theirs.
    pub async fn revoke(&self, user_id: &str, sid: &str) -> Result<bool, InternalError> {
        let (u, s) = (user_id.to_string(), sid.to_string());
        let row = self
            .db
            .run(move |c| repo::find_for_user(c, &u, &s).map_err(InternalError::from))
            .await?;
        let Some(row) = row else { return Ok(false) };
        self.drop_states(std::slice::from_ref(&row), Ending::Revoked)
            .await?;
        self.delete_rows(vec![row]).await?;
        Ok(true)
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
            .run(move |c| repo::list_all_for_user(c, &u, k.as_deref()).map_err(InternalError::from))
            .await?;
        let n = rows.len();
        self.drop_states(&rows, Ending::Revoked).await?;
        self.delete_rows(rows).await?;
        Ok(n)
    }

    /// Write-behind: last-seen times and expiry extensions (only forward, only what
    /// changed); then expired sessions go, their states first.
    pub async fn flush(&self) -> Result<(), InternalError> {
        let now = self.clock.now();
        let mut batch = Vec::new();
        self.seen.retain(|sid, s| {
            if s.dirty {
                batch.push((
                    sid.clone(),
                    s.at,
                    (s.at + self.idle_secs).min(s.created + self.lifetime_secs),
                ));
                s.dirty = false;
            }
            // Keep recent entries so the sessions page shows the freshest time.
            s.at + self.idle_secs > now
        });
        if !batch.is_empty() {
            self.db
                .run(move |c| {
                    crate::db::conn::write_transaction(c, |c| {
                        for (sid, seen, exp) in &batch {
                            repo::touch(c, sid, *seen, *exp)?;
                        }
                        Ok::<_, crate::db::QueryError>(())
                    })
                    .map_err(InternalError::from)
                })
                .await?;
        }
        let expired = self
            .db
            .run(move |c| repo::list_expired(c, now, 500).map_err(InternalError::from))
            .await?;
        if !expired.is_empty() {
            self.drop_states(&expired, Ending::Expired).await?;
            self.delete_rows(expired).await?;
        }
        self.state.flush().await
    }
}
