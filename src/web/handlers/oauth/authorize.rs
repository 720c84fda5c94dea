//! `/oauth/authorize`: the authorization request and our consent form. The decision is
//! the provider's (`auth::oauth::decision`); this maps it to a redirect, a sign-in or
//! step-up, the consent page, or an error page. A pushed request (RFC 9126: only
//! `client_id` and `request_uri` in the query) is taken from the provider once, then
//! held in this browser's session until the app has its answer (`auth::oauth::pushed`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::oauth::app_context::host_of;
use crate::auth::oauth::decision::{
    AuthorizeDecision, AuthorizeRequest, ConsentAnswer, SignedIn, origin_of,
};
use crate::auth::oauth::pushed;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::return_to::allow_targets;
use crate::web::handlers::see_other;
use crate::web::views::{ConsentPage, render};

#[derive(Deserialize, Clone, Default)]
pub struct AuthorizeParams {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<i64>,
    acr_values: Option<String>,
    /// Read by the login page from the request it continues.
    login_hint: Option<String>,
    /// A pushed request's handle (RFC 9126): the parameters are the pushed ones, and
    /// every other one here but `client_id` is ignored.
    request_uri: Option<String>,
    // Consent form only.
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    decision: String,
}

impl AuthorizeParams {
    fn request(&self, path: &str) -> AuthorizeRequest {
        AuthorizeRequest {
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            response_type: self.response_type.clone(),
            scope: self.scope.clone(),
            state: self.state.clone(),
            nonce: self.nonce.clone(),
            code_challenge: self.code_challenge.clone(),
            code_challenge_method: self.code_challenge_method.clone(),
            prompt: self.prompt.clone(),
            max_age: self.max_age,
            acr_values: self.acr_values.clone(),
            login_hint: self.login_hint.clone(),
            path: path.to_string(),
            pushed: false,
        }
    }
}

/// Where this session keeps the pushed requests it took (`auth::oauth::pushed::Held`).
const PUSHED_KEY: &str = "oauth_pushed";

