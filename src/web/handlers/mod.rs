//! Handlers by URL. Each one extracts, calls one `auth` function, and renders.

pub mod account;
pub mod admin;
pub mod confirm;
pub mod forward;
pub mod health;
pub mod home;
pub mod oauth;
pub mod return_to;
pub mod sign_in;

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `?done=…`: the change a page was sent back to after, for its notice.
#[derive(serde::Deserialize)]
pub struct DoneQuery {
    pub done: Option<String>,
}

impl DoneQuery {
    /// The notice `notices` (done, text) gives for `done`; "Done." for one it lacks.
    pub fn notice(&self, notices: &[(&str, &str)]) -> Option<String> {
        let done = self.done.as_deref()?;
        let text = notices.iter().find(|(d, _)| *d == done).map(|(_, t)| *t);
        Some(text.unwrap_or("Done.").to_string())
    }
}

/// What a page shows besides its data: its status, and a notice or an error.
pub struct Shown {
    pub status: StatusCode,
    pub notice: Option<String>,
    pub error: Option<String>,
}

impl Shown {
    /// The page as asked for, with a notice (after `?done=…`) if any.
    pub fn ok(notice: Option<String>) -> Self {
        Shown {
            status: StatusCode::OK,
            notice,
            error: None,
        }
    }

    /// The page again after a refusal, given as (status, message for the form).
    pub fn refused((status, error): (StatusCode, String)) -> Self {
        Shown {
            status,
            notice: None,
            error: Some(error),
        }
    }
}
