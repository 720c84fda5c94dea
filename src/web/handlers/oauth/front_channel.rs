//! OpenID Connect's front channel: discovery, JWKS, authorize (with consent) and
//! RP-initiated logout. The back channel (token, userinfo, revocation, introspection)
//! is in `oauth`.
//!
//! An unknown `client_id` or a `redirect_uri` not registered exactly is shown to the
//! user as an error page and never redirected to; every other error goes back to the
//! client per RFC 6749 with `state` and `iss` (RFC 9207).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::oauth::Client;
use crate::auth::oauth::authorize::{self, GRANTS, Grant, SCOPES};
use crate::auth::oauth::signing_keys::ALGS;
use crate::config::Config;
use crate::domain::audit::{AuditAction, Outcome};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::state::AppState;
use crate::web::views::{ConsentPage, LogoutPage, render};

fn base(ctx_base: &str) -> String {
    ctx_base.trim_end_matches('/').to_string()
}

/// The discovery document: built once at start (it depends on the configuration only).
pub fn discovery_document(config: &Config) -> web::Bytes {
    let b = base(&config.base_url());
    let doc = json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/oauth/authorize"),
        "token_endpoint": format!("{b}/oauth/token"),
        "userinfo_endpoint": format!("{b}/oauth/userinfo"),
        "jwks_uri": format!("{b}/oauth/jwks"),
        "revocation_endpoint": format!("{b}/oauth/revoke"),
        "introspection_endpoint": format!("{b}/oauth/introspect"),
        "end_session_endpoint": format!("{b}/oauth/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANTS,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ALGS,
        "userinfo_signing_alg_values_supported": ["none"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": ["pwd", "mfa"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "sid", "at_hash", "azp", "email", "email_verified", "name", "roles"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    });
    web::Bytes::from(doc.to_string())
}

/// If `next` continues an authorization request of a known client with one of its
/// registered redirect URIs, that URI's origin (for the page's `form-action`).
pub async fn return_targets(st: &AppState, next: &str) -> Vec<String> {
    let Some(query) = next.strip_prefix("/oauth/authorize?") else {
        return Vec::new();
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(client_id), Some(uri)) = (get("client_id"), get("redirect_uri")) else {
        return Vec::new();
    };
    match authorize::client(&st.db, &client_id).await {
        Ok(Some(c)) if c.redirect_uris().contains(&uri) => origin_of(&uri).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn origin_of(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(u.origin().ascii_serialization()).filter(|o| o != "null")
}

/// Lets the page's forms lead to `targets` (see `headers::FormTargets`).
pub fn allow_targets(mut res: HttpResponse, targets: Vec<String>) -> HttpResponse {
    if !targets.is_empty() {
        res.extensions_mut()
            .insert(crate::web::headers::FormTargets(targets));
    }
    res
}

/// A public JSON document (discovery, JWKS): any origin may read it, caches may keep it.
fn public_json(body: web::Bytes, max_age: u32) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .body(body)
}

pub async fn discovery(st: web::Data<AppState>) -> HttpResponse {
    public_json(st.discovery.clone(), 3600)
}

pub async fn jwks(st: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    // Served from memory; the first call after start creates the RS256 key if none.
    // Short: a relying party that caches it sees a new key within a minute.
    Ok(public_json(st.oidc.keys.jwks().await?, 60))
}

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
    /// `mfa` asks for a second factor (see `authorize_inner`).
    acr_values: Option<String>,
    /// Read by the login page from the request it continues.
    login_hint: Option<String>,
    // Consent form only.
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    decision: String,
}

const MAX_AGE_GRACE_SECS: i64 = 5;

/// Where errors and codes go: the registered redirect URI with `state` and `iss`.
fn back(uri: &str, params: &[(&str, &str)], state: Option<&str>, issuer: &str) -> HttpResponse {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return HttpResponse::BadRequest().finish(),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url.as_str()))
        .finish()
}

