//! `/login/reauth`: confirms it is still you before a sensitive change (step-up), then
//! returns to what you were doing. The password, plus the second factor when the
//! account has one.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::see_other;
use crate::auth::InternalError;
use crate::auth::audit::record;
use crate::auth::password::Verified;
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::redirect::safe_next;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::session::update;
use crate::web::views::{ReauthPage, render};

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct ReauthForm {
    #[serde(default)]
    csrf_token: String,
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: Option<String>,
}

async fn needs_code(ctx: &Ctx, uid: &str) -> Result<bool, AppError> {
    Ok(crate::auth::mfa::status(&ctx.state.db, uid).await?.totp)
}

pub async fn form(ctx: Ctx, q: web::Query<NextQuery>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_user()?.clone();
    let code = needs_code(&ctx, &u.uid).await?;
    Ok(render(
        StatusCode::OK,
        &ReauthPage {
            chrome: ctx.chrome(),
            next: safe_next(q.next.as_deref()),
            code,
            error: None,
        },
    ))
}

pub async fn submit(ctx: Ctx, form: web::Form<ReauthForm>) -> Result<HttpResponse, AppError> {
    let mut u = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let st = &ctx.state;
    let account = u.email.to_lowercase();
    st.throttle
        .login_attempt(ctx.ip)
        .await
        .map_err(|r| AppError::TooManyRequests { retry_after: r.0 })?;
    st.throttle
        .account_allowed(&account)
        .await
        .map_err(|r| AppError::TooManyRequests { retry_after: r.0 })?;
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let uid = u.uid.clone();
    let stored = st
        .db
        .run(move |c| crate::db::repo::users::find(c, &uid).map_err(InternalError::from))
        .await?
        .and_then(|user| user.password_hash);
    let verified = st
        .hasher
        .verify(stored, form.password)
        .await
        .map_err(InternalError::from)?;
    let mut ok = matches!(verified, Verified::Yes { .. });
    let code = needs_code(&ctx, &u.uid).await?;
    if ok && code {
        ok = crate::auth::mfa::verify(
            &st.db,
            &st.clock,
            &st.mfa_keys,
            &u.uid,
            &form.code,
            &ctx.audit(),
        )
        .await?
        .is_some();
    }
    let (audit, now, uid) = (ctx.audit(), st.clock.now(), u.uid.clone());
    let (action, outcome) = if ok {
        (AuditAction::StepUpSucceeded, Outcome::Success)
    } else {
        (AuditAction::StepUpFailed, Outcome::Failure)
    };
    st.db
        .run(move |c| {
            record(c, &audit, now, action, outcome, Some(&uid), json!({}))
                .map_err(InternalError::from)
        })
        .await?;
    if !ok {
        st.throttle.account_failed(&account).await;
        return Ok(render(
            StatusCode::UNAUTHORIZED,
            &ReauthPage {
                chrome: ctx.chrome(),
                next,
                code,
                error: Some("That did not match. Try again.".into()),
            },
        ));
    }
    st.throttle.account_succeeded(&account).await;
    u.auth_at = now;
    update(&ctx.session, &u);
    // A privilege change: continue under a new session key.
    ctx.session.renew();
    Ok(see_other(&next))
}
