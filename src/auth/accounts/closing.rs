//! A user deleting their own account (`/account/delete`). The page already asks for a
//! fresh sign-in; the form proves it again at the moment of acting (the password, or a
//! second-factor code), counted with the account's password guesses, so a borrowed or
//! stolen session alone cannot delete the account. The deletion itself is the
//! administrators' one ([`Admin::delete_own`]), so the same rows go, the sessions end at
//! once on every instance, and the last active administrator is refused in one place.

use std::net::IpAddr;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::accounts::admin::{Admin, AdminError};
use crate::auth::audit::{AuditCtx, record_alone};
use crate::auth::sign_in::step_up::Who;
use crate::auth::sign_in::{SignIn, SignInError};
use crate::auth::throttle::RetryAfter;
use crate::clock::Clock;
use crate::db::Db;
use crate::domain::audit::{AuditAction, Outcome};

/// Why the account was not deleted; each carries the message shown next to the form.
#[derive(Debug, thiserror::Error)]
pub enum ClosingError {
    #[error("Enter your password, or a code from your authenticator app or a recovery code.")]
    NoProof,
    #[error("That did not match. Check your password or code and try again.")]
    WrongProof,
    #[error(
        "You are the last administrator: make someone else an administrator first, then delete your account."
    )]
    LastAdmin,
    /// The account is gone already (deleted a moment ago elsewhere).
    #[error("This account no longer exists.")]
    Gone,
    #[error("too many attempts")]
    Throttled(RetryAfter),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<SignInError> for ClosingError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Throttled(r) => ClosingError::Throttled(r),
            SignInError::NoRelyingParty => {
                ClosingError::Internal(InternalError::Missing("a WebAuthn relying party"))
            }
            SignInError::Internal(e) => ClosingError::Internal(e),
        }
    }
}

/// The service behind `/account/delete`.
#[derive(Clone)]
pub struct Closing {
    db: Db,
    clock: Clock,
    sign_in: SignIn,
    admin: Admin,
}

impl Closing {
    pub fn new(db: Db, clock: Clock, sign_in: SignIn, admin: Admin) -> Self {
        Self {
            db,
            clock,
            sign_in,
            admin,
        }
    }

    /// Deletes the signed-in user's account once `proof` (their password, or a code of
    /// their second factor) shows it is them. A wrong proof is audited as a failed
    /// `user.deleted`; the deletion as `user.deleted` with the user as actor and target.
    pub async fn delete_own(
        &self,
        ip: IpAddr,
        who: &Who<'_>,
        proof: String,
        ctx: &AuditCtx,
    ) -> Result<(), ClosingError> {
        if proof.trim().is_empty() {
            return Err(ClosingError::NoProof);
        }
        if !self.sign_in.reprove(ip, who, proof, ctx).await? {
            record_alone(
                &self.db,
                self.clock.now(),
                ctx,
                AuditAction::UserDeleted,
                Outcome::Failure,
                Some(who.user_id.to_string()),
                json!({"reason": "wrong password or code"}),
            )
            .await?;
            return Err(ClosingError::WrongProof);
        }
        match self.admin.delete_own(who.user_id, ctx).await {
            Ok(()) => Ok(()),
            Err(AdminError::LastAdmin) => Err(ClosingError::LastAdmin),
            Err(AdminError::NoSuchUser) => Err(ClosingError::Gone),
            Err(AdminError::Internal(e)) => Err(ClosingError::Internal(e)),
            // The owner acting on themself passes every other rule of `Admin`.
            Err(e) => Err(ClosingError::Internal(InternalError::Corrupt {
                what: "own account deletion",
                why: e.to_string(),
            })),
        }
    }
}
