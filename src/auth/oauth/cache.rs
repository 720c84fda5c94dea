//! A per-instance cache of what the OAuth back channel would otherwise read from the
//! database on every call: client records, whether an access token is still live
//! (not revoked, its grant not revoked, its user neither disabled nor deleted, its
//! client not deleted), and the profile userinfo answers with (email, verification,
//! name, roles). Introspection and userinfo are called by resource servers for every
//! request they serve, so these reads are the hot path. Forward auth keeps its users
//! and the personal access tokens that checked out here too, for less long.
//!
//! Correctness rests on one rule: every change that could make a cache wrong is followed,
//! after its transaction commits, by [`BackChannelCache::invalidate`], which moves a generation on.
//! The functions making such changes take the cache as a parameter, so a new caller
//! cannot forget it: token, grant and consent revocation, client changes, user
//! disable/enable/delete, email verification and change, role assignment, removal and
//! deletion.
//! Memos are kept only for the generation they were read in, and a reader takes the
//! generation *before* its database read, so a cache can never be newer than what it
//! saw. Where the generation lives decides who sees a change:
//!
//! - SQLite (one instance by design): an atomic in a small file beside the database,
//!   mapped into memory by the server and by the command line (`files::SharedCounter`)
//!   — no I/O at all, and a change made from the command line is seen at once;
//! - Redis (several instances): a Redis counter, `INCR` on change and `GET` per call —
//!   one round trip instead of several queries, and a change on one instance is seen by
//!   all at their next call;
//! - PostgreSQL without Redis: nothing is memoised (another instance's change would go
//!   unseen).
//!
//! Backstops: an entry is trusted for at most [`MAX_AGE`] (so a change whose `INCR` was
//! lost to a Redis failure outlives it by that much at most on other instances, and this
//! instance memoises nothing for that long), a generation that cannot be read means "no
//! cache", and unknown client ids are never memoised (a client created later by the CLI
//! is found at once). The command line publishes its changes ([`BackChannelCache::publisher`])
//! through Redis when it is configured, through the shared counter on SQLite.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::oauth::signing_keys::Verified;
use crate::db::repo::oauth::Client;
use crate::domain::access::Principal;

pub const MAX_AGE: Duration = Duration::from_secs(10);
/// Forward auth's users are trusted for less: should the command line's change not
/// reach the generation (Redis down, a counter that could not be mapped), a disabled
/// user is still refused within this, as a session it ends is (`auth::sessions::store`).
pub const PRINCIPAL_MAX_AGE: Duration = Duration::from_secs(2);
/// Entries per map; a full map starts again empty (the cache is an optimisation).
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Default)]
pub struct BackChannelCache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    source: Source,
    maps: Mutex<Maps>,
    /// Set when a change could not be published: until then nothing is memoised here
    /// (the local generation did not move, so a read from before the change could
    /// otherwise be stored after it).
    paused_until: Mutex<Option<Instant>>,
    /// Tokens whose signature checked out, by the SHA-256 of the token: a resource
    /// server asks about the same token for every request it serves. Independent of
    /// the generation (a signature does not get revoked); expiry is checked by the
    /// caller on every use, and keys are retired only after what they signed expired.
    verified: Mutex<HashMap<[u8; 32], (Instant, Verified)>>,
}

impl Inner {
    /// A change could not be published a moment ago: memoise and trust nothing yet.
    fn paused(&self) -> bool {
        let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|until| Instant::now() < until)
    }
}

enum Source {
    Local(Counter),
    Redis {
        conn: redis::aio::ConnectionManager,
        key: String,
    },
}

/// Where a local generation lives: this process alone, or a file mapped by every
/// process on the same SQLite database.
enum Counter {
    Process(AtomicU64),
    #[cfg(unix)]
    Shared(crate::files::SharedCounter),
}

impl Counter {
    fn get(&self) -> &AtomicU64 {
        match self {
            Self::Process(n) => n,
            #[cfg(unix)]
            Self::Shared(n) => n.get(),
        }
    }
}

