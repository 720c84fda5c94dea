//! CSRF protection, in two layers:
//!
//! 1. every unsafe request (POST, …) from a browser must come from our own origin
//!    (`Sec-Fetch-Site`, else `Origin`); cross-site ones get 403 before any handler runs;
//! 2. every state-changing form carries a token: HMAC(key, browser seed ‖ session id),
//!    where the seed is a random value in its own cookie. It works before sign-in (no
//!    server-side state for anonymous visitors), is bound to the signed-in session
//!    after it, and is compared in constant time.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::HeaderValue;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::AppError;
use super::state::AppState;

pub const FIELD: &str = "csrf_token";

/// The browser's CSRF seed, put into request extensions by the middleware.
#[derive(Clone)]
pub struct Seed(pub String);

pub fn cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-portcullis-csrf"
    } else {
        "portcullis_csrf"
    }
}

pub fn token(key: &[u8; 32], seed: &str, sid: Option<&str>) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(seed.as_bytes());
    mac.update(b"\0");
    mac.update(sid.unwrap_or("").as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub fn verify(key: &[u8; 32], seed: &str, sid: Option<&str>, submitted: &str) -> bool {
    let expected = token(key, seed, sid);
    crate::domain::tokens::ct_eq(expected.as_bytes(), submitted.as_bytes())
}

fn valid_seed(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Called cross-origin by design: the OAuth back channel (authenticated by client
/// credentials or a bearer token, never by the session cookie); RP-initiated logout
/// and authorization requests, which apps may POST (a POSTed authorization request
/// only becomes the same GET; consent and logout still need our form's token).
fn exempt(path: &str) -> bool {
    matches!(
        path,
        "/oauth/token"
            | "/oauth/par"
            | "/oauth/revoke"
            | "/oauth/introspect"
            | "/oauth/userinfo"
            | "/oauth/logout"
            | "/oauth/authorize"
    )
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let https = state.config.is_https();

    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && !exempt(req.path()) && !same_origin(&req, &state.config.origins()) {
        let (http_req, _) = req.into_parts();
        let res =
            AppError::Forbidden("This form was sent from another site, so it was refused.".into())
                .error_response();
        return Ok(ServiceResponse::new(http_req, res).map_into_right_body());
    }

    let existing = req
        .cookie(cookie_name(https))
        .map(|c| c.value().to_string())
        .filter(|v| valid_seed(v));
    let (seed, fresh) = match existing {
        Some(s) => (s, false),
        None => (crate::domain::tokens::generate(), true),
    };
    // Only a page the browser shows mints the seed. A browser's side fetch (a favicon
    // behind forward auth, sent to the sign-in page by the proxy) would otherwise race
    // the sign-in page itself, replace its seed, and leave its form refused.
    let document = req
        .headers()
        .get("sec-fetch-dest")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|d| d == "document");
    req.extensions_mut().insert(Seed(seed.clone()));
    let mut res = next.call(req).await?;
    if fresh
        && document
        && res
            .response()
            .headers()
            .get("content-type")
            .is_some_and(is_html)
    {
        let cookie = Cookie::build(cookie_name(https), seed)
            .path("/")
            .http_only(true)
            .secure(https)
            .same_site(SameSite::Lax)
            .finish();
        let _ = res.response_mut().add_cookie(&cookie);
    }
    Ok(res.map_into_left_body())
}

fn is_html(v: &HeaderValue) -> bool {
    v.to_str().is_ok_and(|s| s.starts_with("text/html"))
}

/// Browsers say where a request comes from; non-browser clients (scripts, tests) send
/// neither header and still need the form token.
fn same_origin(req: &ServiceRequest, origins: &[String]) -> bool {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match h.get("origin").and_then(|v| v.to_str().ok()) {
        Some(o) => origins.iter().any(|ours| ours == o),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_bound_to_seed_and_session() {
        let key = [1u8; 32];
        let t = token(&key, "seed", Some("sid1"));
        assert!(verify(&key, "seed", Some("sid1"), &t));
        assert!(!verify(&key, "seed", Some("sid2"), &t));
        assert!(!verify(&key, "other", Some("sid1"), &t));
        assert!(!verify(&key, "seed", None, &t));
        assert!(!verify(&[2u8; 32], "seed", Some("sid1"), &t));
        assert!(!verify(&key, "seed", Some("sid1"), ""));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

            /// Only the exact token passes: any other submitted string (a mutated
            /// token, one for another seed or session, junk) is refused without panic.
            #[test]
            fn only_the_exact_token_verifies(
                key in any::<[u8; 32]>(),
                seed in "[A-Za-z0-9_-]{43}",
                sid in proptest::option::of("[a-z0-9]{1,40}"),
                submitted in any::<String>(),
                flip in any::<prop::sample::Index>(),
                with in any::<char>(),
            ) {
                let good = token(&key, &seed, sid.as_deref());
                prop_assert!(verify(&key, &seed, sid.as_deref(), &good));
                prop_assert_eq!(verify(&key, &seed, sid.as_deref(), &submitted), submitted == good);
                let mut chars: Vec<char> = good.chars().collect();
                let i = flip.index(chars.len());
                chars[i] = with;
                let mutated: String = chars.into_iter().collect();
                prop_assert_eq!(verify(&key, &seed, sid.as_deref(), &mutated), mutated == good);
                prop_assert!(!verify(&key, &seed, Some("another-session"), &good) || sid.as_deref() == Some("another-session"));
            }
        }
    }
}
