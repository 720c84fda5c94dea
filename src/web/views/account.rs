//! The pages under /account: the overview, sessions, security keys, TOTP and recovery
//! codes, activity, apps and personal tokens, the data download and the deletion.

use askama::Template;

use super::{Chrome, EventRow, ExpiryChoice, FormError, ScopeChoice, SessionView, TokenView};

#[derive(Template)]
#[template(path = "account/index.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub min_len: usize,
    /// A refusal of the email change or of the password change (their fields' ids differ).
    pub error: FormError,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "account/sessions.html")]
pub struct SessionsPage {
    pub chrome: Chrome,
    pub sessions: Vec<SessionView>,
    /// An app may still hold the user's tokens: "Sign out everywhere else" ends them too.
    pub apps_signed_in: bool,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "account/security_keys.html")]
pub struct SecurityKeysPage {
    pub chrome: Chrome,
    pub keys: Vec<KeyView>,
    pub error: Option<String>,
    pub notice: Option<String>,
}

pub struct KeyView {
    /// base64url credential id: what rename and remove name.
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "account/totp.html")]
pub struct TotpPage {
    pub chrome: Chrome,
    pub enabled: bool,
    /// Inline SVG rendered by the server from our own data.
    pub qr_svg: String,
    pub manual_key: String,
    /// The `otpauth://` link the QR code holds, for an app on the same device.
    pub otpauth_url: String,
    pub recovery_left: i64,
    pub error: FormError,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "account/recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub chrome: Chrome,
    /// Freshly generated codes, shown this once; empty otherwise.
    pub codes: Vec<String>,
    pub left: i64,
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "account/activity.html")]
pub struct ActivityPage {
    pub chrome: Chrome,
    pub events: Vec<EventRow>,
    pub next: Option<String>,
}

pub struct AppView {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub granted: String,
}

#[derive(Template)]
#[template(path = "account/apps.html")]
pub struct AppsPage {
    pub chrome: Chrome,
    pub apps: Vec<AppView>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "account/tokens.html")]
pub struct TokensPage {
    pub chrome: Chrome,
    pub tokens: Vec<TokenView>,
    /// The secret of the token just made: shown this once.
    pub created: Option<String>,
    pub error: Option<String>,
    pub notice: Option<String>,
    /// The create form, filled again after a refusal.
    pub name: String,
    pub scopes: Vec<ScopeChoice>,
    pub expiries: Vec<ExpiryChoice>,
}

impl TokensPage {
    /// Where the token table's Revoke posts (`_token_table.html`).
    pub fn revoke_action(&self) -> String {
        "/account/tokens/revoke".to_string()
    }
}

#[derive(Template)]
#[template(path = "account/data.html")]
pub struct DataPage {
    pub chrome: Chrome,
}

#[derive(Template)]
#[template(path = "account/delete.html")]
pub struct DeletePage {
    pub chrome: Chrome,
    pub error: FormError,
}

/// Shown once the account is gone (signed out by then).
#[derive(Template)]
#[template(path = "account/deleted.html")]
pub struct DeletedPage {
    pub chrome: Chrome,
}
