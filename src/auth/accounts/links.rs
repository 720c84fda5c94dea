//! Links sent by email: address verification, password reset, change of address.
//!
//! Tokens are 32 random bytes; only their SHA-256 is stored, each is bound to one
//! purpose and one user, works once, and expires. Every message is written to the
//! outbox in the same transaction as the token or change it belongs to.

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::accounts::{
    AccountError, Accounts, check_password_policy, signed_in_user_verified,
};
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::authorize::{GrantsEnd, end_app_grants};
use crate::auth::password::Verified;
use crate::clock::Clock;
use crate::db::repo::{tokens, users, users::User};
use crate::db::{AnyConnection, Db};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::email::EmailAddress;
use crate::domain::tokens::{generate, hash};
use crate::mail::MailCtx;
use crate::mail::messages::{
    EmailChangeConfirm, EmailChangeRequested, EmailChanged, PasswordChanged, PasswordReset,
    RegistrationAttempt, Rendered, VerifyEmail, valid_for,
};
use crate::mail::outbox::enqueue;

pub const VERIFY: &str = "verify_email";
pub const RESET: &str = "reset_password";
pub const CHANGE_EMAIL: &str = "change_email";

/// Ends the user's outstanding tokens of `kind` and issues a new one (stored hashed,
/// with `data`, valid for `ttl` seconds); returns the token for the link.
fn replace_token(
    c: &mut AnyConnection,
    user_id: &str,
    kind: &str,
    data: &str,
    now: i64,
    ttl: i64,
) -> crate::db::QueryResult<String> {
    tokens::invalidate(c, user_id, kind, now)?;
    let token = generate();
    tokens::insert(c, &hash(&token), kind, Some(user_id), data, now, now + ttl)?;
    Ok(token)
}

/// Queues a rendered message to `to`, in the caller's transaction.
fn send(
    c: &mut AnyConnection,
    m: &MailCtx,
    to: &str,
    msg: Result<Rendered, askama::Error>,
    now: i64,
) -> crate::db::QueryResult<()> {
    enqueue(c, &m.outbox, to, msg.map_err(crate::db::abort)?, now)
}

/// Inside a transaction: a fresh verification link for `user`, older ones voided.
pub fn issue_verification(
    c: &mut AnyConnection,
    m: &MailCtx,
    user: &User,
    now: i64,
) -> crate::db::QueryResult<()> {
    let token = replace_token(c, &user.id, VERIFY, "", now, m.verify_ttl)?;
    let msg = VerifyEmail {
        base: m.base.clone(),
        brand: m.brand.clone(),
        email: user.email.clone(),
        link: format!("{}/verify-email?token={token}", m.base),
        valid_for: valid_for(m.verify_ttl),
    };
    send(c, m, &user.email, msg.render_all(), now)
}

pub fn notify_registration_attempt(
    c: &mut AnyConnection,
    m: &MailCtx,
    user: &User,
    now: i64,
) -> crate::db::QueryResult<()> {
    let msg = RegistrationAttempt {
        base: m.base.clone(),
        brand: m.brand.clone(),
        email: user.email.clone(),
    };
    send(c, m, &user.email, msg.render_all(), now)
}

pub fn notify_password_changed(
    c: &mut AnyConnection,
    m: &MailCtx,
    user: &User,
    reset: bool,
    now: i64,
) -> crate::db::QueryResult<()> {
    let msg = PasswordChanged {
        base: m.base.clone(),
        brand: m.brand.clone(),
        email: user.email.clone(),
        reset,
    };
    send(c, m, &user.email, msg.render_all(), now)
}

/// Why a link does not work; each gets its own clear page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// Unknown, already used, or for another purpose.
    Invalid,
    Expired,
}

/// A link that cannot be used, or a failure that is not the link's.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("link not usable: {0:?}")]
    Unusable(LinkProblem),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// A usable link, for the GET page that asks to confirm.
pub struct LinkInfo {
    pub purpose: String,
    /// The address this link confirms (verification: the account's; change: the new one).
    pub email: String,
}

