//! `/login/reauth`: confirms it is still you before a sensitive change (step-up), then
//! returns to what you were doing. The password, plus the second factor when the
//! account has one. `?factor=1` says the page that sent the user here wants a second
//! factor proven (an app asking for `acr_values=mfa`): an account with only a security
//! key is then offered the key alone.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::auth::sign_in::step_up::{StepUp, Who};
use crate::domain::redirect::safe_next;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::handlers::sign_in::app_context::app_context;
use crate::web::session::{
    Ceremony, SignedIn, WEBAUTHN_REAUTH_KEY, put_ceremony, take_ceremony, update,
};
use crate::web::views::{FormError, ReauthPage, render};

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    #[serde(default)]
    factor: Option<String>,
}

#[derive(Deserialize)]
pub struct ReauthForm {
    #[serde(default)]
    csrf_token: String,
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: Option<String>,
}

/// Records what the step-up proved in the session's `amr`, each method once.
fn add_methods(amr: &mut Vec<String>, methods: &[&str]) {
    for m in methods {
        if !amr.iter().any(|a| a == m) {
            amr.push((*m).to_string());
        }
    }
}

pub async fn form(ctx: Ctx, q: web::Query<NextQuery>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_user()?.clone();
    let factors = ctx.state.sign_in.factors(&u.uid).await?;
    let targets =
        crate::web::handlers::return_to::return_targets(&ctx.state, &safe_next(q.next.as_deref()))
            .await;
    Ok(crate::web::handlers::return_to::allow_targets(
        render(
            StatusCode::OK,
            &ReauthPage {
                chrome: ctx.chrome(),
                next: safe_next(q.next.as_deref()),
                code: factors.totp,
                webauthn: factors.webauthn && ctx.state.sign_in.webauthn_available(),
                factor: q.factor.is_some(),
                error: FormError::none(),
                app: app_context(&ctx, &safe_next(q.next.as_deref())).await,
            },
        ),
        targets,
    ))
}

#[derive(Deserialize)]
pub struct KeyFinish {
    credential: webauthn_rs::prelude::PublicKeyCredential,
    #[serde(default)]
    next: Option<String>,
}

/// Step-up with a security key or passkey instead of the password: the ceremony
/// requires user verification, so the key alone is two factors.
pub async fn key_start(ctx: Ctx) -> HttpResponse {
    let run = async {
        let u = ctx.require_user()?.clone();
        ctx.check_csrf_header()?;
        let st = &ctx.state;
        let Some((options, state)) = st.sign_in.step_up_key_start(ctx.ip, &u.uid).await? else {
            return Err(AppError::BadRequest(
                "There is no security key on this account.".into(),
            ));
        };
        put_ceremony(
            &ctx.session,
            WEBAUTHN_REAUTH_KEY,
            &Ceremony::new(state, st.clock.now()),
        )?;
        Ok(HttpResponse::Ok().json(options))
    };
    run.await.unwrap_or_else(|e: AppError| e.json_response())
}

pub async fn key_finish(ctx: Ctx, body: web::Json<KeyFinish>) -> HttpResponse {
    let run = async {
        let mut u = ctx.require_user()?.clone();
        ctx.check_csrf_header()?;
        let st = &ctx.state;
        let Some(c) = take_ceremony::<webauthn_rs::prelude::PasskeyAuthentication>(
            &ctx.session,
            WEBAUTHN_REAUTH_KEY,
            st.clock.now(),
        ) else {
            return Err(AppError::BadRequest(
                "That took too long. Try again.".into(),
            ));
        };
        let outcome = st
            .sign_in
            .step_up_key(ctx.ip, &who(&u), &body.credential, &c.state, &ctx.audit())
            .await?;
        match outcome {
            StepUp::Raised { at, methods } => raise(&ctx, &mut u, at, &methods),
            StepUp::Wrong { .. } => {
                return Err(AppError::Forbidden(
                    "That security key could not be verified for this account.".into(),
                ));
            }
            StepUp::Ended => {
                crate::web::session::sign_out(&ctx.session);
                return Err(AppError::Forbidden(
                    "This session has ended. Sign in again.".into(),
                ));
            }
        }
        Ok(HttpResponse::Ok().json(json!({ "redirect": safe_next(body.next.as_deref()) })))
    };
    run.await.unwrap_or_else(|e: AppError| e.json_response())
}

pub async fn submit(ctx: Ctx, form: web::Form<ReauthForm>) -> Result<HttpResponse, AppError> {
    let next = safe_next(form.next.as_deref());
    let targets = crate::web::handlers::return_to::return_targets(&ctx.state, &next).await;
    Ok(crate::web::handlers::return_to::allow_targets(
        submit_inner(ctx, form).await?,
        targets,
    ))
}

async fn submit_inner(ctx: Ctx, form: web::Form<ReauthForm>) -> Result<HttpResponse, AppError> {
    let mut u = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let outcome = ctx
        .state
        .sign_in
        .step_up_password(ctx.ip, &who(&u), form.password, &form.code, &ctx.audit())
        .await?;
    match outcome {
        StepUp::Raised { at, methods } => {
            raise(&ctx, &mut u, at, &methods);
            Ok(see_other(&next))
        }
        StepUp::Wrong { code } => Ok(render(
            StatusCode::UNAUTHORIZED,
            &ReauthPage {
                chrome: ctx.chrome(),
                app: app_context(&ctx, &next).await,
                next,
                code,
                webauthn: false,
                factor: false,
                // The service does not say which of password and code was wrong; the
                // summary leads to the first field, where the user starts again.
                error: FormError::on("password", "That did not match. Try again."),
            },
        )),
        StepUp::Ended => {
            crate::web::session::sign_out(&ctx.session);
            Ok(see_other("/login"))
        }
    }
}

/// The signed-in user as the step-up service takes them.
fn who(u: &SignedIn) -> Who<'_> {
    Who {
        user_id: &u.uid,
        email: &u.email,
        sid: &u.sid,
    }
}

/// The step-up held: the session is raised (its authentication time, what was
/// proven) and, a privilege change, continues under a new session key.
fn raise(ctx: &Ctx, u: &mut SignedIn, at: i64, methods: &[&str]) {
    u.auth_at = at;
    add_methods(&mut u.amr, methods);
    update(&ctx.session, u);
    ctx.session.renew();
}
