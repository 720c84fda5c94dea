//! argon2id hashing and verification, off the async executor, with concurrency bounded
//! to the core count: a login flood queues instead of starving other requests or
//! allocating 19 MiB per concurrent hash without limit.

use std::sync::{Arc, Mutex, mpsc};

use argon2::password_hash::{Output, ParamsString, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// argon2's working memory (19 MiB at the defaults), one buffer per permit, reused
/// while hashes follow each other and given back when the last one finishes.
/// Allocating per hash on the blocking pool's many threads let the allocator keep freed
/// blocks per thread arena: the benchmark saw 1 GiB resident after a sign-in flood.
/// Under load memory stays at `concurrency` buffers; idle, at none (the binary pins
/// glibc's mmap threshold so a freed buffer really leaves the process).
type Memory = Arc<Mutex<Vec<Vec<Block>>>>;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("hashing task failed")]
    Task,
}

/// Hashes run on threads of their own (`concurrency` of them) at a lower CPU priority
/// than everything else in the process (and than the database server next to it).
/// On the shared blocking pool at the same priority, a hash took the core from a thread
/// that held the SQLite write lock or a PostgreSQL backend that held the audit chain's
/// lock, for a whole scheduler slice: every other sign-in then waited behind that lock,
/// the hash queue ran dry and the cores sat 15 % idle under a sign-in flood. A lower
/// priority lets such a thread run as soon as it wakes; hashing still gets every cycle
/// nothing else wants, and its share under contention is bounded, not zero.
const HASH_NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// Starts the hashing threads; they end when the last `Hasher` clone is dropped.
fn spawn_workers(n: usize) -> Result<mpsc::Sender<Job>, HashError> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                lower_priority();
                loop {
                    // The lock is released before the job runs (end of statement).
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    // A panic fails that one hash (its caller sees HashError::Task), not
                    // the thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| HashError::Hash(format!("cannot start a hashing thread: {e}")))?;
    }
    Ok(tx)
}

fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's own id; raising one's nice value
    // needs no privilege and touches nothing else.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, HASH_NICE) != 0 {
            tracing::debug!("hashing threads keep the normal CPU priority");
        }
    }
}

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    jobs: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    memory: Memory,
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
        let memory: Memory = Arc::default();
        let dummy = hash_with(&params, &crate::domain::tokens::generate(), &memory)?;
        memory.lock().map_err(|_| HashError::Task)?.clear();
        Ok(Self {
            params,
            jobs: spawn_workers(concurrency.max(1))?,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            memory,
            dummy: Arc::new(dummy),
        })
    }

    fn argon2(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    /// Runs `f` on a hashing thread once a permit is free. The permit goes with the
    /// job and is given back when it has run, so a caller that gave up (a client that
    /// disconnected) still counts until its queued hash is done or skipped — queued
    /// work stays bounded by the permits — and a job whose caller is gone is skipped.
    async fn on_worker<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Task)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                if tx.is_closed() {
                    drop(permit);
                    return;
                }
                let out = f();
                // Given back before the answer, so the caller's idle check sees it.
                drop(permit);
                let _ = tx.send(out);
            }))
            .map_err(|_| HashError::Task)?;
        rx.await.map_err(|_| HashError::Task)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let (params, memory) = (self.params.clone(), self.memory.clone());
        let result = self
            .on_worker(move || hash_with(&params, &password, &memory))
            .await?;
        self.release_if_idle();
        result
    }

    /// The last hash in flight just finished: give the pooled buffers back.
    fn release_if_idle(&self) {
        if self.permits.available_permits() == self.concurrency
            && let Ok(mut pool) = self.memory.lock()
        {
            // Checked again under the lock: a hash that started meanwhile keeps them.
            if self.permits.available_permits() == self.concurrency {
                pool.clear();
            }
        }
    }

    /// Verifies `password` against `stored`; with `None` (unknown user or no password)
    /// it verifies against the dummy hash and answers `No`, in the same time.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<Verified, HashError> {
        let (params, memory) = (self.params.clone(), self.memory.clone());
        let dummy = self.dummy.clone();
        let result = self
            .on_worker(move || {
                let (phc, real) = match &stored {
                    Some(s) => (s.as_str(), true),
                    None => (dummy.as_str(), false),
                };
                let parsed = PasswordHash::new(phc).map_err(|e| HashError::Hash(e.to_string()))?;
                let ok = with_memory(&memory, |mem| {
                    verify_into(&parsed, password.as_bytes(), mem)
                })?;
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
                    Some(hash_with(&params, &password, &memory)?)
                } else {
                    None
                };
                Ok(Verified::Yes { rehash })
            })
            .await;
        let result = result?;
        self.release_if_idle();
        result
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
        hash_with(&self.params, password, &self.memory)
    }
}

