//! The mail outbox. Claiming is a conditional UPDATE per row (works the same on SQLite
//! and PostgreSQL): whoever changes the row owns it until its lease runs out.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::mail_outbox as m;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = m)]
pub struct OutboxMail {
    pub id: String,
    pub created_at: i64,
    pub to_addr: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<i64>,
    pub sent_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
}

pub fn insert(conn: &mut AnyConnection, mail: &OutboxMail) -> QueryResult<()> {
    diesel::insert_into(m::table)
        .values(mail)
        .execute(conn)
        .map(|_| ())
}

/// Leases up to `limit` due messages for `worker` until `lease_until`.
pub fn claim_due(
    conn: &mut AnyConnection,
    worker: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> QueryResult<Vec<OutboxMail>> {
    let candidates: Vec<String> = m::table
        .filter(m::sent_at.is_null())
        .filter(m::failed_at.is_null())
        .filter(m::next_attempt_at.le(now))
        .filter(m::claimed_until.is_null().or(m::claimed_until.lt(now)))
        .order(m::created_at.asc())
        .limit(limit)
        .select(m::id)
        .load(conn)?;
    let mut won = Vec::new();
    for id in candidates {
        let n = diesel::update(
            m::table
                .find(&id)
                .filter(m::sent_at.is_null())
                .filter(m::claimed_until.is_null().or(m::claimed_until.lt(now))),
        )
        .set((m::claimed_by.eq(worker), m::claimed_until.eq(lease_until)))
        .execute(conn)?;
        if n == 1 {
            won.push(id);
        }
    }
    if won.is_empty() {
        return Ok(Vec::new());
    }
    m::table
        .filter(m::id.eq_any(&won))
        .filter(m::claimed_by.eq(worker))
        .select(OutboxMail::as_select())
        .load(conn)
}

pub fn mark_sent(conn: &mut AnyConnection, id: &str, worker: &str, now: i64) -> QueryResult<usize> {
    diesel::update(m::table.find(id).filter(m::claimed_by.eq(worker)))
        .set((
            m::sent_at.eq(now),
            m::attempts.eq(m::attempts + 1),
            m::claimed_until.eq(None::<i64>),
            m::last_error.eq(None::<String>),
        ))
        .execute(conn)
}

/// Records a failed attempt; `failed_at` set means no more retries.
pub fn mark_failed(
    conn: &mut AnyConnection,
    id: &str,
    worker: &str,
    next_attempt_at: i64,
    error: &str,
    give_up_at: Option<i64>,
) -> QueryResult<usize> {
    diesel::update(m::table.find(id).filter(m::claimed_by.eq(worker)))
        .set((
            m::attempts.eq(m::attempts + 1),
            m::next_attempt_at.eq(next_attempt_at),
            m::claimed_until.eq(None::<i64>),
            m::last_error.eq(error),
            m::failed_at.eq(give_up_at),
        ))
        .execute(conn)
}

/// Messages not yet delivered (for readiness, metrics and tests).
pub fn pending_count(conn: &mut AnyConnection) -> QueryResult<i64> {
    m::table
        .filter(m::sent_at.is_null())
        .filter(m::failed_at.is_null())
        .count()
        .get_result(conn)
}

pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<OutboxMail>> {
    m::table
        .order(m::created_at.asc())
        .select(OutboxMail::as_select())
        .load(conn)
}
