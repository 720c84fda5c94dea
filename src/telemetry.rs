//! Logging setup. One line per request and per security event; never secrets.
//!
//! Lines are formatted on the thread that logs them and written to stderr by a thread
//! of their own, in batches: a write system call per request line cost small requests
//! 15–25 % of their rate. The queue is bounded and blocks when full (no line is
//! dropped), and [`finish`] writes out what is queued before the process ends.

use std::sync::Mutex;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines that may wait for the writer; past this, loggers wait for it. Small, because
/// the queue's slots are allocated up front.
const QUEUED_LINES: usize = 1024;

static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer)
        .try_init()
        .is_ok();
    // Another subscriber was set first (tests): this writer has nothing to do.
    if installed && let Ok(mut slot) = WRITER.lock() {
        *slot = Some(guard);
    }
}

/// Writes out the queued lines and stops the writer; later lines are not written.
/// Call before the process exits.
pub fn finish() {
    let guard = WRITER.lock().ok().and_then(|mut slot| slot.take());
    drop(guard);
}

/// An error with every cause under it, `top: cause: root`, for one log line: the
/// top-level message alone ("database unavailable") rarely says what to fix.
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // `#[error(transparent)]` wrappers repeat their source's message.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("could not save the session")]
    struct Top(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("database unavailable")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_once() {
        let e = Top(Middle(std::io::Error::other("connection refused")));
        assert_eq!(
            super::cause_chain(&e),
            "could not save the session: database unavailable: connection refused"
        );
    }
}
