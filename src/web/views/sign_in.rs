//! The pages of signing in and out: password, registration, setup, verification,
//! resets, the second step, step-up, sign-out, consent, and a device's code.

use askama::Template;

use super::{Chrome, FormError};
use crate::auth::oauth::app_context::AppContext;

#[derive(Template)]
#[template(path = "auth/login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub email: String,
    pub next: String,
    pub error: FormError,
    pub notice: Option<String>,
    pub registration_open: bool,
    /// Set when the password was right but the address still needs confirming.
    pub unverified: Option<String>,
    /// The app this sign-in continues to (`handlers::sign_in::app_context`).
    pub app: Option<AppContext>,
}

#[derive(Template)]
#[template(path = "auth/register.html")]
pub struct RegisterPage {
    pub chrome: Chrome,
    pub open: bool,
    pub email: String,
    pub display_name: String,
    pub min_len: usize,
    pub error: FormError,
}

#[derive(Template)]
#[template(path = "auth/setup.html")]
pub struct SetupPage {
    pub chrome: Chrome,
    pub usable: bool,
    pub token: String,
    pub email: String,
    pub min_len: usize,
    pub error: FormError,
}

#[derive(Template)]
#[template(path = "auth/verify_email.html")]
pub struct VerifyEmailPage {
    pub chrome: Chrome,
    /// Present when the link can be used.
    pub email: Option<String>,
    pub token: String,
    pub change: bool,
    pub problem: Option<String>,
}

#[derive(Template)]
#[template(path = "auth/resend.html")]
pub struct ResendPage {
    pub chrome: Chrome,
    pub email: String,
    pub sent: bool,
}

#[derive(Template)]
#[template(path = "auth/forgot.html")]
pub struct ForgotPage {
    pub chrome: Chrome,
    pub email: String,
    pub sent: bool,
    pub valid_for: String,
}

#[derive(Template)]
#[template(path = "auth/reset.html")]
pub struct ResetPage {
    pub chrome: Chrome,
    pub token: String,
    pub usable: bool,
    pub problem: Option<String>,
    pub error: FormError,
    pub min_len: usize,
}

#[derive(Template)]
#[template(path = "auth/mfa.html")]
pub struct MfaPage {
    pub chrome: Chrome,
    pub error: FormError,
    /// The account has a security key or passkey: offer it.
    pub webauthn: bool,
    pub app: Option<AppContext>,
}

#[derive(Template)]
#[template(path = "auth/reauth.html")]
pub struct ReauthPage {
    pub chrome: Chrome,
    pub next: String,
    /// The account has an authenticator app: ask for a code too.
    pub code: bool,
    /// The account has a security key or passkey: offer it instead.
    pub webauthn: bool,
    /// The page that sent us wants a second factor proven (not the password alone).
    pub factor: bool,
    pub error: FormError,
    pub app: Option<AppContext>,
}

#[derive(Template)]
#[template(path = "auth/logout.html")]
pub struct LogoutPage {
    pub chrome: Chrome,
    /// The app asking, when it named itself.
    pub app: Option<String>,
    pub hidden: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "auth/consent.html")]
pub struct ConsentPage {
    pub chrome: Chrome,
    pub app: String,
    /// The host of the redirect URI the answer goes to.
    pub host: Option<String>,
    /// The authorization request, for coming back to it after "Use another account".
    pub next: String,
    pub scopes: Vec<String>,
    /// The authorization request, carried through the form unchanged.
    pub hidden: Vec<(String, String)>,
}

/// `/device`: the code form, then the request behind a code (Allow / Deny), then
/// the outcome.
#[derive(Template)]
#[template(path = "auth/device.html")]
pub struct DevicePage {
    pub chrome: Chrome,
    /// What was typed, shown again with an error.
    pub code: String,
    pub error: FormError,
    pub prompt: Option<DevicePrompt>,
    /// The answer was recorded.
    pub done: Option<DeviceDone>,
}

/// What the page says once the answer was recorded.
pub struct DeviceDone {
    pub heading: String,
    pub message: String,
}

/// The request behind a code: which app asks for what, for which device code.
pub struct DevicePrompt {
    pub app: String,
    pub scopes: Vec<String>,
    pub user_code: String,
}
