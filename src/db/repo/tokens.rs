//! One-time tokens (setup link; later email verification and password reset).
//! Only SHA-256 hashes are stored; consumption is one atomic UPDATE, so two
//! requests (or two instances) racing on the same token cannot both win.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::one_time_tokens as t;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = t)]
pub struct OneTimeToken {
    pub token_hash: String,
    pub purpose: String,
    pub user_id: Option<String>,
    pub data: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub fn insert(
    conn: &mut AnyConnection,
    token_hash: &str,
    purpose: &str,
    user_id: Option<&str>,
    data: &str,
    now: i64,
    expires_at: i64,
) -> QueryResult<()> {
    diesel::insert_into(t::table)
        .values((
            t::token_hash.eq(token_hash),
            t::purpose.eq(purpose),
            t::user_id.eq(user_id),
            t::data.eq(data),
            t::created_at.eq(now),
            t::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// A token that exists for this purpose, whatever its state (used / expired).
pub fn find(
    conn: &mut AnyConnection,
    token_hash: &str,
    purpose: &str,
) -> QueryResult<Option<OneTimeToken>> {
    t::table
        .find(token_hash)
        .filter(t::purpose.eq(purpose))
        .select(OneTimeToken::as_select())
        .first(conn)
        .optional()
}

/// Marks the token used if it is unused and unexpired; true when this call won.
pub fn consume(
    conn: &mut AnyConnection,
    token_hash: &str,
    purpose: &str,
    now: i64,
) -> QueryResult<bool> {
    diesel::update(
        t::table
            .find(token_hash)
            .filter(t::purpose.eq(purpose))
            .filter(t::used_at.is_null())
            .filter(t::expires_at.gt(now)),
    )
    .set(t::used_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Voids every unused token of one purpose for one user (a newer link replaces them).
pub fn invalidate(
    conn: &mut AnyConnection,
    user_id: &str,
    purpose: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(t::user_id.eq(user_id))
            .filter(t::purpose.eq(purpose))
            .filter(t::used_at.is_null()),
    )
    .set(t::used_at.eq(now))
    .execute(conn)
}

/// Voids every unused token of one purpose, whoever it is for (a new setup link
/// replaces every earlier one).
pub fn invalidate_all(conn: &mut AnyConnection, purpose: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(t::purpose.eq(purpose))
            .filter(t::used_at.is_null()),
    )
    .set(t::used_at.eq(now))
    .execute(conn)
}
