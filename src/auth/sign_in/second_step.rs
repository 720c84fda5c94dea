//! The second step after a password (`/login/mfa`): a code from the authenticator
//! app, a recovery code, or a security key. Each guess is reserved against the account
//! (wherever the guesses come from) and the client before it is checked; a pending
//! sign-in allows [`MAX_FAILURES`] wrong ones before it must start over. A right one
//! goes through the gate, which refuses when the account changed since the password.

use std::net::IpAddr;

use serde_json::json;
use webauthn_rs::prelude::{PasskeyAuthentication, PublicKeyCredential, RequestChallengeResponse};

use super::{Pending, SignIn, SignInError, gate};
use crate::auth::audit::{AuditCtx, record_alone};
use crate::auth::mfa::Method;
use crate::auth::throttle::Reservation;
use crate::domain::audit::{AuditAction, Outcome};

/// Wrong codes allowed in one pending sign-in before it must start over.
pub const MAX_FAILURES: u32 = 5;

/// How a second-step guess ended.
pub enum SecondStep {
    /// Signed in: the session's registry row `sid` is in; `amr` is what was proven.
    /// The pending sign-in is over.
    SignedIn { sid: String, amr: Vec<String> },
    /// The factor was right but the gate refused (the account changed since the
    /// password): the pending sign-in is over, start again.
    Refused,
    /// Wrong; `Pending::failures` counts it and the pending sign-in goes on.
    Wrong,
    /// Wrong, and this pending sign-in has used up its tries: start again from the
    /// password.
    StartOver,
}

impl SignIn {
    /// Reserves a second-factor guess before it is checked: per account and per client.
    async fn reserve_second_factor(
        &self,
        ip: IpAddr,
        p: &Pending,
    ) -> Result<Reservation, SignInError> {
        Ok(self.throttle.reserve(ip, &format!("mfa:{}", p.uid)).await?)
    }

    /// A code from the authenticator app or a recovery code.
    pub async fn second_step_code(
        &self,
        ip: IpAddr,
        p: &mut Pending,
        code: &str,
        ctx: &AuditCtx,
    ) -> Result<SecondStep, SignInError> {
        let reservation = self.reserve_second_factor(ip, p).await?;
        let audit = ctx.with_actor(&p.uid);
        let verified = crate::auth::mfa::verify(
            &self.db,
            &self.clock,
            &self.mfa_keys,
            &self.mail,
            &p.uid,
            code,
            &audit,
        )
        .await?;
        match verified {
            Some(method) => {
                let label = match method {
                    Method::Totp => "totp",
                    Method::RecoveryCode => "recovery_code",
                };
                crate::counters::second_factor(label, true);
                self.complete(ip, p, method.amr(), reservation, ctx).await
            }
            None => {
                crate::counters::second_factor("code", false);
                self.count_failure(p, reservation, ctx).await
            }
        }
    }

    /// The challenge for a security key as the second step; `None` when the account
    /// has none. Starting checks nothing: only the client's budget is spent; the answer
    /// is the guess, reserved in [`Self::second_step_key`].
    pub async fn second_step_key_start(
        &self,
        ip: IpAddr,
        p: &Pending,
    ) -> Result<Option<(RequestChallengeResponse, PasskeyAuthentication)>, SignInError> {
        self.key_challenge(ip, &p.uid).await
    }

    /// A security key's answer to the challenge of [`Self::second_step_key_start`].
    pub async fn second_step_key(
        &self,
        ip: IpAddr,
        p: &mut Pending,
        credential: &PublicKeyCredential,
        state: &PasskeyAuthentication,
        ctx: &AuditCtx,
    ) -> Result<SecondStep, SignInError> {
        let reservation = self.reserve_second_factor(ip, p).await?;
        let audit = ctx.with_actor(&p.uid);
        let ok = crate::auth::mfa::webauthn::finish_authentication(
            &self.db,
            &self.clock,
            self.webauthn()?,
            &p.uid,
            credential,
            state,
            &audit,
        )
        .await?;
        crate::counters::second_factor("webauthn", ok);
        if ok {
            self.complete(ip, p, "hwk", reservation, ctx).await
        } else {
            self.count_failure(p, reservation, ctx).await
        }
    }

    /// A challenge for `user_id`'s own security keys, after the client's budget.
    pub(super) async fn key_challenge(
        &self,
        ip: IpAddr,
        user_id: &str,
    ) -> Result<Option<(RequestChallengeResponse, PasskeyAuthentication)>, SignInError> {
        self.throttle.login_attempt(ip).await?;
        let wa = self.webauthn()?;
        Ok(crate::auth::mfa::webauthn::start_authentication(&self.db, wa, user_id).await?)
    }

    /// The second factor checked out: through the gate (the account unchanged since
    /// the password) into a session.
    async fn complete(
        &self,
        ip: IpAddr,
        p: &Pending,
        method: &str,
        reservation: Reservation,
        ctx: &AuditCtx,
    ) -> Result<SecondStep, SignInError> {
        reservation.succeeded().await;
        let ip = ip.to_string();
        let user_agent = ctx.user_agent.clone().unwrap_or_default();
        let entrant = gate::Entrant {
            user_id: &p.uid,
            ip: &ip,
            user_agent: &user_agent,
        };
        let admitted = gate::admit(
            &self.db,
            &self.sessions,
            &self.clock,
            entrant,
            gate::Proof::SecondStep(&p.stamp),
            ctx,
        )
        .await?;
        Ok(match admitted {
            Some(sid) => SecondStep::SignedIn {
                sid,
                amr: vec!["pwd".into(), method.into(), "mfa".into()],
            },
            None => SecondStep::Refused,
        })
    }

    /// A wrong second factor: counted against the account (a lock-out is audited and
    /// refused as throttled) and against this pending sign-in.
    async fn count_failure(
        &self,
        p: &mut Pending,
        reservation: Reservation,
        ctx: &AuditCtx,
    ) -> Result<SecondStep, SignInError> {
        let lockout = |limit: &'static str, secs: u64| {
            record_alone(
                &self.db,
                self.clock.now(),
                ctx,
                AuditAction::RateLimitExceeded,
                Outcome::Denied,
                Some(p.uid.clone()),
                json!({"limit": limit, "seconds": secs}),
            )
        };
        if let Some(retry) = reservation.failed().await {
            lockout("mfa_account", retry.0).await?;
            return Err(SignInError::Throttled(retry));
        }
        p.failures += 1;
        if p.failures >= MAX_FAILURES {
            lockout("mfa_pending", 0).await?;
            return Ok(SecondStep::StartOver);
        }
        Ok(SecondStep::Wrong)
    }
}
