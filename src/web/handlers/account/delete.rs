//! `/account/delete`: the user deletes their own account. The page needs a recent
//! sign-in, and the form proves it again (password or second-factor code): see
//! `auth::accounts::closing`. Afterwards this browser is signed out and told so.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::accounts::closing::ClosingError;
use crate::auth::sign_in::step_up::Who;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::session::sign_out;
use crate::web::views::{DeletePage, DeletedPage, FormError, render};

const PAGE: &str = "/account/delete";

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf_token: String,
    /// The password, or a code of the account's second factor.
    #[serde(default)]
    proof: String,
}

fn page(ctx: &Ctx, status: StatusCode, error: FormError) -> HttpResponse {
    render(
        status,
        &DeletePage {
            chrome: ctx.chrome(),
            error,
        },
    )
}

pub async fn show(ctx: Ctx) -> Result<HttpResponse, AppError> {
    // Confirm it is you before the form, rather than after typing into it.
    ctx.require_recent_auth(PAGE)?;
    Ok(page(&ctx, StatusCode::OK, FormError::none()))
}

pub async fn submit(ctx: Ctx, form: web::Form<DeleteForm>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_recent_auth(PAGE)?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let who = Who {
        user_id: &u.uid,
        email: &u.email,
        sid: &u.sid,
    };
    let result = ctx
        .state
        .closing
        .delete_own(ctx.ip, &who, form.into_inner().proof, &ctx.audit())
        .await;
    match result {
        Ok(()) | Err(ClosingError::Gone) => {
            // The registry already ended every session; this drops the cookie's state.
            sign_out(&ctx.session);
            let mut chrome = ctx.chrome();
            chrome.user = None;
            chrome.admin_link = false;
            Ok(render(StatusCode::OK, &DeletedPage { chrome }))
        }
        Err(ClosingError::Throttled(r)) => Err(r.into()),
        Err(ClosingError::Internal(e)) => Err(e.into()),
        // No proof can fix this one: it is about the account, not what was typed.
        Err(e @ ClosingError::LastAdmin) => Ok(page(
            &ctx,
            StatusCode::CONFLICT,
            FormError::form(e.to_string()),
        )),
        Err(e @ ClosingError::WrongProof) => Ok(page(
            &ctx,
            StatusCode::UNAUTHORIZED,
            FormError::on("proof", e.to_string()),
        )),
        Err(e @ ClosingError::NoProof) => Ok(page(
            &ctx,
            StatusCode::BAD_REQUEST,
            FormError::on("proof", e.to_string()),
        )),
    }
}
