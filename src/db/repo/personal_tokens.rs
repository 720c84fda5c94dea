//! Personal access tokens: rows keyed by id, found by the SHA-256 of their secret.
//! Every change that must not touch another user's token filters on `user_id` too.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::personal_tokens as t;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = t)]
pub struct PersonalToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    /// Space-separated.
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub fn insert(conn: &mut AnyConnection, row: &PersonalToken) -> QueryResult<()> {
    diesel::insert_into(t::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The token whose secret hashes to `token_hash`, whatever its state.
pub fn find_by_hash(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> QueryResult<Option<PersonalToken>> {
    t::table
        .filter(t::token_hash.eq(token_hash))
        .select(PersonalToken::as_select())
        .first(conn)
        .optional()
}

/// The user's tokens that still work at `now` (not revoked, not expired), newest first.
pub fn live_of_user(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> QueryResult<Vec<PersonalToken>> {
    t::table
        .filter(t::user_id.eq(user_id))
        .filter(t::revoked_at.is_null())
        .filter(t::expires_at.is_null().or(t::expires_at.gt(now)))
        .order((t::created_at.desc(), t::id.asc()))
        .select(PersonalToken::as_select())
        .load(conn)
}

/// Every token row of the user, revoked and expired ones too, newest first: what the
/// service holds about them (`/account/data`).
pub fn all_of_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<PersonalToken>> {
    t::table
        .filter(t::user_id.eq(user_id))
        .order((t::created_at.desc(), t::id.asc()))
        .select(PersonalToken::as_select())
        .load(conn)
}

/// Revokes one token of `user_id`; false when there is no such live token of theirs
/// (another user's id revokes nothing).
pub fn revoke_own(
    conn: &mut AnyConnection,
    user_id: &str,
    id: &str,
    now: i64,
) -> QueryResult<Option<String>> {
    let n = diesel::update(
        t::table
            .filter(t::id.eq(id))
            .filter(t::user_id.eq(user_id))
            .filter(t::revoked_at.is_null()),
    )
    .set(t::revoked_at.eq(Some(now)))
    .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    t::table.find(id).select(t::name).first(conn).optional()
}

/// Revokes every token of a user that is not revoked yet; returns how many.
pub fn revoke_all_of_user(conn: &mut AnyConnection, user_id: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(t::user_id.eq(user_id))
            .filter(t::revoked_at.is_null()),
    )
    .set(t::revoked_at.eq(Some(now)))
    .execute(conn)
}

/// Records a use at `now`, unless one was recorded after `since` (so a busy script
/// writes at most once a minute).
pub fn touch(conn: &mut AnyConnection, id: &str, now: i64, since: i64) -> QueryResult<()> {
    diesel::update(
        t::table
            .filter(t::id.eq(id))
            .filter(t::last_used_at.is_null().or(t::last_used_at.le(since))),
    )
    .set(t::last_used_at.eq(Some(now)))
    .execute(conn)
    .map(|_| ())
}
