//! `GET /auth/forward` for nginx `auth_request`, Traefik ForwardAuth and Caddy
//! `forward_auth`: 200 with the user in `Remote-*` headers for a valid session; else
//! "sign in first" in the proxy's way (see `domain::forward::original`), or 401.
//! `/auth/forward/return` is where the sign-in comes back to before going to the app.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::auth::access::forward::ForwardAnswer;
use crate::domain::forward::original::{Original, ProxyHeaders, Style, original_request};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::state::AppState;

#[derive(Deserialize)]
pub struct ForwardQuery {
    rd: Option<String>,
}

pub async fn check(
    ctx: Ctx,
    req: HttpRequest,
    q: web::Query<ForwardQuery>,
) -> Result<HttpResponse, AppError> {
    let st = &ctx.state;
    let original = proxied_request(&req, st).or_else(|| {
        // Judged as written (not as a URL parser would clean it up).
        let url = st.forward.return_target(q.rd.as_deref()?)?;
        Some(Original {
            url,
            method: "GET".into(),
            style: Style::Redirect,
        })
    });
    let uid = ctx.user.as_ref().map(|u| u.uid.as_str());
    Ok(match st.forward.answer(uid, original).await? {
        ForwardAnswer::Allow(who) => {
            // Header values must be visible ASCII; a name that is not becomes empty.
            let safe = |s: &str| {
                if s.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                    s.to_string()
                } else {
                    String::new()
                }
            };
            HttpResponse::Ok()
                .insert_header(("Remote-User", who.id))
                .insert_header(("Remote-Email", safe(&who.email)))
                .insert_header(("Remote-Name", safe(&who.name)))
                // Until groups exist, Remote-Groups carries the roles, as it always has.
                .insert_header(("Remote-Groups", who.roles.join(",")))
                .insert_header(("Remote-Roles", who.roles.join(",")))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        ForwardAnswer::SignIn {
            location,
            style: Style::AuthRequest,
            ..
        } => HttpResponse::Unauthorized()
            .insert_header((header::LOCATION, location))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        ForwardAnswer::SignIn {
            location, method, ..
        } => {
            // After a POST (say, a form sent once the session had ended) the browser
            // must come back with a GET: 303. A GET keeps 302, which every proxy and
            // client knows.
            let mut res = if matches!(method.as_str(), "GET" | "HEAD") {
                HttpResponse::Found()
            } else {
                HttpResponse::SeeOther()
            };
            res.insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        ForwardAnswer::Unauthorized => HttpResponse::Unauthorized()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
    })
}

/// The request the proxy asks about, from its headers, when it is a trusted proxy.
/// Anyone else's headers are ignored: they could name any address.
fn proxied_request(req: &HttpRequest, st: &AppState) -> Option<Original> {
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let headers = ProxyHeaders {
        original_url: h("x-original-url"),
        original_method: h("x-original-method"),
        forwarded_proto: h("x-forwarded-proto"),
        forwarded_host: h("x-forwarded-host"),
        forwarded_uri: h("x-forwarded-uri"),
        forwarded_method: h("x-forwarded-method"),
    };
    let named = headers.original_url.is_some() || headers.forwarded_uri.is_some();
    if !named {
        return None;
    }
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    if !peer.is_some_and(|ip| st.config.trusted_proxies.contains(&ip)) {
        warn_untrusted(peer);
        return None;
    }
    original_request(&headers)
}

/// Once per process: the likeliest mistake when setting up a proxy.
fn warn_untrusted(peer: Option<std::net::IpAddr>) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            peer = ?peer,
            "forward auth: a proxy sent the original request's address, but it is not in \
             trusted_proxies, so it was ignored (the browser cannot be sent to sign in)"
        );
    });
}

/// After signing in: back to the app, if its address is allowed.
pub async fn back(ctx: Ctx, q: web::Query<ForwardQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    match q
        .rd
        .as_deref()
        .and_then(|rd| ctx.state.forward.return_target(rd))
    {
        Some(url) => Ok(see_other(url.as_str())),
        None => Ok(see_other("/account")),
    }
}
