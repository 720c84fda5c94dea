//! The confirmation step in front of every destructive act, without JavaScript: the
//! first POST (from the page's button) only shows a page that says what will happen;
//! the act runs only for a POST that carries `confirm=yes`. Each handler keeps its own
//! checks (sign-in, step-up, CSRF) before asking, so the confirmed POST passes them too.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use crate::web::ctx::Ctx;
use crate::web::views::{ConfirmPage, render};

/// What the confirmation page asks.
pub struct Ask<'a> {
    pub heading: &'a str,
    pub message: &'a str,
    /// The danger button's label, e.g. "Yes, disable".
    pub yes: &'a str,
    /// The form's fields the act needs (besides the CSRF token), sent again.
    pub fields: &'a [(&'a str, &'a str)],
    /// Where "Cancel" leads back to.
    pub cancel: &'a str,
}

/// `None` when `confirm` is "yes" (go ahead); otherwise the page asking, whose form
/// posts back to this same URL.
pub fn ask(ctx: &Ctx, confirm: &str, ask: Ask<'_>) -> Option<HttpResponse> {
    if confirm == "yes" {
        return None;
    }
    Some(render(
        StatusCode::OK,
        &ConfirmPage {
            chrome: ctx.chrome(),
            heading: ask.heading.into(),
            message: ask.message.into(),
            yes: ask.yes.into(),
            action: ctx.path.clone(),
            fields: ask
                .fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cancel: ask.cancel.into(),
        },
    ))
}
