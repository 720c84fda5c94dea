//! The session registry: one row per signed-in session, keyed by a public random `sid`.
//! `key_hash` links it to the store entry (SHA-256 of the cookie's session key) so a
//! revocation can delete the state wherever it lives.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::sessions;

/// `None` is inserted as NULL rather than `DEFAULT` (the column's default is NULL
/// anyway): the statement's text is then always the same, and PostgreSQL keeps it
/// prepared instead of parsing and planning it on every sign-in.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions, treat_none_as_default_value = false)]
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

/// Every session of the user except `except_sid` (for "sign out everywhere").
pub fn list_all_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    except_sid: Option<&str>,
) -> QueryResult<Vec<SessionRow>> {
    let mut q = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .into_boxed();
    if let Some(keep) = except_sid {
        q = q.filter(sessions::sid.ne(keep));
    }
    q.select(SessionRow::as_select()).load(conn)
}

/// One session, only if it belongs to `user_id`.
pub fn find_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    sid: &str,
) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .filter(sessions::sid.eq(sid))
        .filter(sessions::user_id.eq(user_id))
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

/// Deletes the rows and returns the store keys they were tied to at that moment (a
/// sign-in may have tied one since the rows were read).
pub fn delete_many_returning_keys(
    conn: &mut AnyConnection,
    sids: &[String],
) -> QueryResult<Vec<Option<String>>> {
    diesel::delete(sessions::table.filter(sessions::sid.eq_any(sids)))
        .returning(sessions::key_hash)
        .get_results(conn)
}

pub fn list_expired(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
) -> QueryResult<Vec<SessionRow>> {
    sessions::table
        .filter(sessions::expires_at.le(now))
        .limit(limit)
        .select(SessionRow::as_select())
        .load(conn)
}

/// Written behind the hot path, in batches. Moves only forward: another instance may
/// have seen the session more recently.
pub fn touch(
    conn: &mut AnyConnection,
    sid: &str,
    last_seen: i64,
    expires: i64,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .find(sid)
            .filter(sessions::last_seen_at.lt(last_seen)),
    )
    .set((
        sessions::last_seen_at.eq(last_seen),
        sessions::expires_at.eq(expires),
    ))
    .execute(conn)
}

/// Signed-in sessions not yet expired (for /metrics).
pub fn count_active(conn: &mut AnyConnection, now: i64) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(conn)
}
