//! Where session state lives: Redis when `REDIS_URL` is set (shared by every instance),
//! otherwise the database. Keys are SHA-256 hashes of the cookie's session key, so a
//! leaked store does not hand out cookies.
//!
//! A signed-in request must not touch the database: with Redis, a load is one round trip
//! (GET and the idle-timeout extension pipelined); on SQLite the states are cached in
//! memory (one server owns the file) and expiry extensions are written behind; a state
//! is looked at again once the command line has moved the cache generation it shares
//! with the server (it ended sessions), so its revocations count at once too.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use redis::aio::ConnectionManager;

use crate::auth::InternalError;
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::session_state as repo;

pub struct Cached {
    state: String,
    expires_at: i64,
    /// The expiry moved in memory and is not yet written.
    dirty: bool,
    /// A tombstone: the state was removed. Kept for an idle period so that a load or
    /// update racing the removal cannot put the state back into the cache.
    revoked: bool,
    /// When the row was last seen in the database (`RECHECK_SECS`).
    checked_at: i64,
    /// The cache generation shared with the command line (`oauth::cache`) read before
    /// that: once it moves, the row is looked at again whatever the time.
    generation: u64,
}

/// How long a cached state is trusted before the database is asked whether it is still
/// there. This process removes states from the cache itself; another process on the
/// same file (the command line disabling a user) can only delete the row, and then
/// moves the cache generation they share, after which every state is looked at again
/// at its next use. This bound is the backstop should the generation not move.
const RECHECK_SECS: i64 = 2;

/// How long a removed state stays remembered as removed: longer than any request.
const TOMBSTONE_SECS: i64 = 3600;

/// Redis: the state under KEYS[1] unless KEYS[2], the key's revocation marker, exists.
static STORE_UNLESS_REVOKED: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1",
    )
});

/// The revocation marker of a state's key (`revoke`).
fn revoked_key(prefix: &str, key_hash: &str) -> String {
    format!("{prefix}{key_hash}:revoked")
}

impl Cached {
    fn live(state: String, expires_at: i64, dirty: bool, checked: (i64, u64)) -> Self {
        Self {
            state,
            expires_at,
            dirty,
            revoked: false,
            checked_at: checked.0,
            generation: checked.1,
        }
    }

    fn tombstone(expires_at: i64) -> Self {
        Self {
            state: String::new(),
            expires_at,
            dirty: false,
            revoked: true,
            checked_at: 0,
            generation: 0,
        }
    }
}

#[derive(Clone)]
pub enum StateBackend {
    Db {
        db: Db,
        clock: Clock,
        /// Present on SQLite only: with PostgreSQL several instances may share the
        /// database, and a per-process cache would miss another instance's revocation.
        cache: Option<Arc<DashMap<String, Cached>>>,
        /// Where the command line's changes show (the generation shared on SQLite).
        changes: BackChannelCache,
    },
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
}

pub type StateMap = HashMap<String, String>;

fn redis_err(e: redis::RedisError) -> InternalError {
    InternalError::Redis(e)
}

impl StateBackend {
    /// `changes`: the cache whose generation the command line moves after ending
    /// sessions (`BackChannelCache::sqlite`).
    pub fn database(db: Db, clock: Clock, changes: BackChannelCache) -> Self {
        let cache =
            (db.backend() == crate::config::DbBackend::Sqlite).then(|| Arc::new(DashMap::new()));
        StateBackend::Db {
            db,
            clock,
            cache,
            changes,
        }
    }

    pub async fn redis(url: &str, prefix: &str) -> Result<Self, InternalError> {
        let client = redis::Client::open(url).map_err(redis_err)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(std::time::Duration::from_secs(2))
            .set_response_timeout(std::time::Duration::from_secs(2))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(redis_err)?;
        Ok(StateBackend::Redis {
            conn,
            prefix: format!("{prefix}:session:"),
        })
    }

    /// The shared cache generation now (0 where there is none).
    fn generation(&self) -> u64 {
        match self {
            StateBackend::Db { changes, .. } => changes.local_generation().unwrap_or(0),
            StateBackend::Redis { .. } => 0,
        }
    }

