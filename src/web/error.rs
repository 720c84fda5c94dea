//! One error type for handlers. Users get a short, readable page with the request id
//! and a 4xx/5xx status; logs get the whole cause.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::request_id;
use super::views::ErrorPage;
use crate::auth::InternalError;
use crate::auth::throttle::RetryAfter;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("too many requests")]
    TooManyRequests { retry_after: u64 },
    /// Not signed in: go to the login page and come back to `next`.
    #[error("sign-in required")]
    SignInRequired { next: String },
    /// Signed in, but not recently enough for this action: confirm it is you.
    #[error("recent authentication required")]
    StepUpRequired { next: String },
    #[error("{0}")]
    Unavailable(String),
    /// Somewhere the user must go first (e.g. enrol a second factor before /admin).
    #[error("redirect to {0}")]
    Redirect(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl AppError {
    /// For `db.run` closures that return diesel's error.
    pub fn from_db(e: crate::db::QueryError) -> Self {
        AppError::Internal(InternalError::Db(DbError::Query(e)))
    }
}

impl From<crate::auth::sign_in::SignInError> for AppError {
    fn from(e: crate::auth::sign_in::SignInError) -> Self {
        use crate::auth::sign_in::SignInError;
        match e {
            SignInError::Throttled(r) => AppError::TooManyRequests { retry_after: r.0 },
            SignInError::NoRelyingParty => AppError::BadRequest(NO_RELYING_PARTY.into()),
            SignInError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// Why security keys and passkeys are off on this install.
pub const NO_RELYING_PARTY: &str = "Security keys and passkeys need portcullis to be reached by a domain name: set PORTCULLIS_PUBLIC_URL to one.";

impl From<actix_session::SessionInsertError> for AppError {
    fn from(e: actix_session::SessionInsertError) -> Self {
        AppError::Internal(InternalError::Session(Box::new(e)))
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::Internal(InternalError::Db(e))
    }
}

/// A rate limit's or back-off's refusal: 429 with `Retry-After`, so a handler passes
/// it on with `?`.
impl From<RetryAfter> for AppError {
    fn from(wait: RetryAfter) -> Self {
        AppError::TooManyRequests {
            retry_after: wait.0,
        }
    }
}

impl AppError {
    fn page(&self) -> (&'static str, String, Option<(String, String)>) {
        match self {
            AppError::BadRequest(m) => ("That did not work", m.clone(), None),
            AppError::Forbidden(m) => (
                "Not allowed",
                m.clone(),
                Some(("/".into(), "Go to the start page".into())),
            ),
            AppError::NotFound => (
                "Page not found",
                "There is nothing at this address.".into(),
                Some(("/".into(), "Go to the start page".into())),
            ),
            AppError::TooManyRequests { retry_after } => (
                "Too many attempts",
                format!(
                    "Too many attempts. Please wait {} before trying again.",
                    human_secs(*retry_after)
                ),
                None,
            ),
            AppError::SignInRequired { .. } | AppError::StepUpRequired { .. } => (
                "Sign in",
                "Please sign in.".into(),
                Some(("/login".into(), "Sign in".into())),
            ),
            AppError::Redirect(_) => (
                "One more step",
                "Please continue on the next page.".into(),
                None,
            ),
            AppError::Unavailable(_) => (
                "Temporarily unavailable",
                "The service is temporarily unavailable. Please try again in a moment.".into(),
                None,
            ),
            AppError::Internal(_) => (
                "Something went wrong",
                "Something went wrong on our side. Please try again.".into(),
                None,
            ),
        }
    }
}

impl AppError {
    /// Where a sign-in, step-up or redirect error sends the browser.
    fn location(&self) -> Option<String> {
        match self {
            AppError::SignInRequired { next } => {
                Some(format!("/login?next={}", super::url_encode(next)))
            }
            AppError::StepUpRequired { next } => {
                Some(format!("/login/reauth?next={}", super::url_encode(next)))
            }
            AppError::Redirect(to) => Some(to.clone()),
            _ => None,
        }
    }

    /// The same error for a script (the WebAuthn endpoints): a status and a JSON body
    /// `{"error": …, "redirect": …}` the page can show or follow.
    pub fn json_response(&self) -> HttpResponse {
        let redirect = self.location();
        if let AppError::Internal(e) = self {
            tracing::error!(request_id = %request_id::current(), error = %crate::telemetry::cause_chain(e), "internal error");
        }
        let status = match self {
            AppError::SignInRequired { .. }
            | AppError::StepUpRequired { .. }
            | AppError::Redirect(_) => StatusCode::UNAUTHORIZED,
            other => other.status_code(),
        };
        let (_, message, _) = self.page();
        HttpResponse::build(status).json(serde_json::json!({
            "error": message,
            "redirect": redirect,
        }))
    }
}

pub fn human_secs(secs: u64) -> String {
    match secs {
        0..=1 => "a second".into(),
        2..=59 => format!("{secs} seconds"),
        60..=119 => "a minute".into(),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::SignInRequired { .. } | AppError::StepUpRequired { .. } => {
                StatusCode::SEE_OTHER
            }
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Redirect(_) => StatusCode::SEE_OTHER,
            AppError::Internal(InternalError::Db(e)) if e.is_unavailable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = request_id::current();
        if let Some(loc) = self.location() {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, loc))
                .finish();
        }
        if let AppError::Internal(e) = self {
            tracing::error!(request_id = %request_id, error = %crate::telemetry::cause_chain(e), "internal error");
        }
        let (heading, message, link) = self.page();
        let page = ErrorPage::new(heading, &message, link, &request_id);
        let mut res = HttpResponse::build(self.status_code());
        res.content_type("text/html; charset=utf-8");
        if let AppError::TooManyRequests { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            res.insert_header((header::RETRY_AFTER, v));
        }
        if let AppError::Unavailable(_) = self {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        res.body(page.render().unwrap_or(message))
    }
}

/// Turns actix's own extractor errors (malformed forms, oversized bodies, bad query
/// strings) into the same readable 4xx page instead of a bare text response.
pub fn form_error(
    err: actix_web::error::UrlencodedError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::UrlencodedError as E;
    let (status, msg) = match &err {
        E::Overflow { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."),
        E::ContentType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the form as application/x-www-form-urlencoded.",
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            "The form could not be read: a field is missing or not valid text.",
        ),
    };
    let msg = msg.to_string();
    let page = ErrorPage::new("That did not work", &msg, None, &request_id::current());
    let res = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.render().unwrap_or(msg));
    actix_web::error::InternalError::from_response(err, res).into()
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    let msg = "The address has a parameter that is not valid.";
    let page = ErrorPage::new("That did not work", msg, None, &request_id::current());
    let res = HttpResponse::BadRequest()
        .content_type("text/html; charset=utf-8")
        .body(page.render().unwrap_or_else(|_| msg.into()));
    actix_web::error::InternalError::from_response(err, res).into()
}
