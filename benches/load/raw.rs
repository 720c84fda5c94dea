//! Raw argon2id: the verification rate the sign-ins are compared with.

use std::time::{Duration, Instant};

use portcullis::auth::password::Hasher;

use super::*;

/// argon2id parameters of the server's defaults (and of the raw measurement).
pub(crate) const ARGON2_M_KIB: u32 = 19456;
pub(crate) const ARGON2_T: u32 = 2;
pub(crate) const ARGON2_P: u32 = 1;
pub(crate) const RAW_MEASURE: Duration = Duration::from_secs(5);

pub(crate) struct Raw {
    pub(crate) verifications: u64,
    pub(crate) secs: f64,
    pub(crate) threads: usize,
}

impl Raw {
    pub(crate) fn rate(&self) -> f64 {
        self.verifications as f64 / self.secs
    }

    /// Two measurements as one: their verifications over their time.
    pub(crate) fn and(&self, other: &Raw) -> Raw {
        Raw {
            verifications: self.verifications + other.verifications,
            secs: self.secs + other.secs,
            threads: self.threads,
        }
    }
}

/// Raw verifications per second on `threads` OS threads, in this process.
pub(crate) fn raw_argon2(threads: usize) -> Result<Raw, String> {
    let hasher =
        Hasher::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, threads).map_err(|e| e.to_string())?;
    let phc = hasher.hash_blocking(PASSWORD).map_err(|e| e.to_string())?;
    if !hasher.verify_blocking_for_bench(&phc, PASSWORD)
        || hasher.verify_blocking_for_bench(&phc, "wrong password")
    {
        return Err("argon2 self-check failed".into());
    }
    let start = Instant::now();
    let end = start + RAW_MEASURE;
    let counts: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while n < MAX_LOOP && Instant::now() < end {
                        if !hasher.verify_blocking_for_bench(&phc, PASSWORD) {
                            return Err("a verification failed".to_string());
                        }
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    // Each thread finishes the verification it started before the deadline: divide by
    // the real elapsed time, not the nominal one.
    let secs = start.elapsed().as_secs_f64();
    let mut verifications = 0;
    for c in counts {
        verifications += c?;
    }
    Ok(Raw {
        verifications,
        secs,
        threads,
    })
}
