//! `/login/mfa`: the second step after a password, for accounts with a second factor.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::web::handlers::see_other;
use serde_json::json;

use crate::auth::audit::record_alone;
use crate::auth::mfa::{status, verify};
use crate::auth::sign_in::gate;
use crate::auth::throttle::Reservation;
use crate::domain::audit::{AuditAction, Outcome};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::session::{MfaPending, PENDING_KEY, PENDING_SECS, SignedIn, pending, sign_in};
use crate::web::views::{MfaPage, render};

/// Wrong codes allowed in one pending sign-in before it must start over.
const MAX_FAILURES: u32 = 5;

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf_token: String,
    code: String,
}

/// Reserves a second-factor guess before it is checked: per account (wherever the
/// guesses come from) and per client. Say how it ended with [`complete`] or
/// [`count_failure`].
pub(super) async fn throttle(ctx: &Ctx, p: &MfaPending) -> Result<Reservation, AppError> {
    ctx.state
        .throttle
        .reserve(ctx.ip, &format!("mfa:{}", p.uid))
        .await
        .map_err(AppError::from)
}

/// The second factor checked out: the pending state becomes a signed-in session under
/// a new id, if the sign-in gate lets it (the account unchanged since the password).
/// Returns where to go next: the sign-in page again when the gate refused.
pub(super) async fn complete(
    ctx: &Ctx,
    p: MfaPending,
    method: &str,
    reservation: Reservation,
) -> Result<String, AppError> {
    let st = &ctx.state;
    reservation.succeeded().await;
    ctx.session.remove(PENDING_KEY);
    let ip = ctx.ip.to_string();
    let entrant = gate::Entrant {
        user_id: &p.uid,
        ip: &ip,
        user_agent: &ctx.user_agent,
    };
    let Some(sid) = gate::admit(
        &st.db,
        &st.sessions,
        &st.clock,
        entrant,
        gate::Proof::SecondStep(&p.stamp),
        &ctx.audit(),
    )
    .await?
    else {
        return Ok("/login".into());
    };
    let who = SignedIn {
        uid: p.uid,
        sid,
        auth_at: st.clock.now(),
        amr: vec!["pwd".into(), method.into(), "mfa".into()],
        email: p.email,
        name: p.name,
        roles: p.roles,
    };
    sign_in(&ctx.session, &who).map_err(|e| crate::auth::InternalError::Other(e.to_string()))?;
    Ok(p.next)
}

/// A wrong second factor. `Ok(false)` when this pending sign-in has used up its tries
/// and must start over from the password.
pub(super) async fn count_failure(
    ctx: &Ctx,
    p: &mut MfaPending,
    reservation: Reservation,
) -> Result<bool, AppError> {
    let st = &ctx.state;
    let audit = ctx.audit();
    let lockout = |limit: &str, secs: u64| {
        record_alone(
            &st.db,
            st.clock.now(),
            &audit,
            AuditAction::RateLimitExceeded,
            Outcome::Denied,
            Some(p.uid.clone()),
            json!({"limit": limit, "seconds": secs}),
        )
    };
    if let Some(retry) = reservation.failed().await {
        lockout("mfa_account", retry.0).await?;
        return Err(retry.into());
    }
    p.failures += 1;
    if p.failures >= MAX_FAILURES {
        lockout("mfa_pending", 0).await?;
        ctx.session.remove(PENDING_KEY);
        return Ok(false);
    }
    let _ = ctx.session.insert(PENDING_KEY, p);
    Ok(true)
}

pub(super) fn current(ctx: &Ctx) -> Option<MfaPending> {
    pending(&ctx.session).filter(|p| ctx.state.clock.now() - p.at < PENDING_SECS)
}

pub async fn form(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let Some(p) = current(&ctx) else {
        return Ok(see_other("/login"));
    };
    let factors = status(&ctx.state.db, &p.uid).await?;
    let targets =
        crate::web::handlers::oauth::front_channel::return_targets(&ctx.state, &p.next).await;
    Ok(crate::web::handlers::oauth::front_channel::allow_targets(
        render(
            StatusCode::OK,
            &MfaPage {
                chrome: ctx.chrome(),
                error: None,
                webauthn: factors.webauthn,
            },
        ),
        targets,
    ))
}

pub async fn submit(ctx: Ctx, form: web::Form<CodeForm>) -> Result<HttpResponse, AppError> {
    let targets = match current(&ctx) {
        Some(p) => {
            crate::web::handlers::oauth::front_channel::return_targets(&ctx.state, &p.next).await
        }
        None => Vec::new(),
    };
    Ok(crate::web::handlers::oauth::front_channel::allow_targets(
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
    let reservation = throttle(&ctx, &p).await?;
    let mut audit = ctx.audit();
    audit.actor_id = Some(p.uid.clone());
    let verified = verify(
        &st.db,
        &st.clock,
        &st.mfa_keys,
        &st.mail,
        &p.uid,
        &form.code,
        &audit,
    )
    .await?;
    match verified {
        Some(method) => {
            let label = match method {
                crate::auth::mfa::Method::Totp => "totp",
                crate::auth::mfa::Method::RecoveryCode => "recovery_code",
            };
            crate::web::metrics::second_factor(label, true);
            Ok(see_other(
                &complete(&ctx, p, method.amr(), reservation).await?,
            ))
        }
        None => {
            crate::web::metrics::second_factor("code", false);
            if !count_failure(&ctx, &mut p, reservation).await? {
                return Ok(see_other("/login"));
            }
            let factors = status(&st.db, &p.uid).await?;
            Ok(render(
                StatusCode::UNAUTHORIZED,
                &MfaPage {
                    chrome: ctx.chrome(),
                    webauthn: factors.webauthn,
                    error: Some("That code did not work. Try the newest code from your app, or a recovery code.".into()),
                },
            ))
        }
    }
}
