//! The session registry: one row per signed-in session, keyed by a public random `sid`.
//! `key_hash` links it to the store entry (SHA-256 of the cookie's session key) so a
//! revocation can delete the state wherever it lives.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::repo::audit::{self, ChainHead};
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

/// Inserts a password sign-in's row only if the account still signs in with the hash
/// the password was verified against (enabled, same hash). One statement instead of a
/// re-read and an insert; on PostgreSQL the read locks the user's row, so a disable or
/// password reset racing the sign-in either wins (no row goes in) or waits for it and
/// then sees, and ends, this session. The condition is `users::signing_in_with`, shared
/// with the second-factor path's re-read.
///
/// `login.succeeded` follows the insert in the same transaction, so when the row goes in
/// the audit chain's lock is taken too and its head returned (on PostgreSQL in the same
/// statement: one round trip less per sign-in); `None` when no row went in.
pub fn insert_if_signs_in_with(
    conn: &mut AnyConnection,
    row: &SessionRow,
    verified_hash: &str,
) -> QueryResult<Option<ChainHead>> {
    use crate::db::repo::users::signing_in_with;
    use crate::db::schema::users;
    use diesel::sql_types::{BigInt, Nullable, Text};
    let source = signing_in_with(&row.user_id, verified_hash).select((
        row.sid.as_str().into_sql::<Text>(),
        users::id,
        row.key_hash.as_deref().into_sql::<Nullable<Text>>(),
        row.created_at.into_sql::<BigInt>(),
        row.last_seen_at.into_sql::<BigInt>(),
        row.expires_at.into_sql::<BigInt>(),
        row.ip.as_str().into_sql::<Text>(),
        row.user_agent.as_str().into_sql::<Text>(),
    ));
    let columns = (
        sessions::sid,
        sessions::user_id,
        sessions::key_hash,
        sessions::created_at,
        sessions::last_seen_at,
        sessions::expires_at,
        sessions::ip,
        sessions::user_agent,
    );
    match conn {
        // RETURNING runs after the row is in, so the locks come in the order every
        // other audited change of a user takes them (the user's row, then the chain).
        AnyConnection::Postgresql(pg) => Ok(diesel::insert_into(sessions::table)
            .values(source.for_update())
            .into_columns(columns)
            .returning(audit::locked_head_expr())
            .get_result::<String>(pg)
            .optional()?
            .map(audit::head_after_insert)),
        AnyConnection::Sqlite(sq) => {
            let inserted = diesel::insert_into(sessions::table)
                .values(source)
                .into_columns(columns)
                .execute(sq)?;
            if inserted == 1 {
                audit::lock_head(conn).map(Some)
            } else {
                Ok(None)
            }
        }
    }
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
