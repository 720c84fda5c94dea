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

/// 128 random bits in hex, like a UUID's simple form. From the thread's CSPRNG
/// (seeded from the OS, reseeded as it goes): ids only need to be unique, and a
/// `getrandom` system call per request was a few per cent of a small request's cost.
fn new_id() -> String {
    use rand::Rng;
    format!("{:032x}", rand::thread_rng().r#gen::<u128>())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = new_id();
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

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_hex_digits_and_differ() {
        let (a, b) = (super::new_id(), super::new_id());
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
