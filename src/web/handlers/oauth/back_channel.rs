//! OAuth's back channel: token, device authorization (RFC 8628), revocation,
//! introspection and userinfo.
//!
//! Clients authenticate with `client_secret_basic`, `client_secret_post` or
//! `private_key_jwt` (public clients name themselves and rely on PKCE). Errors follow RFC 6749 section 5.2 (JSON,
//! `invalid_client` as 401 with `WWW-Authenticate`); responses carrying tokens are
//! `no-store`. Token and userinfo answer browsers on other origins (CORS), since
//! single-page apps call them directly; no cookie is ever read here.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::auth::audit::AuditCtx;
use crate::auth::oauth::authorize::DEVICE_GRANT;
use crate::auth::oauth::client_auth::{Credentials, Purpose};
use crate::auth::oauth::{Client, FlowError, OAuthError};
use crate::web::error::AppError;
use crate::web::handlers::oauth::error::{answer, back_channel, json_no_store};
use crate::web::state::AppState;

#[derive(Deserialize, Default)]
pub struct TokenForm {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    /// RFC 8628's device code grant.
    device_code: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// `private_key_jwt` (RFC 7523 section 2.2).
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    // Revocation and introspection.
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// The form fields a client authenticates with.
pub(super) struct ClientFields<'a> {
    pub id: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub assertion_type: Option<&'a str>,
    pub assertion: Option<&'a str>,
}

/// `client_secret_basic` (RFC 6749 section 2.3.1: form-encoded id and secret), else
/// `client_secret_post`, else a `private_key_jwt` assertion, else a public client
/// naming itself. Never two at once.
fn credentials(req: &HttpRequest, fields: &ClientFields<'_>) -> Credentials {
    let (client_id, client_secret) = (fields.id, fields.secret);
    match (fields.assertion_type, fields.assertion) {
        (None, None) => {}
        (Some(crate::auth::oauth::client_assertion::ASSERTION_TYPE), Some(jwt))
            if client_secret.is_none() && req.headers().get(header::AUTHORIZATION).is_none() =>
        {
            return Credentials::Assertion(client_id.map(str::to_string), jwt.to_string());
        }
        _ => return Credentials::Bad,
    }
    let Some(auth) = req.headers().get(header::AUTHORIZATION) else {
        return match client_id {
            Some(id) => Credentials::Given(id.to_string(), client_secret.map(str::to_string)),
            None => Credentials::Missing,
        };
    };
    if client_secret.is_some() {
        return Credentials::Bad;
    }
    let parsed = (|| {
        let basic = auth.to_str().ok()?.strip_prefix("Basic ")?;
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
        Some((unescape(id), unescape(secret)))
    })();
    match parsed {
        Some((id, _)) if client_id.is_some_and(|c| c != id) => Credentials::Bad,
        Some((id, secret)) => Credentials::Given(id, Some(secret)),
        None => Credentials::Bad,
    }
}

fn peer_ip(req: &HttpRequest, st: &AppState) -> std::net::IpAddr {
    crate::web::caller::client_ip(req, &st.config)
}

/// The client behind the request, authenticated by the provider.
async fn authenticate(
    req: &HttpRequest,
    st: &AppState,
    f: &TokenForm,
    purpose: Purpose,
) -> Result<Client, FlowError> {
    let fields = ClientFields {
        id: f.client_id.as_deref(),
        secret: f.client_secret.as_deref(),
        assertion_type: f.client_assertion_type.as_deref(),
        assertion: f.client_assertion.as_deref(),
    };
    authenticate_with(req, st, fields, purpose).await
}

/// [`authenticate`] for a form of another shape.
pub(super) async fn authenticate_with(
    req: &HttpRequest,
    st: &AppState,
    fields: ClientFields<'_>,
    purpose: Purpose,
) -> Result<Client, FlowError> {
    let credentials = credentials(req, &fields);
    let ip = peer_ip(req, st);
    let caller = caller_ctx(req, ip, None);
    st.oauth
        .authenticate_client(&st.throttle, credentials, (ip, &caller), purpose)
        .await
}

/// Who is asking, for the audit log: the caller's address and user agent, and the
/// authenticated client's id with the request id.
pub(super) fn audit_ctx(req: &HttpRequest, st: &AppState, client: &Client) -> AuditCtx {
    caller_ctx(req, peer_ip(req, st), Some(&client.client_id))
}

