//! Second factors: enrolment of an authenticator app (TOTP), recovery codes, and the
//! second step of signing in. Every code works once: TOTP steps through the
//! `last_used_step` guard, recovery codes through `used_at`. `SecondFactors` is the
//! service the /account pages call; the sign-in steps use the free functions.

pub mod webauthn;

use std::sync::Arc;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::{mfa, users};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::{recovery_codes, totp};
use crate::mail::MailCtx;
use crate::mail::messages::{MethodAdded, MethodRemoved};
use crate::mail::outbox::enqueue;
use crate::master_key::Sealer;

/// What the second-factor code needs besides the database.
#[derive(Clone)]
pub struct MfaKeys {
    /// Encrypts TOTP secrets at rest.
    pub sealer: Sealer,
    /// Keys the recovery-code hashes.
    pub pepper: [u8; 32],
}

/// Enrolling and removing second factors: the authenticator app, recovery codes,
/// security keys and passkeys.
#[derive(Clone)]
pub struct SecondFactors {
    pub(crate) db: Db,
    pub(crate) clock: Clock,
    pub(crate) keys: MfaKeys,
    pub(crate) mail: MailCtx,
    /// None when the public URL's host cannot be a relying party (an IP address).
    pub(crate) webauthn: Option<Arc<webauthn_rs::Webauthn>>,
}

impl SecondFactors {
    pub fn new(
        db: Db,
        clock: Clock,
        keys: MfaKeys,
        mail: MailCtx,
        webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    ) -> Self {
        SecondFactors {
            db,
            clock,
            keys,
            mail,
            webauthn,
        }
    }

    pub async fn status(&self, user_id: &str) -> Result<Status, InternalError> {
        status(&self.db, user_id).await
    }

    /// Turns the app on once the user proved it works with a correct code, and returns
    /// fresh recovery codes to show once.
    pub async fn enable_totp(
        &self,
        user_id: &str,
        secret: Vec<u8>,
        code: &str,
        ctx: &AuditCtx,
    ) -> Result<Vec<String>, MfaError> {
        enable_totp(self, user_id, secret, code, ctx).await?;
        Ok(self.generate_recovery_codes(user_id, ctx).await?)
    }

    pub async fn disable_totp(&self, user_id: &str, ctx: &AuditCtx) -> Result<bool, InternalError> {
        disable_totp(self, user_id, ctx).await
    }

    /// New recovery codes, which back up another factor: none without one.
    pub async fn regenerate_recovery_codes(
        &self,
        user_id: &str,
        ctx: &AuditCtx,
    ) -> Result<Vec<String>, MfaError> {
        if !self.status(user_id).await?.any() {
            return Err(MfaError::NothingToBackUp);
        }
        Ok(self.generate_recovery_codes(user_id, ctx).await?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    RecoveryCode,
}

impl Method {
    /// The OIDC `amr` value for this method.
    pub fn amr(self) -> &'static str {
        match self {
            Method::Totp => "otp",
            Method::RecoveryCode => "kba",
        }
    }
}

pub struct Status {
    pub totp: bool,
    /// At least one security key or passkey.
    pub webauthn: bool,
    pub recovery_codes_left: i64,
}

impl Status {
    /// Any second factor at all (what recovery codes back up).
    pub fn any(&self) -> bool {
        self.totp || self.webauthn
    }
}

pub async fn status(db: &Db, user_id: &str) -> Result<Status, InternalError> {
    let uid = user_id.to_string();
    db.run(move |c| {
        Ok(Status {
            totp: mfa::has_totp(c, &uid)?,
            webauthn: crate::db::repo::webauthn::exists_for_user(c, &uid)?,
            recovery_codes_left: mfa::unused_recovery_codes(c, &uid)?,
        })
    })
    .await
}

/// Whether signing in needs a second step. The password step asks the same in its
/// user read (`repo::users::find_for_sign_in`): a new kind of factor goes in both.
pub fn required(c: &mut crate::db::AnyConnection, user_id: &str) -> crate::db::QueryResult<bool> {
    Ok(mfa::has_totp(c, user_id)? || crate::db::repo::webauthn::exists_for_user(c, user_id)?)
}

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("That code did not work. Check the time on your phone and try the newest code.")]
    WrongCode,
    #[error("The setup expired. Scan the new QR code and try again.")]
    SetupExpired,
    #[error("Add an authenticator app or a security key first: recovery codes back it up.")]
    NothingToBackUp,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Turns the app on once the user proved it works with a correct code.
async fn enable_totp(
    f: &SecondFactors,
    user_id: &str,
    secret: Vec<u8>,
    code: &str,
    ctx: &AuditCtx,
) -> Result<(), MfaError> {
    let now = f.clock.now();
    let Some(step) = totp::matching_step(&secret, code, now as u64) else {
        return Err(MfaError::WrongCode);
    };
    let sealed = f.keys.sealer.seal(&secret, user_id.as_bytes());
    let (uid, ctx, mail) = (user_id.to_string(), ctx.clone(), f.mail.clone());
    f.db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            let user = users::find(c, &uid)?.ok_or(crate::db::QueryError::NotFound)?;
            mfa::insert_totp(c, &uid, &sealed, now)?;
            // The code used to enable cannot be used again to sign in.
            mfa::accept_step(c, &uid, step as i64)?;
            record(
                c,
                &ctx,
                now,
                AuditAction::TotpEnabled,
                Outcome::Success,
                Some(&uid),
                json!({}),
            )?;
            let notice = MethodAdded {
                base: mail.base.clone(),
                brand: mail.brand.clone(),
                email: user.email.clone(),
                method: "an authenticator app".into(),
            };
            let rendered = notice.render_all().map_err(crate::db::abort)?;
            enqueue(c, &mail.outbox, &user.email, rendered, now)?;
            Ok::<_, crate::db::QueryError>(())
        })
        .map_err(InternalError::from)
    })
    .await?;
    Ok(())
}

