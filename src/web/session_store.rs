//! The actix-session store: keys are hashed, state lives in Redis or the database
//! (`auth::session_state`), and a signed-in state is linked to its registry row.

use std::collections::HashMap;

use actix_session::storage::{
    LoadError, SaveError, SessionKey, SessionStore, UpdateError, generate_session_key,
};
use actix_web::cookie::time::Duration;

use super::session::{AUTH_KEY, SignedIn};
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

impl SessionStore for Store {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        self.sessions
            .state
            .load(&hash(session_key.as_ref()), self.sessions.idle_secs)
            .await
            .map_err(|e| LoadError::Other(any(e)))
    }

    async fn save(
        &self,
        mut session_state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        let who = session_state
            .get(AUTH_KEY)
            .and_then(|v| serde_json::from_str::<SignedIn>(v).ok());
        let key = generate_session_key();
        let kh = hash(key.as_ref());
        self.sessions
            .state
            .insert(&kh, &session_state, ttl.whole_seconds())
            .await
            .map_err(|e| SaveError::Other(any(e)))?;
        if let Some(who) = who {
            let linked = self
                .sessions
                .link(&who.sid, &kh)
                .await
                .map_err(|e| SaveError::Other(any(e)))?;
            if !linked {
                // Revoked between sign-in and now ("sign out everywhere" raced it): the
                // session must not live unregistered, so it is stored signed out.
                session_state.remove(AUTH_KEY);
                self.sessions
                    .state
                    .update(&kh, &session_state, ttl.whole_seconds())
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
        let updated = self
            .sessions
            .state
            .update(&kh, &session_state, ttl.whole_seconds())
            .await
            .map_err(|e| UpdateError::Other(any(e)))?;
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
        self.sessions
            .state
            .touch(&hash(session_key.as_ref()), ttl.whole_seconds())
            .await
            .map_err(any)
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        self.sessions
            .state
            .remove(&hash(session_key.as_ref()))
            .await
            .map_err(any)
    }
}
