//! `/login/mfa`: the second step after a password, for accounts with a second factor.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::sign_in::second_step::SecondStep;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::handlers::sign_in::app_context::app_context;
use crate::web::session::{MfaPending, PENDING_KEY, SignedIn, pending, sign_in};
use crate::web::views::{FormError, MfaPage, render};

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf_token: String,
    code: String,
}

/// Where a second-step guess leads, with the session state it leaves: signed in (to
/// the pending sign-in's `next`), back to the sign-in page, or `None` to try again
/// (the pending state keeps the failure count).
pub(super) fn settle(
    ctx: &Ctx,
    p: MfaPending,
    outcome: SecondStep,
) -> Result<Option<String>, AppError> {
    match outcome {
        SecondStep::SignedIn { sid, amr } => {
            ctx.session.remove(PENDING_KEY);
            let who = SignedIn {
                uid: p.uid,
                sid,
                auth_at: ctx.state.clock.now(),
                amr,
                email: p.email,
                name: p.name,
                roles: p.roles,
            };
            sign_in(&ctx.session, &who)?;
            Ok(Some(p.next))
        }
        SecondStep::Refused | SecondStep::StartOver => {
            ctx.session.remove(PENDING_KEY);
            Ok(Some("/login".into()))
        }
        SecondStep::Wrong => {
            let _ = ctx.session.insert(PENDING_KEY, &p);
            Ok(None)
        }
    }
}

pub(super) fn current(ctx: &Ctx) -> Option<MfaPending> {
    pending(&ctx.session).filter(|p| p.live(ctx.state.clock.now()))
}

pub async fn form(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let Some(p) = current(&ctx) else {
        return Ok(see_other("/login"));
    };
    let factors = ctx.state.sign_in.factors(&p.uid).await?;
    let targets = crate::web::handlers::return_to::return_targets(&ctx.state, &p.next).await;
    Ok(crate::web::handlers::return_to::allow_targets(
        render(
            StatusCode::OK,
            &MfaPage {
                chrome: ctx.chrome(),
                error: FormError::none(),
                webauthn: factors.webauthn,
                app: app_context(&ctx, &p.next).await,
            },
        ),
        targets,
    ))
}

pub async fn submit(ctx: Ctx, form: web::Form<CodeForm>) -> Result<HttpResponse, AppError> {
    let targets = match current(&ctx) {
        Some(p) => crate::web::handlers::return_to::return_targets(&ctx.state, &p.next).await,
        None => Vec::new(),
    };
    Ok(crate::web::handlers::return_to::allow_targets(
        submit_inner(ctx, form).await?,
        targets,
    ))
}

async fn submit_inner(ctx: Ctx, form: web::Form<CodeForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    let Some(mut p) = current(&ctx) else {
        ctx.session.remove(PENDING_KEY);
        return Ok(see_other("/login"));
    };
    let st = &ctx.state;
    let outcome = st
        .sign_in
        .second_step_code(ctx.ip, &mut p, &form.code, &ctx.audit())
        .await?;
    let uid = p.uid.clone();
    let app = app_context(&ctx, &p.next).await;
    if let Some(to) = settle(&ctx, p, outcome)? {
        return Ok(see_other(&to));
    }
    let factors = st.sign_in.factors(&uid).await?;
    Ok(render(
        StatusCode::UNAUTHORIZED,
        &MfaPage {
            chrome: ctx.chrome(),
            webauthn: factors.webauthn,
            error: FormError::on(
                "code",
                "That code did not work. Try the newest code from your app, or a recovery code.",
            ),
            app,
        },
    ))
}
