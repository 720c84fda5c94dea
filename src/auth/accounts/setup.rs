//! First start: with no administrator, a one-time setup link lets the operator create
//! the first one. The link works once, expires, and several instances racing on setup
//! still produce a single administrator (the check runs inside the transaction).

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::accounts::{AccountError, NewAccount, check_password_policy, new_user};
use crate::auth::audit::{AuditCtx, record};
use crate::auth::password::Hasher;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::{roles, tokens, users, users::User};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::email::EmailAddress;

pub const PURPOSE: &str = "setup";

#[derive(Debug, PartialEq, Eq)]
pub enum SetupError {
    /// Used, expired, unknown, or an administrator exists already.
    LinkInvalid,
    Account(AccountError),
}

pub async fn admin_exists(db: &Db) -> Result<bool, InternalError> {
    db.run(|c| {
        roles::holders_count(c, "admin")
            .map(|n| n > 0)
            .map_err(InternalError::from)
    })
    .await
}

/// Creates a setup token when no administrator exists; returns the link to print.
pub async fn issue_link_if_needed(
    db: &Db,
    clock: &Clock,
    base_url: &str,
    ttl: i64,
) -> Result<Option<String>, InternalError> {
    if admin_exists(db).await? {
        return Ok(None);
    }
    let token = crate::domain::tokens::generate();
    let hash = crate::domain::tokens::hash(&token);
    let now = clock.now();
    db.run(move |c| {
        tokens::insert(c, &hash, PURPOSE, None, "", now, now + ttl).map_err(InternalError::from)
    })
    .await?;
    Ok(Some(format!("{base_url}/setup?token={token}")))
}

/// Whether the link can still be used (for the GET page).
pub async fn link_usable(db: &Db, clock: &Clock, token: &str) -> Result<bool, InternalError> {
    let hash = crate::domain::tokens::hash(token);
    let now = clock.now();
    let found = db
        .run(move |c| tokens::find(c, &hash, PURPOSE).map_err(InternalError::from))
        .await?;
    Ok(
        found.is_some_and(|t| t.used_at.is_none() && t.expires_at > now)
            && !admin_exists(db).await?,
    )
}

pub async fn complete(
    db: &Db,
    hasher: &Hasher,
    clock: &Clock,
    min_len: usize,
    token: &str,
    input: NewAccount,
    ctx: &AuditCtx,
) -> Result<Result<User, SetupError>, InternalError> {
    if !link_usable(db, clock, token).await? {
        return Ok(Err(SetupError::LinkInvalid));
    }
    let email = match EmailAddress::parse(&input.email) {
        Ok(e) => e,
        Err(m) => return Ok(Err(SetupError::Account(AccountError::Email(m.into())))),
    };
    let name = input
        .display_name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if let Err(e) = check_password_policy(
        &input.password,
        min_len,
        vec![email.normalized().to_string()],
    )
    .await
    {
        return Ok(Err(SetupError::Account(e)));
    }
    let hash = hasher.hash(input.password).await?;
    let now = clock.now();
    let user = new_user(&email, name, hash, true, now);
    let token_hash = crate::domain::tokens::hash(token);
    let ctx = ctx.clone();
    db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            // Both checks inside one serialised transaction: one winner, even across instances.
            crate::db::conn::serialize(c, crate::db::conn::locks::FIRST_ADMIN)?;
            // Checked before the token is used up, so the operator can pick another
            // address with the same link.
            if users::find_by_email(c, &user.email_normalized)?.is_some() {
                return Ok(Err(SetupError::Account(AccountError::Exists)));
            }
            if !tokens::consume(c, &token_hash, PURPOSE, now)?
                || roles::holders_count(c, "admin")? > 0
            {
                return Ok(Err(SetupError::LinkInvalid));
            }
            users::insert(c, &user)?;
            roles::assign(c, &user.id, "admin", now)?;
            let ctx = ctx.with_actor(&user.id);
            record(
                c,
                &ctx,
                now,
                AuditAction::SetupCompleted,
                Outcome::Success,
                Some(&user.id),
                json!({}),
            )?;
            record(
                c,
                &ctx,
                now,
                AuditAction::RoleAssigned,
                Outcome::Success,
                Some(&user.id),
                json!({"role": "admin"}),
            )?;
            Ok(Ok(user))
        })
        .map_err(|e: crate::db::QueryError| InternalError::from(e))
    })
    .await
}
