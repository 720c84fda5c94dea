//! Step-up: a signed-in user confirms it is still them before a sensitive change —
//! the password (plus the authenticator-app code when the account has one), or a
//! security key or passkey alone (its ceremony requires user verification). The guess
//! is counted with the account's password guesses before it is checked, the attempt is
//! audited either way, and the gate raises the session only if the account is
//! unchanged and the session was not revoked meanwhile.

use std::net::IpAddr;

use serde_json::json;
use webauthn_rs::prelude::{PasskeyAuthentication, PublicKeyCredential, RequestChallengeResponse};

use super::{SignIn, SignInError, gate};
use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record_alone};
use crate::auth::password::Verified;
use crate::auth::throttle::{Reservation, RetryAfter};
use crate::domain::audit::{AuditAction, Outcome};

/// The signed-in session stepping up.
pub struct Who<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    /// The session's public id (its registry row).
    pub sid: &'a str,
}

/// How a step-up ended.
pub enum StepUp {
    /// Confirmed: the session may be raised to `at`, adding `methods` to its `amr`
    /// (each once), under a new session key.
    Raised { at: i64, methods: Vec<&'static str> },
    /// Wrong. `code` says whether the account is asked for an app code too.
    Wrong { code: bool },
    /// Right, but the account changed or this session was revoked meanwhile: it is
    /// over, sign in again.
    Ended,
}

impl SignIn {
    /// Counted before the check, with the password guesses of the account: concurrent
    /// guesses from a stolen session cannot all be checked before any failure counts.
    async fn reserve_step_up(&self, ip: IpAddr, who: &Who<'_>) -> Result<Reservation, SignInError> {
        Ok(self.throttle.reserve(ip, &who.email.to_lowercase()).await?)
    }

    async fn audit_step_up(
        &self,
        who: &Who<'_>,
        ok: bool,
        details: serde_json::Value,
        ctx: &AuditCtx,
    ) -> Result<(), InternalError> {
        let (action, outcome) = if ok {
            (AuditAction::StepUpSucceeded, Outcome::Success)
        } else {
            (AuditAction::StepUpFailed, Outcome::Failure)
        };
        record_alone(
            &self.db,
            self.clock.now(),
            ctx,
            action,
            outcome,
            Some(who.user_id.to_string()),
            details,
        )
        .await
    }

    /// The account's stored password hash (`None`: no password, or no such account),
    /// read fresh for each check.
    async fn password_hash_of(&self, user_id: &str) -> Result<Option<String>, InternalError> {
        let uid = user_id.to_string();
        Ok(self
            .db
            .run(move |c| crate::db::repo::users::find(c, &uid).map_err(InternalError::from))
            .await?
            .and_then(|user| user.password_hash))
    }

    /// Step-up with the password, and `code` when the account has an authenticator app.
    pub async fn step_up_password(
        &self,
        ip: IpAddr,
        who: &Who<'_>,
        password: String,
        code: &str,
        ctx: &AuditCtx,
    ) -> Result<StepUp, SignInError> {
        let reservation = self.reserve_step_up(ip, who).await?;
        let stored = self.password_hash_of(who.user_id).await?;
        let verified_hash = stored.clone().unwrap_or_default();
        let verified = self.hasher.verify(stored, password).await?;
        if reservation.outlived() {
            return Err(SignInError::Throttled(RetryAfter(1)));
        }
        let mut ok = matches!(verified, Verified::Yes { .. });
        let wants_code = self.factors(who.user_id).await?.totp;
        let mut methods = Vec::new();
        if ok && wants_code {
            let method = crate::auth::mfa::verify(
                &self.db,
                &self.clock,
                &self.mfa_keys,
                &self.mail,
                who.user_id,
                code,
                ctx,
            )
            .await?;
            ok = method.is_some();
            if let Some(m) = method {
                methods = vec!["pwd", m.amr(), "mfa"];
            }
        }
        let now = self.clock.now();
        self.audit_step_up(who, ok, json!({}), ctx).await?;
        if !ok {
            let _ = reservation.failed().await;
            return Ok(StepUp::Wrong { code: wants_code });
        }
        reservation.succeeded().await;
        // The gate: the account unchanged (enabled, same password) and this session not
        // revoked while the password was being checked.
        if !gate::raise(
            &self.db,
            &self.clock,
            who.user_id,
            who.sid,
            Some(&verified_hash),
            ctx,
        )
        .await?
        {
            return Ok(StepUp::Ended);
        }
        Ok(StepUp::Raised { at: now, methods })
    }

