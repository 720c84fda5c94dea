//! The one place that lists every route.

use actix_web::http::{Method, header};
use actix_web::{HttpResponse, web};

use super::error::AppError;
use super::handlers::{
    account, admin, admin_audit, admin_clients, admin_roles, apps, forward, health, home, login,
    logout, mfa, oauth, oidc, password, reauth, register, security_keys, sessions, setup, totp,
    verify, webauthn_login,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::get))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(super::metrics::scrape))
        .route("/login", web::get().to(login::form))
        .route("/login", web::post().to(login::submit))
        .route("/logout", web::post().to(logout::submit))
        .route("/login/mfa", web::get().to(mfa::form))
        .route("/login/mfa", web::post().to(mfa::submit))
        .route(
            "/login/webauthn/start",
            web::post().to(webauthn_login::mfa_start),
        )
        .route(
            "/login/webauthn/finish",
            web::post().to(webauthn_login::mfa_finish),
        )
        .route(
            "/login/passkey/start",
            web::post().to(webauthn_login::passkey_start),
        )
        .route(
            "/login/passkey/finish",
            web::post().to(webauthn_login::passkey_finish),
        )
        .route("/login/reauth", web::get().to(reauth::form))
        .route(
            "/login/reauth/webauthn/start",
            web::post().to(reauth::key_start),
        )
        .route(
            "/login/reauth/webauthn/finish",
            web::post().to(reauth::key_finish),
        )
        .route("/login/reauth", web::post().to(reauth::submit))
        .route("/account/totp", web::get().to(totp::show))
        .route("/account/totp", web::post().to(totp::enable))
        .route("/account/totp/disable", web::post().to(totp::disable))
        .route(
            "/account/recovery-codes",
            web::get().to(totp::recovery_codes),
        )
        .route("/account/recovery-codes", web::post().to(totp::regenerate))
        .route("/account/security-keys", web::get().to(security_keys::show))
        .route(
            "/account/security-keys",
            web::post().to(security_keys::no_script),
        )
        .route(
            "/account/security-keys/register/start",
            web::post().to(security_keys::register_start),
        )
        .route(
            "/account/security-keys/register/finish",
            web::post().to(security_keys::register_finish),
        )
        .route(
            "/account/security-keys/rename",
            web::post().to(security_keys::rename),
        )
        .route(
            "/account/security-keys/remove",
            web::post().to(security_keys::remove),
        )
        .route("/register", web::get().to(register::form))
        .route("/register", web::post().to(register::submit))
        .route("/setup", web::get().to(setup::form))
        .route("/setup", web::post().to(setup::submit))
        .route("/account", web::get().to(account::show))
        .route("/account/password", web::post().to(account::change_pw))
        .route("/account/email", web::post().to(account::change_email))
        .route("/verify-email", web::get().to(verify::show))
        .route("/verify-email", web::post().to(verify::confirm))
        .route("/verify-email/resend", web::get().to(verify::resend_form))
        .route("/verify-email/resend", web::post().to(verify::resend))
        .route("/password/forgot", web::get().to(password::forgot_form))
        .route("/password/forgot", web::post().to(password::forgot))
        .route("/password/reset", web::get().to(password::reset_form))
        .route("/password/reset", web::post().to(password::reset))
        .route("/account/sessions", web::get().to(sessions::list))
        .route("/account/sessions/revoke", web::post().to(sessions::revoke))
        .route(
            "/account/sessions/revoke-others",
            web::post().to(sessions::revoke_others),
        )
        .route(
            "/.well-known/openid-configuration",
            web::get().to(oidc::discovery),
        )
        .route("/oauth/jwks", web::get().to(oidc::jwks))
        .route("/oauth/authorize", web::get().to(oidc::authorize))
        .route("/oauth/authorize", web::post().to(oidc::consent))
        .route("/oauth/token", web::post().to(oauth::token))
        .route(
            "/oauth/token",
            web::method(Method::OPTIONS).to(oauth::preflight),
        )
        .route("/oauth/userinfo", web::get().to(oauth::userinfo))
        .route("/oauth/userinfo", web::post().to(oauth::userinfo))
        .route(
            "/oauth/userinfo",
            web::method(Method::OPTIONS).to(oauth::preflight),
        )
        .route("/oauth/revoke", web::post().to(oauth::revoke))
        .route(
            "/oauth/revoke",
            web::method(Method::OPTIONS).to(oauth::preflight),
        )
        .route("/oauth/introspect", web::post().to(oauth::introspect))
        .route("/oauth/logout", web::get().to(oidc::logout))
        .route("/oauth/logout", web::post().to(oidc::logout_confirmed))
        .route("/auth/forward", web::get().to(forward::check))
        .route("/auth/forward/return", web::get().to(forward::back))
        .route("/account/activity", web::get().to(admin_audit::activity))
        .route("/admin", web::get().to(admin::home))
        .route("/admin/users", web::get().to(admin::users))
        .route("/admin/users/{id}", web::get().to(admin::user))
        .route("/admin/users/{id}/{action}", web::post().to(admin::action))
        .route("/account/apps", web::get().to(apps::list))
        .route("/account/apps/revoke", web::post().to(apps::revoke))
        .route("/admin/clients", web::get().to(admin_clients::list))
        .route("/admin/clients", web::post().to(admin_clients::create))
        .route("/admin/clients/{id}", web::get().to(admin_clients::show))
        .route("/admin/clients/{id}", web::post().to(admin_clients::update))
        .route(
            "/admin/clients/{id}/rotate-secret",
            web::post().to(admin_clients::rotate_secret),
        )
        .route(
            "/admin/clients/{id}/delete",
            web::post().to(admin_clients::delete),
        )
        .route("/admin/roles", web::get().to(admin_roles::show))
        .route("/admin/roles", web::post().to(admin_roles::create))
        .route("/admin/roles/{name}", web::post().to(admin_roles::update))
        .route(
            "/admin/roles/{name}/delete",
            web::post().to(admin_roles::delete),
        )
        .route("/admin/settings", web::get().to(admin_roles::settings_show))
        .route(
            "/admin/settings",
            web::post().to(admin_roles::settings_save),
        )
        .route("/admin/audit", web::get().to(admin_audit::show))
        .route("/admin/audit/verify", web::get().to(admin_audit::verify))
        .route("/admin/audit/export", web::get().to(admin_audit::export))
        .route("/static/{file:.*}", web::get().to(static_file))
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// Static files are compiled in: one binary to deploy, nothing to find on disk.
const STATIC: &[(&str, &str, &str)] = &[
    (
        "css/portcullis.css",
        "text/css; charset=utf-8",
        include_str!("../../static/css/portcullis.css"),
    ),
    (
        "js/webauthn.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/js/webauthn.js"),
    ),
];

async fn static_file(path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let p = path.into_inner();
    let (_, mime, body) = STATIC
        .iter()
        .find(|(name, _, _)| *name == p)
        .ok_or(AppError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *mime))
        .body(*body))
}