async fn lookup(
    db: &Db,
    clock: &Clock,
    token: &str,
    purposes: &'static [&'static str],
) -> Result<(tokens::OneTimeToken, User), LinkError> {
    let h = hash(token);
    let now = clock.now();
    let found: Result<_, LinkProblem> = db
        .run(move |c| {
            for p in purposes {
                if let Some(t) = tokens::find(c, &h, p)? {
                    if t.used_at.is_some() {
                        return Ok(Err(LinkProblem::Invalid));
                    }
                    if t.expires_at <= now {
                        return Ok(Err(LinkProblem::Expired));
                    }
                    let Some(uid) = t.user_id.clone() else {
                        return Ok(Err(LinkProblem::Invalid));
                    };
                    return Ok(match users::find(c, &uid)? {
                        Some(u) => Ok((t, u)),
                        None => Err(LinkProblem::Invalid),
                    });
                }
            }
            Ok::<_, InternalError>(Err(LinkProblem::Invalid))
        })
        .await?;
    found.map_err(LinkError::Unusable)
}

impl From<LinkError> for ConfirmError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Unusable(p) => ConfirmError::Link(p),
            LinkError::Internal(e) => ConfirmError::Internal(e),
        }
    }
}

impl Accounts {
    /// GET `/verify-email`: looks, never consumes (mail scanners prefetch links).
    pub async fn email_link_info(&self, token: &str) -> Result<LinkInfo, LinkError> {
        lookup(&self.db, &self.clock, token, &[VERIFY, CHANGE_EMAIL])
            .await
            .map(|(t, u)| LinkInfo {
                email: if t.purpose == CHANGE_EMAIL {
                    t.data.clone()
                } else {
                    u.email.clone()
                },
                purpose: t.purpose,
            })
    }
}

pub enum Confirmed {
    Verified { user_id: String },
    Changed { user_id: String, new_email: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("link not usable: {0:?}")]
    Link(LinkProblem),
    /// The new address was taken by another account in the meantime.
    #[error("the new address was taken meanwhile")]
    AddressTaken,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Accounts {
    /// POST `/verify-email`: consumes the token and verifies or changes the address.
    pub async fn confirm_email(
        &self,
        token: &str,
        ctx: &AuditCtx,
    ) -> Result<Confirmed, ConfirmError> {
        let (db, clock, m, cache) = (&self.db, &self.clock, &self.mail, &self.cache);
        let (t, user) = lookup(db, clock, token, &[VERIFY, CHANGE_EMAIL]).await?;
        let now = clock.now();
        let (ctx, m) = (ctx.clone(), m.clone());
        let done = db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    if !tokens::consume(c, &t.token_hash, &t.purpose, now)? {
                        return Ok(Err(ConfirmError::Link(LinkProblem::Invalid)));
                    }
                    if t.purpose == VERIFY {
                        users::set_email_verified(c, &user.id, now)?;
                        record(
                            c,
                            &ctx,
                            now,
                            AuditAction::EmailVerified,
                            Outcome::Success,
                            Some(&user.id),
                            json!({}),
                        )?;
                        return Ok(Ok(Confirmed::Verified {
                            user_id: user.id.clone(),
                        }));
                    }
                    let Ok(new) = EmailAddress::parse(&t.data) else {
                        return Ok(Err(ConfirmError::Link(LinkProblem::Invalid)));
                    };
                    if users::find_by_email(c, new.normalized())?
                        .is_some_and(|other| other.id != user.id)
                    {
                        return Ok(Err(ConfirmError::AddressTaken));
                    }
                    users::set_email(c, &user.id, new.as_ref(), new.normalized(), now)?;
                    tokens::invalidate(c, &user.id, CHANGE_EMAIL, now)?;
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::EmailChanged,
                        Outcome::Success,
                        Some(&user.id),
                        json!({"from": user.email, "to": new.as_ref()}),
                    )?;
                    let notice = EmailChanged {
                        base: m.base.clone(),
                        brand: m.brand.clone(),
                        email: user.email.clone(),
                        new_email: new.to_string(),
                    };
                    send(c, &m, &user.email, notice.render_all(), now)?;
                    Ok(Ok(Confirmed::Changed {
                        user_id: user.id.clone(),
                        new_email: new.to_string(),
                    }))
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        // Userinfo answers with the address and whether it is verified.
        if done.is_ok() {
            cache.invalidate().await;
        }
        done
    }

