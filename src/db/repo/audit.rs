use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::audit_events as a;
use crate::domain::audit::ChainFields;
use crate::domain::export::ExportedEvent;

#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub created_at: i64,
    pub event: String,
    pub outcome: String,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = a)]
pub struct AuditEvent {
    pub id: i64,
    pub created_at: i64,
    pub event: String,
    pub outcome: String,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// The event as exports write it.
    pub fn exported(&self) -> ExportedEvent<'_> {
        ExportedEvent {
            id: self.id,
            fields: self.chain_fields(),
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }

    pub fn chain_fields(&self) -> ChainFields<'_> {
        ChainFields {
            created_at: self.created_at,
            event: &self.event,
            outcome: &self.outcome,
            actor_id: self.actor_id.as_deref(),
            target_id: self.target_id.as_deref(),
            ip: self.ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            request_id: self.request_id.as_deref(),
            details: &self.details,
        }
    }
}

diesel::define_sql_function! {
    /// PostgreSQL only (migration `2026-12-01-000010_audit_chain_head`).
    fn audit_chain_head(lock_key: diesel::sql_types::BigInt) -> diesel::sql_types::Text;
}

/// The audit chain's last hash, read under the chain's lock, which is held to the end of
/// the transaction: what the next event links to. Only made by a locked read (here, or
/// `head_after_insert` in a statement that writes something else), so holding one means
/// the lock is taken.
pub struct ChainHead(String);

impl ChainHead {
    pub fn hash(&self) -> &str {
        &self.0
    }
}

/// The chain's lock and last hash as an expression, to put in the `RETURNING` of a
/// PostgreSQL statement that must be followed by an event anyway: the statement and the
/// lock then cost one round trip instead of two. Read it with `head_after_insert`.
pub fn locked_head_expr() -> audit_chain_head<i64> {
    audit_chain_head(crate::db::conn::locks::AUDIT_CHAIN)
}

/// The head read by `locked_head_expr` in the current transaction: only for the value
/// that expression returned (crate-private, so no caller outside can forge one).
pub(crate) fn head_after_insert(hash: String) -> ChainHead {
    ChainHead(hash)
}

/// Takes the chain's lock (to the end of the transaction) and returns the last event's
/// hash, empty when there is none. On PostgreSQL one round trip (the lock and the read
/// in one function call) instead of two; SQLite's single writer is the lock there.
pub fn lock_head(conn: &mut AnyConnection) -> QueryResult<ChainHead> {
    let hash = match conn {
        AnyConnection::Postgresql(pg) => diesel::select(locked_head_expr()).get_result(pg)?,
        AnyConnection::Sqlite(sq) => a::table
            .order(a::id.desc())
            .select(a::hash)
            .first(sq)
            .optional()?
            .unwrap_or_default(),
    };
    Ok(ChainHead(hash))
}

/// Appends an event to the hash chain. Appends are serialised (an advisory lock held
/// to the end of the transaction on PostgreSQL, the single writer on SQLite), so ids
/// follow the chain's order even with several instances writing.
pub fn insert(conn: &mut AnyConnection, ev: &NewAuditEvent) -> QueryResult<()> {
    insert_many(conn, std::slice::from_ref(ev))
}

/// Appends events to the chain in order: one lock and one read of the last hash for
/// all of them.
pub fn insert_many(conn: &mut AnyConnection, events: &[NewAuditEvent]) -> QueryResult<()> {
    crate::db::conn::ensure_write_transaction(conn, |c| {
        let head = lock_head(c)?;
        insert_after(c, head, events)
    })
}

/// Appends events after `head`, in the transaction that took it. On PostgreSQL the rows
/// go in one multi-row INSERT, whose VALUES are numbered by the id sequence in the order
/// given (so ids follow the chain): a batch of concurrent `client_credentials` events
/// is one statement instead of one round trip each. SQLite has no round trips and
/// diesel has no portable batch insert there (TECH-NOTES a), so it inserts row by row.
pub fn insert_after(
    conn: &mut AnyConnection,
    head: ChainHead,
    events: &[NewAuditEvent],
) -> QueryResult<()> {
    // Without the key no event is appended: an unkeyed link after the chain was keyed
    // would read as tampering.
    let Some(key) = crate::db::conn::chain_key() else {
        return Err(diesel::result::Error::QueryBuilderError(
            "the audit chain key is not loaded (open the database with the master key)".into(),
        ));
    };
    let mut prev = head.0;
    let mut rows = Vec::with_capacity(events.len());
    for ev in events {
        let hash = key.link(
            &prev,
            &ChainFields {
                created_at: ev.created_at,
                event: &ev.event,
                outcome: &ev.outcome,
                actor_id: ev.actor_id.as_deref(),
                target_id: ev.target_id.as_deref(),
                ip: ev.ip.as_deref(),
                user_agent: ev.user_agent.as_deref(),
                request_id: ev.request_id.as_deref(),
                details: &ev.details,
            },
        );
        rows.push((
            a::created_at.eq(ev.created_at),
            a::event.eq(&ev.event),
            a::outcome.eq(&ev.outcome),
            a::actor_id.eq(&ev.actor_id),
            a::target_id.eq(&ev.target_id),
            a::ip.eq(&ev.ip),
            a::user_agent.eq(&ev.user_agent),
            a::request_id.eq(&ev.request_id),
            a::details.eq(&ev.details),
            a::prev_hash.eq(std::mem::replace(&mut prev, hash.clone())),
            a::hash.eq(hash),
        ));
    }
    match conn {
        // One row (most events): a single-row insert, whose text never changes, so
        // PostgreSQL keeps it prepared; a batch's text depends on its size.
        AnyConnection::Postgresql(pg) if rows.len() == 1 => {
            for row in rows {
                diesel::insert_into(a::table).values(row).execute(pg)?;
            }
        }
        AnyConnection::Postgresql(pg) => {
            diesel::insert_into(a::table).values(rows).execute(pg)?;
        }
        AnyConnection::Sqlite(_) => {
            for row in rows {
                diesel::insert_into(a::table).values(row).execute(conn)?;
            }
        }
    }
    Ok(())
}