fn held_list(ctx: &Ctx) -> Vec<pushed::Held> {
    ctx.session
        .get(PUSHED_KEY)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The pushed requests this session holds, to carry over a sign-out ([`keep_held`]).
pub fn held_requests(ctx: &Ctx) -> Vec<pushed::Held> {
    held_list(ctx)
}

/// Puts back the pushed requests taken with [`held_requests`].
pub fn keep_held(ctx: &Ctx, list: Vec<pushed::Held>) {
    if list.is_empty() {
        return;
    }
    if let Err(e) = ctx.session.insert(PUSHED_KEY, list) {
        tracing::warn!(error = %e, "pushed authorization request not kept over the sign-out");
    }
}

/// The request to decide: the query's, or the pushed one its `request_uri` names
/// (held by this session, or taken from the provider now). A `request_uri` that is
/// unknown, expired, used, or another client's is an error page: nothing in the link
/// can be trusted to redirect to.
async fn request_of(ctx: &Ctx, p: &AuthorizeParams) -> Result<AuthorizeRequest, AppError> {
    let Some(uri) = p.request_uri.as_deref() else {
        return Ok(p.request(&ctx.path));
    };
    let path = ctx.path.as_str();
    let list = held_list(ctx);
    let now = ctx.state.clock.now();
    if let Some(r) = pushed::held(&list, &p.client_id, uri, path, now) {
        return Ok(r);
    }
    let (oauth, audit) = (&ctx.state.oauth, ctx.audit());
    match oauth.take_pushed(&p.client_id, uri, path, &audit).await? {
        Some(r) => Ok(r),
        None => Err(AppError::BadRequest(
            "This sign-in link has expired or was already used. Go back to the application and sign in from there again.".into(),
        )),
    }
}

/// The pushed request that `next` (an authorization request's path) continues, if this
/// session holds it.
pub fn pushed_request(ctx: &Ctx, next: &str) -> Option<AuthorizeRequest> {
    let query = next.strip_prefix("/oauth/authorize?")?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let list = held_list(ctx);
    pushed::held(
        &list,
        get("client_id")?,
        get("request_uri")?,
        next,
        ctx.state.clock.now(),
    )
}

/// Keeps (or drops) the pushed request in the session after `decision`.
fn hold(ctx: &Ctx, uri: &str, req: &AuthorizeRequest, decision: &AuthorizeDecision) {
    let before = held_list(ctx);
    let after = pushed::after(before.clone(), uri, req, decision, ctx.state.clock.now());
    if after == before {
        return;
    }
    if after.is_empty() {
        ctx.session.remove(PUSHED_KEY);
    } else if let Err(e) = ctx.session.insert(PUSHED_KEY, after) {
        // The user is told the link expired when they come back; nothing is let through.
        tracing::warn!(error = %e, "pushed authorization request not kept in the session");
    }
}

async fn authorize_inner(
    ctx: Ctx,
    p: AuthorizeParams,
    posted: bool,
) -> Result<HttpResponse, AppError> {
    let answer = if posted {
        ctx.check_csrf(&p.csrf_token)?;
        Some(if p.decision == "allow" {
            ConsentAnswer::Allow
        } else {
            ConsentAnswer::Deny
        })
    } else {
        None
    };
    let user = ctx.user.as_ref().map(signed_in);
    let req = request_of(&ctx, &p).await?;
    let decision = ctx
        .state
        .oauth
        .authorize(&req, user.as_ref(), answer, &ctx.audit())
        .await?;
    if let Some(uri) = p.request_uri.as_deref() {
        hold(&ctx, uri, &req, &decision);
    }
    Ok(match decision {
        AuthorizeDecision::Permitted { redirect }
        | AuthorizeDecision::ErrorToClient { redirect, .. } => see_other(&redirect),
        AuthorizeDecision::NeedsSignIn { next } => {
            return Err(AppError::SignInRequired { next });
        }
        AuthorizeDecision::NeedsStepUp {
            next,
            second_factor: false,
        } => return Err(AppError::StepUpRequired { next }),
        AuthorizeDecision::NeedsStepUp {
            next,
            second_factor: true,
        } => {
            return Err(AppError::Redirect(format!(
                "/login/reauth?factor=1&next={}",
                crate::web::url_encode(&next)
            )));
        }
        AuthorizeDecision::NeedsConsent { app, scopes } => {
            let query = ctx.path.split_once('?').map(|(_, q)| q).unwrap_or_default();
            let hidden: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .filter(|(k, _)| k != "csrf_token" && k != "decision")
                .collect();
            allow_targets(
                render(
                    StatusCode::OK,
                    &ConsentPage {
                        chrome: ctx.chrome(),
                        app,
                        host: host_of(&req.redirect_uri),
                        next: if ctx.path.contains('?') {
                            ctx.path.clone()
                        } else {
                            as_get(&p)
                        },
                        scopes: scopes.iter().map(|s| describe(s)).collect(),
                        hidden,
                    },
                ),
                origin_of(&req.redirect_uri).into_iter().collect(),
            )
        }
        AuthorizeDecision::ErrorPage { message } => return Err(AppError::BadRequest(message)),
    })
}

/// The session's user as the provider's decisions see them.
pub fn signed_in(u: &crate::web::session::SignedIn) -> SignedIn {
    SignedIn {
        user_id: u.uid.clone(),
        auth_time: u.auth_at,
        amr: u.amr.clone(),
        sid: u.sid.clone(),
    }
}

/// What a scope lets an app do, in the user's words (the consent and device pages).
pub fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (a stable identifier)",
        "profile" => "See your name",
        "email" => "See your email address and whether it is confirmed",
        "roles" => "See your roles",
        "groups" => "See your groups",
        "offline_access" => "Stay connected when you are not using it",
        other => other,
    }
    .to_string()
}

pub async fn authorize(ctx: Ctx, q: web::Query<AuthorizeParams>) -> Result<HttpResponse, AppError> {
    authorize_inner(ctx, q.into_inner(), false).await
}

/// POST: our consent form (it carries a CSRF token and a decision), or an app sending
/// its authorization request as a form (OpenID Connect Core 3.1.2.1), which goes on as
/// the same request by GET: one path for sign-in, consent and every check.
pub async fn consent(ctx: Ctx, f: web::Form<AuthorizeParams>) -> Result<HttpResponse, AppError> {
    let p = f.into_inner();
    if p.csrf_token.is_empty() && p.decision.is_empty() {
        return Ok(see_other(&as_get(&p)));
    }
    authorize_inner(ctx, p, true).await
}

fn as_get(p: &AuthorizeParams) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("response_type", Some(p.response_type.as_str())),
        ("client_id", Some(p.client_id.as_str())),
        ("redirect_uri", Some(p.redirect_uri.as_str())),
        ("scope", Some(p.scope.as_str())),
        ("state", p.state.as_deref()),
        ("nonce", p.nonce.as_deref()),
        ("code_challenge", p.code_challenge.as_deref()),
        ("code_challenge_method", p.code_challenge_method.as_deref()),
        ("prompt", p.prompt.as_deref()),
        ("acr_values", p.acr_values.as_deref()),
        ("login_hint", p.login_hint.as_deref()),
        ("request_uri", p.request_uri.as_deref()),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    if let Some(m) = p.max_age {
        q.append_pair("max_age", &m.to_string());
    }
    format!("/oauth/authorize?{}", q.finish())
}
