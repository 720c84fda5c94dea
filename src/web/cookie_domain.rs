//! Writes the session cookie for a parent domain (`cookie_domains`), chosen by the host
//! the browser asked for (see `domain::forward::cookie_domain`). actix-session writes
//! one fixed domain; this rewrites the `Domain` of its `Set-Cookie` (new sessions,
//! renewals and removals alike) so that each configured domain gets its own cookie.
//!
//! The `Host` header is the client's to choose, but harmlessly so: a browser refuses a
//! cookie whose domain does not cover the address it actually asked.

use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};

use super::state::AppState;
use crate::domain::forward::cookie_domain::for_host;

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut res = next.call(req).await?;
    let Some(state) = state else {
        return Ok(res);
    };
    let Some(domain) = host
        .as_deref()
        .and_then(|h| for_host(&state.config.cookie_domains, h))
        .map(|d| d.domain.clone())
    else {
        return Ok(res);
    };
    let name = state.config.session_cookie_name();
    let headers = res.headers_mut();
    let written: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).cloned().collect();
    let ours = |v: &HeaderValue| {
        v.to_str()
            .ok()
            .and_then(|s| Cookie::parse(s.to_owned()).ok())
            .filter(|c| c.name() == name)
    };
    if !written.iter().any(|v| ours(v).is_some()) {
        return Ok(res);
    }
    headers.remove(header::SET_COOKIE);
    for v in written {
        match ours(&v) {
            Some(mut c) => {
                c.set_domain(domain.clone());
                if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                    headers.append(header::SET_COOKIE, v);
                }
            }
            None => headers.append(header::SET_COOKIE, v),
        }
    }
    Ok(res)
}
