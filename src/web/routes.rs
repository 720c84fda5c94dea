//! The one place that lists every route.

use actix_web::http::{Method, header};
use actix_web::{HttpResponse, Route, guard, web};

use super::error::AppError;
use super::handlers::{
    account, admin, admin_audit, admin_clients, admin_roles, apps, forward, health, home, login,
    logout, mfa, oauth, oidc, password, reauth, register, security_keys, sessions, setup, totp,
    verify, webauthn_login,
};

/// Every route, one resource per path, so a path that exists answers a method it does
/// not serve with 405 and an `Allow` header listing those it does (actix-web's resource
/// default, built from the method guards it tried); an unknown path stays 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(get().to(home::get)))
        .service(web::resource("/healthz").route(get().to(health::healthz)))
        .service(web::resource("/readyz").route(get().to(health::readyz)))
        .service(web::resource("/metrics").route(get().to(super::metrics::scrape)))
        .service(
            web::resource("/login")
                .route(get().to(login::form))
                .route(web::post().to(login::submit)),
        )
        .service(web::resource("/logout").route(web::post().to(logout::submit)))
        .service(
            web::resource("/login/mfa")
                .route(get().to(mfa::form))
                .route(web::post().to(mfa::submit)),
        )
        .service(
            web::resource("/login/webauthn/start").route(web::post().to(webauthn_login::mfa_start)),
        )
        .service(
            web::resource("/login/webauthn/finish")
                .route(web::post().to(webauthn_login::mfa_finish)),
        )
        .service(
            web::resource("/login/passkey/start")
                .route(web::post().to(webauthn_login::passkey_start)),
        )
        .service(
            web::resource("/login/passkey/finish")
                .route(web::post().to(webauthn_login::passkey_finish)),
        )
        .service(
            web::resource("/login/reauth")
                .route(get().to(reauth::form))
                .route(web::post().to(reauth::submit)),
        )
        .service(
            web::resource("/login/reauth/webauthn/start").route(web::post().to(reauth::key_start)),
        )
        .service(
            web::resource("/login/reauth/webauthn/finish")
                .route(web::post().to(reauth::key_finish)),
        )
        .service(
            web::resource("/account/totp")
                .route(get().to(totp::show))
                .route(web::post().to(totp::enable)),
        )
        .service(web::resource("/account/totp/disable").route(web::post().to(totp::disable)))
        .service(
            web::resource("/account/recovery-codes")
                .route(get().to(totp::recovery_codes))
                .route(web::post().to(totp::regenerate)),
        )
        .service(
            web::resource("/account/security-keys")
                .route(get().to(security_keys::show))
                .route(web::post().to(security_keys::no_script)),
        )
        .service(
            web::resource("/account/security-keys/register/start")
                .route(web::post().to(security_keys::register_start)),
        )
        .service(
            web::resource("/account/security-keys/register/finish")
                .route(web::post().to(security_keys::register_finish)),
        )
        .service(
            web::resource("/account/security-keys/rename")
                .route(web::post().to(security_keys::rename)),
        )
        .service(
            web::resource("/account/security-keys/remove")
                .route(web::post().to(security_keys::remove)),
        )
        .service(
            web::resource("/register")
                .route(get().to(register::form))
                .route(web::post().to(register::submit)),
        )
        .service(
            web::resource("/setup")
                .route(get().to(setup::form))
                .route(web::post().to(setup::submit)),
        )
        .service(web::resource("/account").route(get().to(account::show)))
        .service(web::resource("/account/password").route(web::post().to(account::change_pw)))
        .service(web::resource("/account/email").route(web::post().to(account::change_email)))
        .service(
            web::resource("/verify-email")
                .route(get().to(verify::show))
                .route(web::post().to(verify::confirm)),
        )
        .service(
            web::resource("/verify-email/resend")
                .route(get().to(verify::resend_form))
                .route(web::post().to(verify::resend)),
        )
        .service(
            web::resource("/password/forgot")
                .route(get().to(password::forgot_form))
                .route(web::post().to(password::forgot)),
        )
        .service(
            web::resource("/password/reset")
                .route(get().to(password::reset_form))
                .route(web::post().to(password::reset)),
        )
        .service(web::resource("/account/sessions").route(get().to(sessions::list)))
        .service(web::resource("/account/sessions/revoke").route(web::post().to(sessions::revoke)))
        .service(
            web::resource("/account/sessions/revoke-others")
                .route(web::post().to(sessions::revoke_others)),
        )
        .service(
            web::resource("/.well-known/openid-configuration").route(get().to(oidc::discovery)),
        )
        .service(web::resource("/oauth/jwks").route(get().to(oidc::jwks)))
        .service(
            web::resource("/oauth/authorize")
                .route(get().to(oidc::authorize))
                .route(web::post().to(oidc::consent)),
        )
        .service(
            web::resource("/oauth/token")
                .route(web::post().to(oauth::token))
                .route(web::method(Method::OPTIONS).to(oauth::preflight)),
        )
        .service(
            web::resource("/oauth/userinfo")
                .route(get().to(oauth::userinfo))
                .route(web::post().to(oauth::userinfo))
                .route(web::method(Method::OPTIONS).to(oauth::preflight)),
        )
        .service(
            web::resource("/oauth/revoke")
                .route(web::post().to(oauth::revoke))
                .route(web::method(Method::OPTIONS).to(oauth::preflight)),
        )
        .service(web::resource("/oauth/introspect").route(web::post().to(oauth::introspect)))
        .service(
            web::resource("/oauth/logout")
                .route(get().to(oidc::logout))
                .route(web::post().to(oidc::logout_confirmed)),
        )
        .service(web::resource("/auth/forward").route(get().to(forward::check)))
        .service(web::resource("/auth/forward/return").route(get().to(forward::back)))
        .service(web::resource("/account/activity").route(get().to(admin_audit::activity)))
        .service(web::resource("/admin").route(get().to(admin::home)))
        .service(web::resource("/admin/users").route(get().to(admin::users)))
        .service(web::resource("/admin/users/{id}").route(get().to(admin::user)))
        .service(web::resource("/admin/users/{id}/{action}").route(web::post().to(admin::action)))
        .service(web::resource("/account/apps").route(get().to(apps::list)))
        .service(web::resource("/account/apps/revoke").route(web::post().to(apps::revoke)))
        .service(
            web::resource("/admin/clients")
                .route(get().to(admin_clients::list))
                .route(web::post().to(admin_clients::create)),
        )
        .service(
            web::resource("/admin/clients/{id}")
                .route(get().to(admin_clients::show))
                .route(web::post().to(admin_clients::update)),
        )
        .service(
            web::resource("/admin/clients/{id}/rotate-secret")
                .route(web::post().to(admin_clients::rotate_secret)),
        )
        .service(
            web::resource("/admin/clients/{id}/delete")
                .route(web::post().to(admin_clients::delete)),
        )
        .service(
            web::resource("/admin/roles")
                .route(get().to(admin_roles::show))
                .route(web::post().to(admin_roles::create)),
        )
        .service(web::resource("/admin/roles/{name}").route(web::post().to(admin_roles::update)))
        .service(
            web::resource("/admin/roles/{name}/delete").route(web::post().to(admin_roles::delete)),
        )
        .service(
            web::resource("/admin/settings")
                .route(get().to(admin_roles::settings_show))
                .route(web::post().to(admin_roles::settings_save)),
        )
        .service(web::resource("/admin/audit").route(get().to(admin_audit::show)))
        .service(web::resource("/admin/audit/verify").route(get().to(admin_audit::verify)))
        .service(web::resource("/admin/audit/export").route(get().to(admin_audit::export)))
        .service(web::resource("/static/{file:.*}").route(get().to(static_file)))
        .default_service(web::to(not_found));
}

/// GET, and HEAD served by the same handler: actix-http sends no body in answer to HEAD
/// but keeps the headers (`Content-Length` included), so monitors and `curl -I` see
/// what a browser gets. Every GET route is registered through this; handlers are
/// safe to run for HEAD because they are safe for GET (and the CSRF check treats
/// HEAD as safe).
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
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
