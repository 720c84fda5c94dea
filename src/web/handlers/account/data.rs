//! `/account/data`: the user downloads everything the service holds about them, as a
//! JSON attachment. The page is a form with one button; the download is its POST
//! (CSRF, a recent sign-in), so a link elsewhere cannot make the browser fetch it.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::accounts::AccountError;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::views::{DataPage, render};

const PAGE: &str = "/account/data";

#[derive(Deserialize)]
pub struct DownloadForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn show(ctx: Ctx) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    Ok(render(
        StatusCode::OK,
        &DataPage {
            chrome: ctx.chrome(),
        },
    ))
}

pub async fn download(ctx: Ctx, form: web::Form<DownloadForm>) -> Result<HttpResponse, AppError> {
    // A stolen session must not be able to carry off the account's history.
    let u = ctx.require_recent_auth(PAGE)?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let data = match ctx.state.accounts.export_data(&u.uid, &ctx.audit()).await {
        Ok(d) => d,
        Err(AccountError::NoSuchUser) => {
            return Err(AppError::Internal(crate::auth::InternalError::Missing(
                "signed-in user",
            )));
        }
        Err(AccountError::Internal(e)) => return Err(e.into()),
        Err(e) => return Err(AppError::BadRequest(e.to_string())),
    };
    let body = serde_json::to_vec_pretty(&data).map_err(crate::auth::InternalError::from)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"account-data.json\"",
        ))
        // It names where and when the user signed in: no cache may keep a copy.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}
