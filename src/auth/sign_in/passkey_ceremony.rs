//! Anonymous WebAuthn ceremonies (a passkey sign-in from `/login`) kept in the
//! visitor's browser, sealed, instead of in server-side session state: anyone can start
//! one without a cookie, so storing each would let anyone grow the shared store without
//! bound. The sealed value (XChaCha20-Poly1305, key derived from the master key) is
//! bound to the browser's CSRF seed and to a lifetime, and is accepted once: a finished
//! ceremony's id is remembered (in Redis when configured, so every instance refuses a
//! replay; else in process) until the ceremony would have expired anyway. Only finished
//! ceremonies are remembered, and each costs a verified passkey assertion, so that
//! memory is bounded by real sign-ins, not by anonymous requests.

use std::sync::Arc;

use dashmap::DashMap;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::master_key::{MasterKey, Sealer};

/// How long a started ceremony may take.
pub const CEREMONY_SECS: i64 = 300;

#[derive(Serialize, Deserialize)]
struct Sealed<T> {
    /// Random: what "used once" remembers.
    id: String,
    at: i64,
    state: T,
}

#[derive(Clone)]
pub struct Ceremonies {
    sealer: Sealer,
    redis: Option<(redis::aio::ConnectionManager, String)>,
    used: Arc<DashMap<String, i64>>,
}

/// Why a sealed ceremony was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not ours, not this browser's, or too old.
    Invalid,
    /// Already finished once.
    Replayed,
}

impl Ceremonies {
    pub fn new(
        master: &MasterKey,
        redis: Option<redis::aio::ConnectionManager>,
        prefix: &str,
    ) -> Self {
        Self {
            sealer: Sealer::new(master, "anonymous-webauthn-ceremony"),
            redis: redis.map(|c| (c, format!("{prefix}:ceremony:"))),
            used: Arc::new(DashMap::new()),
        }
    }

    /// The sealed form of a ceremony's state, for a cookie of the browser whose CSRF
    /// seed is `seed`.
    pub fn seal<T: Serialize>(
        &self,
        state: T,
        seed: &str,
        now: i64,
    ) -> Result<String, serde_json::Error> {
        let v = Sealed {
            id: crate::domain::tokens::generate(),
            at: now,
            state,
        };
        let json = serde_json::to_vec(&v)?;
        Ok(self.sealer.seal(&json, seed.as_bytes()))
    }

    /// Opens a sealed ceremony and marks it used: a second call with the same value is
    /// refused, on every instance when Redis is configured.
    pub async fn take<T: DeserializeOwned>(
        &self,
        sealed: &str,
        seed: &str,
        now: i64,
    ) -> Result<T, Refused> {
        let raw = self
            .sealer
            .open(sealed, seed.as_bytes())
            .ok_or(Refused::Invalid)?;
        let v: Sealed<T> = serde_json::from_slice(&raw).map_err(|_| Refused::Invalid)?;
        if now - v.at >= CEREMONY_SECS || v.at > now + 60 {
            return Err(Refused::Invalid);
        }
        let ttl_ms = ((v.at + CEREMONY_SECS - now).max(1) * 1000) as u64;
        if !self.claim(&v.id, now, ttl_ms).await {
            return Err(Refused::Replayed);
        }
        Ok(v.state)
    }

    async fn claim(&self, id: &str, now: i64, ttl_ms: u64) -> bool {
        if let Some((conn, prefix)) = &self.redis {
            let mut conn = conn.clone();
            let set: Result<Option<String>, _> = redis::cmd("SET")
                .arg(format!("{prefix}{id}"))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await;
            match set {
                Ok(v) => return v.is_some(),
                Err(e) => {
                    tracing::warn!(error = %e, "shared ceremony memory unavailable; per instance")
                }
            }
        }
        self.used.retain(|_, until| *until > now);
        let until = now + (ttl_ms / 1000) as i64 + 1;
        match self.used.entry(id.to_string()) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(e) => {
                e.insert(until);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sealed_ceremony_opens_once_for_its_browser_and_not_after_its_lifetime() {
        let c = Ceremonies::new(&MasterKey::from_bytes([9; 32]), None, "t");
        let sealed = c.seal("challenge", "seed-a", 1000).unwrap();
        assert!(!sealed.contains("challenge"));
        assert_eq!(
            c.take::<String>(&sealed, "seed-b", 1001).await,
            Err(Refused::Invalid),
            "another browser's seed"
        );
        assert_eq!(
            c.take::<String>(&sealed, "seed-a", 1000 + CEREMONY_SECS)
                .await,
            Err(Refused::Invalid),
            "expired"
        );
        assert_eq!(
            c.take::<String>(&sealed, "seed-a", 1001).await.unwrap(),
            "challenge"
        );
        assert_eq!(
            c.take::<String>(&sealed, "seed-a", 1002).await,
            Err(Refused::Replayed)
        );
        let other = Ceremonies::new(&MasterKey::from_bytes([8; 32]), None, "t");
        assert_eq!(
            other.take::<String>(&sealed, "seed-a", 1001).await,
            Err(Refused::Invalid),
            "another install's key"
        );
    }
}
