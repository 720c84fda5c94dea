//! `GET /auth/forward` for nginx `auth_request`, Traefik ForwardAuth and Caddy
//! `forward_auth`: 200 with the user in `Remote-*` headers for a valid session; else
//! "sign in first" in the proxy's way (see `domain::forward::original`), or 401.
//! `/auth/forward/return` is where the sign-in comes back to before going to the app.
//! Scripts send a personal access token instead of a cookie (`Authorization: Bearer`,
//! or Basic with the account's email address and the token).

use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use actix_web::http::StatusCode;

use crate::auth::access::forward::{Caller, DenyReason, ForwardAnswer};
use crate::auth::access::tokens::Presentation;
use crate::domain::forward::original::{Original, ProxyHeaders, Style, original_request};
use crate::domain::personal_tokens::{
    Presented, SCOPE_FORWARD, allows_forward, parse_authorization,
};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::session_store::generation_read;
use crate::web::state::AppState;
use crate::web::views::{ErrorPage, render};

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
        Some(Original::from_url(&url, "GET", Style::Redirect))
    });
    // A request that carries credentials of its own (a script) is judged by them
    // alone, never by a session cookie that may come with it.
    // The cache generation counter, when it came with the session's load (see
    // `session_store::with_generation`) or with the token's count.
    let (caller, generation) = match req.headers().get(header::AUTHORIZATION) {
        Some(value) => match token_caller(&ctx, value, original.as_ref()).await? {
            Ok(caller) => caller,
            Err(refusal) => return Ok(refusal),
        },
        None => (
            match &ctx.user {
                Some(u) => Caller::Session {
                    user_id: &u.uid,
                    auth_at: u.auth_at,
                    amr: &u.amr,
                },
                None => Caller::Anonymous,
            },
            generation_read(),
        ),
    };
    let is_token = matches!(caller, Caller::Token { .. });
    let answer = st
        .forward
        .answer(
            &caller,
            original,
            ctx.ip,
            st.clock.now(),
            &|| ctx.audit(),
            generation,
        )
        .await?;
    if is_token
        && matches!(
            answer,
            ForwardAnswer::Unauthorized | ForwardAnswer::SignIn { .. }
        )
    {
        // A script cannot sign in: its token names no live account (any more).
        return Ok(invalid_token());
    }
    if let ForwardAnswer::SignIn {
        end_session: true, ..
    } = answer
    {
        // The account is gone or disabled (perhaps from another process, whose removal
        // of the session this one has not noticed yet).
        ctx.session.purge();
    }
    Ok(respond(&ctx, answer))
}