fn hash_error(e: impl std::fmt::Display) -> HashError {
    HashError::Hash(e.to_string())
}

/// Runs `f` with a pooled working-memory buffer (taken out and put back).
fn with_memory<T>(
    memory: &Memory,
    f: impl FnOnce(&mut Vec<Block>) -> Result<T, HashError>,
) -> Result<T, HashError> {
    let mut mem = memory
        .lock()
        .map_err(|_| HashError::Task)?
        .pop()
        .unwrap_or_default();
    let result = f(&mut mem);
    if let Ok(mut pool) = memory.lock() {
        pool.push(mem);
    }
    result
}

/// argon2 of `password` with the salt and parameters of `parsed`, compared with its
/// hash in constant time.
fn verify_into(
    parsed: &PasswordHash<'_>,
    password: &[u8],
    mem: &mut Vec<Block>,
) -> Result<bool, HashError> {
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(hash_error)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(hash_error)?,
        None => Version::default(),
    };
    let expected = parsed
        .hash
        .ok_or_else(|| hash_error("stored hash has no output"))?;
    let params = Params::try_from(parsed).map_err(hash_error)?;
    let mut salt_buf = [0u8; 64];
    let salt = parsed
        .salt
        .ok_or_else(|| hash_error("stored hash has no salt"))?
        .decode_b64(&mut salt_buf)
        .map_err(hash_error)?;
    mem.resize(params.block_count(), Block::default());
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut mem[..])
        .map_err(hash_error)?;
    Ok(out.ct_eq(expected.as_bytes()).into())
}

fn hash_with(params: &Params, password: &str, memory: &Memory) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_buf = [0u8; 64];
    let raw_salt = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(hash_error)?;
    let mut out = [0u8; 32];
    with_memory(memory, |mem| {
        mem.resize(params.block_count(), Block::default());
        Hasher::argon2(params)
            .hash_password_into_with_memory(password.as_bytes(), raw_salt, &mut out, &mut mem[..])
            .map_err(hash_error)
    })?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(hash_error)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(hash_error)?),
    };
    Ok(phc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_hashes_agree_with_the_argon2_crate_both_ways() {
        use argon2::password_hash::PasswordHasher;
        let h = Hasher::new(8192, 1, 1, 2).unwrap();
        let ours = h.hash_blocking("correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Hasher::argon2(&h.params)
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = Hasher::argon2(&h.params)
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        let parsed = PasswordHash::new(&theirs).unwrap();
        assert!(with_memory(&h.memory, |m| verify_into(&parsed, b"battery staple", m)).unwrap());
        assert!(!with_memory(&h.memory, |m| verify_into(&parsed, b"battery stapler", m)).unwrap());
        assert!(h.memory.lock().unwrap().len() <= 2, "buffers are reused");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_on_their_own_threads_below_normal_cpu_priority() {
        let h = Hasher::new(8192, 1, 1, 1).unwrap();
        let (name, nice) = h
            .on_worker(|| {
                let name = std::thread::current().name().map(str::to_string);
                // SAFETY: reads the calling thread's own scheduling priority.
                let nice =
                    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
                (name, nice)
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("argon2-0"));
        // At least that low (a process started under `nice` stays lower still).
        assert!(nice >= HASH_NICE, "nice {nice}");
    }

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
