//! The session registry: one row per signed-in session, keyed by a public random `sid`.
//! `key_hash` links it to the store entry (SHA-256 of the cookie's session key) so a
//! revocation can delete the state wherever it lives.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::sessions;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub sid: String,
    pub user_id: String,
    pub key_hash: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub ip: String,
    pub user_agent: String,
}

pub fn insert(conn: &mut AnyConnection, row: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn set_key_hash(conn: &mut AnyConnection, sid: &str, key_hash: &str) -> QueryResult<usize> {
    diesel::update(sessions::table.find(sid))
        .set(sessions::key_hash.eq(key_hash))
        .execute(conn)
}

pub fn find(conn: &mut AnyConnection, sid: &str) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(sid)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

pub fn list_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> QueryResult<Vec<SessionRow>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .order(sessions::last_seen_at.desc())
        .select(SessionRow::as_select())
        .load(conn)
}

/// Deletes the rows and returns them, so the caller can drop their store entries.
pub fn delete_where_user(
    conn: &mut AnyConnection,
    user_id: &str,
    except_sid: Option<&str>,
) -> QueryResult<Vec<SessionRow>> {
    conn.transaction(|conn| {
        let mut q = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .into_boxed();
        if let Some(keep) = except_sid {
            q = q.filter(sessions::sid.ne(keep));
        }
        let rows: Vec<SessionRow> = q.select(SessionRow::as_select()).load(conn)?;
        for r in &rows {
            diesel::delete(sessions::table.find(&r.sid)).execute(conn)?;
        }
        Ok(rows)
    })
}

/// Deletes one session of one user; returns the deleted row.
pub fn delete_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    sid: &str,
) -> QueryResult<Option<SessionRow>> {
    conn.transaction(|conn| {
        let row = sessions::table
            .filter(sessions::sid.eq(sid))
            .filter(sessions::user_id.eq(user_id))
            .select(SessionRow::as_select())
            .first(conn)
            .optional()?;
        if row.is_some() {
            diesel::delete(sessions::table.find(sid)).execute(conn)?;
        }
        Ok(row)
    })
}

/// Written behind the hot path, in batches.
pub fn touch(
    conn: &mut AnyConnection,
    sid: &str,
    last_seen: i64,
    expires: i64,
) -> QueryResult<usize> {
    diesel::update(sessions::table.find(sid))
        .set((
            sessions::last_seen_at.eq(last_seen),
            sessions::expires_at.eq(expires),
        ))
        .execute(conn)
}

pub fn purge_expired(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)
}
