//! The admin user directory: prefix search, filters and keyset pagination.

use diesel::prelude::*;

use super::users::User;
use crate::db::AnyConnection;
use crate::db::schema::{
    recovery_codes, totp_credentials, user_roles, users, webauthn_credentials,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Disabled,
    Unverified,
}

impl Status {
    /// A user's status as the directory filters by it: disabled first, then an
    /// unconfirmed address, else active.
    pub fn of(user: &User) -> Self {
        if user.disabled {
            Self::Disabled
        } else if !user.email_verified {
            Self::Unverified
        } else {
            Self::Active
        }
    }

    /// The name scripts see (`user list --json`) and the directory's filter takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Unverified => "unverified",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Prefix of the email or the display name, lower case.
    pub prefix: Option<String>,
    pub role: Option<String>,
    pub status: Option<Status>,
    /// Some(true): only users with a second factor; Some(false): only without.
    pub second_factor: Option<bool>,
    /// Keyset: users whose normalised email sorts after this one.
    pub after: Option<String>,
}

/// The upper bound of a prefix range: every string starting with `p` sorts below it.
/// A range (not LIKE) so both backends use the index whatever their LIKE rules.
fn prefix_end(p: &str) -> String {
    format!("{p}\u{10FFFF}")
}

/// One page, ordered by normalised email.
pub fn search(c: &mut AnyConnection, q: &Query, limit: i64) -> QueryResult<Vec<User>> {
    let mut s = users::table.into_boxed();
    if let Some(p) = q.prefix.as_deref().filter(|p| !p.is_empty()) {
        let end = prefix_end(p);
        s = s.filter(
            users::email_normalized
                .ge(p.to_string())
                .and(users::email_normalized.lt(end.clone()))
                .or(users::name_search
                    .ge(p.to_string())
                    .and(users::name_search.lt(end))),
        );
    }
    if let Some(r) = &q.role {
        s = s.filter(
            users::id.eq_any(
                user_roles::table
                    .filter(user_roles::role.eq(r.clone()))
                    .select(user_roles::user_id),
            ),
        );
    }
    match q.status {
        Some(Status::Active) => s = s.filter(users::disabled.eq(false)),
        Some(Status::Disabled) => s = s.filter(users::disabled.eq(true)),
        Some(Status::Unverified) => s = s.filter(users::email_verified.eq(false)),
        None => {}
    }
    if let Some(has) = q.second_factor {
        let with_totp = users::id.eq_any(totp_credentials::table.select(totp_credentials::user_id));
        let with_key =
            users::id.eq_any(webauthn_credentials::table.select(webauthn_credentials::user_id));
        if has {
            s = s.filter(with_totp.or(with_key));
        } else {
            s = s.filter(diesel::dsl::not(with_totp.or(with_key)));
        }
    }
    if let Some(a) = &q.after {
        s = s.filter(users::email_normalized.gt(a.clone()));
    }
    s.order(users::email_normalized.asc())
        .limit(limit)
        .select(User::as_select())
        .load(c)
}

/// Everything an admin's "reset second factors" removes, so the user must enrol again.
pub fn delete_second_factors(c: &mut AnyConnection, user_id: &str) -> QueryResult<usize> {
    let a = diesel::delete(totp_credentials::table.filter(totp_credentials::user_id.eq(user_id)))
        .execute(c)?;
    let b = diesel::delete(
        webauthn_credentials::table.filter(webauthn_credentials::user_id.eq(user_id)),
    )
    .execute(c)?;
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(c)?;
    Ok(a + b)
}

pub fn set_disabled(
    c: &mut AnyConnection,
    user_id: &str,
    disabled: bool,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set((users::disabled.eq(disabled), users::updated_at.eq(now)))
        .execute(c)
}

pub fn delete_user(c: &mut AnyConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(users::table.find(user_id)).execute(c)
}
