//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::oauth::decision::origin_of;
use crate::auth::oauth::logout::{LogoutDecision, LogoutRequest};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::return_to::allow_targets;
use crate::web::handlers::see_other;
use crate::web::views::{LogoutPage, render};

#[derive(Deserialize, Default)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    csrf_token: String,
}

impl LogoutParams {
    fn request(&self) -> LogoutRequest {
        LogoutRequest {
            id_token_hint: self.id_token_hint.clone(),
            post_logout_redirect_uri: self.post_logout_redirect_uri.clone(),
            state: self.state.clone(),
            client_id: self.client_id.clone(),
        }
    }
}

/// Maps the provider's logout decision: an error page, the confirmation page, or the
/// end of the session and the way back.
async fn end_session(ctx: Ctx, p: LogoutParams, posted: bool) -> Result<HttpResponse, AppError> {
    let session = ctx.user.as_ref().map(|u| u.sid.as_str());
    let decision = ctx
        .state
        .oauth
        .logout(&p.request(), session, posted)
        .await?;
    match decision {
        LogoutDecision::Invalid { why } => Err(AppError::BadRequest(format!(
            "This sign-out link is not valid: {why}. You are still signed in."
        ))),
        LogoutDecision::Confirm { app, destination } => {
            let mut hidden = Vec::new();
            for (k, v) in [
                ("id_token_hint", &p.id_token_hint),
                ("post_logout_redirect_uri", &p.post_logout_redirect_uri),
                ("state", &p.state),
                ("client_id", &p.client_id),
            ] {
                if let Some(v) = v {
                    hidden.push((k.to_string(), v.clone()));
                }
            }
            Ok(allow_targets(
                render(
                    StatusCode::OK,
                    &LogoutPage {
                        chrome: ctx.chrome(),
                        app,
                        hidden,
                    },
                ),
                destination
                    .as_deref()
                    .and_then(origin_of)
                    .into_iter()
                    .collect(),
            ))
        }
        LogoutDecision::SignOut { then } => {
            if ctx.user.is_some() {
                if posted {
                    ctx.check_csrf(&p.csrf_token)?;
                }
                crate::web::handlers::sign_in::logout::end(&ctx).await?;
            }
            Ok(see_other(then.as_deref().unwrap_or("/login?signed_out=1")))
        }
    }
}

pub async fn logout(ctx: Ctx, q: web::Query<LogoutParams>) -> Result<HttpResponse, AppError> {
    end_session(ctx, q.into_inner(), false).await
}

/// POST: our confirmation form (it carries a CSRF token), or an app sending its
/// logout request as a form, which is treated exactly like the GET.
pub async fn logout_confirmed(
    ctx: Ctx,
    f: web::Form<LogoutParams>,
) -> Result<HttpResponse, AppError> {
    let confirmed = !f.csrf_token.is_empty();
    end_session(ctx, f.into_inner(), confirmed).await
}