    pub fn is_redis(&self) -> bool {
        matches!(self, StateBackend::Redis { .. })
    }

    pub async fn ping(&self) -> bool {
        match self {
            StateBackend::Redis { conn, .. } => {
                let mut c = conn.clone();
                redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            }
            StateBackend::Db { .. } => true,
        }
    }

    /// [`Self::load`], and in Redis also the counter under the key `read` (0 when
    /// unset) in the same round trip: forward auth's cache generation, which it would
    /// otherwise read in a round trip of its own. The database does not keep that
    /// counter: there the second value is `None`.
    pub async fn load_reading(
        &self,
        key_hash: &str,
        idle_secs: i64,
        read: &str,
    ) -> Result<(Option<StateMap>, Option<u64>), InternalError> {
        let StateBackend::Redis { conn, prefix } = self else {
            return Ok((self.load(key_hash, idle_secs).await?, None));
        };
        let mut c = conn.clone();
        let (raw, counter): (Option<String>, Option<u64>) = redis::pipe()
            .cmd("GETEX")
            .arg(format!("{prefix}{key_hash}"))
            .arg("PX")
            .arg(idle_secs * 1000)
            .cmd("GET")
            .arg(read)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok((
            raw.and_then(|s| serde_json::from_str(&s).ok()),
            Some(counter.unwrap_or(0)),
        ))
    }

    /// Loads a state and extends its idle timeout.
    pub async fn load(
        &self,
        key_hash: &str,
        idle_secs: i64,
    ) -> Result<Option<StateMap>, InternalError> {
        let raw = match self {
            StateBackend::Redis { conn, prefix } => {
                let key = format!("{prefix}{key_hash}");
                let mut c = conn.clone();
                // One command (Redis 6.2+), not GET and PEXPIRE pipelined: every
                // signed-in request pays it, and Redis's per-command work is most of
                // its share of that request.
                redis::cmd("GETEX")
                    .arg(&key)
                    .arg("PX")
                    .arg(idle_secs * 1000)
                    .query_async::<Option<String>>(&mut c)
                    .await
                    .map_err(redis_err)?
            }
            StateBackend::Db {
                db,
                clock,
                cache,
                changes,
            } => {
                let now = clock.now();
                // Read before the database, as the cache's own rule asks.
                let generation = changes.local_generation().unwrap_or(0);
                let mut recheck = false;
                if let Some(cache) = cache
                    && let Some(mut hit) = cache.get_mut(key_hash)
                    && (hit.revoked || hit.expires_at > now)
                {
                    if hit.revoked {
                        return Ok(None);
                    }
                    if now - hit.checked_at < RECHECK_SECS && hit.generation == generation {
                        hit.expires_at = now + idle_secs;
                        hit.dirty = true;
                        return Ok(serde_json::from_str(&hit.state).ok());
                    }
                    recheck = true;
                }
                if let Some(cache) = cache
                    && recheck
                {
                    // The expiry in the row may lag the cache's (written behind): ask
                    // only whether the row is still there.
                    let kh = key_hash.to_string();
                    let exists = db
                        .run(move |c| repo::exists(c, &kh).map_err(InternalError::from))
                        .await?;
                    if !exists {
                        cache.insert(
                            key_hash.to_string(),
                            Cached::tombstone(now + TOMBSTONE_SECS),
                        );
                        return Ok(None);
                    }
                    if let Some(mut hit) = cache.get_mut(key_hash)
                        && !hit.revoked
                    {
                        hit.checked_at = now;
                        hit.generation = generation;
                        hit.expires_at = now + idle_secs;
                        hit.dirty = true;
                        return Ok(serde_json::from_str(&hit.state).ok());
                    }
                    return Ok(None);
                }
                let kh = key_hash.to_string();
                let row = db
                    .run(move |c| repo::load(c, &kh, now).map_err(InternalError::from))
                    .await?;
                let Some((state, expires_at)) = row else {
                    return Ok(None);
                };
                match cache {
                    Some(cache) => {
                        // A tombstone written meanwhile wins: the state was just removed.
                        let entry = cache.entry(key_hash.to_string()).or_insert_with(|| {
                            Cached::live(state.clone(), now + idle_secs, true, (now, generation))
                        });
                        if entry.revoked {
                            return Ok(None);
                        }
                    }
                    // Without a cache, write the extension at most once a minute.
                    None if expires_at < now + idle_secs - 60 => {
                        let kh = key_hash.to_string();
                        db.run(move |c| {
                            repo::set_expiry(c, &kh, now + idle_secs).map_err(InternalError::from)
                        })
                        .await?;
                    }
                    None => {}
                }
                Some(state)
            }
        };
        Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
    }

