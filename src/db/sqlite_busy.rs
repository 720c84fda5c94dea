//! How a SQLite connection waits for the write lock another connection holds.
//!
//! `PRAGMA busy_timeout` installs SQLite's default handler, which sleeps 1, 2, 5, 10, 15,
//! 20, 25 … 100 ms between retries. A write transaction here holds the lock for well
//! under a millisecond, so a writer that found it taken slept many times longer than the
//! wait it needed: under a sign-in flood the server's threads slept 20 ms per sign-in in
//! that handler (strace: ~3.6 sleeps of 5.9 ms each) while the cores sat idle and the
//! hashing queue ran dry. This handler retries after 50 µs, backing off to 1 ms, and
//! gives up after the same 5 seconds as before. It is installed on every connection the
//! process opens (an SQLite auto-extension), so no code path can forget it.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libsqlite3_sys as ffi;

/// The longest a writer waits for the lock in all, as `busy_timeout = 5000` did.
const GIVE_UP_AFTER: Duration = Duration::from_secs(5);
const FIRST_DELAY: Duration = Duration::from_micros(50);
const MAX_DELAY: Duration = Duration::from_millis(1);

/// The pause before retry number `count` (0-based): 50 µs, doubling every 8 retries
/// up to 1 ms.
fn delay(count: u32) -> Duration {
    (FIRST_DELAY * (1u32 << (count / 8).min(5))).min(MAX_DELAY)
}

/// The time waited before retry `count`, in all.
fn waited(count: u32) -> Duration {
    (0..count).map(delay).sum()
}

/// The time waited before retry `count`, in all: past the ramp every pause is
/// `MAX_DELAY`, so it is known without summing them.
fn spent(count: u32) -> Duration {
    const RAMP: u32 = 48;
    if count <= RAMP {
        waited(count)
    } else {
        waited(RAMP) + MAX_DELAY * (count - RAMP)
    }
}

/// Retries the lock while less than `GIVE_UP_AFTER` has been spent on it.
unsafe extern "C" fn on_busy(_: *mut c_void, count: c_int) -> c_int {
    let count = u32::try_from(count).unwrap_or(0);
    if spent(count) >= GIVE_UP_AFTER {
        return 0;
    }
    std::thread::sleep(delay(count));
    1
}

unsafe extern "C" fn install(
    db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: SQLite calls this with the connection it is opening.
    unsafe { ffi::sqlite3_busy_handler(db, Some(on_busy), std::ptr::null_mut()) };
    ffi::SQLITE_OK
}

/// Registers the handler for every SQLite connection opened after this call.
pub fn install_for_new_connections() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `install` has the entry-point signature SQLite expects and touches
        // only the connection it is given.
        let rc = unsafe { ffi::sqlite3_auto_extension(Some(install)) };
        if rc == ffi::SQLITE_OK {
            INSTALLED.store(true, Ordering::Release);
        } else {
            tracing::warn!(rc, "SQLite busy handler not installed; using busy_timeout");
        }
    });
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether new connections get this handler (else they need `PRAGMA busy_timeout`).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};

    #[test]
    fn backs_off_from_50_microseconds_to_1_millisecond_and_gives_up_after_5_seconds() {
        assert_eq!(delay(0), Duration::from_micros(50));
        assert_eq!(delay(8), Duration::from_micros(100));
        assert_eq!(delay(1000), MAX_DELAY);
        for c in 0..6000 {
            assert_eq!(spent(c), waited(c), "retry {c}");
        }
        let give_up = (0..20_000).find(|&c| spent(c) >= GIVE_UP_AFTER).unwrap();
        assert!(spent(give_up) < GIVE_UP_AFTER + MAX_DELAY);
    }

    #[test]
    fn a_writer_waits_for_the_lock_another_connection_holds() {
        install_for_new_connections();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let path = path.to_str().unwrap();
        let mut holder = SqliteConnection::establish(path).unwrap();
        holder
            .batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);")
            .unwrap();
        let mut writer = SqliteConnection::establish(path).unwrap();
        holder
            .batch_execute("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        let hold = Duration::from_millis(50);
        let releasing = std::thread::spawn(move || {
            std::thread::sleep(hold);
            holder.batch_execute("COMMIT;").unwrap();
        });
        let started = std::time::Instant::now();
        // Without a busy handler this fails at once with "database is locked".
        writer.batch_execute("INSERT INTO t VALUES (2);").unwrap();
        assert!(started.elapsed() >= hold - Duration::from_millis(5));
        releasing.join().unwrap();
    }
}
