//! `/login`: the password step.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::oauth::app_context::AppContext;
use crate::auth::sign_in::password_step::{LoginOutcome, NextStep};
use crate::domain::redirect::safe_next;
use crate::web::ctx::Ctx;
use crate::web::error::{AppError, human_secs};
use crate::web::handlers::see_other;
use crate::web::handlers::sign_in::app_context::app_context;
use crate::web::session::{AUTH_KEY, MfaPending, PENDING_KEY, SignedIn, sign_in_with_key};
use crate::web::views::{FormError, LoginPage, render};

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    #[serde(default)]
    registered: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
    #[serde(default)]
    verified: Option<String>,
    #[serde(default)]
    reset: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

fn page(
    ctx: &Ctx,
    email: &str,
    next: &str,
    error: FormError,
    notice: Option<String>,
    app: &Option<AppContext>,
) -> LoginPage {
    LoginPage {
        chrome: ctx.chrome(),
        email: email.to_string(),
        next: next.to_string(),
        error,
        notice,
        registration_open: ctx.state.config.registration_enabled,
        unverified: None,
        app: app.clone(),
    }
}

/// An app's `login_hint` (the authorization request being continued, in the link or
/// pushed and held by this session) fills the email field; it is only a suggestion
/// the user can change.
fn login_hint(ctx: &Ctx, next: &str) -> String {
    let Some(query) = next.strip_prefix("/oauth/authorize?") else {
        return String::new();
    };
    let hint = match crate::web::handlers::oauth::authorize::pushed_request(ctx, next) {
        Some(pushed) => pushed.login_hint,
        None => url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "login_hint")
            .map(|(_, v)| v.into_owned()),
    };
    hint.map(|h| h.chars().take(254).collect())
        .unwrap_or_default()
}

pub async fn form(ctx: Ctx, q: web::Query<LoginQuery>) -> HttpResponse {
    let next = safe_next(q.next.as_deref());
    let targets = crate::web::handlers::return_to::return_targets(&ctx.state, &next).await;
    crate::web::handlers::return_to::allow_targets(form_page(ctx, q, next).await, targets)
}

async fn form_page(ctx: Ctx, q: web::Query<LoginQuery>, next: String) -> HttpResponse {
    if ctx.user.is_some() {
        return see_other(&next);
    }
    let notice = if q.registered.is_some() {
        // Unless the operator lets unconfirmed addresses in, signing in now would only
        // be refused: say what comes first.
        Some(if ctx.state.config.require_verified_email {
            "Your account is made. Open the link we emailed you to confirm your address, then sign in here."
        } else {
            "Your account is ready. Sign in below."
        }
        .to_string())
    } else if q.signed_out.is_some() {
        Some("You have signed out.".to_string())
    } else if q.verified.is_some() {
        Some("Your email address is confirmed. Sign in below.".to_string())
    } else if q.reset.is_some() {
        Some("Your password was changed. Sign in with the new one.".to_string())
    } else {
        None
    };
    let app = app_context(&ctx, &next).await;
    let mut p = page(
        &ctx,
        &login_hint(&ctx, &next),
        &next,
        FormError::none(),
        notice,
        &app,
    );
    // The runtime setting (/admin/settings) decides whether to offer registration.
    p.registration_open = ctx.state.sign_in.registration_open().await;
    render(StatusCode::OK, &p)
}

pub async fn submit(ctx: Ctx, form: web::Form<LoginForm>) -> Result<HttpResponse, AppError> {
    let next = safe_next(form.next.as_deref());
    let targets = crate::web::handlers::return_to::return_targets(&ctx.state, &next).await;
    Ok(crate::web::handlers::return_to::allow_targets(
        submit_inner(ctx, form, next).await?,
        targets,
    ))
}

async fn submit_inner(
    ctx: Ctx,
    form: web::Form<LoginForm>,
    next: String,
) -> Result<HttpResponse, AppError> {
    ctx.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    let st = &ctx.state;
    let app = app_context(&ctx, &next).await;
    let outcome = st
        .sign_in
        .password(ctx.ip, &form.email, form.password, &ctx.audit())
        .await?;
    crate::web::metrics::sign_in(
        "password",
        match &outcome {
            LoginOutcome::Success {
                next: NextStep::SecondFactor(_),
                ..
            } => "mfa_pending",
            LoginOutcome::Success { .. } => "success",
            LoginOutcome::Invalid => "invalid",
            LoginOutcome::Unverified { .. } => "unverified",
            LoginOutcome::Disabled => "disabled",
            LoginOutcome::Throttled(_) => "throttled",
        },
    );
    match outcome {
        LoginOutcome::Success {
            user,
            roles,
            next: NextStep::SecondFactor(stamp),
        } => {
            // Not signed in yet: a short-lived pending state, under a new session id.
            let pending = MfaPending {
                uid: user.id,
                email: user.email,
                name: user.display_name,
                roles,
                next,
                at: st.clock.now(),
                failures: 0,
                stamp,
            };
            ctx.session.remove(AUTH_KEY);
            ctx.session.renew();
            ctx.session.insert(PENDING_KEY, &pending)?;
            Ok(see_other("/login/mfa"))
        }
        LoginOutcome::Success {
            user,
            roles,
            next: NextStep::SignedIn { sid, key },
        } => {
            let who = SignedIn::by_password(&user, sid, roles, st.clock.now());
            sign_in_with_key(&ctx.session, &who, &key)?;
            Ok(see_other(&next))
        }
        LoginOutcome::Invalid => Ok(render(
            StatusCode::UNAUTHORIZED,
            &page(
                &ctx,
                &form.email,
                &next,
                // One message for a wrong address and a wrong password (no
                // enumeration); it links to the first field, where fixing starts.
                FormError::on("email", "Incorrect email or password."),
                None,
                &app,
            ),
        )),
        LoginOutcome::Unverified { email } => {
            let mut p = page(
                &ctx,
                &form.email,
                &next,
                FormError::form("Confirm your email address first: open the link we sent you."),
                None,
                &app,
            );
            p.unverified = Some(email);
            Ok(render(StatusCode::FORBIDDEN, &p))
        }
        LoginOutcome::Disabled => Ok(render(
            StatusCode::FORBIDDEN,
            &page(
                &ctx,
                &form.email,
                &next,
                FormError::form("This account is disabled. Contact your administrator."),
                None,
                &app,
            ),
        )),
        LoginOutcome::Throttled(retry) => {
            let msg = format!(
                "Too many sign-in attempts. Please wait {} and try again.",
                human_secs(retry.0)
            );
            let mut res = render(
                StatusCode::TOO_MANY_REQUESTS,
                &page(&ctx, &form.email, &next, FormError::form(msg), None, &app),
            );
            if let Ok(v) = HeaderValue::from_str(&retry.0.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(res)
        }
    }
}
