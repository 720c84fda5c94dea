//! Page structs, one per template, by area: `sign_in`, `account`, `admin`; here the
//! layout's `Chrome`, the error and home pages, and the rows several pages show.
//! Rendering goes through `render`, which sets the status and the HTML content type.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

mod account;
mod admin;
mod sign_in;

pub use account::*;
pub use admin::*;
pub use sign_in::*;

/// What the layout needs on every page.
pub struct Chrome {
    pub csrf: String,
    /// The signed-in user's email, when there is one.
    pub user: Option<String>,
    /// Show the link to /admin (a hint only: every admin route checks permissions).
    pub admin_link: bool,
}

pub fn render<T: Template>(status: StatusCode, page: &T) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong on our side.")
        }
    }
}

#[derive(Template)]
#[template(path = "errors/error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub heading: String,
    pub message: String,
    pub link: Option<(String, String)>,
    pub request_id: String,
}

impl ErrorPage {
    pub fn new(
        heading: &str,
        message: &str,
        link: Option<(String, String)>,
        request_id: &str,
    ) -> Self {
        Self {
            chrome: Chrome {
                csrf: String::new(),
                user: None,
                admin_link: false,
            },
            heading: heading.into(),
            message: message.into(),
            link,
            request_id: request_id.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub chrome: Chrome,
    pub registration_open: bool,
}

pub struct SessionView {
    pub sid: String,
    pub browser: String,
    pub ip: String,
    pub created: String,
    pub last_seen: String,
    pub current: bool,
}

impl SessionView {
    /// A registry row as a list shows it; `current` marks the viewer's own session.
    pub fn of(r: crate::auth::sessions::SessionRow, current: bool) -> Self {
        SessionView {
            current,
            browser: crate::web::caller::describe_browser(&r.user_agent),
            ip: r.ip,
            created: when(r.created_at),
            last_seen: when(r.last_seen_at),
            sid: r.sid,
        }
    }
}

/// "2026-11-24 19:40 UTC" for a unix time.
pub fn when(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub struct EventRow {
    pub id: i64,
    pub time: String,
    pub event: String,
    pub outcome: String,
    pub actor: String,
    pub target: String,
    pub ip: String,
    pub details: String,
}

pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
}

pub struct ScopeChoice {
    pub id: String,
    pub value: &'static str,
    pub what: &'static str,
    pub checked: bool,
}

pub struct ExpiryChoice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}