    /// A new verification link for an unverified account, if there is one and the
    /// address is under its resend limit. The caller answers the same whatever happens here.
    pub async fn resend_verification(&self, email: &str) -> Result<bool, InternalError> {
        let Ok(addr) = EmailAddress::parse(email) else {
            return Ok(false);
        };
        // Over the limit nothing is sent, and the page says the same either way.
        if !self.throttle.resend_for_account(addr.normalized()).await {
            return Ok(false);
        }
        let (norm, m, now) = (
            addr.normalized().to_string(),
            self.mail.clone(),
            self.clock.now(),
        );
        self.db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| match users::find_by_email(c, &norm)? {
                    Some(u) if !u.email_verified && !u.disabled => {
                        issue_verification(c, &m, &u, now)?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await
    }

    /// `/password/forgot`: a reset link for the address (within its per-address limit),
    /// voiding the earlier ones. Returns nothing the caller could leak: the page answers
    /// the same either way.
    pub async fn request_reset(&self, email: &str, ctx: &AuditCtx) -> Result<(), InternalError> {
        let norm = EmailAddress::parse(email)
            .map(|e| e.normalized().to_string())
            .unwrap_or_else(|_| email.trim().to_lowercase());
        if !self.throttle.reset_to_address(&norm).await {
            return Ok(());
        }
        let (m, now, ctx) = (self.mail.clone(), self.clock.now(), ctx.clone());
        self.db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| issue_reset(c, &m, &norm, &ctx, now))
                    .map(|_sent| ())
                    .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await
    }
}

/// A reset link for the normalised address `norm`, in the caller's write transaction:
/// voids the earlier ones, queues the mail, audits. A disabled or unknown account gets
/// nothing (audited as a failure). Whether a link was sent: only an administrator may
/// be told.
pub(crate) fn issue_reset(
    c: &mut crate::db::AnyConnection,
    m: &MailCtx,
    norm: &str,
    ctx: &AuditCtx,
    now: i64,
) -> crate::db::QueryResult<bool> {
    match users::find_by_email(c, norm)? {
        // A service account has no password to reset (and its address is not mailed).
        Some(u) if !u.disabled && !u.is_service() => {
            let token = replace_token(c, &u.id, RESET, "", now, m.reset_ttl)?;
            let msg = PasswordReset {
                base: m.base.clone(),
                brand: m.brand.clone(),
                email: u.email.clone(),
                link: format!("{}/password/reset?token={token}", m.base),
                valid_for: valid_for(m.reset_ttl),
            };
            send(c, m, &u.email, msg.render_all(), now)?;
            record(
                c,
                ctx,
                now,
                AuditAction::PasswordResetRequested,
                Outcome::Success,
                Some(&u.id),
                json!({}),
            )?;
            Ok(true)
        }
        found => record(
            c,
            ctx,
            now,
            AuditAction::PasswordResetRequested,
            Outcome::Failure,
            found.as_ref().map(|u| u.id.as_str()),
            json!({"account": norm, "reason": match &found {
                Some(u) if u.is_service() => "service account",
                Some(_) => "disabled",
                None => "unknown address",
            }}),
        )
        .map(|()| false),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("link not usable: {0:?}")]
    Link(LinkProblem),
    #[error("{0}")]
    Password(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<LinkError> for ResetError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Unusable(p) => ResetError::Link(p),
            LinkError::Internal(e) => ResetError::Internal(e),
        }
    }
}

impl Accounts {
    pub async fn reset_link_status(&self, token: &str) -> Result<(), LinkError> {
        lookup(&self.db, &self.clock, token, &[RESET])
            .await
            .map(|_| ())
    }

