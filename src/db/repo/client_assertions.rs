//! private_key_jwt clients: their public keys, and the client assertions (RFC 7523)
//! already used: the SHA-256 of client id and `jti`, kept until the assertion
//! expires, so a replayed one is refused on every instance.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{client_assertion_jtis, client_keys};

/// Records a `jti` as used: `false` when it already was (and has not expired). The
/// primary key decides, so of two requests racing with one assertion exactly one wins.
pub fn first_use(
    c: &mut AnyConnection,
    jti_hash: &str,
    expires_at: i64,
    now: i64,
) -> QueryResult<bool> {
    // This jti's own row, if it has expired: the value may be used again (the old
    // assertion is refused as expired anyway). One row by its key, not a sweep of the
    // table on every client authentication: `oauth::prune` sweeps the rest hourly.
    diesel::delete(
        client_assertion_jtis::table
            .find(jti_hash)
            .filter(client_assertion_jtis::expires_at.le(now)),
    )
    .execute(c)?;
    // A savepoint keeps PostgreSQL's transaction usable after the conflict.
    let inserted = c.transaction(|c| {
        diesel::insert_into(client_assertion_jtis::table)
            .values((
                client_assertion_jtis::jti_hash.eq(jti_hash),
                client_assertion_jtis::expires_at.eq(expires_at),
            ))
            .execute(c)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Registers a client's inline JWK Set.
pub fn insert_keys(c: &mut AnyConnection, client_id: &str, jwks: &str) -> QueryResult<()> {
    diesel::insert_into(client_keys::table)
        .values((
            client_keys::client_id.eq(client_id),
            client_keys::jwks.eq(Some(jwks)),
        ))
        .execute(c)
        .map(|_| ())
}

/// A client's inline JWK Set, if it registered one.
pub fn keys(c: &mut AnyConnection, client_id: &str) -> QueryResult<Option<String>> {
    client_keys::table
        .find(client_id)
        .select(client_keys::jwks)
        .first::<Option<String>>(c)
        .optional()
        .map(Option::flatten)
}

pub fn delete_keys(c: &mut AnyConnection, client_id: &str) -> QueryResult<usize> {
    diesel::delete(client_keys::table.find(client_id)).execute(c)
}

/// Forgets the `jti`s of assertions that have expired.
pub fn prune(c: &mut AnyConnection, now: i64) -> QueryResult<()> {
    diesel::delete(client_assertion_jtis::table.filter(client_assertion_jtis::expires_at.le(now)))
        .execute(c)
        .map(|_| ())
}