/// The newest event, if any.
pub fn last(conn: &mut AnyConnection) -> QueryResult<Option<AuditEvent>> {
    a::table
        .order(a::id.desc())
        .select(AuditEvent::as_select())
        .first(conn)
        .optional()
}

/// Events in id order after `after_id`: the chain check reads the log in batches.
pub fn batch_after(
    conn: &mut AnyConnection,
    after_id: i64,
    limit: i64,
) -> QueryResult<Vec<AuditEvent>> {
    a::table
        .filter(a::id.gt(after_id))
        .order(a::id.asc())
        .limit(limit)
        .select(AuditEvent::as_select())
        .load(conn)
}

/// What the admin viewer and the exports filter on; every field optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events where this user is the actor or the target.
    pub user_id: Option<String>,
    pub event: Option<String>,
    pub outcome: Option<String>,
    pub ip: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Newest first by (time, id), keyset-paginated: events that sort after `before` (the
/// last id of the previous page), so page 1000 costs what page 1 costs. Each filter's
/// index continues with `created_at`, so the filter, a time range and the order are one
/// index range (see the `audit_time_order` migration).
pub fn page(
    conn: &mut AnyConnection,
    f: &Filter,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditEvent>> {
    let cursor = match before {
        Some(id) => match a::table
            .find(id)
            .select(a::created_at)
            .first::<i64>(conn)
            .optional()?
        {
            Some(t) => Some((t, id)),
            // Pruned (older than everything left) or never there: nothing follows it.
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let mut q = a::table.into_boxed();
    if let Some(u) = &f.user_id {
        q = q.filter(a::actor_id.eq(u.clone()).or(a::target_id.eq(u.clone())));
    }
    if let Some(e) = &f.event {
        q = q.filter(a::event.eq(e.clone()));
    }
    if let Some(o) = &f.outcome {
        q = q.filter(a::outcome.eq(o.clone()));
    }
    if let Some(ip) = &f.ip {
        q = q.filter(a::ip.eq(ip.clone()));
    }
    if let Some(t) = f.from {
        q = q.filter(a::created_at.ge(t));
    }
    if let Some(t) = f.to {
        q = q.filter(a::created_at.lt(t));
    }
    if let Some((t, id)) = cursor {
        // (created_at, id) < (t, id), spelled so the first half is an index range.
        q = q.filter(
            a::created_at
                .le(t)
                .and(a::created_at.lt(t).or(a::id.lt(id))),
        );
    }
    q.order((a::created_at.desc(), a::id.desc()))
        .limit(limit)
        .select(AuditEvent::as_select())
        .load(conn)
}

/// The newest events in write (chain) order, newest first; what tests inspect.
pub fn recent(
    conn: &mut AnyConnection,
    target: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AuditEvent>> {
    let mut q = a::table.into_boxed();
    if let Some(t) = target {
        q = q.filter(a::target_id.eq(t));
    }
    q.order(a::id.desc())
        .limit(limit)
        .select(AuditEvent::as_select())
        .load(conn)
}

/// The newest event older than `cutoff`: its id and hash.
pub fn newest_before(conn: &mut AnyConnection, cutoff: i64) -> QueryResult<Option<(i64, String)>> {
    a::table
        .filter(a::created_at.lt(cutoff))
        .order(a::id.desc())
        .select((a::id, a::hash))
        .first(conn)
        .optional()
}

/// Deletes every event up to and including `id`.
pub fn delete_through(conn: &mut AnyConnection, id: i64) -> QueryResult<usize> {
    diesel::delete(a::table.filter(a::id.le(id))).execute(conn)
}
