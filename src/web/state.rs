use std::sync::Arc;

use crate::auth::accounts::links::MailCtx;
use crate::auth::password::Hasher;
use crate::auth::sessions::Sessions;
use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::mail::Mailer;

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub config: Config,
    pub access: crate::auth::access::Access,
    pub audit_log: crate::auth::audit::AuditLog,
    pub admin: crate::auth::accounts::admin::Admin,
    pub roles: crate::auth::access::roles::Roles,
    pub settings: crate::auth::settings::Settings,
    pub health: crate::auth::health::Health,
    /// Registration, emailed links, password and address changes, first-start setup.
    pub accounts: crate::auth::accounts::Accounts,
    /// Enrolling and removing second factors (authenticator app, recovery codes, keys).
    pub second_factors: crate::auth::mfa::SecondFactors,
    pub db: Db,
    pub hasher: Hasher,
    pub sessions: Sessions,
    pub throttle: Throttle,
    pub mailer: Mailer,
    pub clock: Clock,
    pub csrf_key: [u8; 32],
    pub mail: MailCtx,
    pub mfa_keys: crate::auth::mfa::MfaKeys,
    /// The WebAuthn relying party (id and origin from the public URL); None when the
    /// public URL's host cannot be one (an IP address).
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// Signing in and out, step-up.
    pub sign_in: crate::auth::sign_in::SignIn,
    /// The OAuth 2.0 / OpenID Connect provider.
    pub oauth: crate::auth::oauth::OAuthProvider,
    /// The discovery document, serialised once.
    pub discovery: actix_web::web::Bytes,
}

impl AppState {
    pub fn webauthn(&self) -> Result<&webauthn_rs::Webauthn, super::error::AppError> {
        self.webauthn.as_deref().ok_or_else(|| {
            super::error::AppError::BadRequest(super::error::NO_RELYING_PARTY.into())
        })
    }
}