struct Current<'a>(std::sync::MutexGuard<'a, Maps>);

#[derive(Default)]
struct Maps {
    generation: u64,
    clients: HashMap<String, (Instant, Client)>,
    live: HashMap<String, (Instant, bool)>,
    profiles: HashMap<String, (Instant, Option<Profile>)>,
    /// Forward auth's view of a user (`None`: disabled or gone).
    principals: HashMap<String, (Instant, Option<Principal>)>,
    /// Live personal access tokens, by the SHA-256 of the secret.
    personal_tokens: HashMap<String, (Instant, LiveToken)>,
}

/// A personal access token that was live, of an active account, when last read
/// (`auth::access::tokens`). Only live tokens are memoised; expiry is checked on every
/// use.
#[derive(Clone, Debug)]
pub struct LiveToken {
    pub token_id: String,
    pub user_id: String,
    pub email: String,
    pub scopes: Vec<&'static str>,
    pub expires_at: Option<i64>,
}

/// What userinfo tells about a user; `None` in the cache is a user who is disabled or
/// gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    pub roles: Vec<String>,
    /// Groups, inherited ones included.
    pub groups: Vec<String>,
}

impl Maps {
    /// The maps of `generation`, emptied if they belong to another one.
    fn at(&mut self, generation: u64) -> &mut Self {
        if self.generation != generation {
            self.generation = generation;
            self.clear();
        }
        self
    }

    fn clear(&mut self) {
        self.clients.clear();
        self.live.clear();
        self.profiles.clear();
        self.principals.clear();
        self.personal_tokens.clear();
    }
}

fn fresh<T: Clone>(entry: Option<&(Instant, T)>) -> Option<T> {
    entry
        .filter(|(at, _)| at.elapsed() < MAX_AGE)
        .map(|(_, v)| v.clone())
}

fn put<T>(map: &mut HashMap<String, (Instant, T)>, key: &str, value: T) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key.to_string(), (Instant::now(), value));
}

impl BackChannelCache {
    /// No cache: every call reads the database.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// One instance alone: the generation is an atomic in this process.
    pub fn local() -> Self {
        Self::with(Source::Local(Counter::Process(AtomicU64::new(0))))
    }

