//! Putting a message in the outbox: called inside the transaction of the change that
//! caused it, so the change and its message commit (or roll back) together. Queueing a
//! message wakes the delivery worker once the transaction has committed: no caller has to
//! remember to.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::db::AnyConnection;
use crate::db::repo::outbox::{OutboxMail, insert};

use super::messages::Rendered;

/// The outbox's handle: what wakes the delivery worker.
#[derive(Clone, Default)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(wake: Arc<Notify>) -> Self {
        Self { wake }
    }
}

pub fn enqueue(
    conn: &mut AnyConnection,
    outbox: &Outbox,
    to: &str,
    msg: Rendered,
    now: i64,
) -> crate::db::QueryResult<()> {
    // RFC 2606 reserves `.invalid`: service accounts' synthetic addresses live there,
    // and nothing is ever sent to one, whichever path asked.
    if crate::domain::email::EmailAddress::parse(to).is_ok_and(|a| a.undeliverable()) {
        return Ok(());
    }
    insert(
        conn,
        &OutboxMail {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: now,
            to_addr: to.to_string(),
            subject: msg.subject,
            body_text: msg.text,
            body_html: msg.html,
            attempts: 0,
            next_attempt_at: now,
            claimed_by: None,
            claimed_until: None,
            sent_at: None,
            failed_at: None,
            last_error: None,
        },
    )?;
    let wake = outbox.wake.clone();
    crate::db::conn::after_success(move || wake.notify_one());
    Ok(())
}