    pub async fn insert(
        &self,
        key_hash: &str,
        state: &StateMap,
        ttl_secs: i64,
    ) -> Result<(), InternalError> {
        let json = serde_json::to_string(state)?;
        match self {
            StateBackend::Redis { conn, prefix } => {
                let mut c = conn.clone();
                redis::cmd("SET")
                    .arg(format!("{prefix}{key_hash}"))
                    .arg(json)
                    .arg("PX")
                    .arg(ttl_secs * 1000)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(redis_err)
            }
            StateBackend::Db {
                db, clock, cache, ..
            } => {
                let now = clock.now();
                let expires = now + ttl_secs;
                let (kh, j) = (key_hash.to_string(), json.clone());
                db.run(move |c| repo::insert(c, &kh, &j, expires).map_err(InternalError::from))
                    .await?;
                if let Some(cache) = cache {
                    cache.insert(
                        key_hash.to_string(),
                        Cached::live(json, expires, false, (now, self.generation())),
                    );
                }
                Ok(())
            }
        }
    }

    /// Stores the state of a session signed in under a key chosen in advance (its
    /// registry row, tied to the key, went in first), unless the key was revoked since
    /// (`revoke`). In Redis the check and the write are one atomic step, so no read of
    /// the registry has to follow: `Some(stored)`. The database keeps no such marker:
    /// there the state is stored and `None` asks the caller to check the registry.
    pub async fn insert_unless_revoked(
        &self,
        key_hash: &str,
        state: &StateMap,
        ttl_secs: i64,
    ) -> Result<Option<bool>, InternalError> {
        match self {
            StateBackend::Redis { conn, prefix } => {
                let json = serde_json::to_string(state)?;
                let mut c = conn.clone();
                let stored: i64 = STORE_UNLESS_REVOKED
                    .key(format!("{prefix}{key_hash}"))
                    .key(revoked_key(prefix, key_hash))
                    .arg(json)
                    .arg(ttl_secs * 1000)
                    .invoke_async(&mut c)
                    .await
                    .map_err(redis_err)?;
                Ok(Some(stored == 1))
            }
            StateBackend::Db { .. } => self.insert(key_hash, state, ttl_secs).await.map(|()| None),
        }
    }

    /// Ends a revoked session's state for good: `remove`, and in Redis a
    /// marker, kept for `TOMBSTONE_SECS`, that `insert_unless_revoked` honours. The
    /// marker is set before the state goes, so a sign-in storing its state meanwhile
    /// either stored it first (and it is deleted here) or sees the marker.
    pub async fn revoke(&self, key_hash: &str) -> Result<(), InternalError> {
        match self {
            StateBackend::Redis { conn, prefix } => {
                let mut c = conn.clone();
                redis::pipe()
                    .cmd("SET")
                    .arg(revoked_key(prefix, key_hash))
                    .arg(1)
                    .arg("PX")
                    .arg(TOMBSTONE_SECS * 1000)
                    .ignore()
                    .del(format!("{prefix}{key_hash}"))
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(redis_err)
            }
            StateBackend::Db { .. } => self.remove(key_hash).await,
        }
    }