/// [`audit_ctx`] before the client is authenticated (no client, then).
fn caller_ctx(req: &HttpRequest, ip: std::net::IpAddr, client_id: Option<&str>) -> AuditCtx {
    let request_id = crate::web::request_id::current();
    AuditCtx {
        actor_id: None,
        ip: Some(ip.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
        request_id: Some(match client_id {
            Some(id) => format!("{request_id} client={id}"),
            None => request_id,
        }),
    }
}

pub async fn token(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    answer(token_inner(&req, &st, form.into_inner()).await)
}

async fn token_inner(
    req: &HttpRequest,
    st: &AppState,
    f: TokenForm,
) -> Result<HttpResponse, FlowError> {
    let client = authenticate(req, st, &f, Purpose::Token).await?;
    let audit = audit_ctx(req, st, &client);
    let t = match f.grant_type.as_str() {
        "authorization_code" => {
            if f.code.is_empty() || f.redirect_uri.is_empty() {
                return Err(
                    OAuthError::InvalidRequest("code and redirect_uri are required").into(),
                );
            }
            st.oauth
                .exchange_code(
                    &client,
                    &f.code,
                    &f.redirect_uri,
                    f.code_verifier.as_deref(),
                    &audit,
                )
                .await?
        }
        "refresh_token" => {
            let Some(rt) = f.refresh_token.as_deref().filter(|t| !t.is_empty()) else {
                return Err(OAuthError::InvalidRequest("refresh_token is required").into());
            };
            st.oauth
                .refresh(&client, rt, f.scope.as_deref(), &audit)
                .await?
        }
        "client_credentials" => {
            st.oauth
                .client_credentials(&client, f.scope.as_deref(), &audit)
                .await?
        }
        DEVICE_GRANT => {
            let Some(dc) = f.device_code.as_deref().filter(|c| !c.is_empty()) else {
                return Err(OAuthError::InvalidRequest("device_code is required").into());
            };
            st.oauth.exchange_device_code(&client, dc, &audit).await?
        }
        _ => return Err(OAuthError::UnsupportedGrantType.into()),
    };
    let mut body = json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in,
        "scope": t.scope,
    });
    if let Some(id) = t.id_token {
        body["id_token"] = json!(id);
    }
    if let Some(r) = t.refresh_token {
        body["refresh_token"] = json!(r);
    }
    Ok(json_no_store(StatusCode::OK, body))
}

/// RFC 8628 section 3.1: a device asks for a device code and a user code. The client
/// authenticates as at the token endpoint (a public one names itself).
pub async fn device_authorization(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    answer(started(&req, &st, form.into_inner()).await)
}

async fn started(
    req: &HttpRequest,
    st: &AppState,
    f: TokenForm,
) -> Result<HttpResponse, FlowError> {
    let client = authenticate(req, st, &f, Purpose::Token).await?;
    let audit = audit_ctx(req, st, &client);
    let d = st
        .oauth
        .start_device_authorization(&client, f.scope.as_deref(), &audit)
        .await?;
    let body = json!({
        "device_code": d.device_code,
        "user_code": d.user_code,
        "verification_uri": d.verification_uri,
        "verification_uri_complete": d.verification_uri_complete,
        "expires_in": d.expires_in,
        "interval": d.interval,
    });
    Ok(json_no_store(StatusCode::OK, body))
}

/// RFC 7009. The answer is 200 whether or not the token was valid, so it tells a
/// caller nothing about tokens it does not hold.
pub async fn revoke(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    let f = form.into_inner();
    answer(
        async {
            let client = authenticate(&req, &st, &f, Purpose::Token).await?;
            let token = required_token(&f)?;
            st.oauth
                .revoke(&client, token, &audit_ctx(&req, &st, &client))
                .await?;
            Ok(HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
                .finish())
        }
        .await,
    )
}

/// RFC 7662, for confidential clients (resource servers register as clients).
pub async fn introspect(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    let f = form.into_inner();
    // One generation for the whole request: the client record and the token's
    // liveness are memoised under it (one Redis round trip instead of two).
    let generation = st.oauth.generation().await;
    answer(
        async {
            let caller = authenticate(&req, &st, &f, Purpose::Introspection(generation)).await?;
            let token = required_token(&f)?;
            let seen = if crate::domain::personal_tokens::looks_like_secret(token) {
                // A personal access token sent to an API that asks portcullis about
                // it, as it would about an app's access token.
                match st.personal_tokens.verify(token).await? {
                    Some(v) => serde_json::json!({
                        "active": true, "token_type": "Bearer",
                        "scope": v.scopes.join(" "), "sub": v.user_id,
                        "username": v.email, "iss": st.oauth.issuer(),
                    }),
                    None => serde_json::json!({"active": false}),
                }
            } else {
                st.oauth
                    .introspect(generation, &caller.client_id, token)
                    .await?
            };
            // For resource servers, not browsers: no CORS here.
            let mut res = json_no_store(StatusCode::OK, seen);
            res.headers_mut()
                .remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
            Ok(res)
        }
        .await,
    )
}

/// The token named in a revocation or introspection request.
fn required_token(f: &TokenForm) -> Result<&str, OAuthError> {
    f.token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or(OAuthError::InvalidRequest("token is required"))
}

pub async fn userinfo(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let unauthorized = || back_channel(&OAuthError::InvalidToken);
    // RFC 6750: the scheme name is case-insensitive.
    let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t)
    else {
        return Ok(unauthorized());
    };
    match st.oauth.userinfo(token.trim()).await? {
        Some(body) => Ok(json_no_store(StatusCode::OK, body)),
        None => Ok(unauthorized()),
    }
}

/// CORS preflight for the endpoints browsers call from other origins.
pub async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}
