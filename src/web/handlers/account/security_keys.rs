//! `/account/security-keys`: add, list, rename and remove security keys and passkeys.
//!
//! Adding is a WebAuthn ceremony driven by `static/js/webauthn.js`: `…/register/start`
//! returns the options and keeps webauthn-rs's state in the session, `…/register/finish`
//! checks the browser's answer against it. Both are JSON, with the CSRF token in the
//! `x-csrf-token` header (`Ctx::check_csrf_header`). Rename and remove are plain forms.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use webauthn_rs::prelude::{PasskeyRegistration, RegisterPublicKeyCredential};

use crate::auth::mfa::webauthn::{Holder, KIND_PASSKEY, WebauthnFailure};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::{DoneQuery, see_other};
use crate::web::session::{Ceremony, WEBAUTHN_REG_KEY, put_ceremony, take_ceremony};
use crate::web::views::{KeyView, SecurityKeysPage, render, when};

const PAGE: &str = "/account/security-keys";

#[derive(Deserialize)]
pub struct StartBody {
    kind: String,
    name: String,
}

#[derive(Deserialize)]
pub struct FinishBody {
    credential: RegisterPublicKeyCredential,
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    csrf_token: String,
    id: String,
    name: String,
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf_token: String,
    id: String,
    #[serde(default)]
    confirm: String,
}

/// A refusal the user can fix becomes a 400 with its message; anything else is ours.
fn refusal(e: WebauthnFailure) -> AppError {
    match e {
        WebauthnFailure::Internal(e) => e.into(),
        e => AppError::BadRequest(e.to_string()),
    }
}

async fn page(
    ctx: &Ctx,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Result<HttpResponse, AppError> {
    let u = ctx.require_user()?;
    let keys = ctx
        .state
        .second_factors
        .keys(&u.uid)
        .await?
        .into_iter()
        .map(|k| KeyView {
            kind: if k.kind == KIND_PASSKEY {
                "Passkey"
            } else {
                "Security key"
            },
            created: when(k.created_at),
            last_used: k.last_used_at.map(when).unwrap_or_else(|| "never".into()),
            id: k.id,
            name: k.name,
        })
        .collect();
    Ok(render(
        status,
        &SecurityKeysPage {
            chrome: ctx.chrome(),
            keys,
            error,
            notice,
        },
    ))
}

pub async fn show(ctx: Ctx, q: web::Query<DoneQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    let notice = match q.done.as_deref() {
        Some("added") => Some("Added. You can use it the next time you sign in.".to_string()),
        Some("removed") => Some("Removed. It no longer signs you in.".to_string()),
        Some("renamed") => Some("Renamed.".to_string()),
        _ => None,
    };
    page(&ctx, StatusCode::OK, None, notice).await
}

/// The form posts here only when the script did not run.
pub async fn no_script(ctx: Ctx) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    page(
        &ctx,
        StatusCode::BAD_REQUEST,
        Some("Adding a security key or passkey needs JavaScript. Turn it on for this site and try again.".into()),
        None,
    )
    .await
}

pub async fn register_start(ctx: Ctx, body: web::Json<StartBody>) -> HttpResponse {
    let run = async {
        // A stolen session must not be able to plant a lasting way in.
        let u = ctx.require_recent_auth(PAGE)?.clone();
        ctx.check_csrf_header()?;
        let st = &ctx.state;
        let holder = Holder {
            uid: &u.uid,
            email: &u.email,
            name: u.name.as_deref(),
        };
        let started = st
            .second_factors
            .start_key_registration(&holder, &body.kind, &body.name)
            .await
            .map_err(refusal)?;
        let ceremony = Ceremony {
            kind: started.kind.to_string(),
            name: started.name,
            ..Ceremony::new(started.state, st.clock.now())
        };
        put_ceremony(&ctx.session, WEBAUTHN_REG_KEY, &ceremony)?;
        Ok(HttpResponse::Ok().json(started.options))
    };
    run.await.unwrap_or_else(|e: AppError| e.json_response())
}

pub async fn register_finish(ctx: Ctx, body: web::Json<FinishBody>) -> HttpResponse {
    let run = async {
        let u = ctx.require_recent_auth(PAGE)?.clone();
        ctx.check_csrf_header()?;
        let st = &ctx.state;
        let Some(c) =
            take_ceremony::<PasskeyRegistration>(&ctx.session, WEBAUTHN_REG_KEY, st.clock.now())
        else {
            return Err(AppError::BadRequest(
                "That took too long or was already used. Try again.".into(),
            ));
        };
        st.second_factors
            .finish_key_registration(
                &u.uid,
                &c.kind,
                &c.name,
                &body.credential,
                &c.state,
                &ctx.audit(),
            )
            .await
            .map_err(refusal)?;
        Ok(HttpResponse::Ok().json(serde_json::json!({
            "redirect": format!("{PAGE}?done=added"),
        })))
    };
    run.await.unwrap_or_else(|e: AppError| e.json_response())
}

pub async fn rename(ctx: Ctx, form: web::Form<RenameForm>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    if !ctx
        .state
        .second_factors
        .rename_key(&u.uid, &form.id, &form.name, &ctx.audit())
        .await?
    {
        return page(
            &ctx,
            StatusCode::BAD_REQUEST,
            Some(WebauthnFailure::BadName.to_string()),
            None,
        )
        .await;
    }
    Ok(see_other(&format!("{PAGE}?done=renamed")))
}

pub async fn remove(ctx: Ctx, form: web::Form<RemoveForm>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_recent_auth(PAGE)?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let ask = Ask {
        heading: "Remove this security key?",
        message: "It will no longer sign you in or confirm your sign-in. To use it again you would add it again.",
        yes: "Yes, remove",
        fields: &[("id", &form.id)],
        cancel: PAGE,
    };
    if let Some(page) = confirm::ask(&ctx, &form.confirm, ask) {
        return Ok(page);
    }
    if !ctx
        .state
        .second_factors
        .remove_key(&u.uid, &form.id, &ctx.audit())
        .await?
    {
        return Err(AppError::NotFound);
    }
    Ok(see_other(&format!("{PAGE}?done=removed")))
}
