//! Signing in: the password step, the second step after it, passkey sign-in, step-up
//! (confirming it is still you), signing out, and the one gate every way into a
//! session passes through. [`SignIn`] is the service the web layer calls: it owns the
//! throttle reservations, the audit events and the gate calls of each step, so a
//! handler only maps the outcome to a page.

pub mod gate;
pub mod passkey;
pub mod passkey_ceremony;
pub mod password_step;
pub mod second_step;
pub mod step_up;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use webauthn_rs::Webauthn;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record_alone};
use crate::auth::mfa::{MfaKeys, Status};
use crate::auth::password::Hasher;
use crate::auth::sessions::Sessions;
use crate::auth::sign_in::passkey_ceremony::Ceremonies;
use crate::auth::throttle::{RetryAfter, Throttle};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::domain::audit::{AuditAction, Outcome};
use crate::mail::MailCtx;

/// Password accepted, second factor still to come: not signed in. Kept in the
/// visitor's session state between the two steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub uid: String,
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub next: String,
    /// When the password was accepted.
    pub at: i64,
    /// Wrong codes so far in this pending sign-in.
    #[serde(default)]
    pub failures: u32,
    /// The account as it was when the password was accepted: the sign-in gate refuses
    /// the second step when it changed since (a pending state without one is refused).
    #[serde(default)]
    pub stamp: gate::Stamp,
}

/// How long the second step may take after the password.
pub const PENDING_SECS: i64 = 300;

impl Pending {
    /// Whether the second step may still follow at `now`.
    pub fn live(&self, now: i64) -> bool {
        now - self.at < PENDING_SECS
    }
}

/// Why a sign-in step could not even be tried.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("too many attempts")]
    Throttled(RetryAfter),
    /// Security keys and passkeys need a relying party: the public URL's host is not a
    /// domain name.
    #[error("no WebAuthn relying party")]
    NoRelyingParty,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<RetryAfter> for SignInError {
    fn from(r: RetryAfter) -> Self {
        SignInError::Throttled(r)
    }
}

impl From<crate::auth::password::HashError> for SignInError {
    fn from(e: crate::auth::password::HashError) -> Self {
        SignInError::Internal(e.into())
    }
}

/// Signing in and out, and step-up.
#[derive(Clone)]
pub struct SignIn {
    db: Db,
    clock: Clock,
    hasher: Hasher,
    sessions: Sessions,
    throttle: Throttle,
    mfa_keys: MfaKeys,
    mail: MailCtx,
    webauthn: Option<Arc<Webauthn>>,
    ceremonies: Ceremonies,
    config: Config,
}

/// What [`SignIn`] is built from.
pub struct Parts {
    pub db: Db,
    pub clock: Clock,
    pub hasher: Hasher,
    pub sessions: Sessions,
    pub throttle: Throttle,
    pub mfa_keys: MfaKeys,
    pub mail: MailCtx,
    pub webauthn: Option<Arc<Webauthn>>,
    pub ceremonies: Ceremonies,
    pub config: Config,
}

impl SignIn {
    pub fn new(p: Parts) -> Self {
        Self {
            db: p.db,
            clock: p.clock,
            hasher: p.hasher,
            sessions: p.sessions,
            throttle: p.throttle,
            mfa_keys: p.mfa_keys,
            mail: p.mail,
            webauthn: p.webauthn,
            ceremonies: p.ceremonies,
            config: p.config,
        }
    }

    fn webauthn(&self) -> Result<&Webauthn, SignInError> {
        self.webauthn.as_deref().ok_or(SignInError::NoRelyingParty)
    }

    /// Whether WebAuthn can be offered at all on this install.
    pub fn webauthn_available(&self) -> bool {
        self.webauthn.is_some()
    }

    /// Whether the sign-in pages offer registration: the runtime setting
    /// (/admin/settings), or the configured default when it cannot be read.
    pub async fn registration_open(&self) -> bool {
        crate::auth::settings::registration(&self.db, &self.config)
            .await
            .map(|r| r.enabled)
            .unwrap_or(self.config.registration_enabled)
    }

    /// The second factors `user_id` has (what the second-step and step-up pages offer).
    pub async fn factors(&self, user_id: &str) -> Result<Status, InternalError> {
        crate::auth::mfa::status(&self.db, user_id).await
    }

    /// Ends the signed-in session `sid`: revoked in the registry (refused everywhere at
    /// once) and audited as `logout`.
    pub async fn sign_out(
        &self,
        user_id: &str,
        sid: &str,
        ctx: &AuditCtx,
    ) -> Result<(), InternalError> {
        self.sessions.revoke(user_id, sid).await?;
        record_alone(
            &self.db,
            self.clock.now(),
            ctx,
            AuditAction::Logout,
            Outcome::Success,
            Some(user_id.to_string()),
            json!({"sid_prefix": sid.get(..8).unwrap_or("")}),
        )
        .await
    }
}
