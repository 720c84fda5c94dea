//! `/account/totp` (authenticator app) and `/account/recovery-codes`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::mfa::MfaError;
use crate::domain::totp;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::see_other;
use crate::web::session::TOTP_SETUP_KEY;
use crate::web::views::{FormError, RecoveryCodesPage, TotpPage, render};

#[derive(Deserialize)]
pub struct EnableForm {
    #[serde(default)]
    csrf_token: String,
    code: String,
}

#[derive(Deserialize)]
pub struct PlainForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    confirm: String,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
    /// Sent here from /admin: administrators need a second factor first.
    admin: Option<String>,
}

/// The secret being set up lives in the server-side session until it is confirmed.
fn setup_secret(ctx: &Ctx) -> Vec<u8> {
    if let Some(b32) = ctx.session.get::<String>(TOTP_SETUP_KEY).ok().flatten()
        && let Some(s) = totp::from_base32(&b32)
    {
        return s;
    }
    let s = totp::new_secret();
    let _ = ctx.session.insert(TOTP_SETUP_KEY, totp::to_base32(&s));
    s
}

async fn page(
    ctx: &Ctx,
    error: FormError,
    notice: Option<String>,
) -> Result<HttpResponse, AppError> {
    let u = ctx.require_user()?;
    let st = ctx.state.second_factors.status(&u.uid).await?;
    let (qr, key, url) = if st.totp {
        (String::new(), String::new(), String::new())
    } else {
        let secret = setup_secret(ctx);
        let url = totp::provisioning_url(&secret, &ctx.state.config.brand_name, &u.email);
        let (qr, key) = (totp::qr_svg(&url), totp::grouped(&totp::to_base32(&secret)));
        (qr, key, url)
    };
    let status_code = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(
        status_code,
        &TotpPage {
            chrome: ctx.chrome(),
            enabled: st.totp,
            qr_svg: qr,
            manual_key: key,
            otpauth_url: url,
            recovery_left: st.recovery_codes_left,
            error,
            notice,
        },
    ))
}

pub async fn show(ctx: Ctx, q: web::Query<DoneQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    let notice = match q.done.as_deref() {
        Some("enabled") => Some(
            "Your authenticator app is on. Keep your recovery codes somewhere safe.".to_string(),
        ),
        Some("disabled") => Some("Your authenticator app is off.".to_string()),
        _ if q.admin.is_some() => Some(
            "Administration needs a second factor. Set up an authenticator app here, or add a security key or passkey."
                .to_string(),
        ),
        _ => None,
    };
    page(&ctx, FormError::none(), notice).await
}

pub async fn enable(ctx: Ctx, form: web::Form<EnableForm>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_recent_auth("/account/totp")?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let st = &ctx.state;
    let Some(secret) = ctx
        .session
        .get::<String>(TOTP_SETUP_KEY)
        .ok()
        .flatten()
        .and_then(|b| totp::from_base32(&b))
    else {
        return page(
            &ctx,
            // A new secret, so a new QR code: no code typed for the old one can fix it.
            FormError::form("The setup expired. Scan the new QR code and try again."),
            None,
        )
        .await;
    };
    match st
        .second_factors
        .enable_totp(&u.uid, secret, &form.code, &ctx.audit())
        .await
    {
        // Fresh recovery codes come with the app, shown once.
        Ok(codes) => {
            ctx.session.remove(TOTP_SETUP_KEY);
            Ok(fresh_codes_page(&ctx, codes))
        }
        Err(MfaError::Internal(e)) => Err(e.into()),
        Err(e @ MfaError::WrongCode) => {
            page(&ctx, FormError::on("code", e.to_string()), None).await
        }
        Err(e) => page(&ctx, FormError::form(e.to_string()), None).await,
    }
}

pub async fn disable(ctx: Ctx, form: web::Form<PlainForm>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_recent_auth("/account/totp")?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let ask = Ask {
        heading: "Disable the authenticator app?",
        message: "Its codes will no longer be asked for or accepted. Unless you have a security key or passkey, you will sign in with your password alone.",
        yes: "Yes, disable",
        fields: &[],
        cancel: "/account/totp",
    };
    if let Some(page) = confirm::ask(&ctx, &form.confirm, ask) {
        return Ok(page);
    }
    let st = &ctx.state;
    st.second_factors.disable_totp(&u.uid, &ctx.audit()).await?;
    Ok(see_other("/account/totp?done=disabled"))
}

pub async fn recovery_codes(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let u = ctx.require_user()?;
    let st = ctx.state.second_factors.status(&u.uid).await?;
    Ok(render(
        StatusCode::OK,
        &RecoveryCodesPage {
            chrome: ctx.chrome(),
            codes: Vec::new(),
            left: st.recovery_codes_left,
            enabled: st.any(),
        },
    ))
}

pub async fn regenerate(ctx: Ctx, form: web::Form<PlainForm>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_recent_auth("/account/recovery-codes")?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let codes = match ctx
        .state
        .second_factors
        .regenerate_recovery_codes(&u.uid, &ctx.audit())
        .await
    {
        Ok(codes) => codes,
        Err(MfaError::Internal(e)) => return Err(e.into()),
        Err(e) => return Err(AppError::BadRequest(e.to_string())),
    };
    Ok(fresh_codes_page(&ctx, codes))
}

/// The page that shows a fresh set of recovery codes, once.
fn fresh_codes_page(ctx: &Ctx, codes: Vec<String>) -> HttpResponse {
    render(
        StatusCode::OK,
        &RecoveryCodesPage {
            chrome: ctx.chrome(),
            codes,
            left: 0,
            enabled: true,
        },
    )
}
