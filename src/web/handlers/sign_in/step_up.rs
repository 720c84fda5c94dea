//! `/login/reauth`: confirms it is still you before a sensitive change (step-up), then
//! returns to what you were doing. The password, plus the second factor when the
//! account has one. `?factor=1` says the page that sent the user here wants a second
//! factor proven (an app asking for `acr_values=mfa`): an account with only a security
//! key is then offered the key alone.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::record;
use crate::auth::password::Verified;
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::redirect::safe_next;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
use crate::web::session::{Ceremony, WEBAUTHN_REAUTH_KEY, put_ceremony, take_ceremony, update};
use crate::web::views::{ReauthPage, render};

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

async fn needs_code(ctx: &Ctx, uid: &str) -> Result<bool, AppError> {
    Ok(crate::auth::mfa::status(&ctx.state.db, uid).await?.totp)
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
    let factors = crate::auth::mfa::status(&ctx.state.db, &u.uid).await?;
    let targets = crate::web::handlers::oauth::front_channel::return_targets(
        &ctx.state,
        &safe_next(q.next.as_deref()),
    )
    .await;
    Ok(crate::web::handlers::oauth::front_channel::allow_targets(
        render(
            StatusCode::OK,
            &ReauthPage {
                chrome: ctx.chrome(),
                next: safe_next(q.next.as_deref()),
                code: factors.totp,
                webauthn: factors.webauthn && ctx.state.webauthn.is_some(),
                factor: q.factor.is_some(),
                error: None,
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
        st.throttle.login_attempt(ctx.ip).await?;
        let Some((options, state)) =
            crate::auth::mfa::webauthn::start_authentication(&st.db, st.webauthn()?, &u.uid)
                .await?
        else {
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
        // Counted before the key is checked, with the password guesses of the account.
        let reservation = st.throttle.reserve(ctx.ip, &u.email.to_lowercase()).await?;
        let ok = crate::auth::mfa::webauthn::finish_authentication(
            &st.db,
            &st.clock,
            st.webauthn()?,
            &u.uid,
            &body.credential,
            &c.state,
            &ctx.audit(),
        )
        .await?;
        let (audit, now, uid) = (ctx.audit(), st.clock.now(), u.uid.clone());
        let (action, outcome) = if ok {
            (AuditAction::StepUpSucceeded, Outcome::Success)
        } else {
            (AuditAction::StepUpFailed, Outcome::Failure)
        };
        st.db
            .run(move |c| {
                record(
                    c,
                    &audit,
                    now,
                    action,
                    outcome,
                    Some(&uid),
                    json!({"method": "hwk"}),
                )
                .map_err(InternalError::from)
            })
            .await?;
        if !ok {
            let _ = reservation.failed().await;
            return Err(AppError::Forbidden(
                "That security key could not be verified for this account.".into(),
            ));
        }
        reservation.succeeded().await;
        if !crate::auth::sign_in::gate::raise(&st.db, &st.clock, &u.uid, &u.sid, None, &ctx.audit())
            .await?
        {
            crate::web::session::sign_out(&ctx.session);
            return Err(AppError::Forbidden(
                "This session has ended. Sign in again.".into(),
            ));
        }
        u.auth_at = now;
        // User verification is required, so the key alone is two factors.
        add_methods(&mut u.amr, &["hwk", "mfa"]);
        update(&ctx.session, &u);
        ctx.session.renew();
        Ok(HttpResponse::Ok().json(json!({ "redirect": safe_next(body.next.as_deref()) })))
    };
    run.await.unwrap_or_else(|e: AppError| e.json_response())
}

pub async fn submit(ctx: Ctx, form: web::Form<ReauthForm>) -> Result<HttpResponse, AppError> {
    let next = safe_next(form.next.as_deref());
    let targets =
        crate::web::handlers::oauth::front_channel::return_targets(&ctx.state, &next).await;
    Ok(crate::web::handlers::oauth::front_channel::allow_targets(
        submit_inner(ctx, form).await?,
        targets,
    ))
}

async fn submit_inner(ctx: Ctx, form: web::Form<ReauthForm>) -> Result<HttpResponse, AppError> {
    let mut u = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let st = &ctx.state;
    // Counted before the (slow) hash: concurrent guesses from a stolen session cannot
    // all be checked before any failure counts.
    let reservation = st.throttle.reserve(ctx.ip, &u.email.to_lowercase()).await?;
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let uid = u.uid.clone();
    let stored = st
        .db
        .run(move |c| crate::db::repo::users::find(c, &uid).map_err(InternalError::from))
        .await?
        .and_then(|user| user.password_hash);
    let verified_hash = stored.clone().unwrap_or_default();
    let verified = st
        .hasher
        .verify(stored, form.password)
        .await
        .map_err(InternalError::from)?;
    if reservation.outlived() {
        return Err(AppError::TooManyRequests { retry_after: 1 });
    }
    let mut ok = matches!(verified, Verified::Yes { .. });
    let code = needs_code(&ctx, &u.uid).await?;
    if ok && code {
        let method = crate::auth::mfa::verify(
            &st.db,
            &st.clock,
            &st.mfa_keys,
            &st.mail,
            &u.uid,
            &form.code,
            &ctx.audit(),
        )
        .await?;
        ok = method.is_some();
        if let Some(m) = method {
            add_methods(&mut u.amr, &["pwd", m.amr(), "mfa"]);
        }
    }
    let (audit, now, uid) = (ctx.audit(), st.clock.now(), u.uid.clone());
    let (action, outcome) = if ok {
        (AuditAction::StepUpSucceeded, Outcome::Success)
    } else {
        (AuditAction::StepUpFailed, Outcome::Failure)
    };
    st.db
        .run(move |c| {
            record(c, &audit, now, action, outcome, Some(&uid), json!({}))
                .map_err(InternalError::from)
        })
        .await?;
    if !ok {
        let _ = reservation.failed().await;
        return Ok(render(
            StatusCode::UNAUTHORIZED,
            &ReauthPage {
                chrome: ctx.chrome(),
                next,
                code,
                webauthn: false,
                factor: false,
                error: Some("That did not match. Try again.".into()),
            },
        ));
    }
    reservation.succeeded().await;
    // The gate: the account unchanged (enabled, same password) and this session not
    // revoked while the password was being checked.
    if !crate::auth::sign_in::gate::raise(
        &st.db,
        &st.clock,
        &u.uid,
        &u.sid,
        Some(&verified_hash),
        &ctx.audit(),
    )
    .await?
    {
        crate::web::session::sign_out(&ctx.session);
        return Ok(see_other("/login"));
    }
    u.auth_at = now;
    update(&ctx.session, &u);
    // A privilege change: continue under a new session key.
    ctx.session.renew();
    Ok(see_other(&next))
}
