//! OpenID Connect endpoints: discovery, JWKS, authorize (with consent), token, userinfo.
//!
//! An unknown `client_id` or a `redirect_uri` not registered exactly is shown to the
//! user as an error page and never redirected to; every other error goes back to the
//! client per RFC 6749 with `state` and `iss` (RFC 9207).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::auth::oidc::{self, Grant, SCOPES, TokenError};
use crate::db::repo::oauth::Client;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::views::{ConsentPage, render};

fn base(ctx_base: &str) -> String {
    ctx_base.trim_end_matches('/').to_string()
}

pub async fn discovery(st: web::Data<crate::web::state::AppState>) -> HttpResponse {
    let b = base(&st.config.base_url());
    HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(json!({
            "issuer": b,
            "authorization_endpoint": format!("{b}/oauth/authorize"),
            "token_endpoint": format!("{b}/oauth/token"),
            "userinfo_endpoint": format!("{b}/oauth/userinfo"),
            "jwks_uri": format!("{b}/oauth/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": SCOPES,
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "sid", "at_hash", "email", "email_verified", "name", "roles"],
            "authorization_response_iss_parameter_supported": true,
        }))
}

pub async fn jwks(st: web::Data<crate::web::state::AppState>) -> Result<HttpResponse, AppError> {
    // The first call creates the key, so the JWKS is never empty.
    oidc::signing_key(&st.db, &st.clock, &st.oidc_sealer).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(oidc::jwks(&st.db).await?))
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
    // Consent form only.
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    decision: String,
}

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
    let Some(client) = oidc::client(&ctx.state.db, &p.client_id).await? else {
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
    let Some(user) = ctx.user.clone() else {
        if p.prompt.as_deref() == Some("none") {
            return Ok(back(
                &p.redirect_uri,
                &[("error", "login_required")],
                state,
                &issuer,
            ));
        }
        return Err(AppError::SignInRequired {
            next: ctx.path.clone(),
        });
    };
    if let Some(max_age) = p.max_age
        && st.clock.now() - user.auth_at > max_age.max(0)
    {
        return Err(AppError::StepUpRequired {
            next: ctx.path.clone(),
        });
    }
    let consented = client.skip_consent
        || oidc::has_consent(&st.db, &user.uid, &client.client_id, &scope).await?;
    if posted {
        ctx.check_csrf(&p.csrf_token)?;
        if p.decision != "allow" {
            return Ok(back(
                &p.redirect_uri,
                &[("error", "access_denied")],
                state,
                &issuer,
            ));
        }
        if !consented {
            oidc::record_consent(
                &st.db,
                &st.clock,
                &user.uid,
                &client.client_id,
                &scope,
                &ctx.audit(),
            )
            .await?;
        }
    } else if !consented {
        if p.prompt.as_deref() == Some("none") {
            return Ok(back(
                &p.redirect_uri,
                &[("error", "consent_required")],
                state,
                &issuer,
            ));
        }
        let query = ctx.path.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let hidden: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .filter(|(k, _)| k != "csrf_token" && k != "decision")
            .collect();
        return Ok(render(
            StatusCode::OK,
            &ConsentPage {
                chrome: ctx.chrome(),
                app: client.name.clone(),
                scopes: scope.split_whitespace().map(describe).collect(),
                hidden,
            },
        ));
    }
    let code = oidc::issue_code(
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

fn describe(scope: &str) -> String {
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

pub async fn consent(ctx: Ctx, f: web::Form<AuthorizeParams>) -> Result<HttpResponse, AppError> {
    authorize_inner(ctx, f.into_inner(), true).await
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn token_error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": code, "error_description": description}))
}

/// `client_secret_basic` (Authorization: Basic), else `client_secret_post`, else a
/// public client naming itself.
fn client_credentials(req: &HttpRequest, f: &TokenForm) -> Option<(String, Option<String>)> {
    if let Some(basic) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        let unescape = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .to_string()
        };
        return Some((unescape(id), Some(unescape(secret))));
    }
    Some((f.client_id.clone()?, f.client_secret.clone()))
}

pub async fn token(
    req: HttpRequest,
    st: web::Data<crate::web::state::AppState>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    let f = form.into_inner();
    let Some((id, secret)) = client_credentials(&req, &f) else {
        return Ok(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ));
    };
    let client = oidc::client(&st.db, &id).await?;
    let Some(client) = client.filter(|c| oidc::client_authenticates(c, secret.as_deref())) else {
        return Ok(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ));
    };
    if f.grant_type != "authorization_code" {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        ));
    }
    let audit = crate::auth::audit::AuditCtx {
        actor_id: None,
        ip: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: None,
        request_id: Some(crate::web::request_id::current()),
    };
    let result = oidc::exchange_code(
        &st.db,
        &st.clock,
        &st.oidc_sealer,
        &base(&st.config.base_url()),
        st.config.access_token_ttl_secs,
        &client,
        &f.code,
        &f.redirect_uri,
        f.code_verifier.as_deref(),
        &audit,
    )
    .await?;
    match result {
        Ok(t) => {
            let mut body = json!({
                "access_token": t.access_token,
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "scope": t.scope,
            });
            if let Some(id) = t.id_token {
                body["id_token"] = json!(id);
            }
            Ok(HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(body))
        }
        Err(TokenError::InvalidGrant(why)) => {
            Ok(token_error(StatusCode::BAD_REQUEST, "invalid_grant", why))
        }
        Err(TokenError::InvalidClient) => Ok(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )),
    }
}

pub async fn userinfo(
    req: HttpRequest,
    st: web::Data<crate::web::state::AppState>,
) -> Result<HttpResponse, AppError> {
    let unauthorized = || {
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""))
            .finish()
    };
    let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Ok(unauthorized());
    };
    let Some(claims) = oidc::verify_access_token(&st.db, &st.clock, token.trim()).await? else {
        return Ok(unauthorized());
    };
    let sub = claims["sub"].as_str().unwrap_or_default().to_string();
    let scope = claims["scope"].as_str().unwrap_or_default().to_string();
    let uid = sub.clone();
    let (user, roles) = st
        .db
        .run(move |c| {
            Ok::<_, AppError>((
                crate::db::repo::users::find(c, &uid).map_err(AppError::from_db)?,
                crate::db::repo::roles::of_user(c, &uid).map_err(AppError::from_db)?,
            ))
        })
        .await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Ok(unauthorized());
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let mut body = json!({ "sub": sub });
    if scopes.contains(&"email") {
        body["email"] = json!(user.email);
        body["email_verified"] = json!(user.email_verified);
    }
    if scopes.contains(&"profile") {
        body["name"] = json!(user.display_name);
    }
    if scopes.contains(&"roles") {
        body["roles"] = json!(roles);
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}
