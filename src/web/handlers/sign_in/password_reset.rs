//! `/password/forgot` and `/password/reset`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::accounts::links::{LinkError, ResetError};
use crate::mail::messages::valid_for;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::handlers::sign_in::verify_email::problem_text;
use crate::web::views::{ForgotPage, FormError, ResetPage, render};

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    csrf_token: String,
    email: String,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    token: String,
    new_password: String,
}

fn forgot_page(ctx: &Ctx, email: &str, sent: bool) -> ForgotPage {
    ForgotPage {
        chrome: ctx.chrome(),
        email: email.into(),
        sent,
        valid_for: valid_for(ctx.state.config.password_reset_ttl_secs),
    }
}

pub async fn forgot_form(ctx: Ctx) -> HttpResponse {
    render(StatusCode::OK, &forgot_page(&ctx, "", false))
}

/// The same answer in about the same time whether or not the address has an account:
/// both paths do one lookup and one transaction.
pub async fn forgot(ctx: Ctx, form: web::Form<ForgotForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    let st = &ctx.state;
    st.throttle.reset_from_ip(ctx.ip).await?;
    st.accounts.request_reset(&form.email, &ctx.audit()).await?;
    Ok(render(
        StatusCode::OK,
        &forgot_page(&ctx, &form.email, true),
    ))
}

fn reset_page(
    ctx: &Ctx,
    token: &str,
    usable: bool,
    problem: Option<&str>,
    error: FormError,
) -> ResetPage {
    ResetPage {
        chrome: ctx.chrome(),
        token: token.into(),
        usable,
        problem: problem.map(str::to_string),
        error,
        min_len: ctx.state.config.password_min_length,
    }
}

pub async fn reset_form(ctx: Ctx, q: web::Query<TokenQuery>) -> Result<HttpResponse, AppError> {
    match ctx.state.accounts.reset_link_status(&q.token).await {
        Ok(()) => Ok(render(
            StatusCode::OK,
            &reset_page(&ctx, &q.token, true, None, FormError::none()),
        )),
        Err(LinkError::Unusable(p)) => Ok(render(
            StatusCode::GONE,
            &reset_page(&ctx, "", false, Some(problem_text(p)), FormError::none()),
        )),
        Err(LinkError::Internal(e)) => Err(e.into()),
    }
}

pub async fn reset(ctx: Ctx, form: web::Form<ResetForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    let result = ctx
        .state
        .accounts
        .reset_password(&form.token, form.new_password, &ctx.audit())
        .await;
    match result {
        Ok(()) => {
            // Every session ended, this browser's too.
            crate::web::session::sign_out(&ctx.session);
            Ok(see_other("/login?reset=1"))
        }
        Err(ResetError::Link(p)) => Ok(render(
            StatusCode::GONE,
            &reset_page(&ctx, "", false, Some(problem_text(p)), FormError::none()),
        )),
        Err(ResetError::Password(msg)) => Ok(render(
            StatusCode::BAD_REQUEST,
            &reset_page(
                &ctx,
                &form.token,
                true,
                None,
                FormError::on("new_password", msg),
            ),
        )),
        Err(ResetError::Internal(e)) => Err(e.into()),
    }
}
