//! Handlers by URL. Each one extracts, calls one `auth` function, and renders.

pub mod account;
pub mod admin;
pub mod forward;
pub mod health;
pub mod home;
pub mod oauth;
pub mod return_to;
pub mod sign_in;

use actix_web::HttpResponse;
use actix_web::http::header;

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}
