//! `/login/mfa`: the second step after a password, for accounts with a second factor.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::see_other;
use crate::auth::mfa::verify;
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

fn current(ctx: &Ctx) -> Option<MfaPending> {
    pending(&ctx.session).filter(|p| ctx.state.clock.now() - p.at < PENDING_SECS)
}

pub async fn form(ctx: Ctx) -> HttpResponse {
    if current(&ctx).is_none() {
        return see_other("/login");
    }
    render(
        StatusCode::OK,
        &MfaPage {
            chrome: ctx.chrome(),
            error: None,
        },
    )
}

pub async fn submit(ctx: Ctx, form: web::Form<CodeForm>) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    let Some(mut p) = current(&ctx) else {
        ctx.session.remove(PENDING_KEY);
        return Ok(see_other("/login"));
    };
    let st = &ctx.state;
    // Per account (wherever the guesses come from) and per client.
    let account = format!("mfa:{}", p.uid);
    st.throttle
        .login_attempt(ctx.ip)
        .and_then(|_| st.throttle.account_allowed(&account))
        .map_err(|r| AppError::TooManyRequests { retry_after: r.0 })?;
    let mut audit = ctx.audit();
    audit.actor_id = Some(p.uid.clone());
    match verify(&st.db, &st.clock, &st.mfa_keys, &p.uid, &form.code, &audit).await? {
        Some(method) => {
            st.throttle.account_succeeded(&account);
            ctx.session.remove(PENDING_KEY);
            let sid = st
                .sessions
                .establish(&p.uid, &ctx.ip.to_string(), &ctx.user_agent)
                .await?;
            let who = SignedIn {
                uid: p.uid,
                sid,
                auth_at: st.clock.now(),
                amr: vec!["pwd".into(), method.amr().into(), "mfa".into()],
                email: p.email,
                name: p.name,
                roles: p.roles,
            };
            sign_in(&ctx.session, &who)
                .map_err(|e| crate::auth::InternalError::Other(e.to_string()))?;
            Ok(see_other(&p.next))
        }
        None => {
            if let Some(retry) = st.throttle.account_failed(&account) {
                return Err(AppError::TooManyRequests {
                    retry_after: retry.0,
                });
            }
            p.failures += 1;
            if p.failures >= MAX_FAILURES {
                ctx.session.remove(PENDING_KEY);
                return Ok(see_other("/login"));
            }
            let _ = ctx.session.insert(PENDING_KEY, &p);
            Ok(render(
                StatusCode::UNAUTHORIZED,
                &MfaPage {
                    chrome: ctx.chrome(),
                    error: Some("That code did not work. Try the newest code from your app, or a recovery code.".into()),
                },
            ))
        }
    }
}
