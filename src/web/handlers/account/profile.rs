//! `/account`: who you are, change of email, and the password change.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::accounts::AccountError;
use crate::auth::throttle::Reservation;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::views::{AccountPage, FormError, render};

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
    /// The checkbox "Also sign out of apps": present (any value) when ticked.
    #[serde(default)]
    sign_out_apps: Option<String>,
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf_token: String,
    current_password: String,
    new_email: String,
}

#[derive(Default)]
struct Messages {
    error: FormError,
    notice: Option<String>,
}

fn page(ctx: &Ctx, m: Messages) -> Result<AccountPage, AppError> {
    let u = ctx.require_user()?;
    Ok(AccountPage {
        chrome: ctx.chrome(),
        email: u.email.clone(),
        name: u.name.clone(),
        roles: u.roles.clone(),
        min_len: ctx.state.config.password_min_length,
        error: m.error,
        notice: m.notice,
    })
}

/// The hot path of a signed-in user: rendered from the session alone.
pub async fn show(ctx: Ctx, q: web::Query<AccountQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    let notice = match q.done.as_deref() {
        Some("password") => {
            Some("Your password was changed. Your other devices have been signed out.")
        }
        Some("password-apps") => Some(
            "Your password was changed. Your other devices and your apps have been signed out.",
        ),
        Some("email") => Some(
            "Check the inbox of the new address: the change happens when you open the link we sent there.",
        ),
        Some("email-changed") => Some("Your email address was changed."),
        _ => None,
    };
    let m = Messages {
        notice: notice.map(str::to_string),
        ..Default::default()
    };
    Ok(render(StatusCode::OK, &page(&ctx, m)?))
}

/// Guessing the current password from a stolen session costs as much as guessing it
/// at the sign-in form: the guess is reserved before it is checked.
async fn throttle(ctx: &Ctx, email: &str) -> Result<Reservation, AppError> {
    ctx.state
        .throttle
        .reserve(ctx.ip, &email.to_lowercase())
        .await
        .map_err(AppError::from)
}

/// How the guess of the current password ended: a wrong password stays counted, a
/// change made proves it right; any other refusal may come before the password was
/// checked, so it only gives the place back.
async fn settle(reservation: Reservation, result: &Result<(), AccountError>) {
    match result {
        Ok(()) => reservation.succeeded().await,
        Err(AccountError::WrongPassword) => {
            let _ = reservation.failed().await;
        }
        Err(_) => reservation.released(),
    }
}

/// A refusal the user can fix, as the message by the field it is about (ids of
/// the password form, or of the email form when `email_form`); anything else is ours.
fn user_error(e: AccountError, email_form: bool) -> Result<FormError, AppError> {
    let field = match (&e, email_form) {
        (AccountError::Internal(_), _) => None,
        (AccountError::WrongPassword, false) => Some("current_password"),
        (AccountError::Password(_), false) => Some("new_password"),
        (AccountError::WrongPassword, true) => Some("email_current_password"),
        (
            AccountError::Email(_) | AccountError::Exists | AccountError::DomainNotAllowed(_),
            true,
        ) => Some("new_email"),
        _ => None,
    };
    match (e, field) {
        (AccountError::Internal(e), _) => Err(e.into()),
        (e, Some(f)) => Ok(FormError::on(f, e.to_string())),
        (e, None) => Ok(FormError::form(e.to_string())),
    }
}

pub async fn change_pw(ctx: Ctx, form: web::Form<PasswordForm>) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let reservation = throttle(&ctx, &user.email).await?;
    let form = form.into_inner();
    let ends_apps = form.sign_out_apps.is_some();
    // The user's other sessions end with it.
    let result = ctx
        .state
        .accounts
        .change_password(
            &user.uid,
            &user.sid,
            form.current_password,
            form.new_password,
            ends_apps,
            &ctx.audit(),
        )
        .await;
    settle(reservation, &result).await;
    match result {
        Ok(()) => {
            // A privilege change: this session continues under a new key.
            ctx.session.renew();
            Ok(see_other(if ends_apps {
                "/account?done=password-apps"
            } else {
                "/account?done=password"
            }))
        }
        Err(e) => {
            let m = Messages {
                error: user_error(e, false)?,
                ..Default::default()
            };
            Ok(render(StatusCode::BAD_REQUEST, &page(&ctx, m)?))
        }
    }
}

pub async fn change_email(ctx: Ctx, form: web::Form<EmailForm>) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let reservation = throttle(&ctx, &user.email).await?;
    let form = form.into_inner();
    let result = ctx
        .state
        .accounts
        .request_email_change(
            &user.uid,
            form.current_password,
            &form.new_email,
            &ctx.audit(),
        )
        .await;
    settle(reservation, &result).await;
    match result {
        Ok(()) => Ok(see_other("/account?done=email")),
        Err(e) => {
            let m = Messages {
                error: user_error(e, true)?,
                ..Default::default()
            };
            Ok(render(StatusCode::BAD_REQUEST, &page(&ctx, m)?))
        }
    }
}
