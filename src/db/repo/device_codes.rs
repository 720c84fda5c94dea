//! RFC 8628 device authorization requests: started by a device, approved or denied on
//! `/device`, claimed once for tokens. Both codes are stored as SHA-256 hashes. Every
//! change of `status` is one conditional statement, so two callers racing for the same
//! row cannot both win (two approvals, two exchanges).

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::device_codes;

/// Waiting for the user.
pub const PENDING: &str = "pending";
/// The user allowed it; tokens not yet claimed.
pub const APPROVED: &str = "approved";
/// The user said no.
pub const DENIED: &str = "denied";
/// Exchanged for tokens: it works no more.
pub const USED: &str = "used";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = device_codes)]
pub struct DeviceCode {
    pub device_code_hash: String,
    pub user_code_hash: String,
    pub client_id: String,
    pub scope: String,
    pub status: String,
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
    pub amr: Option<String>,
    pub sid: Option<String>,
    pub poll_interval: i64,
    pub last_polled_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Who approved a request, from their session.
pub struct Approval<'a> {
    pub user_id: &'a str,
    pub auth_time: i64,
    pub amr: &'a str,
    pub sid: &'a str,
}

/// Inserts a new request; false when its user code's hash is already taken (the
/// caller draws another code). A savepoint keeps PostgreSQL's transaction usable.
pub fn insert(c: &mut AnyConnection, row: &DeviceCode) -> QueryResult<bool> {
    use diesel::Connection;
    use diesel::result::{DatabaseErrorKind, Error};
    match c.transaction(|c| {
        diesel::insert_into(device_codes::table)
            .values(row)
            .execute(c)
    }) {
        Ok(_) => Ok(true),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn find(c: &mut AnyConnection, device_code_hash: &str) -> QueryResult<Option<DeviceCode>> {
    device_codes::table
        .find(device_code_hash)
        .select(DeviceCode::as_select())
        .first(c)
        .optional()
}

/// The request behind a user code, while it still waits for an answer.
pub fn pending(
    c: &mut AnyConnection,
    user_code_hash: &str,
    now: i64,
) -> QueryResult<Option<DeviceCode>> {
    device_codes::table
        .filter(device_codes::user_code_hash.eq(user_code_hash))
        .filter(device_codes::status.eq(PENDING))
        .filter(device_codes::expires_at.gt(now))
        .select(DeviceCode::as_select())
        .first(c)
        .optional()
}

/// Approves a pending request (with the approving session's proof) or, with `None`,
/// denies it; false when it no longer waits (answered, expired, gone).
pub fn answer(
    c: &mut AnyConnection,
    device_code_hash: &str,
    now: i64,
    approval: Option<Approval<'_>>,
) -> QueryResult<bool> {
    let target = device_codes::table
        .find(device_code_hash)
        .filter(device_codes::status.eq(PENDING))
        .filter(device_codes::expires_at.gt(now));
    let n = match approval {
        Some(a) => diesel::update(target)
            .set((
                device_codes::status.eq(APPROVED),
                device_codes::user_id.eq(Some(a.user_id)),
                device_codes::auth_time.eq(Some(a.auth_time)),
                device_codes::amr.eq(Some(a.amr)),
                device_codes::sid.eq(Some(a.sid)),
            ))
            .execute(c)?,
        None => diesel::update(target)
            .set(device_codes::status.eq(DENIED))
            .execute(c)?,
    };
    Ok(n == 1)
}

/// Records a poll of a pending request. True when it came at least its interval after
/// the last one; otherwise the interval grows by `penalty` seconds (RFC 8628's
/// `slow_down`) and false. One statement each, so concurrent polls are all counted.
pub fn polled(
    c: &mut AnyConnection,
    device_code_hash: &str,
    now: i64,
    penalty: i64,
) -> QueryResult<bool> {
    let row = device_codes::table
        .find(device_code_hash)
        .filter(device_codes::status.eq(PENDING));
    let in_time =
        diesel::update(row.filter(
            device_codes::last_polled_at.is_null().or(
                (device_codes::last_polled_at + device_codes::poll_interval.nullable()).le(now),
            ),
        ))
        .set(device_codes::last_polled_at.eq(Some(now)))
        .execute(c)?;
    if in_time == 1 {
        return Ok(true);
    }
    diesel::update(row)
        .set((
            device_codes::last_polled_at.eq(Some(now)),
            device_codes::poll_interval.eq(device_codes::poll_interval + penalty),
        ))
        .execute(c)?;
    Ok(false)
}

/// Claims an approved request for tokens: true for exactly one caller.
pub fn claim(c: &mut AnyConnection, device_code_hash: &str) -> QueryResult<bool> {
    diesel::update(
        device_codes::table
            .find(device_code_hash)
            .filter(device_codes::status.eq(APPROVED)),
    )
    .set(device_codes::status.eq(USED))
    .execute(c)
    .map(|n| n == 1)
}

/// Deletes the approvals of a user not yet exchanged for tokens (for one client, or
/// every client): like an unused authorization code, each would start a new grant.
pub fn delete_unclaimed(
    c: &mut AnyConnection,
    user_id: &str,
    client_id: Option<&str>,
) -> QueryResult<usize> {
    let rows = device_codes::table
        .filter(device_codes::user_id.eq(user_id))
        .filter(device_codes::status.eq(APPROVED));
    match client_id {
        Some(cid) => diesel::delete(rows.filter(device_codes::client_id.eq(cid))).execute(c),
        None => diesel::delete(rows).execute(c),
    }
}

/// Every request of a client (the client is being deleted).
pub fn delete_of_client(c: &mut AnyConnection, client_id: &str) -> QueryResult<usize> {
    diesel::delete(device_codes::table.filter(device_codes::client_id.eq(client_id))).execute(c)
}

/// Forgets requests expired more than an hour ago (kept that long so a late poll is
/// told `expired_token` rather than `invalid_grant`).
pub fn prune(c: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    diesel::delete(device_codes::table.filter(device_codes::expires_at.lt(now - 3600))).execute(c)
}
