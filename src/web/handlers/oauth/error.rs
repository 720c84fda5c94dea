//! `OAuthError` on the wire, in one place: the back channel's answer (RFC 6749 section
//! 5.2: status, JSON body, `WWW-Authenticate` for `invalid_client` and RFC 6750's
//! `invalid_token`, `Retry-After` when slowed down). The front channel's form (a
//! redirect with `error=`) is `OAuthError::redirect`, built in auth.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use serde_json::{Value, json};

use crate::auth::oauth::{FlowError, OAuthError};
use crate::web::error::AppError;

/// A JSON answer that must not be cached, readable from any origin.
pub fn json_no_store(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(body)
}

fn status_of(e: &OAuthError) -> StatusCode {
    match e {
        OAuthError::InvalidClient | OAuthError::InvalidToken => StatusCode::UNAUTHORIZED,
        OAuthError::SlowDown { .. } => StatusCode::TOO_MANY_REQUESTS,
        OAuthError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The back channel's answer to an error.
pub fn back_channel(e: &OAuthError) -> HttpResponse {
    if let OAuthError::InvalidToken = e {
        // RFC 6750 section 3: the Bearer challenge carries the code; no body.
        return HttpResponse::Unauthorized()
            .insert_header((
                header::WWW_AUTHENTICATE,
                format!("Bearer error=\"{}\"", e.code()),
            ))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .finish();
    }
    let mut body = json!({"error": e.code()});
    if let Some(d) = e.description() {
        body["error_description"] = json!(d);
    }
    let mut res = json_no_store(status_of(e), body);
    match e {
        OAuthError::InvalidClient => {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"portcullis\""),
            );
        }
        OAuthError::SlowDown { retry_after } => {
            if let Ok(v) = header::HeaderValue::from_str(&retry_after.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        _ => {}
    }
    res
}

/// A back-channel step's outcome: its answer, the client's error, or ours.
pub fn answer(r: Result<HttpResponse, FlowError>) -> Result<HttpResponse, AppError> {
    match r {
        Ok(res) => Ok(res),
        Err(FlowError::OAuth(e)) => Ok(back_channel(&e)),
        Err(FlowError::Internal(e)) => Err(AppError::Internal(e)),
    }
}
