//! `/setup?token=…`: the one-time link printed at first start.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::accounts::NewAccount;
use crate::auth::accounts::setup::{SetupError, complete, link_usable};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::session::{SignedIn, sign_in};
use crate::web::views::{SetupPage, render};

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

fn page(ctx: &Ctx, usable: bool, token: &str, email: &str, error: Option<String>) -> SetupPage {
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
    let usable =
        !q.token.is_empty() && link_usable(&ctx.state.db, &ctx.state.clock, &q.token).await?;
    let status = if usable {
        StatusCode::OK
    } else {
        StatusCode::GONE
    };
    Ok(render(status, &page(&ctx, usable, &q.token, "", None)))
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
    match complete(
        &st.db,
        &st.hasher,
        &st.clock,
        st.config.password_min_length,
        &form.token,
        input,
        &ctx.audit(),
    )
    .await?
    {
        Ok(user) => {
            let ip = ctx.ip.to_string();
            let entrant = crate::auth::sign_in::gate::Entrant {
                user_id: &user.id,
                ip: &ip,
                user_agent: &ctx.user_agent,
            };
            let proof = crate::auth::sign_in::gate::Proof::Setup;
            let audit = ctx.audit();
            let Some(sid) = crate::auth::sign_in::gate::admit(
                &st.db,
                &st.sessions,
                &st.clock,
                entrant,
                proof,
                &audit,
            )
            .await?
            else {
                return Ok(see_other("/login"));
            };
            let who = SignedIn {
                uid: user.id,
                sid,
                auth_at: st.clock.now(),
                amr: vec!["pwd".into()],
                email: user.email,
                name: user.display_name,
                roles: vec!["admin".into()],
            };
            sign_in(&ctx.session, &who)
                .map_err(|e| crate::auth::InternalError::Other(e.to_string()))?;
            Ok(see_other("/account"))
        }
        Err(SetupError::LinkInvalid) => {
            Ok(render(StatusCode::GONE, &page(&ctx, false, "", "", None)))
        }
        Err(SetupError::Account(e)) => Ok(render(
            StatusCode::BAD_REQUEST,
            &page(&ctx, true, &form.token, &email, Some(e.to_string())),
        )),
    }
}