    /// Sets the new password from a reset link and ends the user's app grants in the same
    /// transaction, then every session of the user: nobody is signed in by this (the next
    /// sign-in starts from scratch and asks for the second factor).
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: String,
        ctx: &AuditCtx,
    ) -> Result<(), ResetError> {
        let (db, hasher, clock, cache, m) =
            (&self.db, &self.hasher, &self.clock, &self.cache, &self.mail);
        let min_len = self.config.password_min_length;
        let (t, user) = lookup(db, clock, token, &[RESET]).await?;
        let mut inputs = vec![user.email_normalized.clone()];
        if let Some(n) = &user.display_name {
            inputs.push(n.to_lowercase());
        }
        if let Err(e) = check_password_policy(&new_password, min_len, inputs).await {
            return Err(ResetError::Password(e.to_string()));
        }
        let new_hash = hasher
            .hash(new_password)
            .await
            .map_err(InternalError::from)?;
        let (now, m, ctx) = (clock.now(), m.clone(), ctx.clone());
        let done = db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    if !tokens::consume(c, &t.token_hash, RESET, now)? {
                        return Ok(Err(ResetError::Link(LinkProblem::Invalid)));
                    }
                    // Whoever forced the reset may hold an app's tokens too.
                    end_app_grants(c, &ctx, now, &user.id, GrantsEnd::PasswordReset)?;
                    users::set_password_hash(c, &user.id, &new_hash, now)?;
                    tokens::invalidate(c, &user.id, RESET, now)?;
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::PasswordReset,
                        Outcome::Success,
                        Some(&user.id),
                        json!({}),
                    )?;
                    notify_password_changed(c, &m, &user, true, now)?;
                    Ok(Ok(user.id.clone()))
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        let user_id = done?;
        cache.invalidate().await;
        self.sessions.revoke_all(&user_id, None).await?;
        Ok(())
    }

    /// `/account`: asks to move the account to `new_email`. The address changes only when
    /// the new one confirms; the old one is told now.
    pub async fn request_email_change(
        &self,
        user_id: &str,
        current_password: String,
        new_email: &str,
        ctx: &AuditCtx,
    ) -> Result<(), AccountError> {
        let (db, hasher, clock, m) = (&self.db, &self.hasher, &self.clock, &self.mail);
        let new = EmailAddress::parse(new_email).map_err(|msg| AccountError::Email(msg.into()))?;
        if new.undeliverable() {
            return Err(AccountError::Email(EmailAddress::UNDELIVERABLE.into()));
        }
        let (user, verified) =
            signed_in_user_verified(db, hasher, user_id, current_password).await?;
        if let Verified::No = verified {
            return Err(AccountError::WrongPassword);
        }
        if new.normalized() == user.email_normalized {
            return Err(AccountError::Email("That is already your address.".into()));
        }
        let (now, m, ctx) = (clock.now(), m.clone(), ctx.clone());
        db.run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                // A taken address gets the same answer and no message: the link would fail
                // anyway, and the answer must not reveal who has an account.
                if users::find_by_email(c, new.normalized())?.is_some() {
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::EmailChangeRequested,
                        Outcome::Denied,
                        Some(&user.id),
                        json!({"reason": "address taken"}),
                    )?;
                    return Ok(());
                }
                let token =
                    replace_token(c, &user.id, CHANGE_EMAIL, new.as_ref(), now, m.verify_ttl)?;
                let confirm = EmailChangeConfirm {
                    base: m.base.clone(),
                    brand: m.brand.clone(),
                    email: user.email.clone(),
                    new_email: new.to_string(),
                    link: format!("{}/verify-email?token={token}", m.base),
                    valid_for: valid_for(m.verify_ttl),
                };
                send(c, &m, new.as_ref(), confirm.render_all(), now)?;
                let notice = EmailChangeRequested {
                    base: m.base.clone(),
                    brand: m.brand.clone(),
                    email: user.email.clone(),
                    new_email: new.to_string(),
                };
                send(c, &m, &user.email, notice.render_all(), now)?;
                record(
                    c,
                    &ctx,
                    now,
                    AuditAction::EmailChangeRequested,
                    Outcome::Success,
                    Some(&user.id),
                    json!({"to": new.as_ref()}),
                )
            })
            .map_err(|e: crate::db::QueryError| InternalError::from(e))
        })
        .await?;
        Ok(())
    }
}