    /// For an act so drastic that it asks again at the moment of acting, even within
    /// the step-up window (deleting the account): `proof` is the account's password or
    /// a code of its second factor (an authenticator-app code or a recovery code, then
    /// used up), typed into one field. Counted as one guess with the account's password
    /// guesses before it is checked, like a step-up. `true` when it held; the act
    /// audits its own refusal. The session is not raised: the act ends it.
    pub async fn reprove(
        &self,
        ip: IpAddr,
        who: &Who<'_>,
        proof: String,
        ctx: &AuditCtx,
    ) -> Result<bool, SignInError> {
        let reservation = self.reserve_step_up(ip, who).await?;
        let stored = self.password_hash_of(who.user_id).await?;
        let code = could_be_code(&proof).then(|| proof.clone());
        // Checked even for an account without a password (against a dummy hash, which
        // fails), so the answer takes as long either way.
        let mut ok = matches!(
            self.hasher.verify(stored, proof).await?,
            Verified::Yes { .. }
        );
        // A password is at least 8 characters, a code is 6 digits or a recovery code:
        // only what could be a code is tried as one (and audited as an `mfa` attempt).
        if !ok && let Some(code) = code {
            ok = crate::auth::mfa::verify(
                &self.db,
                &self.clock,
                &self.mfa_keys,
                &self.mail,
                who.user_id,
                &code,
                ctx,
            )
            .await?
            .is_some();
        }
        if reservation.outlived() {
            return Err(SignInError::Throttled(RetryAfter(1)));
        }
        if ok {
            reservation.succeeded().await;
        } else {
            let _ = reservation.failed().await;
        }
        Ok(ok)
    }

    /// The challenge for a step-up with one of the user's security keys or passkeys;
    /// `None` when they have none.
    pub async fn step_up_key_start(
        &self,
        ip: IpAddr,
        user_id: &str,
    ) -> Result<Option<(RequestChallengeResponse, PasskeyAuthentication)>, SignInError> {
        self.key_challenge(ip, user_id).await
    }

    /// Step-up with a key's answer to the challenge of [`Self::step_up_key_start`].
    pub async fn step_up_key(
        &self,
        ip: IpAddr,
        who: &Who<'_>,
        credential: &PublicKeyCredential,
        state: &PasskeyAuthentication,
        ctx: &AuditCtx,
    ) -> Result<StepUp, SignInError> {
        let reservation = self.reserve_step_up(ip, who).await?;
        let ok = crate::auth::mfa::webauthn::finish_authentication(
            &self.db,
            &self.clock,
            self.webauthn()?,
            who.user_id,
            credential,
            state,
            ctx,
        )
        .await?;
        let now = self.clock.now();
        self.audit_step_up(who, ok, json!({"method": "hwk"}), ctx)
            .await?;
        if !ok {
            let _ = reservation.failed().await;
            return Ok(StepUp::Wrong { code: false });
        }
        reservation.succeeded().await;
        if !gate::raise(&self.db, &self.clock, who.user_id, who.sid, None, ctx).await? {
            return Ok(StepUp::Ended);
        }
        // User verification is required, so the key alone is two factors.
        Ok(StepUp::Raised {
            at: now,
            methods: vec!["hwk", "mfa"],
        })
    }
}

/// Whether `input` has the shape of an authenticator-app code or a recovery code.
fn could_be_code(input: &str) -> bool {
    let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    let totp =
        digits.len() == crate::domain::totp::DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
    totp || crate::domain::recovery_codes::normalize(input).is_some()
}