/// The caller behind an `Authorization` header: a personal access token, sent as
/// `Bearer <token>` or as HTTP Basic with the account's email address and a token as
/// the password (never the account's password: it is not a token, so it is refused
/// like any wrong guess), with the cache generation counter when it was read with the
/// token's count. Anything else is the answer to send: 401 (counted against the
/// caller's address), 429 past that limit or the token's own, or 403 for a token
/// whose scopes do not cover the request.
async fn token_caller(
    ctx: &Ctx,
    value: &header::HeaderValue,
    original: Option<&Original>,
) -> Result<Result<(Caller<'static>, Option<u64>), HttpResponse>, AppError> {
    let presented = value
        .to_str()
        .map(parse_authorization)
        .unwrap_or(Presented::Other);
    let v = match ctx.state.personal_tokens.present(presented, ctx.ip).await? {
        Presentation::Valid(v) => v,
        Presentation::Invalid => return Ok(Err(invalid_token())),
        Presentation::Throttled(wait) => {
            // nginx's auth_request takes only 2xx, 401 and 403 from us (anything else
            // becomes a 500): it gets a 403 with Retry-After, which the documented
            // configuration turns into the 429. Traefik and Caddy pass the 429 on.
            let mut res = match original.map(|o| o.style) {
                Some(Style::AuthRequest) => HttpResponse::Forbidden(),
                _ => HttpResponse::TooManyRequests(),
            };
            return Ok(Err(res
                .insert_header((header::RETRY_AFTER, wait.0.to_string()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()));
        }
    };
    let method = original.map(|o| o.method.as_str());
    if !allows_forward(&v.scopes, method) {
        return Ok(Err(HttpResponse::Forbidden()
            .insert_header((
                header::WWW_AUTHENTICATE,
                format!(
                    "Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"{SCOPE_FORWARD}\""
                ),
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()));
    }
    Ok(Ok((
        Caller::Token { user_id: v.user_id },
        v.generation_read,
    )))
}

/// 401 for a script: which schemes to use, and that the one sent did not do.
fn invalid_token() -> HttpResponse {
    HttpResponse::Unauthorized()
        .append_header((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"portcullis\", error=\"invalid_token\"",
        ))
        .append_header((header::WWW_AUTHENTICATE, "Basic realm=\"portcullis\""))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The answer in HTTP, shaped for the proxy that asked.
fn respond(ctx: &Ctx, answer: ForwardAnswer) -> HttpResponse {
    match answer {
        ForwardAnswer::Allow(who) => {
            let mut res = HttpResponse::Ok();
            res.insert_header((header::CACHE_CONTROL, "no-store"));
            // Every header, always (empty on a public path asked for anonymously):
            // Caddy's copy_headers hands an app its unexpanded placeholder for a header
            // that is missing from the answer.
            let (id, email, name, groups, roles) = match who {
                Some(p) => (
                    p.id,
                    safe(p.email),
                    safe(p.name),
                    // Groups, inherited ones included.
                    p.groups.join(","),
                    p.roles.join(","),
                ),
                None => Default::default(),
            };
            // Static names: a proxy asks before every request to the sites it protects.
            res.insert_header((REMOTE_USER, id))
                .insert_header((REMOTE_EMAIL, email))
                .insert_header((REMOTE_NAME, name))
                .insert_header((REMOTE_GROUPS, groups))
                .insert_header((REMOTE_ROLES, roles))
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
        ForwardAnswer::Denied {
            reason,
            app,
            location,
        } => {
            // Traefik and Caddy show this body to the user; nginx sends the browser to
            // `Location` (the same words on our own page).
            let mut res = render(
                StatusCode::FORBIDDEN,
                &denied_page(ctx, reason, app.as_deref()),
            );
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            if let Some(l) = location.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
                res.headers_mut().insert(header::LOCATION, l);
            }
            res
        }
        ForwardAnswer::Unauthorized => HttpResponse::Unauthorized()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
    }
}

/// Header values must be visible ASCII; a value that is not becomes empty.
fn safe(s: String) -> String {
    if s.bytes().all(|c| c.is_ascii_graphic() || c == b' ') {
        s
    } else {
        String::new()
    }
}

const REMOTE_USER: HeaderName = HeaderName::from_static("remote-user");
const REMOTE_EMAIL: HeaderName = HeaderName::from_static("remote-email");
const REMOTE_NAME: HeaderName = HeaderName::from_static("remote-name");
const REMOTE_GROUPS: HeaderName = HeaderName::from_static("remote-groups");
const REMOTE_ROLES: HeaderName = HeaderName::from_static("remote-roles");
const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");

/// Why the user cannot open the site, and what they can do about it.
fn denied_page(ctx: &Ctx, reason: DenyReason, app: Option<&str>) -> ErrorPage {
    let site = app.unwrap_or("this site");
    let (message, link) = match reason {
        DenyReason::Rule => (
            format!(
                "Your account does not have access to {site}. If you need it, ask the \
                 administrator of this sign-in service to give you access, and tell them \
                 request {}.",
                ctx.request_id
            ),
            Some(("Your account".to_string(), "/account".to_string())),
        ),
        DenyReason::NoSecondFactor => (
            format!(
                "{site} asks for a second factor. Add an authenticator app or a security \
                 key to your account, then open it again."
            ),
            Some((
                "Add a second factor".to_string(),
                "/account/totp".to_string(),
            )),
        ),
        DenyReason::Token => (
            format!("{site} asks for a second factor, which an access token cannot give."),
            None,
        ),
        DenyReason::UnknownSite => (
            "The proxy did not say which site this is, so access rules cannot be applied. \
             The administrator needs to check the proxy's configuration."
                .to_string(),
            None,
        ),
    };
    // Without the navigation (`ctx.chrome()`): its CSRF seed could write the session,
    // and this page also goes out through the proxy, on the app's host.
    ErrorPage::new(
        &format!("No access to {site}"),
        &message,
        link,
        &ctx.request_id,
    )
}

#[derive(Deserialize)]
pub struct DeniedQuery {
    rd: Option<String>,
    why: Option<String>,
}

/// `/auth/forward/denied`: the explanation nginx sends the browser to.
pub async fn denied(ctx: Ctx, q: web::Query<DeniedQuery>) -> HttpResponse {
    let app =
        q.rd.as_deref()
            .and_then(|rd| ctx.state.forward.return_target(rd))
            .and_then(|u| u.host_str().map(str::to_string));
    let reason = DenyReason::parse(q.why.as_deref().unwrap_or(""));
    render(
        StatusCode::FORBIDDEN,
        &denied_page(&ctx, reason, app.as_deref()),
    )
}

/// The request the proxy asks about, from its headers, when it is a trusted proxy.
/// Anyone else's headers are ignored: they could name any address.
fn proxied_request(req: &HttpRequest, st: &AppState) -> Option<Original> {
    // Names as constants: looking a header up by a string parses (and, for names
    // outside the standard set, allocates) the name first, on every request.
    let h = |name: &HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let headers = ProxyHeaders {
        original_url: h(&X_ORIGINAL_URL),
        original_method: h(&X_ORIGINAL_METHOD),
        forwarded_proto: h(&X_FORWARDED_PROTO),
        forwarded_host: h(&X_FORWARDED_HOST),
        forwarded_uri: h(&X_FORWARDED_URI),
        forwarded_method: h(&X_FORWARDED_METHOD),
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
