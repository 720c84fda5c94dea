//! argon2id hashing and verification, off the async executor, with concurrency bounded
//! to the core count: a login flood queues instead of starving other requests or
//! allocating 19 MiB per concurrent hash without limit.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("hashing task failed")]
    Task,
}

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password with the current parameters, verified against when
    /// the email is unknown so the answer takes as long as for a known one.
    dummy: Arc<String>,
}

pub enum Verified {
    /// Correct; `Some(new_hash)` when the stored hash used other parameters.
    Yes {
        rehash: Option<String>,
    },
    No,
}

impl Hasher {
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        concurrency: usize,
    ) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| HashError::Params(e.to_string()))?;
        let dummy = hash_with(&params, &crate::domain::tokens::generate())?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(dummy),
        })
    }

    fn argon2(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Task)?;
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, &password))
            .await
            .map_err(|_| HashError::Task)?
    }

    /// Verifies `password` against `stored`; with `None` (unknown user or no password)
    /// it verifies against the dummy hash and answers `No`, in the same time.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<Verified, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Task)?;
        let params = self.params.clone();
        let dummy = self.dummy.clone();
        tokio::task::spawn_blocking(move || {
            let (phc, real) = match &stored {
                Some(s) => (s.as_str(), true),
                None => (dummy.as_str(), false),
            };
            let parsed = PasswordHash::new(phc).map_err(|e| HashError::Hash(e.to_string()))?;
            let ok = Self::argon2(&params)
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            if !(ok && real) {
                return Ok(Verified::No);
            }
            let current = Params::try_from(&parsed).ok();
            let outdated = parsed.algorithm != argon2::ARGON2ID_IDENT
                || current.is_none_or(|p| {
                    p.m_cost() != params.m_cost()
                        || p.t_cost() != params.t_cost()
                        || p.p_cost() != params.p_cost()
                });
            let rehash = if outdated {
                Some(hash_with(&params, &password)?)
            } else {
                None
            };
            Ok(Verified::Yes { rehash })
        })
        .await
        .map_err(|_| HashError::Task)?
    }

    /// Raw verifications per second at these parameters, for the benchmark's denominator.
    pub fn verify_blocking_for_bench(&self, phc: &str, password: &str) -> bool {
        PasswordHash::new(phc)
            .map(|p| {
                Self::argon2(&self.params)
                    .verify_password(password.as_bytes(), &p)
                    .is_ok()
            })
            .unwrap_or(false)
    }

    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        hash_with(&self.params, password)
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Hasher::argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_and_rehashes_on_parameter_change() {
        let old = Hasher::new(8192, 1, 1, 2).unwrap();
        let new = Hasher::new(19456, 2, 1, 2).unwrap();
        let h = old.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(matches!(
            old.verify(Some(h.clone()), "correct horse".into())
                .await
                .unwrap(),
            Verified::Yes { rehash: None }
        ));
        assert!(matches!(
            old.verify(Some(h.clone()), "wrong".into()).await.unwrap(),
            Verified::No
        ));
        match new.verify(Some(h), "correct horse".into()).await.unwrap() {
            Verified::Yes { rehash: Some(r) } => assert!(r.contains("m=19456,t=2,p=1")),
            _ => panic!("expected a rehash"),
        }
        assert!(matches!(
            new.verify(None, "anything".into()).await.unwrap(),
            Verified::No
        ));
    }
}