    /// One instance on SQLite: the generation is shared with every process on the same
    /// database (the command line moves it); in this process alone if the shared
    /// counter cannot be mapped, and then another process's change is seen within
    /// [`MAX_AGE`].
    pub fn sqlite(config: &crate::config::Config) -> Self {
        let Some(path) = crate::files::shared_counter_path(config) else {
            return Self::local();
        };
        #[cfg(unix)]
        match crate::files::SharedCounter::open(&path) {
            Ok(n) => return Self::with(Source::Local(Counter::Shared(n))),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot map the shared cache generation: changes from the command line are seen within {MAX_AGE:?}")
            }
        }
        #[cfg(not(unix))]
        let _ = path;
        Self::local()
    }

    /// Several instances: the generation is the counter `{prefix}:oauth:generation`.
    pub fn redis(conn: redis::aio::ConnectionManager, prefix: &str) -> Self {
        Self::with(Source::Redis {
            conn,
            key: format!("{prefix}:oauth:generation"),
        })
    }

    /// For a process that changes what servers memoise but serves nothing (the CLI):
    /// it publishes its changes through Redis when one is configured, else on SQLite
    /// through the counter it shares with the server ([`Self::sqlite`]).
    pub async fn publisher(config: &crate::config::Config) -> Self {
        let Some(url) = &config.redis_url else {
            return match config.backend() {
                crate::config::DbBackend::Sqlite => Self::sqlite(config),
                _ => Self::disabled(),
            };
        };
        let connect = async {
            let client = redis::Client::open(url.as_str())?;
            redis::aio::ConnectionManager::new(client).await
        };
        match connect.await {
            Ok(conn) => Self::redis(conn, &config.redis_prefix),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach Redis: servers see this change within {MAX_AGE:?}");
                Self::disabled()
            }
        }
    }

    fn with(source: Source) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                source,
                maps: Mutex::new(Maps::default()),
                paused_until: Mutex::new(None),
                verified: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// The current generation; None (cache off for this call) when there is no cache or
    /// the counter cannot be read. Take it before reading what will be memoised.
    pub async fn generation(&self) -> Option<u64> {
        let inner = self.inner.as_ref()?;
        if inner.paused() {
            return None;
        }
        match &inner.source {
            Source::Local(n) => Some(n.get().load(Ordering::Acquire)),
            Source::Redis { conn, key } => {
                let mut c = conn.clone();
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<u64>>(&mut c)
                    .await
                    .ok()
                    .map(|v| v.unwrap_or(0))
            }
        }
    }

    /// The generation when it lives in this machine's memory (in this process, or
    /// shared with the command line on SQLite): read without waiting, for the session
    /// store's cache. `None` for a Redis generation or no cache.
    pub fn local_generation(&self) -> Option<u64> {
        match &self.inner.as_ref()?.source {
            Source::Local(n) => Some(n.get().load(Ordering::Acquire)),
            Source::Redis { .. } => None,
        }
    }

    /// The generation from a counter value read elsewhere, in the same Redis round trip
    /// as other work (a session's load, a rate limit): what [`Self::generation`] would
    /// have answered at that moment. `None` when the cache is off, paused, or does not
    /// keep its generation in Redis (then `read` is not this cache's counter).
    pub fn generation_as_read(&self, read: u64) -> Option<u64> {
        let inner = self.inner.as_ref()?;
        match inner.source {
            Source::Redis { .. } if !inner.paused() => Some(read),
            _ => None,
        }
    }

    fn maps(&self) -> Option<std::sync::MutexGuard<'_, Maps>> {
        // A poisoned lock only means a panic elsewhere mid-insert: the maps are still
        // plain data, and the generation check keeps them honest.
        self.inner
            .as_ref()
            .map(|i| i.maps.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The Redis key of the generation counter when it lives in Redis: the token
    /// endpoint reads it in the same round trip as the client's rate limit.
    pub fn redis_key(&self) -> Option<&str> {
        match &self.inner.as_ref()?.source {
            Source::Redis { key, .. } => Some(key),
            Source::Local(_) => None,
        }
    }

    /// A memoised client with the generation it was read in, whatever the current
    /// generation is: usable only once the caller has confirmed that generation is
    /// still the current one (read after this call).
    pub fn client_as_of(&self, id: &str) -> Option<(u64, Client)> {
        let inner = self.inner.as_ref()?;
        if inner.paused() {
            return None;
        }
        let m = self.maps()?;
        fresh(m.clients.get(id)).map(|c| (m.generation, c))
    }

    pub fn client(&self, generation: Option<u64>, id: &str) -> Option<Client> {
        fresh(self.current(generation)?.0.clients.get(id))
    }

    pub fn put_client(&self, generation: Option<u64>, client: &Client) {
        if let Some(mut m) = self.current(generation) {
            put(&mut m.0.clients, &client.client_id, client.clone());
        }
    }

    /// Whether the access token with this `jti` was live when last read.
    pub fn live(&self, generation: Option<u64>, jti: &str) -> Option<bool> {
        fresh(self.current(generation)?.0.live.get(jti))
    }

    pub fn put_live(&self, generation: Option<u64>, jti: &str, live: bool) {
        if let Some(mut m) = self.current(generation) {
            put(&mut m.0.live, jti, live);
        }
    }

    /// The userinfo profile of a user when last read (`Some(None)`: disabled or gone).
    pub fn profile(&self, generation: Option<u64>, user_id: &str) -> Option<Option<Profile>> {
        fresh(self.current(generation)?.0.profiles.get(user_id))
    }

    pub fn put_profile(&self, generation: Option<u64>, user_id: &str, profile: Option<Profile>) {
        if let Some(mut m) = self.current(generation) {
            put(&mut m.0.profiles, user_id, profile);
        }
    }

    /// Forward auth's user when last read (`Some(None)`: disabled or gone).
    pub fn principal(&self, generation: Option<u64>, user_id: &str) -> Option<Option<Principal>> {
        self.current(generation)?
            .0
            .principals
            .get(user_id)
            .filter(|(at, _)| at.elapsed() < PRINCIPAL_MAX_AGE)
            .map(|(_, p)| p.clone())
    }

    pub fn put_principal(
        &self,
        generation: Option<u64>,
        user_id: &str,
        principal: Option<Principal>,
    ) {
        if let Some(mut m) = self.current(generation) {
            put(&mut m.0.principals, user_id, principal);
        }
    }

    /// A live personal access token by the SHA-256 of its secret, trusted for as short
    /// a time as a principal (should a change from the command line not reach the
    /// generation).
    pub fn personal_token(&self, generation: Option<u64>, hash: &str) -> Option<LiveToken> {
        self.current(generation)?
            .0
            .personal_tokens
            .get(hash)
            .filter(|(at, _)| at.elapsed() < PRINCIPAL_MAX_AGE)
            .map(|(_, t)| t.clone())
    }

    pub fn put_personal_token(&self, generation: Option<u64>, hash: &str, token: LiveToken) {
        if let Some(mut m) = self.current(generation) {
            put(&mut m.0.personal_tokens, hash, token);
        }
    }

    /// The maps, if `generation` is not older than theirs (a newer one empties them):
    /// what a reader learnt before a change is neither served nor kept after it.
    fn current(&self, generation: Option<u64>) -> Option<Current<'_>> {
        let g = generation?;
        let mut m = self.maps()?;
        if g < m.generation {
            return None;
        }
        m.at(g);
        Some(Current(m))
    }

    /// A token whose signature was verified before, by its SHA-256.
    pub fn verified(&self, digest: &[u8; 32]) -> Option<Verified> {
        let inner = self.inner.as_ref()?;
        let map = inner.verified.lock().unwrap_or_else(|p| p.into_inner());
        fresh(map.get(digest))
    }

    pub fn put_verified(&self, digest: [u8; 32], v: &Verified) {
        if let Some(inner) = &self.inner {
            let mut map = inner.verified.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(digest, (Instant::now(), v.clone()));
        }
    }

    /// Call after committing anything that can make a cache wrong: a token or grant
    /// revoked (personal access tokens included), a consent withdrawn, a client changed or deleted, a user disabled or
    /// deleted, an email verified or changed, a role assigned, removed or deleted.
    pub async fn invalidate(&self) {
        let Some(inner) = &self.inner else { return };
        match &inner.source {
            Source::Local(n) => {
                n.get().fetch_add(1, Ordering::AcqRel);
            }
            Source::Redis { conn, key } => {
                let mut c = conn.clone();
                if let Err(e) = redis::cmd("INCR").arg(key).query_async::<u64>(&mut c).await {
                    tracing::error!(error = %e, "could not publish an OAuth change to other instances; their memos expire within {MAX_AGE:?}");
                    *inner.paused_until.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Instant::now() + MAX_AGE);
                }
            }
        }
        // This instance forgets at once, whatever happened above.
        if let Some(mut m) = self.maps() {
            m.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_hides_what_was_read_before_it() {
        let cache = BackChannelCache::local();
        let g = cache.generation().await;
        cache.put_live(g, "jti-1", true);
        assert_eq!(cache.live(cache.generation().await, "jti-1"), Some(true));
        cache.invalidate().await;
        assert_eq!(cache.live(cache.generation().await, "jti-1"), None);
        // A reader that took its generation before the change cannot memoise after it.
        cache.put_live(g, "jti-1", true);
        assert_eq!(cache.live(cache.generation().await, "jti-1"), None);
    }

    #[tokio::test]
    async fn no_memo_without_a_generation() {
        let cache = BackChannelCache::disabled();
        let g = cache.generation().await;
        assert_eq!(g, None);
        cache.put_live(g, "jti-1", true);
        assert_eq!(cache.live(g, "jti-1"), None);
    }
}
