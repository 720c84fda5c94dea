//! Security headers on every response: a CSP with no inline script, no framing,
//! no sniffing, no referrer leaks, HSTS over https, and `no-store` on everything but
//! static files (pages show account data).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};

use super::state::AppState;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Origins outside our own that a page's forms may end up at: the registered redirect
/// URI of the app whose sign-in the page continues. Browsers apply `form-action` to
/// every redirect after a form is sent, so without this the last hop back to the app
/// would be blocked. Handlers attach it to the response; this middleware reads it.
#[derive(Clone, Debug, Default)]
pub struct FormTargets(pub Vec<String>);

fn csp_for(targets: Option<&FormTargets>) -> HeaderValue {
    match targets.filter(|t| !t.0.is_empty()) {
        None => HeaderValue::from_static(CSP),
        Some(t) => {
            let extra = t.0.join(" ");
            HeaderValue::from_str(
                &CSP.replace("form-action 'self'", &format!("form-action 'self' {extra}")),
            )
            .unwrap_or_else(|_| HeaderValue::from_static(CSP))
        }
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let https = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.config.is_https());
    let is_forward = req.path() == "/auth/forward";
    let mut res = next.call(req).await?;
    // Forward auth's yes goes to the proxy, which copies the Remote-* headers it is
    // told to and never shows the (empty) body: the page headers would be written,
    // sent and dropped before every request to a protected site. Its other answers
    // (a redirect, a page saying why not) reach the browser and keep them.
    if is_forward && res.status().is_success() {
        return Ok(res);
    }
    let csp = csp_for(res.response().extensions().get::<FormTargets>());
    let h = res.headers_mut();
    // A response with a policy of its own keeps it: the brand's logo has a stricter one
    // (no script, nothing loaded) than pages.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    // Static files say how long they keep (routes::static_file); pages show account
    // data, so anything that does not say is not stored.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}
