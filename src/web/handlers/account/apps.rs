//! `/account/apps`: the apps a user let in; revoking one withdraws the consent and
//! ends every grant the app holds (refresh and access tokens stop working). Revoking
//! asks first.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::see_other;
use crate::web::views::{AppView, AppsPage, render, when};

#[derive(Deserialize)]
pub struct AppsQuery {
    done: Option<String>,
}

pub async fn list(ctx: Ctx, q: web::Query<AppsQuery>) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?;
    let apps = ctx
        .state
        .oauth
        .granted_apps(&user.uid)
        .await?
        .into_iter()
        .map(|a| AppView {
            scopes: a
                .scope
                .split_whitespace()
                .map(crate::web::handlers::oauth::authorize::describe)
                .collect(),
            granted: when(a.granted_at),
            client_id: a.client_id,
            name: a.name,
        })
        .collect();
    let notice = (q.done.as_deref() == Some("revoked"))
        .then(|| "The app no longer has access to your account.".to_string());
    Ok(render(
        StatusCode::OK,
        &AppsPage {
            chrome: ctx.chrome(),
            apps,
            notice,
        },
    ))
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    confirm: String,
}

pub async fn revoke(ctx: Ctx, form: web::Form<RevokeForm>) -> Result<HttpResponse, AppError> {
    let user = ctx.require_user()?;
    ctx.check_csrf(&form.csrf_token)?;
    let apps = ctx.state.oauth.granted_apps(&user.uid).await?;
    // Only an app this user let in: any other id has nothing to revoke.
    let Some(app) = apps.iter().find(|a| a.client_id == form.client_id) else {
        return Err(AppError::NotFound);
    };
    let message = format!(
        "{} is signed out of your account and can no longer use it; to get back in, it must ask you again.",
        app.name
    );
    let ask = Ask {
        heading: "Revoke this app's access?",
        message: &message,
        yes: "Yes, revoke access",
        fields: &[("client_id", &form.client_id)],
        cancel: "/account/apps",
    };
    if let Some(page) = confirm::ask(&ctx, &form.confirm, ask) {
        return Ok(page);
    }
    ctx.state
        .oauth
        .revoke_consent(&user.uid, &form.client_id, &ctx.audit())
        .await?;
    Ok(see_other("/account/apps?done=revoked"))
}
