//! `/setup?token=…`: the one-time link printed at first start.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::accounts::NewAccount;
use crate::auth::accounts::setup::{SetupDone, SetupError};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::handlers::sign_in::account_form_error;
use crate::web::session::{SignedIn, sign_in};
use crate::web::views::{FormError, SetupPage, render};

#[derive(Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    csrf_token: String,
    token: String,
    email: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

fn page(ctx: &Ctx, usable: bool, token: &str, email: &str, error: FormError) -> SetupPage {
    SetupPage {
        chrome: ctx.chrome(),
        usable,
        token: token.into(),
        email: email.into(),
        min_len: ctx.state.config.password_min_length,
        error,
    }
}

pub async fn form(ctx: Ctx, q: web::Query<SetupQuery>) -> Result<HttpResponse, AppError> {
    let usable = ctx.state.accounts.setup_link_usable(&q.token).await?;
    let status = if usable {
        StatusCode::OK
    } else {
        StatusCode::GONE
    };
    Ok(render(
        status,
        &page(&ctx, usable, &q.token, "", FormError::none()),
    ))
}

pub async fn submit(ctx: Ctx, form: web::Form<SetupForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    let st = &ctx.state;
    let email = form.email.clone();
    let input = NewAccount {
        email: form.email,
        password: form.password,
        display_name: form.display_name,
    };
    let ip = ctx.ip.to_string();
    let done = st
        .accounts
        .complete_setup(&form.token, input, &ip, &ctx.user_agent, &ctx.audit())
        .await;
    match done {
        Ok(SetupDone {
            user,
            session_id: Some(sid),
        }) => {
            let who = SignedIn::by_password(&user, sid, vec!["admin".into()], st.clock.now());
            sign_in(&ctx.session, &who)?;
            Ok(see_other("/account"))
        }
        Ok(SetupDone {
            session_id: None, ..
        }) => Ok(see_other("/login")),
        Err(SetupError::LinkInvalid) => Ok(render(
            StatusCode::GONE,
            &page(&ctx, false, "", "", FormError::none()),
        )),
        Err(SetupError::Account(e)) => Ok(render(
            StatusCode::BAD_REQUEST,
            &page(&ctx, true, &form.token, &email, account_form_error(e)),
        )),
        Err(SetupError::Internal(e)) => Err(e.into()),
    }
}
