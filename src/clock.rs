//! Time as an input: domain code asks a `Clock` instead of the system, so tests can
//! move time forward (expiry, lock-outs) without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Clone, Default)]
pub struct Clock {
    /// Seconds added to the system time; only tests change it.
    offset: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// Unix time in seconds.
    pub fn now(&self) -> i64 {
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        sys + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock forward (tests only; harmless otherwise).
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}
