//! `/logout`: ends this session.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::domain::redirect::is_safe_path;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::oauth::authorize::{held_requests, keep_held};
use crate::web::handlers::see_other;
use crate::web::session::sign_out;
use crate::web::url_encode;

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
    /// Where to sign in again afterwards ("Use another account" on the consent page):
    /// a local path only, kept through the sign-in page.
    #[serde(default)]
    next: Option<String>,
}

/// The sign-in page after signing out; with a local `next`, the sign-in continues there.
fn after(next: Option<&str>) -> String {
    match next.filter(|n| is_safe_path(n)) {
        Some(n) => format!("/login?signed_out=1&next={}", url_encode(n)),
        None => "/login?signed_out=1".to_string(),
    }
}

pub async fn submit(ctx: Ctx, form: web::Form<LogoutForm>) -> Result<HttpResponse, AppError> {
    // Already signed out (expired meanwhile): nothing to change, so nothing to forge.
    if ctx.user.is_none() {
        return Ok(see_other(&after(form.next.as_deref())));
    }
    ctx.check_csrf(&form.csrf_token)?;
    // A pushed authorization request this browser holds survives the sign-out, so the
    // next account can continue it.
    let held = held_requests(&ctx);
    if form.next.is_some() && !held.is_empty() {
        revoke(&ctx).await?;
        // Not purged (which would drop what is put back): emptied under a new id.
        ctx.session.clear();
        ctx.session.renew();
        keep_held(&ctx, held);
    } else {
        end(&ctx).await?;
    }
    Ok(see_other(&after(form.next.as_deref())))
}

/// Ends the signed-in session: revoked in the registry (refused everywhere at once),
/// audited, and the cookie's state dropped.
pub async fn end(ctx: &Ctx) -> Result<(), AppError> {
    revoke(ctx).await?;
    sign_out(&ctx.session);
    Ok(())
}

/// Revokes the signed-in session in the registry and audits it; the cookie's state
/// is the caller's to drop.
async fn revoke(ctx: &Ctx) -> Result<(), AppError> {
    if let Some(u) = &ctx.user {
        ctx.state
            .sign_in
            .sign_out(&u.uid, &u.sid, &ctx.audit())
            .await?;
    }
    Ok(())
}
