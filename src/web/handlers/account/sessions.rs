//! `/account/sessions`: the signed-in devices; revoke one, or all others.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::auth::oauth::authorize::{self, GrantsEnd};
use crate::domain::audit::{AuditAction, Outcome};
use crate::web::caller::describe_browser;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::views::{SessionView, SessionsPage, render, when};

#[derive(Deserialize)]
pub struct SessionsQuery {
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
    sid: String,
}

#[derive(Deserialize)]
pub struct RevokeOthersForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn list(ctx: Ctx, q: web::Query<SessionsQuery>) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?;
    let rows = ctx.state.sessions.list(&user.uid).await?;
    let sessions = rows
        .into_iter()
        .map(|r| SessionView {
            current: r.sid == user.sid,
            browser: describe_browser(&r.user_agent),
            ip: r.ip,
            created: when(r.created_at),
            last_seen: when(r.last_seen_at),
            sid: r.sid,
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
            apps_signed_in: authorize::has_live_grant(&ctx.state.db, &user.uid).await?,
            notice,
        },
    ))
}

async fn audit_revoked(ctx: &Ctx, uid: &str, details: serde_json::Value) -> Result<(), AppError> {
    ctx.state
        .audit_log
        .record(
            &ctx.audit(),
            AuditAction::SessionRevoked,
            Outcome::Success,
            Some(uid),
            details,
        )
        .await?;
    Ok(())
}

pub async fn revoke(ctx: Ctx, form: web::Form<RevokeForm>) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    // Only the user's own sessions: another user's sid is simply not found.
    if !ctx.state.sessions.revoke(&user.uid, &form.sid).await? {
        return Err(AppError::NotFound);
    }
    audit_revoked(&ctx, &user.uid, json!({"count": 1})).await?;
    Ok(see_other("/account/sessions?done=revoked"))
}

pub async fn revoke_others(
    ctx: Ctx,
    form: web::Form<RevokeOthersForm>,
) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let st = &ctx.state;
    let n = st.sessions.revoke_all(&user.uid, Some(&user.sid)).await?;
    audit_revoked(&ctx, &user.uid, json!({"count": n, "scope": "all_others"})).await?;
    // "Everywhere else" includes apps: a lost device's app is signed in as much as its
    // browser is. The consents stay, so each app asks only for a sign-in.
    authorize::end_app_grants_now(
        &st.db,
        &st.clock,
        &st.oauth.cache,
        &user.uid,
        GrantsEnd::SignedOutEverywhere,
        &ctx.audit(),
    )
    .await?;
    Ok(see_other("/account/sessions?done=others"))
}
