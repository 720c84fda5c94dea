//! Page structs, one per template, by area: `sign_in`, `account`, `admin`; here the
//! layout's `Chrome`, the error and home pages, and the rows several pages show.
//! Rendering goes through `render`, which sets the status and the HTML content type.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use askama::Template;

use crate::domain::personal_tokens::{EXPIRY_CHOICES, SCOPES};

mod account;
mod admin;
mod form_error;
mod sign_in;

pub use account::*;
pub use admin::*;
pub use form_error::FormError;
pub use sign_in::*;

/// What the layout needs on every page.
pub struct Chrome {
    pub csrf: String,
    /// The signed-in user's email, when there is one.
    pub user: Option<String>,
    /// Show the link to /admin (a hint only: every admin route checks permissions).
    pub admin_link: bool,
    /// This request's path, for marking the menu's current item.
    pub path: String,
    /// The operator's name, logo and stylesheets.
    pub brand: std::sync::Arc<crate::web::brand::Brand>,
}

/// The signed-in menu, in order; the last one only for administrators.
const MENU: [(&str, &str); 8] = [
    ("/account", "Account"),
    ("/account/sessions", "Sessions"),
    ("/account/totp", "Two-step"),
    ("/account/security-keys", "Security keys"),
    ("/account/apps", "Apps"),
    ("/account/tokens", "Tokens"),
    ("/account/activity", "Activity"),
    ("/admin", "Admin"),
];

pub struct MenuItem {
    pub href: &'static str,
    pub label: &'static str,
    /// The page shown is this item's or one beneath it (`aria-current="page"`).
    pub current: bool,
}

impl Chrome {
    /// The menu, the item whose path is the longest one this page's path starts with
    /// marked current (so /admin/users marks Admin, /account/sessions marks Sessions).
    pub fn menu(&self) -> Vec<MenuItem> {
        let path = self.path.split(['?', '#']).next().unwrap_or_default();
        let under = |href: &str| {
            path.strip_prefix(href)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let current = MENU
            .iter()
            .map(|(href, _)| *href)
            .filter(|href| under(href))
            .max_by_key(|href| href.len());
        MENU.iter()
            .filter(|(href, _)| self.admin_link || *href != "/admin")
            .map(|(href, label)| MenuItem {
                href,
                label,
                current: Some(*href) == current,
            })
            .collect()
    }
}

/// A page that may hold a secret shown once: rendered as [`render`] does, and no cache
/// keeps it.
pub fn render_secret<T: Template>(status: StatusCode, page: &T) -> HttpResponse {
    let mut res = render(status, page);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
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
                path: String::new(),
                // Rendered where no request is at hand: the brand of the one on this task.
                brand: crate::web::brand::current(),
            },
            heading: heading.into(),
            message: message.into(),
            link,
            request_id: request_id.into(),
        }
    }
}

/// The step in front of a destructive act: says what it does, and posts the same
/// form again with `confirm=yes` (see `handlers::confirm`).
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub heading: String,
    pub message: String,
    /// The danger button's label, e.g. "Yes, disable".
    pub yes: String,
    /// Where the confirmed form goes: the URL the first step was posted to.
    pub action: String,
    /// The first step's own fields (not its token), carried to the confirmed one.
    pub fields: Vec<(String, String)>,
    /// Where "Cancel" leads back to.
    pub cancel: String,
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

impl TokenView {
    /// A personal token as the token table (`_token_table.html`) shows it.
    pub fn of(t: crate::auth::access::tokens::TokenInfo) -> Self {
        TokenView {
            scopes: t.scopes.join(", "),
            created: when(t.created_at),
            last_used: t.last_used_at.map(when).unwrap_or_else(|| "never".into()),
            expires: t.expires_at.map(when).unwrap_or_else(|| "never".into()),
            id: t.id,
            name: t.name,
        }
    }
}

impl ScopeChoice {
    /// The token form's scope checkboxes, those in `checked` ticked.
    pub fn all(checked: &[impl AsRef<str>]) -> Vec<Self> {
        SCOPES
            .iter()
            .enumerate()
            .map(|(i, (value, what))| ScopeChoice {
                id: format!("scope-{i}"),
                value,
                what,
                checked: checked.iter().any(|c| c.as_ref() == *value),
            })
            .collect()
    }
}

impl ExpiryChoice {
    /// The token form's lifetimes (in days, or never), `selected` chosen.
    pub fn all(selected: Option<u32>) -> Vec<Self> {
        EXPIRY_CHOICES
            .iter()
            .map(|d| ExpiryChoice {
                value: d.map_or_else(|| "never".to_string(), |d| d.to_string()),
                label: d.map_or_else(|| "Never".to_string(), |d| format!("{d} days")),
                selected: *d == selected,
            })
            .collect()
    }

    /// The form's `value` back as days; one that is no number is `Some(0)`, which the
    /// service refuses with the lifetime's message.
    pub fn parse(value: &str) -> Option<u32> {
        match value {
            "" | "never" => None,
            d => Some(d.parse::<u32>().unwrap_or(0)),
        }
    }
}
