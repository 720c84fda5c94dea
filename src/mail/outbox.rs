//! Putting a message in the outbox: called inside the transaction of the change that
//! caused it, so the change and its message commit (or roll back) together.

use crate::db::AnyConnection;
use crate::db::repo::outbox::{OutboxMail, insert};

use super::messages::Rendered;

pub fn enqueue(
    conn: &mut AnyConnection,
    to: &str,
    msg: Rendered,
    now: i64,
) -> diesel::QueryResult<()> {
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
    )
}
