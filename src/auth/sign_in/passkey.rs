//! Passkey sign-in from `/login`, with no password: the ceremony travels sealed in
//! the visitor's browser (see [`super::passkey_ceremony`]), the passkey checks user
//! verification (so it is multi-factor by itself), and the gate admits the account only
//! while the credential that signed is still its own.

use std::net::IpAddr;

use webauthn_rs::prelude::{
    DiscoverableAuthentication, PublicKeyCredential, RequestChallengeResponse,
};

use super::{SignIn, SignInError, gate};
use crate::auth::InternalError;
use crate::auth::audit::AuditCtx;
use crate::db::repo::users::User;

/// How a passkey sign-in ended.
pub enum PasskeySignIn {
    /// Signed in: the session's registry row `sid` is in.
    SignedIn {
        user: Box<User>,
        roles: Vec<String>,
        sid: String,
    },
    /// The passkey signs nobody in: not an account's, not verified, or the account
    /// changed (disabled, the passkey removed) before the gate.
    Refused,
    /// The sealed ceremony is missing, not this browser's, too old or used already.
    Expired,
}

impl SignIn {
    /// Starts an anonymous passkey ceremony: its options for the browser, and its state
    /// sealed for a cookie of the browser whose CSRF seed is `seed`. The login page asks
    /// on every load (autofill), so this has a per-address budget of its own; nothing is
    /// stored on the server.
    pub async fn passkey_start(
        &self,
        ip: IpAddr,
        seed: &str,
    ) -> Result<(RequestChallengeResponse, String), SignInError> {
        self.throttle.ceremony_from_ip(ip).await?;
        let (options, state) = crate::auth::mfa::webauthn::start_discoverable(self.webauthn()?)?;
        let sealed = self
            .ceremonies
            .seal(state, seed, self.clock.now())
            .map_err(InternalError::from)?;
        Ok((options, sealed))
    }

    /// Finishes the ceremony sealed in `sealed` with the browser's answer; the answer
    /// counts as a sign-in attempt of the client.
    pub async fn passkey_finish(
        &self,
        ip: IpAddr,
        seed: &str,
        sealed: &str,
        credential: &PublicKeyCredential,
        ctx: &AuditCtx,
    ) -> Result<PasskeySignIn, SignInError> {
        self.throttle.login_attempt(ip).await?;
        let Ok(state) = self
            .ceremonies
            .take::<DiscoverableAuthentication>(sealed, seed, self.clock.now())
            .await
        else {
            return Ok(PasskeySignIn::Expired);
        };
        let Some((user, roles, credential_id)) = crate::auth::mfa::webauthn::finish_discoverable(
            &self.db,
            &self.clock,
            self.webauthn()?,
            credential,
            state,
            self.config.require_verified_email,
            ctx,
        )
        .await?
        else {
            return Ok(PasskeySignIn::Refused);
        };
        let ip = ip.to_string();
        let user_agent = ctx.user_agent.clone().unwrap_or_default();
        let entrant = gate::Entrant {
            user_id: &user.id,
            ip: &ip,
            user_agent: &user_agent,
        };
        let proof = gate::Proof::Passkey {
            credential_id: &credential_id,
        };
        let admitted =
            gate::admit(&self.db, &self.sessions, &self.clock, entrant, proof, ctx).await?;
        Ok(match admitted {
            Some(sid) => PasskeySignIn::SignedIn {
                user: Box::new(user),
                roles,
                sid,
            },
            None => PasskeySignIn::Refused,
        })
    }
}
