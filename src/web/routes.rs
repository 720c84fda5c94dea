//! The one place that lists every route.

use actix_web::http::{Method, header};
use actix_web::{HttpResponse, Route, guard, web};

use super::error::AppError;
use super::handlers::account::{
    apps, data, delete, profile, security_keys, sessions, tokens, totp,
};
use super::handlers::admin::{audit, clients, groups, policies, roles, service_accounts, users};
use super::handlers::oauth::{
    authorize, back_channel, device, discovery, logout as rp_logout, par,
};
use super::handlers::sign_in::{
    login, logout, passkey, password_reset, register, second_step, setup, step_up, verify_email,
};
use super::handlers::{forward, health, home};

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
                .route(get().to(second_step::form))
                .route(web::post().to(second_step::submit)),
        )
        .service(web::resource("/login/webauthn/start").route(web::post().to(passkey::mfa_start)))
        .service(web::resource("/login/webauthn/finish").route(web::post().to(passkey::mfa_finish)))
        .service(
            web::resource("/login/passkey/start").route(web::post().to(passkey::passkey_start)),
        )
        .service(
            web::resource("/login/passkey/finish").route(web::post().to(passkey::passkey_finish)),
        )
        .service(
            web::resource("/login/reauth")
                .route(get().to(step_up::form))
                .route(web::post().to(step_up::submit)),
        )
        .service(
            web::resource("/login/reauth/webauthn/start").route(web::post().to(step_up::key_start)),
        )
        .service(
            web::resource("/login/reauth/webauthn/finish")
                .route(web::post().to(step_up::key_finish)),
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
        .service(web::resource("/account").route(get().to(profile::show)))
        .service(web::resource("/account/password").route(web::post().to(profile::change_pw)))
        .service(web::resource("/account/email").route(web::post().to(profile::change_email)))
        .service(
            web::resource("/account/data")
                .route(get().to(data::show))
                .route(web::post().to(data::download)),
        )
        .service(
            web::resource("/account/delete")
                .route(get().to(delete::show))
                .route(web::post().to(delete::submit)),
        )
        .service(
            web::resource("/verify-email")
                .route(get().to(verify_email::show))
                .route(web::post().to(verify_email::confirm)),
        )
        .service(
            web::resource("/verify-email/resend")
                .route(get().to(verify_email::resend_form))
                .route(web::post().to(verify_email::resend)),
        )
        .service(
            web::resource("/password/forgot")
                .route(get().to(password_reset::forgot_form))
                .route(web::post().to(password_reset::forgot)),
        )
        .service(
            web::resource("/password/reset")
                .route(get().to(password_reset::reset_form))
                .route(web::post().to(password_reset::reset)),
        )
        .service(web::resource("/account/sessions").route(get().to(sessions::list)))
        .service(web::resource("/account/sessions/revoke").route(web::post().to(sessions::revoke)))
        .service(
            web::resource("/account/sessions/revoke-others")
                .route(web::post().to(sessions::revoke_others)),
        )
        .service(
            web::resource("/.well-known/openid-configuration")
                .route(get().to(discovery::discovery)),
        )
        .service(
            web::resource("/.well-known/oauth-authorization-server")
                .route(get().to(discovery::discovery)),
        )
        .service(web::resource("/oauth/jwks").route(get().to(discovery::jwks)))
        .service(
            web::resource("/oauth/authorize")
                .route(get().to(authorize::authorize))
                .route(web::post().to(authorize::consent)),
        )
        .service(
            web::resource("/oauth/par")
                .route(web::post().to(par::push))
                .route(web::method(Method::OPTIONS).to(back_channel::preflight)),
        )
        .service(
            web::resource("/oauth/token")
                .route(web::post().to(back_channel::token))
                .route(web::method(Method::OPTIONS).to(back_channel::preflight)),
        )
        .service(
            web::resource("/oauth/device_authorization")
                .route(web::post().to(back_channel::device_authorization))
                .route(web::method(Method::OPTIONS).to(back_channel::preflight)),
        )
        .service(
            web::resource("/device")
                .route(get().to(device::show))
                .route(web::post().to(device::submit)),
        )
        .service(
            web::resource("/oauth/userinfo")
                .route(get().to(back_channel::userinfo))
                .route(web::post().to(back_channel::userinfo))
                .route(web::method(Method::OPTIONS).to(back_channel::preflight)),
        )
        .service(
            web::resource("/oauth/revoke")
                .route(web::post().to(back_channel::revoke))
                .route(web::method(Method::OPTIONS).to(back_channel::preflight)),
        )
        .service(web::resource("/oauth/introspect").route(web::post().to(back_channel::introspect)))
        .service(
            web::resource("/oauth/logout")
                .route(get().to(rp_logout::logout))
                .route(web::post().to(rp_logout::logout_confirmed)),
        )
        .service(web::resource("/auth/forward").route(get().to(forward::check)))
        .service(web::resource("/auth/forward/denied").route(get().to(forward::denied)))
        .service(web::resource("/auth/forward/return").route(get().to(forward::back)))
        .service(web::resource("/account/activity").route(get().to(audit::activity)))
        .service(web::resource("/admin").route(get().to(users::home)))
        .service(web::resource("/admin/users").route(get().to(users::users)))
        .service(web::resource("/admin/users/{id}").route(get().to(users::user)))
        .service(
            web::resource("/admin/users/{id}/groups").route(web::post().to(groups::user_groups)),
        )
        .service(web::resource("/admin/users/{id}/{action}").route(web::post().to(users::action)))
        .service(web::resource("/account/apps").route(get().to(apps::list)))
        .service(web::resource("/account/apps/revoke").route(web::post().to(apps::revoke)))
        .service(
            web::resource("/account/tokens")
                .route(get().to(tokens::show))
                .route(web::post().to(tokens::create)),
        )
        .service(web::resource("/account/tokens/revoke").route(web::post().to(tokens::revoke)))
        .service(
            web::resource("/admin/clients")
                .route(get().to(clients::list))
                .route(web::post().to(clients::create)),
        )
        .service(
            web::resource("/admin/clients/{id}")
                .route(get().to(clients::show))
                .route(web::post().to(clients::update)),
        )
        .service(
            web::resource("/admin/clients/{id}/rotate-secret")
                .route(web::post().to(clients::rotate_secret)),
        )
        .service(web::resource("/admin/clients/{id}/delete").route(web::post().to(clients::delete)))
        .service(
            web::resource("/admin/roles")
                .route(get().to(roles::show))
                .route(web::post().to(roles::create)),
        )
        .service(web::resource("/admin/roles/{name}").route(web::post().to(roles::update)))
        .service(web::resource("/admin/roles/{name}/delete").route(web::post().to(roles::delete)))
        .service(
            web::resource("/admin/groups")
                .route(get().to(groups::list))
                .route(web::post().to(groups::create)),
        )
        .service(web::resource("/admin/groups/{name}").route(get().to(groups::show)))
        .service(web::resource("/admin/groups/{name}/delete").route(web::post().to(groups::delete)))
        .service(
            web::resource("/admin/groups/{name}/{action}").route(web::post().to(groups::action)),
        )
        .service(
            web::resource("/admin/service-accounts")
                .route(get().to(service_accounts::list))
                .route(web::post().to(service_accounts::create)),
        )
        .service(
            web::resource("/admin/service-accounts/{id}").route(get().to(service_accounts::show)),
        )
        .service(
            web::resource("/admin/service-accounts/{id}/tokens")
                .route(web::post().to(service_accounts::create_token)),
        )
        .service(
            web::resource("/admin/service-accounts/{id}/tokens/revoke")
                .route(web::post().to(service_accounts::revoke_token)),
        )
        .service(
            web::resource("/admin/service-accounts/{id}/delete")
                .route(web::post().to(service_accounts::delete)),
        )
        .service(
            web::resource("/admin/service-accounts/{id}/clients")
                .route(web::post().to(service_accounts::add_client)),
        )
        .service(
            web::resource("/admin/service-accounts/{id}/clients/delete")
                .route(web::post().to(service_accounts::delete_client)),
        )
        .service(
            web::resource("/admin/settings")
                .route(get().to(roles::settings_show))
                .route(web::post().to(roles::settings_save)),
        )
        .service(
            web::resource("/admin/policies")
                .route(get().to(policies::show))
                .route(web::post().to(policies::add)),
        )
        .service(
            web::resource("/admin/policies/{id}/delete").route(web::post().to(policies::delete)),
        )
        .service(web::resource("/admin/audit").route(get().to(audit::show)))
        .service(web::resource("/admin/audit/verify").route(get().to(audit::verify)))
        .service(web::resource("/admin/audit/export").route(get().to(audit::export)))
        // Before the compiled-in files, whose pattern would take these paths too.
        .service(web::resource("/static/brand/{file}").route(get().to(super::brand::file)))
        .service(web::resource("/static/{file:.*}").route(get().to(static_file)))
        .service(web::resource("/favicon.ico").route(get().to(favicon)))
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

const CSS: &str = include_str!("../../static/css/portcullis.css");
const JS: &str = include_str!("../../static/js/webauthn.js");

/// The versions pages put in the stylesheet's and script's URLs (`?v=`): a hash of the
/// contents (FNV-1a; a cache key, not a security hash), so that after an upgrade a page
/// asks for the new file rather than one a browser kept.
pub const CSS_VERSION: u32 = content_version(CSS.as_bytes());
pub const JS_VERSION: u32 = content_version(JS.as_bytes());

pub(crate) const fn content_version(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}

/// Static files are compiled in: one binary to deploy, nothing to find on disk.
const STATIC: &[(&str, &str, &str)] = &[
    ("css/portcullis.css", "text/css; charset=utf-8", CSS),
    ("js/webauthn.js", "text/javascript; charset=utf-8", JS),
    (
        "img/favicon.svg",
        "image/svg+xml",
        include_str!("../../static/img/favicon.svg"),
    ),
];

/// Browsers ask for `/favicon.ico` on their own: the icon, not an error page.
async fn favicon() -> Result<HttpResponse, AppError> {
    let mut res = file("img/favicon.svg")?;
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=86400"),
    );
    Ok(res)
}

async fn static_file(
    req: actix_web::HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let mut res = file(&path)?;
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(static_cache_control(&req)),
    );
    Ok(res)
}

/// A versioned URL names one content for good; the plain one may change.
pub(crate) fn static_cache_control(req: &actix_web::HttpRequest) -> &'static str {
    if req.query_string().starts_with("v=") {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    }
}

fn file(name: &str) -> Result<HttpResponse, AppError> {
    let (_, mime, body) = STATIC
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(AppError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *mime))
        .body(*body))
}
