//! `/device` (RFC 8628): a signed-in user enters the code a device shows (**Continue**),
//! sees which app asks for what, and answers (**Allow** / **Deny**). The decision is
//! the provider's (`auth::oauth::device`); this maps it to a page or a redirect.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::oauth::device::{DeviceAnswer, DeviceOutcome, VERIFICATION_PATH};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::oauth::authorize::{describe, signed_in};
use crate::web::views::{DeviceDone, DevicePage, DevicePrompt, FormError, render};

#[derive(Deserialize, Default)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct DeviceForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    user_code: String,
    /// `allow` or `deny`; absent on the code form.
    decision: Option<String>,
}

const UNKNOWN_CODE: &str = "That code is not valid, has expired or was already used. Check the code on your device and try again.";

/// The code form, or (from the link a device shows, `verification_uri_complete`) the
/// request behind the code in the link.
pub async fn show(ctx: Ctx, q: web::Query<DeviceQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    match q.into_inner().user_code.filter(|c| !c.trim().is_empty()) {
        Some(code) => entry(&ctx, &code, None).await,
        None => Ok(page(&ctx, StatusCode::OK, String::new(), FormError::none())),
    }
}

/// The code form (**Continue**) or the answer (**Allow** / **Deny**).
pub async fn submit(ctx: Ctx, f: web::Form<DeviceForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&f.csrf_token)?;
    ctx.require_user()?;
    let answer = match f.decision.as_deref() {
        None => None,
        Some("allow") => Some(DeviceAnswer::Allow),
        Some("deny") => Some(DeviceAnswer::Deny),
        Some(_) => return Err(AppError::BadRequest("Choose Allow or Deny.".into())),
    };
    entry(&ctx, &f.user_code, answer).await
}

async fn entry(
    ctx: &Ctx,
    code: &str,
    answer: Option<DeviceAnswer>,
) -> Result<HttpResponse, AppError> {
    let user = signed_in(ctx.require_user()?);
    let st = &ctx.state;
    let outcome = st
        .oauth
        .device_entry((&st.throttle, ctx.ip), &user, code, answer, &ctx.audit())
        .await?;
    let typed: String = code.chars().take(32).collect();
    Ok(match outcome {
        DeviceOutcome::Prompt {
            app,
            scopes,
            user_code,
        } => {
            let prompt = DevicePrompt {
                app,
                scopes: scopes.iter().map(|s| describe(s)).collect(),
                user_code,
            };
            render_page(
                ctx,
                StatusCode::OK,
                String::new(),
                FormError::none(),
                Some(prompt),
                None,
            )
        }
        DeviceOutcome::Approved { app } => done(
            ctx,
            "Device connected",
            format!(
                "{app} is now signed in on your device. You can close this page and return to the device."
            ),
        ),
        DeviceOutcome::Denied { app } => done(
            ctx,
            "Access denied",
            format!("{app} was not allowed on the device. Nothing was shared."),
        ),
        DeviceOutcome::UnknownCode => page(
            ctx,
            StatusCode::BAD_REQUEST,
            typed,
            FormError::on("user_code", UNKNOWN_CODE),
        ),
        DeviceOutcome::Throttled(wait) => {
            let msg = format!(
                "Too many codes entered. Please wait {} before trying again.",
                crate::web::error::human_secs(wait.0)
            );
            // Waiting fixes this, not another code.
            let mut res = page(
                ctx,
                StatusCode::TOO_MANY_REQUESTS,
                typed,
                FormError::form(msg),
            );
            if let Ok(v) = header::HeaderValue::from_str(&wait.0.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        DeviceOutcome::NeedsSecondFactor { user_code } => {
            let back = format!(
                "{VERIFICATION_PATH}?user_code={}",
                crate::web::url_encode(&user_code)
            );
            return Err(AppError::Redirect(format!(
                "/login/reauth?factor=1&next={}",
                crate::web::url_encode(&back)
            )));
        }
        DeviceOutcome::NoAccess(why) => page(
            ctx,
            StatusCode::FORBIDDEN,
            typed,
            FormError::form(why.description()),
        ),
    })
}

/// The code form, with an error when there is one.
fn page(ctx: &Ctx, status: StatusCode, code: String, error: FormError) -> HttpResponse {
    render_page(ctx, status, code, error, None, None)
}

fn done(ctx: &Ctx, heading: &str, message: String) -> HttpResponse {
    render_page(
        ctx,
        StatusCode::OK,
        String::new(),
        FormError::none(),
        None,
        Some(DeviceDone {
            heading: heading.into(),
            message,
        }),
    )
}

fn render_page(
    ctx: &Ctx,
    status: StatusCode,
    code: String,
    error: FormError,
    prompt: Option<DevicePrompt>,
    done: Option<DeviceDone>,
) -> HttpResponse {
    let mut res = render(
        status,
        &DevicePage {
            chrome: ctx.chrome(),
            code,
            error,
            prompt,
            done,
        },
    );
    // The page names a code that links a device to the account: no cache keeps it.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}
