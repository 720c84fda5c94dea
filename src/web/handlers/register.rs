//! `/register`. An address that already has an account gets exactly the same answer
//! as a new one; its owner is told by email instead.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::see_other;
use crate::auth::accounts::{AccountError, NewAccount, Registered, RegistrationPolicy, register};
use crate::mail::Email;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::views::{RegisterPage, render};

#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    csrf_token: String,
    email: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

fn page(ctx: &Ctx, email: &str, name: &str, error: Option<String>) -> RegisterPage {
    RegisterPage {
        chrome: ctx.chrome(),
        open: ctx.state.config.registration_enabled,
        email: email.into(),
        display_name: name.into(),
        min_len: ctx.state.config.password_min_length,
        error,
    }
}

pub async fn form(ctx: Ctx) -> HttpResponse {
    if ctx.user.is_some() {
        return see_other("/account");
    }
    if !ctx.state.config.registration_enabled {
        return render(
            StatusCode::FORBIDDEN,
            &page(
                &ctx,
                "",
                "",
                Some(AccountError::RegistrationClosed.to_string()),
            ),
        );
    }
    render(StatusCode::OK, &page(&ctx, "", "", None))
}

pub async fn submit(ctx: Ctx, form: web::Form<RegisterForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    let st = &ctx.state;
    if let Err(retry) = st.throttle.registration(ctx.ip) {
        return Err(AppError::TooManyRequests {
            retry_after: retry.0,
        });
    }
    let form = form.into_inner();
    let (email, name) = (
        form.email.clone(),
        form.display_name.clone().unwrap_or_default(),
    );
    let policy = RegistrationPolicy {
        enabled: st.config.registration_enabled,
        allowed_domains: &st.config.registration_allowed_domains,
        min_password_len: st.config.password_min_length,
    };
    let input = NewAccount {
        email: form.email,
        password: form.password,
        display_name: form.display_name,
    };
    match register(&st.db, &st.hasher, &st.clock, &policy, input, &ctx.audit()).await? {
        Ok(Registered::Created(_)) => Ok(see_other("/login?registered=1")),
        Ok(Registered::AlreadyExists(owner)) => {
            let base = st.config.base_url();
            st.mailer.send_in_background(
                st.config.mail_from.clone(),
                Email {
                    to: owner.email.clone(),
                    subject: "Someone tried to create an account with your address".into(),
                    text: format!(
                        "Hello,\n\nSomebody tried to create a new account at {base} with this email address, which already has an account.\n\nIf it was you, sign in at {base}/login — if you forgot your password, reset it at {base}/password/forgot.\nIf it was not you, you can ignore this message: nothing has changed.\n"
                    ),
                    html: format!(
                        "<p>Hello,</p><p>Somebody tried to create a new account at {base} with this email address, which already has an account.</p><p>If it was you, <a href=\"{base}/login\">sign in</a> — or <a href=\"{base}/password/forgot\">reset your password</a> if you forgot it.</p><p>If it was not you, you can ignore this message: nothing has changed.</p>"
                    ),
                },
            );
            Ok(see_other("/login?registered=1"))
        }
        Err(e @ AccountError::RegistrationClosed) => Ok(render(
            StatusCode::FORBIDDEN,
            &page(&ctx, &email, &name, Some(e.to_string())),
        )),
        Err(e) => Ok(render(
            StatusCode::BAD_REQUEST,
            &page(&ctx, &email, &name, Some(e.to_string())),
        )),
    }
}
