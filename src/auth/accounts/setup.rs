//! First start: with no administrator, a one-time setup link lets the operator create
//! the first one. The link works once, expires, and several instances racing on setup
//! still produce a single administrator (the check runs inside the transaction).
//! `portcullis setup-link` prints a fresh one and voids the earlier ones.

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::accounts::{
    AccountError, Accounts, NewAccount, check_password_policy, insert_user, new_user,
};
use crate::auth::audit::AuditCtx;
use crate::auth::password::Hasher;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::{roles, tokens, users, users::User};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::email::EmailAddress;

pub const PURPOSE: &str = "setup";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Used, expired, unknown, or an administrator exists already.
    #[error("the setup link is not usable")]
    LinkInvalid,
    #[error(transparent)]
    Account(AccountError),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// The first administrator, and the session they are signed in with (None when the
/// gate refused it meanwhile: they sign in at /login instead).
pub struct SetupDone {
    pub user: User,
    pub session_id: Option<String>,
}

impl Accounts {
    /// Whether the setup link can still be used (for the GET page).
    pub async fn setup_link_usable(&self, token: &str) -> Result<bool, InternalError> {
        Ok(!token.is_empty() && link_usable(&self.db, &self.clock, token).await?)
    }

    /// Creates the first administrator from the setup link and signs them in.
    pub async fn complete_setup(
        &self,
        token: &str,
        input: NewAccount,
        ip: &str,
        user_agent: &str,
        ctx: &AuditCtx,
    ) -> Result<SetupDone, SetupError> {
        let user = complete(
            &self.db,
            &self.hasher,
            &self.clock,
            self.config.password_min_length,
            token,
            input,
            ctx,
        )
        .await?;
        let entrant = crate::auth::sign_in::gate::Entrant {
            user_id: &user.id,
            ip,
            user_agent,
        };
        let session_id = crate::auth::sign_in::gate::admit(
            &self.db,
            &self.sessions,
            &self.clock,
            entrant,
            crate::auth::sign_in::gate::Proof::Setup,
            ctx,
        )
        .await?;
        Ok(SetupDone { user, session_id })
    }
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
    Ok(Some(link(base_url, &token)))
}

fn link(base_url: &str, token: &str) -> String {
    format!("{base_url}/setup?token={token}")
}

/// `setup-link`: while no administrator exists, a fresh link, every earlier one voided
/// (a link from an old log, or one shared by mistake, stops working); `None` once an
/// administrator exists. Under the first-administrator lock, so it cannot interleave
/// with a setup being completed on any instance. Audited: whoever holds the link can
/// make themselves the administrator.
pub async fn renew_link(
    db: &Db,
    clock: &Clock,
    base_url: &str,
    ttl: i64,
    ctx: &AuditCtx,
) -> Result<Option<String>, InternalError> {
    let token = crate::domain::tokens::generate();
    let hash = crate::domain::tokens::hash(&token);
    let (now, ctx) = (clock.now(), ctx.clone());
    let issued = db
        .run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                crate::db::conn::serialize(c, crate::db::conn::locks::FIRST_ADMIN)?;
                if roles::holders_count(c, "admin")? > 0 {
                    return Ok(false);
                }
                let voided = tokens::invalidate_all(c, PURPOSE, now)?;
                tokens::insert(c, &hash, PURPOSE, None, "", now, now + ttl)?;
                let details = json!({"earlier_voided": voided, "expires_at": now + ttl});
                let (act, outcome) = (AuditAction::SetupLinkIssued, Outcome::Success);
                crate::auth::audit::record(c, &ctx, now, act, outcome, None, details)?;
                Ok(true)
            })
            .map_err(|e: crate::db::QueryError| InternalError::from(e))
        })
        .await?;
    Ok(issued.then(|| link(base_url, &token)))
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

async fn complete(
    db: &Db,
    hasher: &Hasher,
    clock: &Clock,
    min_len: usize,
    token: &str,
    input: NewAccount,
    ctx: &AuditCtx,
) -> Result<User, SetupError> {
    if !link_usable(db, clock, token).await? {
        return Err(SetupError::LinkInvalid);
    }
    let email = EmailAddress::parse(&input.email)
        .map_err(|m| SetupError::Account(AccountError::Email(m.into())))?;
    if email.undeliverable() {
        return Err(SetupError::Account(AccountError::Email(
            EmailAddress::UNDELIVERABLE.into(),
        )));
    }
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
        return Err(SetupError::Account(e));
    }
    let hash = hasher
        .hash(input.password)
        .await
        .map_err(InternalError::from)?;
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
            let ctx = ctx.with_actor(&user.id);
            let created = (AuditAction::SetupCompleted, json!({}));
            insert_user(c, (&ctx, now), &user, created, &["admin".to_string()])?;
            Ok(Ok(user))
        })
        .map_err(|e: crate::db::QueryError| InternalError::from(e))
    })
    .await?
}
