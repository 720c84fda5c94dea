//! `GET /auth/forward` for nginx `auth_request`, Traefik ForwardAuth and Caddy
//! `forward_auth`: 200 with the user in `Remote-*` headers for a valid session,
//! otherwise 401, or (with `?rd=`) a redirect to sign in that comes back to `rd`.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::domain::forward::allowed_return;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::url_encode as enc;

#[derive(Deserialize)]
pub struct ForwardQuery {
    rd: Option<String>,
}

pub async fn check(ctx: Ctx, q: web::Query<ForwardQuery>) -> Result<HttpResponse, AppError> {
    let st = &ctx.state;
    if let Some(u) = &ctx.user {
        // Apps authorize on these headers: read them fresh, not from the session.
        if let Some(who) = st.access.principal(&u.uid).await? {
            // Header values must be visible ASCII; a name that is not becomes empty.
            let safe = |s: &str| {
                if s.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                    s.to_string()
                } else {
                    String::new()
                }
            };
            return Ok(HttpResponse::Ok()
                .insert_header(("Remote-User", who.id))
                .insert_header(("Remote-Email", safe(&who.email)))
                .insert_header(("Remote-Name", safe(&who.name)))
                .insert_header(("Remote-Groups", who.roles.join(",")))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish());
        }
    }
    if let Some(rd) = q.rd.as_deref()
        && let Some(url) = allowed_return(
            rd,
            &st.config.public_url,
            &st.config.forward_auth_allowed_domains,
        )
    {
        let back = format!("/auth/forward/return?rd={}", enc(url.as_str()));
        let login = format!("{}/login?next={}", st.config.base_url(), enc(&back));
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, login))
            .finish());
    }
    Ok(HttpResponse::Unauthorized()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// After signing in: back to the app, if its address is allowed.
pub async fn back(ctx: Ctx, q: web::Query<ForwardQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    let st = &ctx.state;
    match q.rd.as_deref().and_then(|rd| {
        allowed_return(
            rd,
            &st.config.public_url,
            &st.config.forward_auth_allowed_domains,
        )
    }) {
        Some(url) => Ok(see_other(url.as_str())),
        None => Ok(see_other("/account")),
    }
}
