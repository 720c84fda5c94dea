//! The application state every handler receives: the services (each owning the
//! database, clock, keys and caches it needs) and the few values the HTTP layer uses
//! itself. No database handle: handlers call services.

use crate::auth::sessions::Sessions;
use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::Config;

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub config: Config,
    /// The operator's name, logo and colours, files read at start.
    pub brand: std::sync::Arc<crate::web::brand::Brand>,
    pub access: crate::auth::access::Access,
    /// Forward auth for reverse proxies.
    pub forward: crate::auth::access::forward::ForwardAuth,
    /// Personal access tokens (scripts through forward auth).
    pub personal_tokens: crate::auth::access::tokens::PersonalTokens,
    /// Service accounts (non-human principals with administrator-made tokens).
    pub service_accounts: crate::auth::access::service_accounts::ServiceAccounts,
    pub audit_log: crate::auth::audit::AuditLog,
    pub admin: crate::auth::accounts::admin::Admin,
    pub roles: crate::auth::access::roles::Roles,
    pub groups: crate::auth::access::groups::Groups,
    pub settings: crate::auth::settings::Settings,
    pub health: crate::auth::health::Health,
    /// Registration, emailed links, password and address changes, first-start setup.
    pub accounts: crate::auth::accounts::Accounts,
    /// A user deleting their own account.
    pub closing: crate::auth::accounts::closing::Closing,
    /// Enrolling and removing second factors (authenticator app, recovery codes, keys).
    pub second_factors: crate::auth::mfa::SecondFactors,
    pub sessions: Sessions,
    pub throttle: Throttle,
    pub clock: Clock,
    pub csrf_key: [u8; 32],
    /// Signing in and out, step-up.
    pub sign_in: crate::auth::sign_in::SignIn,
    /// The OAuth 2.0 / OpenID Connect provider.
    pub oauth: crate::auth::oauth::OAuthProvider,
    /// The discovery document, serialised once.
    pub discovery: actix_web::web::Bytes,
}