/// Validation that decides whether we may redirect at all.
async fn trusted_client(ctx: &Ctx, p: &AuthorizeParams) -> Result<Client, AppError> {
    let Some(client) = authorize::client(&ctx.state.db, &p.client_id).await? else {
        return Err(AppError::BadRequest(
            "This sign-in link names an application portcullis does not know.".into(),
        ));
    };
    if !client.redirect_uris().contains(&p.redirect_uri) {
        return Err(AppError::BadRequest(
            "This sign-in link would send you to an address the application did not register. Nothing was sent.".into(),
        ));
    }
    Ok(client)
}

/// The scopes asked for and allowed, or an RFC 6749 error code.
fn checked(client: &Client, p: &AuthorizeParams) -> Result<String, (&'static str, &'static str)> {
    if p.response_type != "code" {
        return Err(("unsupported_response_type", "only response_type=code"));
    }
    let allowed = client.scopes();
    let asked: Vec<&str> = p.scope.split_whitespace().collect();
    if asked.is_empty() || asked.iter().any(|s| !allowed.iter().any(|a| a == s)) {
        return Err((
            "invalid_scope",
            "a scope is unknown or not allowed for this client",
        ));
    }
    match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (Some(_), Some("S256")) => {}
        (Some(_), _) => return Err(("invalid_request", "code_challenge_method must be S256")),
        (None, _) if client.is_public() => {
            return Err((
                "invalid_request",
                "PKCE (S256) is required for public clients",
            ));
        }
        (None, _) => {}
    }
    Ok(asked.join(" "))
}

