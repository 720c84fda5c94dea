//! `/logout`: ends this session.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::session::sign_out;

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn submit(ctx: Ctx, form: web::Form<LogoutForm>) -> Result<HttpResponse, AppError> {
    // Already signed out (expired meanwhile): nothing to change, so nothing to forge.
    if ctx.user.is_none() {
        return Ok(see_other("/login?signed_out=1"));
    }
    ctx.check_csrf(&form.csrf_token)?;
    end(&ctx).await?;
    Ok(see_other("/login?signed_out=1"))
}

/// Ends the signed-in session: revoked in the registry (refused everywhere at once),
/// audited, and the cookie's state dropped.
pub async fn end(ctx: &Ctx) -> Result<(), AppError> {
    if let Some(u) = &ctx.user {
        ctx.state
            .sign_in
            .sign_out(&u.uid, &u.sid, &ctx.audit())
            .await?;
    }
    sign_out(&ctx.session);
    Ok(())
}
