//! `/register`. An address that already has an account gets exactly the same answer
//! as a new one; its owner is told by email instead.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::accounts::{AccountError, NewAccount, Registered};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::handlers::sign_in::account_form_error;
use crate::web::views::{FormError, RegisterPage, render};

#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    csrf_token: String,
    email: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

fn page(ctx: &Ctx, open: bool, email: &str, name: &str, error: FormError) -> RegisterPage {
    RegisterPage {
        chrome: ctx.chrome(),
        open,
        email: email.into(),
        display_name: name.into(),
        min_len: ctx.state.config.password_min_length,
        error,
    }
}

pub async fn form(ctx: Ctx) -> Result<HttpResponse, AppError> {
    if ctx.user.is_some() {
        return Ok(see_other("/account"));
    }
    if !ctx.state.accounts.registration_open().await? {
        return Ok(render(
            StatusCode::FORBIDDEN,
            &page(
                &ctx,
                false,
                "",
                "",
                FormError::form(AccountError::RegistrationClosed.to_string()),
            ),
        ));
    }
    Ok(render(
        StatusCode::OK,
        &page(&ctx, true, "", "", FormError::none()),
    ))
}

pub async fn submit(ctx: Ctx, form: web::Form<RegisterForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    let st = &ctx.state;
    st.throttle.registration(ctx.ip).await?;
    let form = form.into_inner();
    let (email, name) = (
        form.email.clone(),
        form.display_name.clone().unwrap_or_default(),
    );
    let input = NewAccount {
        email: form.email,
        password: form.password,
        display_name: form.display_name,
    };
    match st.accounts.register(input, &ctx.audit()).await {
        // A taken address answers exactly like a new one; its owner was mailed instead.
        Ok(Registered::Created(_) | Registered::AlreadyExists(_)) => {
            Ok(see_other("/login?registered=1"))
        }
        Err(AccountError::Internal(e)) => Err(e.into()),
        Err(e @ AccountError::RegistrationClosed) => Ok(render(
            StatusCode::FORBIDDEN,
            &page(&ctx, false, &email, &name, FormError::form(e.to_string())),
        )),
        // Any other refusal comes after the open check: registration is open.
        Err(e) => Ok(render(
            StatusCode::BAD_REQUEST,
            &page(&ctx, true, &email, &name, account_form_error(e)),
        )),
    }
}
