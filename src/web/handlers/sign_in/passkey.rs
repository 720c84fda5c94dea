//! Signing in with WebAuthn, driven by `static/js/webauthn.js` (JSON in and out, CSRF
//! token in the `x-csrf-token` header):
//!
//! - `/login/webauthn/{start,finish}`: a security key or passkey as the second step
//!   after a password (the "second factor pending" state must exist);
//! - `/login/passkey/{start,finish}`: a passkey alone, from `/login` (button or
//!   browser autofill). The passkey checks user verification, so it counts as
//!   multi-factor by itself.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::{PasskeyAuthentication, PublicKeyCredential};

use crate::auth::sign_in::passkey::PasskeySignIn;
use crate::auth::sign_in::passkey_ceremony::CEREMONY_SECS;
use crate::auth::sign_in::second_step::SecondStep;
use crate::domain::redirect::safe_next;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::sign_in::second_step::{current, settle};
use crate::web::session::{
    AUTH_KEY, Ceremony, PENDING_KEY, SignedIn, WEBAUTHN_MFA_KEY, put_ceremony, sign_in,
    take_ceremony,
};

#[derive(Deserialize)]
pub struct FinishBody {
    credential: PublicKeyCredential,
    #[serde(default)]
    next: Option<String>,
}

fn expired() -> AppError {
    AppError::BadRequest("That took too long. Start signing in again.".into())
}

pub async fn mfa_start(ctx: Ctx) -> HttpResponse {
    let run = async {
        ctx.check_csrf_header()?;
        let Some(p) = current(&ctx) else {
            return Err(expired());
        };
        let st = &ctx.state;
        let Some((options, state)) = st.sign_in.second_step_key_start(ctx.ip, &p).await? else {
            return Err(AppError::BadRequest(
                "There is no security key on this account. Enter a code instead.".into(),
            ));
        };
        put_ceremony(
            &ctx.session,
            WEBAUTHN_MFA_KEY,
            &Ceremony::new(state, st.clock.now()),
        )?;
        Ok(HttpResponse::Ok().json(options))
    };
    run.await.unwrap_or_else(|e: AppError| e.json_response())
}

pub async fn mfa_finish(ctx: Ctx, body: web::Json<FinishBody>) -> HttpResponse {
    let run = async {
        ctx.check_csrf_header()?;
        let (Some(mut p), Some(c)) = (
            current(&ctx),
            take_ceremony::<PasskeyAuthentication>(
                &ctx.session,
                WEBAUTHN_MFA_KEY,
                ctx.state.clock.now(),
            ),
        ) else {
            return Err(expired());
        };
        let outcome = ctx
            .state
            .sign_in
            .second_step_key(ctx.ip, &mut p, &body.credential, &c.state, &ctx.audit())
            .await?;
        match outcome {
            SecondStep::StartOver => {
                ctx.session.remove(PENDING_KEY);
                Ok(HttpResponse::Unauthorized().json(json!({
                    "error": "Too many failed attempts. Start signing in again.",
                    "redirect": "/login",
                })))
            }
            outcome => match settle(&ctx, p, outcome)? {
                Some(next) => Ok(HttpResponse::Ok().json(json!({ "redirect": next }))),
                None => Err(AppError::Forbidden(
                    "That security key is not registered to this account, or it could not be verified."
                        .into(),
                )),
            },
        }
    };
    run.await.unwrap_or_else(|e: AppError| e.json_response())
}

/// A passkey that signs nobody in (not this account's, or the account changed).
fn passkey_refused() -> AppError {
    crate::web::metrics::sign_in("passkey", "invalid");
    AppError::Forbidden(
        "This passkey could not sign you in. Use your email and password instead.".into(),
    )
}

/// The cookie that carries an anonymous passkey ceremony, sealed (auth::sign_in::passkey_ceremony).
fn ceremony_cookie(https: bool) -> &'static str {
    if https {
        "__Host-portcullis-passkey"
    } else {
        "portcullis_passkey"
    }
}

fn ceremony_cookie_with(https: bool, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build(ceremony_cookie(https), value)
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

pub async fn passkey_start(ctx: Ctx) -> HttpResponse {
    let run = async {
        // The login page asks for a challenge on every load (autofill), so this has a
        // per-address budget of its own; the answer is what counts as a sign-in attempt.
        // Nothing is stored on the server: the ceremony travels sealed in a cookie.
        ctx.check_csrf_header()?;
        let st = &ctx.state;
        let (options, sealed) = st.sign_in.passkey_start(ctx.ip, ctx.browser_seed()).await?;
        let https = st.config.is_https();
        Ok(HttpResponse::Ok()
            .cookie(ceremony_cookie_with(https, sealed, CEREMONY_SECS))
            .json(options))
    };
    run.await.unwrap_or_else(|e: AppError| e.json_response())
}

pub async fn passkey_finish(
    ctx: Ctx,
    req: HttpRequest,
    body: web::Json<FinishBody>,
) -> HttpResponse {
    let https = ctx.state.config.is_https();
    let mut res = passkey_finish_inner(ctx, req, body)
        .await
        .unwrap_or_else(|e: AppError| e.json_response());
    // The ceremony is spent whatever happened.
    let _ = res.add_cookie(&ceremony_cookie_with(https, String::new(), 0));
    res
}

async fn passkey_finish_inner(
    ctx: Ctx,
    req: HttpRequest,
    body: web::Json<FinishBody>,
) -> Result<HttpResponse, AppError> {
    ctx.check_csrf_header()?;
    let st = &ctx.state;
    let sealed = req
        .cookie(ceremony_cookie(st.config.is_https()))
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let outcome = st
        .sign_in
        .passkey_finish(
            ctx.ip,
            ctx.browser_seed(),
            &sealed,
            &body.credential,
            &ctx.audit(),
        )
        .await?;
    let (user, roles, sid) = match outcome {
        PasskeySignIn::SignedIn { user, roles, sid } => (user, roles, sid),
        PasskeySignIn::Refused => return Err(passkey_refused()),
        PasskeySignIn::Expired => return Err(expired()),
    };
    crate::web::metrics::sign_in("passkey", "success");
    ctx.session.remove(PENDING_KEY);
    ctx.session.remove(AUTH_KEY);
    let who = SignedIn {
        uid: user.id,
        sid,
        auth_at: st.clock.now(),
        amr: vec!["hwk".into(), "user".into(), "mfa".into()],
        email: user.email,
        name: user.display_name,
        roles,
    };
    sign_in(&ctx.session, &who)?;
    let next = safe_next(body.next.as_deref());
    Ok(HttpResponse::Ok().json(json!({ "redirect": next })))
}
