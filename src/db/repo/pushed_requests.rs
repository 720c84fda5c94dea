//! Pushed authorization requests (RFC 9126): stored by the PAR endpoint under the
//! SHA-256 of their request_uri, and taken out once by the authorization that uses it.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::pushed_requests;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pushed_requests)]
pub struct PushedRequest {
    pub request_hash: String,
    pub client_id: String,
    /// The authorization request's parameters, as JSON.
    pub params: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub fn insert(c: &mut AnyConnection, row: &PushedRequest) -> QueryResult<()> {
    diesel::insert_into(pushed_requests::table)
        .values(row)
        .execute(c)
        .map(|_| ())
}

/// Takes the request out: deletes it and returns its parameters, if it exists, belongs
/// to `client_id` and has not expired. One statement (DELETE … RETURNING), so of two
/// authorizations racing for the same request exactly one gets it.
pub fn take(
    c: &mut AnyConnection,
    request_hash: &str,
    client_id: &str,
    now: i64,
) -> QueryResult<Option<String>> {
    // PostgreSQL refuses to bind a NUL (an error, so a 500); no stored id holds one.
    if client_id.contains('\0') {
        return Ok(None);
    }
    diesel::delete(
        pushed_requests::table
            .filter(pushed_requests::request_hash.eq(request_hash))
            .filter(pushed_requests::client_id.eq(client_id))
            .filter(pushed_requests::expires_at.gt(now)),
    )
    .returning(pushed_requests::params)
    .get_result(c)
    .optional()
}

/// The request stored under `request_hash`, expired or not (to say why a take was
/// refused).
pub fn find(c: &mut AnyConnection, request_hash: &str) -> QueryResult<Option<PushedRequest>> {
    pushed_requests::table
        .find(request_hash)
        .select(PushedRequest::as_select())
        .first(c)
        .optional()
}

/// How many requests a client has stored, expired or not (what a refused push must
/// leave unchanged).
pub fn count_of_client(c: &mut AnyConnection, client_id: &str) -> QueryResult<i64> {
    pushed_requests::table
        .filter(pushed_requests::client_id.eq(client_id))
        .count()
        .get_result(c)
}

pub fn delete_of_client(c: &mut AnyConnection, client_id: &str) -> QueryResult<usize> {
    diesel::delete(pushed_requests::table.filter(pushed_requests::client_id.eq(client_id)))
        .execute(c)
}

/// Forgets expired requests.
pub fn prune(c: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    diesel::delete(pushed_requests::table.filter(pushed_requests::expires_at.le(now))).execute(c)
}
