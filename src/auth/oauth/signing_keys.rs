//! The provider's signing keys.
//!
//! Keys live in the database with their private parts sealed by the master key, so every
//! instance signs with and publishes the same keys. Each algorithm (RS256, ES256, EdDSA)
//! has one key that signs. A quarter of the rotation period before that key is due, its
//! successor is created and published in the JWKS *without signing*, so relying parties
//! that cache the JWKS already hold it on the day it starts signing; then it takes over,
//! and the retired key stays in the JWKS until everything it signed has expired, then is
//! deleted. Instances keep the keys, ready-made signers and the serialised JWKS in memory
//! and reload them every `CACHE_SECS` (or at once when a token names a key they do not
//! know).

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::auth::InternalError;
use crate::auth::oauth::jws::{self, SignKey, VerifyKey};
use crate::clock::Clock;
use crate::db::Db;
use crate::db::conn::{locks, serialize, write_transaction};
use crate::db::repo::oauth::{self as repo, SigningKey};
use crate::domain::tokens::generate;
use crate::master_key::Sealer;

/// The algorithms we sign with (OpenID Connect requires RS256; the others are cheaper).
pub const ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
/// How long an instance trusts its in-memory copy of the keys.
pub const CACHE_SECS: i64 = 30;

/// Why signing or loading keys failed: never the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A key that does not parse, or a signature the library refused (jws reports
    /// these as text).
    #[error("signing key: {0}")]
    Key(String),
    #[error("a signing key does not open with this master key")]
    Sealed,
    #[error("no {0} signing key")]
    NoKey(String),
    #[error("a stored public key is not JSON")]
    Json(#[from] serde_json::Error),
    #[error("key generation did not finish")]
    Generation(#[from] tokio::task::JoinError),
}

fn key_error(e: String) -> InternalError {
    SigningError::Key(e).into()
}

pub fn supported(alg: &str) -> Option<&'static str> {
    ALGS.into_iter().find(|a| *a == alg)
}

/// The key of `alg` that signs at `now`: the newest one not retired that has been
/// published for the lead time, or, while none has (the very first key), the oldest.
fn signing_key<'a>(
    rows: &'a [SigningKey],
    alg: &str,
    lead: i64,
    now: i64,
) -> Option<&'a SigningKey> {
    let mut live: Vec<&SigningKey> = rows
        .iter()
        .filter(|k| k.alg == alg && k.retired_at.is_none())
        .collect();
    live.sort_by_key(|k| std::cmp::Reverse(k.created_at));
    live.iter()
        .find(|k| k.created_at + lead <= now)
        .or(live.last())
        .copied()
}

/// Keys not yet retired that a newer key has taken over from.
fn superseded(rows: &[SigningKey], lead: i64, now: i64) -> Vec<String> {
    ALGS.into_iter()
        .filter_map(|alg| {
            let signer = signing_key(rows, alg, lead, now)?;
            Some(rows.iter().filter(move |k| {
                k.alg == alg && k.retired_at.is_none() && k.created_at < signer.created_at
            }))
        })
        .flatten()
        .map(|k| k.kid.clone())
        .collect()
}

struct Key {
    kid: String,
    alg: &'static str,
    /// Only the active key of each algorithm signs.
    signer: Option<SignKey>,
    verifier: VerifyKey,
}

struct Loaded {
    at: i64,
    keys: Vec<Key>,
    jwks: Bytes,
}

