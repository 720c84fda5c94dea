//! Handlers by URL. Each one extracts, calls one `auth` function, and renders.

pub mod account;
pub mod admin;
pub mod admin_audit;
pub mod admin_clients;
pub mod admin_roles;
pub mod apps;
pub mod forward;
pub mod health;
pub mod home;
pub mod login;
pub mod logout;
pub mod mfa;
pub mod oauth;
pub mod oidc;
pub mod password;
pub mod reauth;
pub mod register;
pub mod security_keys;
pub mod sessions;
pub mod setup;
pub mod totp;
pub mod verify;
pub mod webauthn_login;

use actix_web::HttpResponse;
use actix_web::http::header;

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}
