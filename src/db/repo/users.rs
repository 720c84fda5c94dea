use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::users;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub email: String,
    pub email_normalized: String,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Lower-cased display name, for prefix search.
    pub name_search: String,
    /// [`PERSON`] or [`SERVICE`].
    pub kind: String,
    /// A service account's owner group (its groups for access rules); `None` for a person.
    pub owner_group_id: Option<String>,
}

/// An account a human signs in to.
pub const PERSON: &str = "person";
/// A service account: no password, never signs in; reaches sites with tokens only.
pub const SERVICE: &str = "service";

impl User {
    pub fn is_service(&self) -> bool {
        self.kind == SERVICE
    }
}

pub fn insert(conn: &mut AnyConnection, user: &User) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map(|_| ())
}

pub fn find_by_email(conn: &mut AnyConnection, normalized: &str) -> QueryResult<Option<User>> {
    // Typed addresses reach this unparsed (so a malformed one is answered like any
    // other); a NUL, which no stored address holds and PostgreSQL refuses to bind,
    // means nobody.
    if normalized.contains('\0') {
        return Ok(None);
    }
    users::table
        .filter(users::email_normalized.eq(normalized))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// A user by address, whether signing in needs a second step (an authenticator app
/// or a security key is enrolled), and the user's roles (sorted): the sign-in's one
/// read before the password check, one statement instead of four (a row per role,
/// one with no role when there is none). The same second-step rule as
/// `auth::mfa::required` (by user id, for pages after sign-in): a new kind of factor
/// goes in both. Only a person is found: a service account never signs in.
pub fn find_for_sign_in(
    conn: &mut AnyConnection,
    normalized: &str,
) -> QueryResult<Option<(User, bool, Vec<String>)>> {
    use crate::db::schema::{totp_credentials as t, user_roles as r, webauthn_credentials as w};
    use diesel::dsl::exists;
    let rows = users::table
        .left_join(r::table)
        .filter(users::email_normalized.eq(normalized))
        .filter(users::kind.eq(PERSON))
        .select((
            User::as_select(),
            exists(t::table.filter(t::user_id.eq(users::id))),
            exists(w::table.filter(w::user_id.eq(users::id))),
            r::role.nullable(),
        ))
        .order(r::role.asc())
        .load::<(User, bool, bool, Option<String>)>(conn)?;
    let mut rows = rows.into_iter();
    let Some((user, totp, key, role)) = rows.next() else {
        return Ok(None);
    };
    let roles = role
        .into_iter()
        .chain(rows.filter_map(|(_, _, _, role)| role))
        .collect();
    Ok(Some((user, totp || key, roles)))
}

/// The account `id`, as long as it still signs in with the password hash `verified`:
/// a person (never a service account), not disabled, hash unchanged. The one statement of that condition, used by the
/// re-read below and by `sessions::insert_if_signs_in_with`, so an account state that
/// should stop a sign-in (a lock, an expiry) is added in one place for both.
#[diesel::dsl::auto_type(no_type_alias)]
pub fn signing_in_with<'a>(id: &'a str, verified: &'a str) -> _ {
    users::table
        .filter(users::id.eq(id))
        .filter(users::disabled.eq(false))
        // `PERSON`, spelled out: `auto_type` reads a constant here as a type.
        .filter(users::kind.eq("person"))
        .filter(users::password_hash.eq(verified))
}

/// Whether the account still signs in with the password hash `verified`. Read in the
/// transaction that records the sign-in, after the slow verification: a disable or
/// password reset that landed meanwhile wins. On PostgreSQL the row stays locked to the
/// end of that transaction, so a disable or reset that comes after it waits, and its
/// "sign out everywhere" then sees the new session (one that came first and is still
/// open makes this read wait, then re-check the row as it committed it); SQLite's single
/// writer already orders them.
pub fn still_signs_in_with(
    conn: &mut AnyConnection,
    id: &str,
    verified: &str,
) -> QueryResult<bool> {
    let q = signing_in_with(id, verified).select(users::id);
    let row: Option<String> = match conn {
        AnyConnection::Postgresql(pg) => q.for_update().first(pg).optional()?,
        AnyConnection::Sqlite(sq) => q.first(sq).optional()?,
    };
    Ok(row.is_some())
}

/// The account's password hash and disabled flag, read for the sign-in gate with the
/// row locked to the end of the transaction on PostgreSQL (as `still_signs_in_with`),
/// so a disable or password reset either lands before the gate looks or waits for the
/// session it lets in, and then ends it. `None` for a service account, so no proof
/// (second step, passkey, setup) lets one into a session.
pub fn lock_for_sign_in(
    conn: &mut AnyConnection,
    id: &str,
) -> QueryResult<Option<(Option<String>, bool)>> {
    let q = users::table
        .filter(users::id.eq(id))
        .filter(users::kind.eq(PERSON))
        .select((users::password_hash, users::disabled));
    match conn {
        AnyConnection::Postgresql(pg) => q.for_update().first(pg).optional(),
        AnyConnection::Sqlite(sq) => q.first(sq).optional(),
    }
}

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn set_password_hash(
    conn: &mut AnyConnection,
    id: &str,
    hash: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
        .execute(conn)
}

pub fn count(conn: &mut AnyConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

pub fn set_email_verified(conn: &mut AnyConnection, id: &str, now: i64) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::email_verified.eq(true), users::updated_at.eq(now)))
        .execute(conn)
}

/// Changes the address (already confirmed by its owner).
pub fn set_email(
    conn: &mut AnyConnection,
    id: &str,
    email: &str,
    normalized: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::email.eq(email),
            users::email_normalized.eq(normalized),
            users::email_verified.eq(true),
            users::updated_at.eq(now),
        ))
        .execute(conn)
}

/// id → email for the ids that still exist (to show names in the audit viewer).
pub fn emails_of(
    conn: &mut AnyConnection,
    ids: &[String],
) -> QueryResult<std::collections::HashMap<String, String>> {
    let rows: Vec<(String, String)> = users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::email))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Every service account, by address.
pub fn services(conn: &mut AnyConnection) -> QueryResult<Vec<User>> {
    users::table
        .filter(users::kind.eq(SERVICE))
        .order(users::email_normalized.asc())
        .select(User::as_select())
        .load(conn)
}

/// The names of the service accounts the group owns (to refuse deleting it).
pub fn services_owned_by(conn: &mut AnyConnection, group_id: &str) -> QueryResult<Vec<String>> {
    users::table
        .filter(users::kind.eq(SERVICE))
        .filter(users::owner_group_id.eq(group_id))
        .order(users::email_normalized.asc())
        .select(users::email)
        .load(conn)
}
