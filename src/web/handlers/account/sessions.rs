//! `/account/sessions`: the signed-in devices; revoke one, or all others.

use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::see_other;
use crate::web::views::{SessionView, SessionsPage, render};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

const PAGE: &str = "/account/sessions";

#[derive(Deserialize)]
pub struct SessionsQuery {
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
    sid: String,
    #[serde(default)]
    confirm: String,
}

#[derive(Deserialize)]
pub struct RevokeOthersForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    confirm: String,
}

pub async fn list(ctx: Ctx, q: web::Query<SessionsQuery>) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?;
    let overview = ctx.state.sessions.overview(&user.uid).await?;
    let sessions = overview
        .sessions
        .into_iter()
        .map(|r| {
            let current = r.sid == user.sid;
            SessionView::of(r, current)
        })
        .collect();
    let notice = match q.done.as_deref() {
        Some("revoked") => Some("The session was signed out.".to_string()),
        Some("others") => Some("Every other device and every app was signed out.".to_string()),
        _ => None,
    };
    Ok(render(
        StatusCode::OK,
        &SessionsPage {
            chrome: ctx.chrome(),
            sessions,
            apps_signed_in: overview.apps_signed_in,
            notice,
        },
    ))
}

pub async fn revoke(ctx: Ctx, form: web::Form<RevokeForm>) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let ask = Ask {
        heading: "Sign out this device?",
        message: "Whoever uses it will have to sign in again.",
        yes: "Yes, sign it out",
        fields: &[("sid", &form.sid)],
        cancel: PAGE,
    };
    if let Some(page) = confirm::ask(&ctx, &form.confirm, ask) {
        return Ok(page);
    }
    // Only the user's own sessions: another user's sid is simply not found.
    if !ctx
        .state
        .sessions
        .revoke_own(&user.uid, &form.sid, &ctx.audit())
        .await?
    {
        return Err(AppError::NotFound);
    }
    Ok(see_other("/account/sessions?done=revoked"))
}

pub async fn revoke_others(
    ctx: Ctx,
    form: web::Form<RevokeOthersForm>,
) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let ask = Ask {
        heading: "Sign out everywhere else?",
        message: "Every other device is signed out, and every app you let in must ask you to sign in again. This device stays signed in.",
        yes: "Yes, sign out everywhere else",
        fields: &[],
        cancel: PAGE,
    };
    if let Some(page) = confirm::ask(&ctx, &form.confirm, ask) {
        return Ok(page);
    }
    // "Everywhere else" includes apps (see `Sessions::revoke_others`).
    ctx.state
        .sessions
        .revoke_others(&user.uid, &user.sid, &ctx.audit())
        .await?;
    Ok(see_other("/account/sessions?done=others"))
}
