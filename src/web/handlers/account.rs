//! `/account`: who you are, and the password change.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::see_other;
use crate::auth::accounts::change_password;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::views::{AccountPage, render};

#[derive(Deserialize)]
pub struct AccountQuery {
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    current_password: String,
    new_password: String,
}

fn page(ctx: &Ctx, error: Option<String>, notice: Option<String>) -> Result<AccountPage, AppError> {
    let u = ctx.require_user()?;
    Ok(AccountPage {
        chrome: ctx.chrome(),
        email: u.email.clone(),
        name: u.name.clone(),
        roles: u.roles.clone(),
        min_len: ctx.state.config.password_min_length,
        error,
        notice,
    })
}

/// The hot path of a signed-in user: rendered from the session alone.
pub async fn show(ctx: Ctx, q: web::Query<AccountQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    let notice = match q.done.as_deref() {
        Some("password") => {
            Some("Your password was changed. Your other devices have been signed out.".to_string())
        }
        _ => None,
    };
    Ok(render(StatusCode::OK, &page(&ctx, None, notice)?))
}

pub async fn change_pw(ctx: Ctx, form: web::Form<PasswordForm>) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    let st = &ctx.state;
    match change_password(
        &st.db,
        &st.hasher,
        &st.clock,
        st.config.password_min_length,
        &user.uid,
        form.current_password,
        form.new_password,
        &ctx.audit(),
    )
    .await?
    {
        Ok(()) => {
            st.sessions.revoke_all(&user.uid, Some(&user.sid)).await?;
            Ok(see_other("/account?done=password"))
        }
        Err(e) => Ok(render(
            StatusCode::BAD_REQUEST,
            &page(&ctx, Some(e.to_string()), None)?,
        )),
    }
}