    /// Replaces an existing state; false when it no longer exists (revoked or expired),
    /// in which case nothing is written.
    pub async fn update(
        &self,
        key_hash: &str,
        state: &StateMap,
        ttl_secs: i64,
    ) -> Result<bool, InternalError> {
        let json = serde_json::to_string(state)?;
        match self {
            StateBackend::Redis { conn, prefix } => {
                let mut c = conn.clone();
                // XX: only if it still exists, so a revocation cannot be undone.
                let r: Option<String> = redis::cmd("SET")
                    .arg(format!("{prefix}{key_hash}"))
                    .arg(json)
                    .arg("XX")
                    .arg("PX")
                    .arg(ttl_secs * 1000)
                    .query_async(&mut c)
                    .await
                    .map_err(redis_err)?;
                Ok(r.is_some())
            }
            StateBackend::Db {
                db, clock, cache, ..
            } => {
                let now = clock.now();
                let expires = now + ttl_secs;
                let (kh, j) = (key_hash.to_string(), json.clone());
                let updated = db
                    .run(move |c| repo::update(c, &kh, &j, expires).map_err(InternalError::from))
                    .await?;
                if let Some(cache) = cache {
                    if updated {
                        let mut entry = cache.entry(key_hash.to_string()).or_insert_with(|| {
                            Cached::live(String::new(), expires, false, (now, self.generation()))
                        });
                        if entry.revoked {
                            return Ok(false);
                        }
                        *entry = Cached::live(json, expires, false, (now, self.generation()));
                    } else {
                        cache.insert(key_hash.to_string(), Cached::tombstone(expires));
                    }
                }
                Ok(updated)
            }
        }
    }

    pub async fn touch(&self, key_hash: &str, ttl_secs: i64) -> Result<(), InternalError> {
        match self {
            StateBackend::Redis { conn, prefix } => {
                let mut c = conn.clone();
                redis::cmd("PEXPIRE")
                    .arg(format!("{prefix}{key_hash}"))
                    .arg(ttl_secs * 1000)
                    .query_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
                    .map_err(redis_err)
            }
            StateBackend::Db {
                db, clock, cache, ..
            } => {
                let expires = clock.now() + ttl_secs;
                if let Some(cache) = cache
                    && let Some(mut hit) = cache.get_mut(key_hash)
                {
                    if hit.revoked {
                        return Ok(());
                    }
                    hit.expires_at = expires;
                    hit.dirty = true;
                    return Ok(());
                }
                let kh = key_hash.to_string();
                db.run(move |c| {
                    repo::set_expiry(c, &kh, expires)
                        .map(|_| ())
                        .map_err(InternalError::from)
                })
                .await
            }
        }
    }

    pub async fn remove(&self, key_hash: &str) -> Result<(), InternalError> {
        match self {
            StateBackend::Redis { conn, prefix } => {
                let mut c = conn.clone();
                redis::cmd("DEL")
                    .arg(format!("{prefix}{key_hash}"))
                    .query_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
                    .map_err(redis_err)
            }
            StateBackend::Db {
                db, cache, clock, ..
            } => {
                // Tombstone first: from here on this process refuses the session, even
                // if a load that read the row a moment ago finishes after us.
                if let Some(cache) = cache {
                    cache.insert(
                        key_hash.to_string(),
                        Cached::tombstone(clock.now() + TOMBSTONE_SECS),
                    );
                }
                let kh = key_hash.to_string();
                db.run(move |c| {
                    repo::delete(c, &kh)
                        .map(|_| ())
                        .map_err(InternalError::from)
                })
                .await
            }
        }
    }

    /// Writes expiry extensions behind and forgets expired states.
    pub async fn flush(&self) -> Result<(), InternalError> {
        let StateBackend::Db {
            db, clock, cache, ..
        } = self
        else {
            return Ok(());
        };
        let now = clock.now();
        if let Some(cache) = cache {
            let mut dirty = Vec::new();
            cache.retain(|k, v| {
                if v.dirty && !v.revoked {
                    dirty.push((k.clone(), v.expires_at));
                    v.dirty = false;
                }
                v.expires_at > now
            });
            if !dirty.is_empty() {
                db.run(move |c| {
                    crate::db::conn::write_transaction(c, |c| {
                        for (k, e) in &dirty {
                            repo::set_expiry(c, k, *e)?;
                        }
                        Ok::<_, crate::db::QueryError>(())
                    })
                    .map_err(InternalError::from)
                })
                .await?;
            }
        }
        db.run(move |c| {
            repo::purge_expired(c, now)
                .map(|_| ())
                .map_err(InternalError::from)
        })
        .await
    }
}
