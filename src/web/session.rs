//! The signed-in state inside the actix session, as one typed value.
//!
//! The state carries what signed-in pages show (email, name), so the hot path of a
//! signed-in request needs nothing but the session load. Authorization decisions that
//! must be fresh (roles on admin pages) read the database instead.

use actix_session::Session;
use serde::{Deserialize, Serialize};

pub const AUTH_KEY: &str = "auth";
/// Password accepted, second factor still to come: not signed in.
pub const PENDING_KEY: &str = "mfa_pending";
/// An authenticator-app secret being set up, not yet confirmed by a code.
pub const TOTP_SETUP_KEY: &str = "totp_setup";

/// How long the second step may take after the password.
pub use crate::auth::sign_in::PENDING_SECS;

/// The pending sign-in's state (owned by auth::sign_in).
pub use crate::auth::sign_in::Pending as MfaPending;

pub fn pending(session: &Session) -> Option<MfaPending> {
    session.get::<MfaPending>(PENDING_KEY).ok().flatten()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIn {
    pub uid: String,
    /// Public id of the registry row (revocation, OIDC `sid`).
    pub sid: String,
    /// When the user authenticated: drives the absolute lifetime and, later, `auth_time`.
    pub auth_at: i64,
    /// Methods used (`pwd`, later `otp`, `hwk`, `mfa`): the OIDC `amr`.
    /// New fields carry `serde(default)`: a state written by an older version must
    /// still decode, or a rolling upgrade would sign everyone out.
    #[serde(default)]
    pub amr: Vec<String>,
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Shown on the account page only; never used to authorize.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl SignedIn {
    /// The state of a session that a password just opened (`sid` its registry row).
    pub fn by_password(
        user: &crate::auth::accounts::admin::User,
        sid: String,
        roles: Vec<String>,
        now: i64,
    ) -> Self {
        SignedIn {
            uid: user.id.clone(),
            sid,
            auth_at: now,
            amr: vec!["pwd".into()],
            email: user.email.clone(),
            name: user.display_name.clone(),
            roles,
        }
    }
}

pub fn signed_in(session: &Session) -> Option<SignedIn> {
    session.get::<SignedIn>(AUTH_KEY).ok().flatten()
}

/// Starts a signed-in session: a new session id (no fixation), then the state.
pub fn sign_in(session: &Session, who: &SignedIn) -> Result<(), actix_session::SessionInsertError> {
    session.renew();
    session.insert(AUTH_KEY, who)
}

/// The store key chosen for a session before it is stored (see `sign_in_with_key`):
/// taken out of the state by the store, never stored.
pub const NEW_KEY: &str = "__new_session_key";

/// `sign_in` for a session whose registry row is already tied to `key`: the store
/// stores the state under that key instead of minting one.
pub fn sign_in_with_key(
    session: &Session,
    who: &SignedIn,
    key: &str,
) -> Result<(), actix_session::SessionInsertError> {
    sign_in(session, who)?;
    session.insert(NEW_KEY, key)
}

pub fn sign_out(session: &Session) {
    session.purge();
}

/// Rewrites the signed-in state of this session (same key, same sid).
pub fn update(session: &Session, who: &SignedIn) {
    let _ = session.insert(AUTH_KEY, who);
}

/// A WebAuthn ceremony in progress: webauthn-rs's state (challenge included) stays on
/// the server, never in the browser. Taken out of the session once, so it cannot be
/// replayed, and refused when older than `CEREMONY_SECS`.
pub const WEBAUTHN_REG_KEY: &str = "webauthn_reg";
pub const WEBAUTHN_MFA_KEY: &str = "webauthn_mfa";
pub const WEBAUTHN_REAUTH_KEY: &str = "webauthn_reauth";
pub const CEREMONY_SECS: i64 = 300;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ceremony<T> {
    pub state: T,
    pub at: i64,
    /// Registration only: what is being added, and its name.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

impl<T> Ceremony<T> {
    pub fn new(state: T, at: i64) -> Self {
        Self {
            state,
            at,
            kind: String::new(),
            name: String::new(),
        }
    }
}

/// Keeps a ceremony's state in the session until `take_ceremony`.
pub fn put_ceremony<T: Serialize>(
    session: &Session,
    key: &str,
    ceremony: &Ceremony<T>,
) -> Result<(), crate::auth::InternalError> {
    session
        .insert(key, ceremony)
        .map_err(|e| crate::auth::InternalError::Session(Box::new(e)))
}

pub fn take_ceremony<T: serde::de::DeserializeOwned>(
    session: &Session,
    key: &str,
    now: i64,
) -> Option<Ceremony<T>> {
    let c = session.remove_as::<Ceremony<T>>(key)?.ok()?;
    (now - c.at < CEREMONY_SECS).then_some(c)
}