async fn disable_totp(
    f: &SecondFactors,
    user_id: &str,
    ctx: &AuditCtx,
) -> Result<bool, InternalError> {
    let (uid, ctx, now, mail) = (
        user_id.to_string(),
        ctx.clone(),
        f.clock.now(),
        f.mail.clone(),
    );
    f.db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            let removed = mfa::delete_totp(c, &uid)? > 0;
            if removed {
                factor_removed(c, &mail, &uid, "an authenticator app", now)?;
                record(
                    c,
                    &ctx,
                    now,
                    AuditAction::TotpDisabled,
                    Outcome::Success,
                    Some(&uid),
                    json!({}),
                )?;
            }
            Ok::<_, crate::db::QueryError>(removed)
        })
        .map_err(InternalError::from)
    })
    .await
}

/// Inside the transaction that removed a factor: the notice to the owner, and the
/// recovery codes dropped once no factor is left (alone they would be a second password).
pub(crate) fn factor_removed(
    c: &mut crate::db::AnyConnection,
    mail: &MailCtx,
    user_id: &str,
    method: &str,
    now: i64,
) -> crate::db::QueryResult<()> {
    if !required(c, user_id)? {
        mfa::delete_recovery_codes(c, user_id)?;
    }
    let user = users::find(c, user_id)?.ok_or(crate::db::QueryError::NotFound)?;
    let notice = MethodRemoved {
        base: mail.base.clone(),
        brand: mail.brand.clone(),
        email: user.email.clone(),
        method: method.to_string(),
    };
    let rendered = notice.render_all().map_err(crate::db::abort)?;
    enqueue(c, &mail.outbox, &user.email, rendered, now)?;
    Ok(())
}

impl SecondFactors {
    /// Ten new codes; the old ones stop working. Returned once, never stored in clear.
    async fn generate_recovery_codes(
        &self,
        user_id: &str,
        ctx: &AuditCtx,
    ) -> Result<Vec<String>, InternalError> {
        let (db, clock, keys) = (&self.db, &self.clock, &self.keys);
        let codes: Vec<String> = (0..recovery_codes::COUNT)
            .map(|_| recovery_codes::generate())
            .collect();
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| recovery_codes::normalize(c))
            .map(|n| recovery_codes::hash(&keys.pepper, &n))
            .collect();
        let (uid, ctx, now) = (user_id.to_string(), ctx.clone(), clock.now());
        db.run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                mfa::replace_recovery_codes(c, &uid, &hashes, now)?;
                record(
                    c,
                    &ctx,
                    now,
                    AuditAction::RecoveryCodesGenerated,
                    Outcome::Success,
                    Some(&uid),
                    json!({"count": hashes.len()}),
                )?;
                Ok::<_, crate::db::QueryError>(())
            })
            .map_err(InternalError::from)
        })
        .await?;
        Ok(codes)
    }
}

/// Checks a TOTP code or a recovery code for `user_id` and uses it up.
pub async fn verify(
    db: &Db,
    clock: &Clock,
    keys: &MfaKeys,
    mail: &MailCtx,
    user_id: &str,
    code: &str,
    ctx: &AuditCtx,
) -> Result<Option<Method>, InternalError> {
    let now = clock.now();
    let (uid, keys2, code2, ctx2, mail) = (
        user_id.to_string(),
        keys.clone(),
        code.to_string(),
        ctx.clone(),
        mail.clone(),
    );
    db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            let mut method = None;
            if let Some(sealed) = mfa::totp_secret(c, &uid)? {
                let secret = keys2.sealer.open(&sealed, uid.as_bytes());
                if let Some(step) = secret.and_then(|s| totp::matching_step(&s, &code2, now as u64))
                    && mfa::accept_step(c, &uid, step as i64)?
                {
                    method = Some(Method::Totp);
                }
            }
            if method.is_none()
                && let Some(n) = recovery_codes::normalize(&code2)
                && mfa::use_recovery_code(c, &uid, &recovery_codes::hash(&keys2.pepper, &n), now)?
            {
                method = Some(Method::RecoveryCode);
                let left = mfa::unused_recovery_codes(c, &uid)?;
                record(
                    c,
                    &ctx2,
                    now,
                    AuditAction::RecoveryCodeUsed,
                    Outcome::Success,
                    Some(&uid),
                    json!({"left": left}),
                )?;
                // The owner hears of it: a used recovery code may be a stolen one.
                let user = users::find(c, &uid)?.ok_or(crate::db::QueryError::NotFound)?;
                let notice = crate::mail::messages::RecoveryCodeUsed {
                    base: mail.base.clone(),
                    brand: mail.brand.clone(),
                    email: user.email.clone(),
                    left,
                };
                let rendered = notice.render_all().map_err(crate::db::abort)?;
                enqueue(c, &mail.outbox, &user.email, rendered, now)?;
            }
            let (action, outcome) = match method {
                Some(_) => (AuditAction::MfaSucceeded, Outcome::Success),
                None => (AuditAction::MfaFailed, Outcome::Failure),
            };
            record(
                c,
                &ctx2,
                now,
                action,
                outcome,
                Some(&uid),
                json!({"method": method.map(|m| m.amr())}),
            )?;
            Ok::<_, crate::db::QueryError>(method)
        })
        .map_err(InternalError::from)
    })
    .await
}
