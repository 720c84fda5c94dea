//! A request id for every request: in the one log line per request, in the
//! `X-Request-Id` response header, and on error pages, so a user's screenshot can be
//! matched to a log line.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

tokio::task_local! {
    static REQUEST_ID: String;
}

#[derive(Clone)]
pub struct RequestId(pub String);

/// The id of the request being handled on this task, if any.
pub fn current() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".into())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.path().to_string();
    let start = std::time::Instant::now();
    let result = REQUEST_ID.scope(id.clone(), next.call(req)).await;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(mut res) => {
            let status = res.status().as_u16();
            tracing::info!(request_id = %id, %method, %path, status, elapsed_ms = format!("{elapsed_ms:.2}"), "request");
            if let Ok(v) = HeaderValue::from_str(&id) {
                res.headers_mut()
                    .insert(HeaderName::from_static("x-request-id"), v);
            }
            Ok(res)
        }
        Err(e) => {
            tracing::warn!(request_id = %id, %method, %path, error = %e, "request failed");
            Err(e)
        }
    }
}
