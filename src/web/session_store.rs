//! The actix-session store: keys are hashed, state lives in Redis or the database
//! (`auth::sessions::store`), and a signed-in state is linked to its registry row.

use std::cell::Cell;
use std::collections::HashMap;

use actix_session::storage::{
    LoadError, SaveError, SessionKey, SessionStore, UpdateError, generate_session_key,
};
use actix_web::body::MessageBody;
use actix_web::cookie::time::Duration;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use super::session::{AUTH_KEY, NEW_KEY, SignedIn};
use crate::auth::sessions::Sessions;
use crate::domain::tokens::hash;

#[derive(Clone)]
pub struct Store {
    sessions: Sessions,
}

impl Store {
    pub fn new(sessions: Sessions) -> Self {
        Self { sessions }
    }
}

fn any<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Put in a loaded session when the store could not be read (Redis stopped, database
/// down). actix-session would turn a store error into a bare 500 for every request;
/// instead the request goes on with this marker, and `Ctx` answers with a readable
/// 503 page. The next request tries the store again, so recovery needs nothing.
pub const STORE_DOWN_KEY: &str = "__store_unavailable";

/// Writes that fail while the store is down are logged and dropped: the browser gets
/// a key that points at nothing, and sees the 503 page (then a sign-in page) next.
fn dropped_write(what: &str, e: impl std::fmt::Display) {
    tracing::warn!(error = %e, "session store unavailable: {what} not stored");
}

tokio::task_local! {
    /// Present while a forward-auth request is served ([`with_generation`]): the
    /// session's load then reads the back-channel cache's generation counter in the
    /// same Redis round trip, and leaves it here for the handler.
    static GENERATION: Cell<Option<u64>>;
}

/// Middleware, outside the session middleware: `/auth/forward` asks for the cache
/// generation with the session. A proxy calls it before every request to the sites
/// it protects, so the second round trip it saves is the most frequent one there is.
pub async fn with_generation(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.path() == "/auth/forward" {
        GENERATION.scope(Cell::new(None), next.call(req)).await
    } else {
        next.call(req).await
    }
}

/// The generation counter read with this request's session, if it was.
pub fn generation_read() -> Option<u64> {
    GENERATION.try_with(Cell::get).ok().flatten()
}

impl SessionStore for Store {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        let wanted = GENERATION.try_with(|_| ()).is_ok();
        match self
            .sessions
            .load(&hash(session_key.as_ref()), wanted)
            .await
        {
            Ok((state, generation)) => {
                if generation.is_some() {
                    let _ = GENERATION.try_with(|g| g.set(generation));
                }
                Ok(state)
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store unavailable");
                Ok(Some(HashMap::from([(
                    STORE_DOWN_KEY.to_string(),
                    "true".to_string(),
                )])))
            }
        }
    }

    async fn save(
        &self,
        mut session_state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        let who = session_state
            .get(AUTH_KEY)
            .and_then(|v| serde_json::from_str::<SignedIn>(v).ok());
        // A key chosen by the sign-in, whose registry row is tied to it already; the
        // raw key is never stored.
        let chosen = session_state
            .remove(NEW_KEY)
            .and_then(|v| serde_json::from_str::<String>(&v).ok())
            .and_then(|k| SessionKey::try_from(k).ok());
        let prekeyed = chosen.is_some();
        let key = chosen.unwrap_or_else(generate_session_key);
        let kh = hash(key.as_ref());
        if session_state.contains_key(STORE_DOWN_KEY) {
            return Ok(key);
        }
        let ttl_secs = ttl.whole_seconds();
        let state = &self.sessions.state;
        let stored = if prekeyed {
            state
                .insert_unless_revoked(&kh, &session_state, ttl_secs)
                .await
        } else {
            state
                .insert(&kh, &session_state, ttl_secs)
                .await
                .map(|()| None)
        };
        let known = match stored {
            Ok(known) => known,
            Err(e) => {
                dropped_write("new session", e);
                return Ok(key);
            }
        };
        if let Some(who) = who {
            // Unless the store answered that already (Redis remembers revoked keys), the
            // registry is checked (or linked) after the state is stored, so that a "sign
            // out everywhere" that ran before it is seen here, and one that runs after
            // it finds the row tied to this key and deletes the state.
            let linked = match (known, prekeyed) {
                (Some(stored), _) => Ok(stored),
                (None, true) => self.sessions.registered(&who.sid, &kh).await,
                (None, false) => self.sessions.link(&who.sid, &kh).await,
            }
            .map_err(|e| SaveError::Other(any(e)))?;
            if !linked {
                // Revoked between sign-in and now ("sign out everywhere" raced it): the
                // session must not live unregistered, so it is stored signed out.
                session_state.remove(AUTH_KEY);
                self.sessions
                    .state
                    .update(&kh, &session_state, ttl_secs)
                    .await
                    .map_err(|e| SaveError::Other(any(e)))?;
            }
        }
        Ok(key)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        mut session_state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let kh = hash(session_key.as_ref());
        // Only a new session uses a chosen key; never store one.
        session_state.remove(NEW_KEY);
        if session_state.contains_key(STORE_DOWN_KEY) {
            return Ok(session_key);
        }
        let updated = match self
            .sessions
            .state
            .update(&kh, &session_state, ttl.whole_seconds())
            .await
        {
            Ok(u) => u,
            Err(e) => {
                dropped_write("session change", e);
                return Ok(session_key);
            }
        };
        if updated {
            return Ok(session_key);
        }
        // The session was revoked (or expired) while this request ran: keep what is not
        // authentication under a new key, never the signed-in state.
        session_state.remove(AUTH_KEY);
        self.save(session_state, ttl).await.map_err(|e| match e {
            SaveError::Serialization(e) => UpdateError::Serialization(e),
            SaveError::Other(e) => UpdateError::Other(e),
        })
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &Duration,
    ) -> Result<(), anyhow::Error> {
        if let Err(e) = self
            .sessions
            .state
            .touch(&hash(session_key.as_ref()), ttl.whole_seconds())
            .await
        {
            dropped_write("expiry extension", e);
        }
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        self.sessions
            .state
            .remove(&hash(session_key.as_ref()))
            .await
            .map_err(any)
    }
}