async fn authorize_inner(
    ctx: Ctx,
    p: AuthorizeParams,
    posted: bool,
) -> Result<HttpResponse, AppError> {
    let client = trusted_client(&ctx, &p).await?;
    let st = &ctx.state;
    let issuer = base(&st.config.base_url());
    let state = p.state.as_deref();
    // An RFC 6749 error back at the client's registered redirect URI.
    let refuse = |error: &str| back(&p.redirect_uri, &[("error", error)], state, &issuer);
    let scope = match checked(&client, &p) {
        Ok(s) => s,
        Err((code, why)) => {
            return Ok(back(
                &p.redirect_uri,
                &[("error", code), ("error_description", why)],
                state,
                &issuer,
            ));
        }
    };
    let prompts: Vec<&str> = p
        .prompt
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if prompts.contains(&"none") && prompts.len() > 1 {
        return Ok(back(
            &p.redirect_uri,
            &[
                ("error", "invalid_request"),
                ("error_description", "prompt=none stands alone"),
            ],
            state,
            &issuer,
        ));
    }
    let silent = prompts.contains(&"none");
    let Some(user) = ctx.user.clone() else {
        if silent {
            return Ok(refuse("login_required"));
        }
        // A fresh sign-in satisfies prompt=login: do not ask twice.
        return Err(AppError::SignInRequired {
            next: without_prompt_login(&ctx.path, None),
        });
    };
    // The consent form repeats the request; what it asked was settled on the GET.
    if !posted {
        // A few seconds' grace: the redirect after a fresh sign-in takes time too, and
        // max_age=0 must not send the user round in circles.
        let too_old = p
            .max_age
            .is_some_and(|m| st.clock.now() - user.auth_at > m.max(0) + MAX_AGE_GRACE_SECS);
        if too_old && silent {
            return Ok(refuse("login_required"));
        }
        if prompts.contains(&"login") {
            // Authenticate again, then continue with a max_age the fresh proof meets.
            return Err(AppError::StepUpRequired {
                next: without_prompt_login(&ctx.path, Some(60)),
            });
        }
        if too_old {
            return Err(AppError::StepUpRequired {
                next: ctx.path.clone(),
            });
        }
        // acr_values=mfa: a session proven by the password alone is stepped up with the
        // account's second factor. An account without one cannot give more; the ID
        // token's `acr` then says `pwd` (acr_values is a voluntary request, and the
        // relying party decides what `pwd` is worth).
        let wants_mfa = p
            .acr_values
            .as_deref()
            .is_some_and(|v| v.split_whitespace().any(|a| a == "mfa"));
        if wants_mfa
            && !user.amr.iter().any(|m| m == "mfa")
            && crate::auth::mfa::status(&st.db, &user.uid).await?.any()
        {
            if silent {
                return Ok(refuse("interaction_required"));
            }
            return Err(AppError::Redirect(format!(
                "/login/reauth?factor=1&next={}",
                crate::web::url_encode(&ctx.path)
            )));
        }
    }
    let has = authorize::has_consent(&st.db, &user.uid, &client.client_id, &scope).await?;
    if client.skip_consent && !has {
        // First-party: no page, but recorded, so the user sees (and can revoke) it
        // on /account/apps like any other.
        authorize::record_consent(
            &st.db,
            &st.clock,
            &user.uid,
            &client.client_id,
            &scope,
            &ctx.audit(),
        )
        .await?;
    }
    let consented = client.skip_consent || has;
    if posted {
        ctx.check_csrf(&p.csrf_token)?;
        if p.decision != "allow" {
            let (audit, now, uid, cid) = (
                ctx.audit(),
                st.clock.now(),
                user.uid.clone(),
                client.client_id.clone(),
            );
            st.db
                .run(move |c| {
                    crate::auth::audit::record(
                        c,
                        &audit,
                        now,
                        AuditAction::ConsentDenied,
                        Outcome::Denied,
                        Some(&uid),
                        json!({"client_id": cid}),
                    )
                    .map_err(AppError::from_db)
                })
                .await?;
            return Ok(refuse("access_denied"));
        }
        if !consented {
            authorize::record_consent(
                &st.db,
                &st.clock,
                &user.uid,
                &client.client_id,
                &scope,
                &ctx.audit(),
            )
            .await?;
        }
    } else if !consented || prompts.contains(&"consent") {
        if silent {
            return Ok(refuse("consent_required"));
        }
        let query = ctx.path.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let hidden: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .filter(|(k, _)| k != "csrf_token" && k != "decision")
            .collect();
        return Ok(allow_targets(
            render(
                StatusCode::OK,
                &ConsentPage {
                    chrome: ctx.chrome(),
                    app: client.name.clone(),
                    scopes: scope.split_whitespace().map(describe).collect(),
                    hidden,
                },
            ),
            origin_of(&p.redirect_uri).into_iter().collect(),
        ));
    }
    let code = authorize::issue_code(
        &st.db,
        &st.clock,
        Grant {
            client_id: client.client_id.clone(),
            user_id: user.uid.clone(),
            redirect_uri: p.redirect_uri.clone(),
            scope,
            nonce: p.nonce.clone(),
            code_challenge: p.code_challenge.clone(),
            auth_time: user.auth_at,
            amr: user.amr.clone(),
            sid: user.sid.clone(),
        },
    )
    .await?;
    Ok(back(&p.redirect_uri, &[("code", &code)], state, &issuer))
}

/// The authorization request again, without `prompt=login` (so that signing in once
/// satisfies it) and, when given, with `max_age` capped so an old session cannot pass.
fn without_prompt_login(path: &str, max_age: Option<i64>) -> String {
    let Some((route, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    let mut capped = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match (k.as_ref(), max_age) {
            ("prompt", _) => {
                let rest: Vec<&str> = v.split_whitespace().filter(|p| *p != "login").collect();
                if !rest.is_empty() {
                    out.append_pair("prompt", &rest.join(" "));
                }
            }
            ("max_age", Some(cap)) => {
                let given = v.parse::<i64>().unwrap_or(cap);
                out.append_pair("max_age", &given.min(cap).to_string());
                capped = true;
            }
            _ => {
                out.append_pair(&k, &v);
            }
        }
    }
    if let (Some(cap), false) = (max_age, capped) {
        out.append_pair("max_age", &cap.to_string());
    }
    format!("{route}?{}", out.finish())
}

pub fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (a stable identifier)",
        "profile" => "See your name",
        "email" => "See your email address and whether it is confirmed",
        "roles" => "See your roles",
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
        return Ok(crate::web::handlers::see_other(&as_get(&p)));
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

#[derive(Deserialize, Default)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    csrf_token: String,
}

/// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). The portcullis
/// session ends at once when the app proves it is this session's (an ID token hint
/// naming this session); otherwise the user confirms, so a third-party page cannot
/// sign anyone out. The user goes back only to a URI the app registered.
async fn end_session(ctx: Ctx, p: LogoutParams, posted: bool) -> Result<HttpResponse, AppError> {
    let st = &ctx.state;
    let invalid = |why: &str| {
        Err(AppError::BadRequest(format!(
            "This sign-out link is not valid: {why}. You are still signed in."
        )))
    };
    // A hint we cannot verify (say, signed by a key rotated out since) proves nothing:
    // carry on as without one, which means the user confirms.
    let hint = match p.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => st.oidc.id_token_hint(h).await?,
        None => None,
    };
    let hinted_client = hint.as_ref().and_then(|c| match c.get("aud") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
        _ => None,
    });
    let client_id = match (hinted_client, p.client_id.clone().filter(|c| !c.is_empty())) {
        (Some(a), Some(b)) if a != b => return invalid("the token and client_id disagree"),
        (a, b) => a.or(b),
    };
    let client = match &client_id {
        Some(id) => authorize::client(&st.db, id).await?,
        None => None,
    };
    let destination = match p
        .post_logout_redirect_uri
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        Some(uri) => match &client {
            Some(c) if c.post_logout_redirect_uris().iter().any(|r| r == uri) => {
                Some(uri.to_string())
            }
            _ => return invalid("the app did not register that address to return to"),
        },
        None => None,
    };
    if let Some(user) = &ctx.user {
        let same_session = hint
            .as_ref()
            .and_then(|c| c.get("sid"))
            .and_then(Value::as_str)
            == Some(user.sid.as_str());
        if posted {
            ctx.check_csrf(&p.csrf_token)?;
        } else if !same_session {
            let mut hidden = Vec::new();
            for (k, v) in [
                ("id_token_hint", &p.id_token_hint),
                ("post_logout_redirect_uri", &p.post_logout_redirect_uri),
                ("state", &p.state),
                ("client_id", &p.client_id),
            ] {
                if let Some(v) = v {
                    hidden.push((k.to_string(), v.clone()));
                }
            }
            return Ok(allow_targets(
                render(
                    StatusCode::OK,
                    &LogoutPage {
                        chrome: ctx.chrome(),
                        app: client.as_ref().map(|c| c.name.clone()),
                        hidden,
                    },
                ),
                destination
                    .as_deref()
                    .and_then(origin_of)
                    .into_iter()
                    .collect(),
            ));
        }
        crate::web::handlers::sign_in::logout::end(&ctx).await?;
    }
    let Some(uri) = destination else {
        return Ok(crate::web::handlers::see_other("/login?signed_out=1"));
    };
    let mut url =
        url::Url::parse(&uri).map_err(|_| AppError::BadRequest("bad return address".into()))?;
    if let Some(s) = &p.state {
        url.query_pairs_mut().append_pair("state", s);
    }
    Ok(crate::web::handlers::see_other(url.as_str()))
}

pub async fn logout(ctx: Ctx, q: web::Query<LogoutParams>) -> Result<HttpResponse, AppError> {
    end_session(ctx, q.into_inner(), false).await
}

/// POST: our confirmation form (it carries a CSRF token), or an app sending its
/// logout request as a form, which is treated exactly like the GET.
pub async fn logout_confirmed(
    ctx: Ctx,
    f: web::Form<LogoutParams>,
) -> Result<HttpResponse, AppError> {
    let confirmed = !f.csrf_token.is_empty();
    end_session(ctx, f.into_inner(), confirmed).await
}