impl Loaded {
    fn signer(&self, alg: &str) -> Option<(&str, &SignKey)> {
        self.keys
            .iter()
            .find(|k| k.alg == alg && k.signer.is_some())
            .and_then(|k| Some((k.kid.as_str(), k.signer.as_ref()?)))
    }
    fn key(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

pub struct KeyRing {
    db: Db,
    clock: Clock,
    sealer: Sealer,
    rotation_secs: i64,
    /// How long a successor is published before it signs.
    lead_secs: i64,
    /// How long a retired key stays published: the longest token lifetime plus the
    /// time another instance may still sign with its cached copy.
    overlap_secs: i64,
    loaded: RwLock<Option<Arc<Loaded>>>,
    reload: tokio::sync::Mutex<()>,
}

/// A verified token: its claims and the `typ` of its header.
#[derive(Clone)]
pub struct Verified {
    pub claims: Map<String, Value>,
    pub typ: Option<String>,
}

impl KeyRing {
    pub fn new(
        db: Db,
        clock: Clock,
        sealer: Sealer,
        rotation_secs: i64,
        longest_token_secs: i64,
    ) -> Self {
        Self {
            db,
            clock,
            sealer,
            rotation_secs,
            lead_secs: rotation_secs / 4,
            overlap_secs: longest_token_secs + 2 * CACHE_SECS,
            loaded: RwLock::new(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<Arc<Loaded>> {
        self.loaded.read().ok().and_then(|g| g.clone())
    }

    fn fresh(&self, l: &Loaded) -> bool {
        l.at + CACHE_SECS > self.clock.now() && l.at <= self.clock.now()
    }

    async fn current(&self) -> Result<Arc<Loaded>, InternalError> {
        match self.cached() {
            Some(l) if self.fresh(&l) => Ok(l),
            _ => self.refresh(None, false).await,
        }
    }

    /// Does the algorithm need a new key: none yet, or the newest one is within the lead
    /// time of its rotation (so its successor is published before it must sign)?
    /// Every algorithm always has a key, so a client that fetched the JWKS once can
    /// verify whichever algorithm it is later given.
    fn due(&self, rows: &[SigningKey], alg: &str, now: i64) -> bool {
        rows.iter()
            .filter(|k| k.alg == alg && k.retired_at.is_none())
            .max_by_key(|k| k.created_at)
            .is_none_or(|k| k.created_at + self.rotation_secs - self.lead_secs <= now)
    }

    /// Reloads from the database; on the way, rotates due keys, creates a key for
    /// `want` if it has none, and deletes keys past their overlap. One instance wins
    /// each change (serialised in the database); the others read its result.
    /// `force` reloads even a fresh copy, if it is at least a second old.
    async fn refresh(
        &self,
        want: Option<&'static str>,
        force: bool,
    ) -> Result<Arc<Loaded>, InternalError> {
        let _one_at_a_time = self.reload.lock().await;
        if let Some(l) = self.cached()
            && self.fresh(&l)
            && (!force || l.at >= self.clock.now())
            && want.is_none_or(|a| l.signer(a).is_some())
        {
            return Ok(l);
        }
        let now = self.clock.now();
        let rows = self
            .db
            .run(|c| repo::published_keys(c).map_err(InternalError::from))
            .await?;
        let needed: Vec<&'static str> = ALGS
            .into_iter()
            .filter(|a| self.due(&rows, a, now))
            .collect();
        let (overlap, lead, rotation) = (self.overlap_secs, self.lead_secs, self.rotation_secs);
        let expired = rows
            .iter()
            .any(|k| k.retired_at.is_some_and(|r| r + overlap <= now));
        let rows = if needed.is_empty() && !expired && superseded(&rows, lead, now).is_empty() {
            rows
        } else {
            let mut fresh = Vec::new();
            for alg in &needed {
                fresh.push(self.generate(alg, now).await?);
            }
            self.db
                .run(move |c| {
                    write_transaction(c, |c| {
                        serialize(c, locks::SIGNING_KEY)?;
                        let current = repo::published_keys(c)?;
                        for key in fresh {
                            // Another instance may have done it meanwhile.
                            let still_due = current
                                .iter()
                                .filter(|k| k.alg == key.alg && k.retired_at.is_none())
                                .max_by_key(|k| k.created_at)
                                .is_none_or(|k| k.created_at + rotation - lead <= now);
                            if still_due {
                                repo::insert_key(c, &key)?;
                            }
                        }
                        for kid in superseded(&repo::published_keys(c)?, lead, now) {
                            repo::retire_key(c, &kid, now)?;
                        }
                        repo::delete_retired_keys(c, now - overlap)?;
                        repo::published_keys(c)
                    })
                    .map_err(|e: crate::db::QueryError| InternalError::from(e))
                })
                .await?
        };
        let loaded = Arc::new(self.load(&rows, now)?);
        if let Ok(mut g) = self.loaded.write() {
            *g = Some(loaded.clone());
        }
        Ok(loaded)
    }

    /// A new key pair, sealed for storage (RSA generation takes a while: off the executor).
    async fn generate(&self, alg: &'static str, now: i64) -> Result<SigningKey, InternalError> {
        let (der, mut public) = tokio::task::spawn_blocking(move || jws::generate(alg))
            .await
            .map_err(SigningError::from)?
            .map_err(key_error)?;
        let kid = generate()[..16].to_string();
        public.insert("kid".into(), kid.clone().into());
        public.insert("alg".into(), alg.into());
        public.insert("use".into(), "sig".into());
        Ok(SigningKey {
            private_sealed: self.sealer.seal(&der, kid.as_bytes()),
            kid,
            alg: alg.into(),
            public_jwk: Value::Object(public).to_string(),
            created_at: now,
            retired_at: None,
        })
    }

    fn load(&self, rows: &[SigningKey], now: i64) -> Result<Loaded, InternalError> {
        let mut keys = Vec::new();
        let mut jwks = Vec::new();
        let signing: Vec<&str> = ALGS
            .into_iter()
            .filter_map(|alg| signing_key(rows, alg, self.lead_secs, now))
            .map(|k| k.kid.as_str())
            .collect();
        for row in rows {
            let Some(alg) = supported(&row.alg) else {
                continue;
            };
            let verifier = VerifyKey::from_jwk(alg, &row.public_jwk).map_err(key_error)?;
            let signer = if signing.contains(&row.kid.as_str()) {
                let der = self
                    .sealer
                    .open(&row.private_sealed, row.kid.as_bytes())
                    .ok_or(SigningError::Sealed)?;
                Some(SignKey::from_der(alg, &der).map_err(key_error)?)
            } else {
                None
            };
            jwks.push(serde_json::from_str::<Value>(&row.public_jwk).map_err(SigningError::from)?);
            keys.push(Key {
                kid: row.kid.clone(),
                alg,
                signer,
                verifier,
            });
        }
        let jwks = serde_json::to_vec(&json!({ "keys": jwks })).map_err(SigningError::from)?;
        Ok(Loaded {
            at: now,
            keys,
            jwks: Bytes::from(jwks),
        })
    }

    /// The JWKS document, serialised once per reload.
    pub async fn jwks(&self) -> Result<Bytes, InternalError> {
        Ok(self.current().await?.jwks.clone())
    }

    /// Signs claims as a JWT with the active key of `alg` (created on first use).
    pub async fn sign(
        &self,
        alg: &'static str,
        claims: Map<String, Value>,
        typ: &str,
    ) -> Result<String, InternalError> {
        let mut loaded = self.current().await?;
        if loaded.signer(alg).is_none() {
            loaded = self.refresh(Some(alg), false).await?;
        }
        let (kid, signer) = loaded
            .signer(alg)
            .ok_or_else(|| SigningError::NoKey(alg.to_string()))?;
        signer.sign(kid, typ, &claims).map_err(key_error)
    }

    /// Checks a token's signature against our published keys (not its expiry: callers
    /// decide, since an expired ID token is still a fine logout hint).
    pub async fn verify(&self, token: &str) -> Result<Option<Verified>, InternalError> {
        let Some(kid) = jws::key_id(token) else {
            return Ok(None);
        };
        let kid = kid.as_str();
        let mut loaded = self.current().await?;
        if loaded.key(kid).is_none() && loaded.at < self.clock.now() {
            // Maybe another instance just rotated; at most one reload a second.
            loaded = self.refresh(None, true).await?;
        }
        let Some(key) = loaded.key(kid) else {
            return Ok(None);
        };
        Ok(key.verifier.verify(token).map(|c| Verified {
            claims: c.claims,
            typ: c.typ,
        }))
    }
}
