//! Second factors: the TOTP credential and recovery codes.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{recovery_codes as rc, totp_credentials as tc};

pub fn totp_secret(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Option<String>> {
    tc::table
        .find(user_id)
        .select(tc::secret_enc)
        .first(conn)
        .optional()
}

pub fn has_totp(conn: &mut AnyConnection, user_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(tc::table.find(user_id))).get_result(conn)
}

/// When the user enabled their authenticator app; `None` when they have none.
pub fn totp_enabled_at(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Option<i64>> {
    tc::table
        .find(user_id)
        .select(tc::created_at)
        .first(conn)
        .optional()
}

pub fn insert_totp(
    conn: &mut AnyConnection,
    user_id: &str,
    secret_enc: &str,
    now: i64,
) -> QueryResult<()> {
    diesel::delete(tc::table.find(user_id)).execute(conn)?;
    diesel::insert_into(tc::table)
        .values((
            tc::user_id.eq(user_id),
            tc::secret_enc.eq(secret_enc),
            tc::last_used_step.eq(0i64),
            tc::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn delete_totp(conn: &mut AnyConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(tc::table.find(user_id)).execute(conn)
}

/// Accepts `step` only if it is later than every step accepted before: one atomic
/// UPDATE, so two requests racing with the same code cannot both win.
pub fn accept_step(conn: &mut AnyConnection, user_id: &str, step: i64) -> QueryResult<bool> {
    diesel::update(tc::table.find(user_id).filter(tc::last_used_step.lt(step)))
        .set(tc::last_used_step.eq(step))
        .execute(conn)
        .map(|n| n == 1)
}

/// Replaces every recovery code of the user.
pub fn replace_recovery_codes(
    conn: &mut AnyConnection,
    user_id: &str,
    hashes: &[String],
    now: i64,
) -> QueryResult<()> {
    diesel::delete(rc::table.filter(rc::user_id.eq(user_id))).execute(conn)?;
    for h in hashes {
        diesel::insert_into(rc::table)
            .values((
                rc::code_hash.eq(h),
                rc::user_id.eq(user_id),
                rc::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn use_recovery_code(
    conn: &mut AnyConnection,
    user_id: &str,
    hash: &str,
    now: i64,
) -> QueryResult<bool> {
    diesel::update(
        rc::table
            .find(hash)
            .filter(rc::user_id.eq(user_id))
            .filter(rc::used_at.is_null()),
    )
    .set(rc::used_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn unused_recovery_codes(conn: &mut AnyConnection, user_id: &str) -> QueryResult<i64> {
    rc::table
        .filter(rc::user_id.eq(user_id))
        .filter(rc::used_at.is_null())
        .count()
        .get_result(conn)
}

pub fn delete_recovery_codes(conn: &mut AnyConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(rc::table.filter(rc::user_id.eq(user_id))).execute(conn)
}

/// What identifies an account's second factors, for the sign-in gate's stamp
/// (`auth::sign_in::gate`): changes when one is added, removed or replaced, not when one is used.
pub struct FactorIdentity {
    /// The authenticator app: when it was enrolled, and its sealed secret.
    pub totp: Option<(i64, String)>,
    /// Security keys and passkeys, by credential id, sorted.
    pub keys: Vec<String>,
    /// The set of recovery codes: the largest of their (random) hashes, which a new set
    /// replaces and spending a code does not.
    pub recovery_set: Option<String>,
}

pub fn factor_identity(conn: &mut AnyConnection, user_id: &str) -> QueryResult<FactorIdentity> {
    use crate::db::schema::webauthn_credentials as w;
    let totp = tc::table
        .find(user_id)
        .select((tc::created_at, tc::secret_enc))
        .first(conn)
        .optional()?;
    let keys = w::table
        .filter(w::user_id.eq(user_id))
        .select(w::id)
        .order(w::id.asc())
        .load(conn)?;
    let recovery_set = rc::table
        .filter(rc::user_id.eq(user_id))
        .select(diesel::dsl::max(rc::code_hash))
        .first(conn)?;
    Ok(FactorIdentity {
        totp,
        keys,
        recovery_set,
    })
}
