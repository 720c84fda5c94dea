//! `/verify-email`: confirms an address from an emailed link (a new account's, or the
//! new address of an email change). GET only shows a button; POST consumes the token,
//! so mail scanners that prefetch links cannot burn it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::accounts::links::{CHANGE_EMAIL, ConfirmError, Confirmed, LinkError, LinkProblem};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::views::{ResendPage, VerifyEmailPage, render};

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    csrf_token: String,
    email: String,
}

pub fn problem_text(p: LinkProblem) -> &'static str {
    match p {
        LinkProblem::Invalid => "This link has already been used or is not valid.",
        LinkProblem::Expired => "This link has expired.",
    }
}

fn problem_page(ctx: &Ctx, msg: &str) -> HttpResponse {
    render(
        StatusCode::GONE,
        &VerifyEmailPage {
            chrome: ctx.chrome(),
            email: None,
            token: String::new(),
            change: false,
            problem: Some(msg.to_string()),
        },
    )
}

pub async fn show(ctx: Ctx, q: web::Query<TokenQuery>) -> Result<HttpResponse, AppError> {
    match ctx.state.accounts.email_link_info(&q.token).await {
        Ok(info) => Ok(render(
            StatusCode::OK,
            &VerifyEmailPage {
                chrome: ctx.chrome(),
                change: info.purpose == CHANGE_EMAIL,
                email: Some(info.email),
                token: q.token.clone(),
                problem: None,
            },
        )),
        Err(LinkError::Unusable(p)) => Ok(problem_page(&ctx, problem_text(p))),
        Err(LinkError::Internal(e)) => Err(e.into()),
    }
}

pub async fn confirm(ctx: Ctx, form: web::Form<ConfirmForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    match ctx
        .state
        .accounts
        .confirm_email(&form.token, &ctx.audit())
        .await
    {
        Ok(Confirmed::Verified { .. }) => Ok(see_other(if ctx.user.is_some() {
            "/account"
        } else {
            "/login?verified=1"
        })),
        Ok(Confirmed::Changed { user_id, new_email }) => {
            // The browser that confirms, when signed in as that user, shows the new address.
            if let Some(mut who) = ctx.user.clone().filter(|u| u.uid == user_id) {
                who.email = new_email;
                crate::web::session::update(&ctx.session, &who);
                return Ok(see_other("/account?done=email-changed"));
            }
            Ok(see_other("/login?verified=1"))
        }
        Err(ConfirmError::Link(p)) => Ok(problem_page(&ctx, problem_text(p))),
        Err(ConfirmError::AddressTaken) => Ok(problem_page(
            &ctx,
            "That address now belongs to another account, so it cannot be used.",
        )),
        Err(ConfirmError::Internal(e)) => Err(e.into()),
    }
}

pub async fn resend_form(ctx: Ctx) -> HttpResponse {
    render(
        StatusCode::OK,
        &ResendPage {
            chrome: ctx.chrome(),
            email: String::new(),
            sent: false,
        },
    )
}

/// Always the same answer, sent or not, so it reveals nothing about the address.
pub async fn resend(ctx: Ctx, form: web::Form<ResendForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    let st = &ctx.state;
    st.throttle.reset_from_ip(ctx.ip).await?;
    // Sent or not, the page says the same.
    st.accounts.resend_verification(&form.email).await?;
    Ok(render(
        StatusCode::OK,
        &ResendPage {
            chrome: ctx.chrome(),
            email: form.email.clone(),
            sent: true,
        },
    ))
}
