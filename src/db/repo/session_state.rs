//! State blobs of the database-backed session store.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::session_state;

pub fn load(
    conn: &mut AnyConnection,
    key_hash: &str,
    now: i64,
) -> QueryResult<Option<(String, i64)>> {
    session_state::table
        .find(key_hash)
        .filter(session_state::expires_at.gt(now))
        .select((session_state::state, session_state::expires_at))
        .first(conn)
        .optional()
}

/// Whether the state's row is still there, whatever its expiry says.
pub fn exists(conn: &mut AnyConnection, key_hash: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(session_state::table.find(key_hash))).get_result(conn)
}

pub fn insert(
    conn: &mut AnyConnection,
    key_hash: &str,
    state: &str,
    expires: i64,
) -> QueryResult<()> {
    diesel::insert_into(session_state::table)
        .values((
            session_state::key_hash.eq(key_hash),
            session_state::state.eq(state),
            session_state::expires_at.eq(expires),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Updates only an existing row: a revoked session must not be brought back by a
/// request that was in flight when it was revoked.
pub fn update(
    conn: &mut AnyConnection,
    key_hash: &str,
    state: &str,
    expires: i64,
) -> QueryResult<bool> {
    diesel::update(session_state::table.find(key_hash))
        .set((
            session_state::state.eq(state),
            session_state::expires_at.eq(expires),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

pub fn set_expiry(conn: &mut AnyConnection, key_hash: &str, expires: i64) -> QueryResult<usize> {
    diesel::update(session_state::table.find(key_hash))
        .set(session_state::expires_at.eq(expires))
        .execute(conn)
}

pub fn delete(conn: &mut AnyConnection, key_hash: &str) -> QueryResult<usize> {
    diesel::delete(session_state::table.find(key_hash)).execute(conn)
}

pub fn purge_expired(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    diesel::delete(session_state::table.filter(session_state::expires_at.le(now))).execute(conn)
}
