//! OAuth's back channel: token, revocation, introspection and userinfo.
//!
//! Clients authenticate with `client_secret_basic` or `client_secret_post` (public
//! clients name themselves and rely on PKCE). Errors follow RFC 6749 section 5.2 (JSON,
//! `invalid_client` as 401 with `WWW-Authenticate`); responses carrying tokens are
//! `no-store`. Token and userinfo answer browsers on other origins (CORS), since
//! single-page apps call them directly; no cookie is ever read here.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::audit::AuditCtx;
use crate::auth::oauth::Client;
use crate::auth::oauth::authorize;
use crate::auth::oauth::tokens::TokenError;
use crate::auth::throttle::RetryAfter;
use crate::web::error::AppError;
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
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    // Revocation and introspection.
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

fn json_no_store(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(body)
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    json_no_store(
        status,
        json!({"error": code, "error_description": description}),
    )
}

fn invalid_client() -> HttpResponse {
    let mut res = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"portcullis\""),
    );
    res
}

enum Credentials {
    Given(String, Option<String>),
    Missing,
    /// Two methods at once, or a malformed Authorization header.
    Bad,
}

/// `client_secret_basic` (RFC 6749 section 2.3.1: form-encoded id and secret), else
/// `client_secret_post`, else a public client naming itself. Never two at once.
fn credentials(req: &HttpRequest, f: &TokenForm) -> Credentials {
    let Some(auth) = req.headers().get(header::AUTHORIZATION) else {
        return match &f.client_id {
            Some(id) => Credentials::Given(id.clone(), f.client_secret.clone()),
            None => Credentials::Missing,
        };
    };
    if f.client_secret.is_some() {
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
        Some((id, _)) if f.client_id.as_ref().is_some_and(|c| *c != id) => Credentials::Bad,
        Some((id, secret)) => Credentials::Given(id, Some(secret)),
        None => Credentials::Bad,
    }
}

fn peer_ip(req: &HttpRequest, st: &AppState) -> std::net::IpAddr {
    crate::web::caller::client_ip(req, &st.config)
}

/// What a client authenticates for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The token and revocation endpoints: counted against the per-client limit.
    Token,
    /// Introspection, under the request's cache generation: confidential clients only,
    /// and not counted per client. Resource servers introspect for every request they
    /// serve, so a per-client budget would throttle the busy ones, and an authenticated
    /// caller guesses nothing here (failed client authentication is still limited per
    /// address).
    Introspection(Option<u64>),
}

/// The authenticated client, or the response refusing it. Failures count against the
/// caller's address; token and revocation requests against the client's own budget.
async fn authenticate(
    req: &HttpRequest,
    st: &AppState,
    f: &TokenForm,
    purpose: Purpose,
) -> Result<Result<Client, HttpResponse>, AppError> {
    let (id, secret) = match credentials(req, f) {
        Credentials::Given(id, secret) => (id, secret),
        Credentials::Missing => return Ok(Err(invalid_client())),
        Credentials::Bad => {
            return Ok(Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use exactly one client authentication method",
            )));
        }
    };
    let ip = peer_ip(req, st);
    // A public client is named, not proven: count it per caller too, so strangers
    // naming it cannot use up its users' budget.
    let budget = |c: &Client| {
        if c.is_public() {
            format!("{}@{ip}", c.client_id)
        } else {
            c.client_id.clone()
        }
    };
    let (generation, counted) = match purpose {
        Purpose::Introspection(generation) => (generation, None),
        Purpose::Token => {
            let fast = token_fast_path(st, &id, secret.as_deref(), &budget).await;
            match fast {
                OneTrip::Done(client, verdict) => {
                    return Ok(verdict.map(|()| client).map_err(too_many));
                }
                OneTrip::Counted(generation, key, verdict) => {
                    (Some(generation), Some((key, verdict)))
                }
                OneTrip::NotTaken => (st.oidc.generation().await, None),
            }
        }
    };
    let client = st.oidc.client(generation, &id).await?;
    let confidential_only = matches!(purpose, Purpose::Introspection(_));
    let ok = client
        .filter(|c| authorize::client_authenticates(c, secret.as_deref()))
        .filter(|c| !(confidential_only && c.is_public()));
    let Some(client) = ok else {
        if let Err(wait) = st.throttle.client_auth_failed(ip).await {
            return Ok(Err(too_many(wait)));
        }
        return Ok(Err(invalid_client()));
    };
    if confidential_only {
        return Ok(Ok(client));
    }
    let key = budget(&client);
    let verdict = match counted {
        Some((counted_key, verdict)) if counted_key == key => verdict,
        _ => st.throttle.token_request(&key).await,
    };
    if let Err(wait) = verdict {
        return Ok(Err(too_many(wait)));
    }
    Ok(Ok(client))
}

/// How far the token endpoint's one-round-trip path got.
enum OneTrip {
    /// The memoised client authenticated and its generation is still current.
    Done(Client, Result<(), RetryAfter>),
    /// The request was counted under `key`, but the generation moved on to this one:
    /// the client must be read again (and counted again only if its key changed).
    Counted(u64, String, Result<(), RetryAfter>),
    NotTaken,
}

/// With Redis, a token request costs two round trips on the ordinary path: the cache
/// generation (to trust the memoised client record), then the client's rate limit.
/// When the cache holds a client that these credentials authenticate, one script does
/// both: it counts the request and returns the current generation, and the record is
/// used only if that generation is the one it was read in — the cache's rule, checked
/// after instead of before. Credentials the cache does not accept take the ordinary
/// path, so a stranger with a wrong secret never spends a client's budget.
async fn token_fast_path(
    st: &AppState,
    id: &str,
    secret: Option<&str>,
    budget: &impl Fn(&Client) -> String,
) -> OneTrip {
    let cache = &st.oidc.cache;
    let (Some(counter), Some((read_in, client))) = (cache.redis_key(), cache.client_as_of(id))
    else {
        return OneTrip::NotTaken;
    };
    if !authorize::client_authenticates(&client, secret) {
        return OneTrip::NotTaken;
    }
    let key = budget(&client);
    match st.throttle.token_request_reading(&key, counter).await {
        Some((verdict, current)) if current == read_in => OneTrip::Done(client, verdict),
        Some((verdict, current)) => OneTrip::Counted(current, key, verdict),
        None => OneTrip::NotTaken,
    }
}

/// A rate limit's refusal at the OAuth endpoints: the protocol's JSON error, not the
/// HTML page that [`AppError`]'s conversion gives.
fn too_many(wait: RetryAfter) -> HttpResponse {
    let mut res = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        "slow_down",
        "too many requests; retry later",
    );
    if let Ok(v) = header::HeaderValue::from_str(&wait.0.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn audit_ctx(req: &HttpRequest, st: &AppState, client: &Client) -> AuditCtx {
    AuditCtx {
        actor_id: None,
        ip: Some(peer_ip(req, st).to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
        request_id: Some(format!(
            "{} client={}",
            crate::web::request_id::current(),
            client.client_id
        )),
    }
}

pub async fn token(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    let f = form.into_inner();
    let client = match authenticate(&req, &st, &f, Purpose::Token).await? {
        Ok(c) => c,
        Err(res) => return Ok(res),
    };
    let audit = audit_ctx(&req, &st, &client);
    let result = match f.grant_type.as_str() {
        "authorization_code" => {
            if f.code.is_empty() || f.redirect_uri.is_empty() {
                return Ok(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code and redirect_uri are required",
                ));
            }
            st.oidc
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
                return Ok(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                ));
            };
            st.oidc
                .refresh(&client, rt, f.scope.as_deref(), &audit)
                .await?
        }
        "client_credentials" => {
            st.oidc
                .client_credentials(&client, f.scope.as_deref(), &audit)
                .await?
        }
        _ => {
            return Ok(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or client_credentials",
            ));
        }
    };
    Ok(match result {
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
            if let Some(r) = t.refresh_token {
                body["refresh_token"] = json!(r);
            }
            json_no_store(StatusCode::OK, body)
        }
        Err(TokenError::InvalidGrant(why)) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
        }
        Err(TokenError::InvalidScope(why)) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", why)
        }
        Err(TokenError::UnauthorizedClient(why)) => {
            oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client", why)
        }
    })
}

/// RFC 7009. The answer is 200 whether or not the token was valid, so it tells a
/// caller nothing about tokens it does not hold.
pub async fn revoke(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    let f = form.into_inner();
    let client = match authenticate(&req, &st, &f, Purpose::Token).await? {
        Ok(c) => c,
        Err(res) => return Ok(res),
    };
    let Some(token) = f.token.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        ));
    };
    st.oidc
        .revoke(&client, token, &audit_ctx(&req, &st, &client))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .finish())
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
    let generation = st.oidc.generation().await;
    let caller = match authenticate(&req, &st, &f, Purpose::Introspection(generation)).await? {
        Ok(c) => c,
        Err(res) => return Ok(res),
    };
    let Some(token) = f.token.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        ));
    };
    // For resource servers, not browsers: no CORS here.
    let mut res = json_no_store(
        StatusCode::OK,
        st.oidc
            .introspect(generation, &caller.client_id, token)
            .await?,
    );
    res.headers_mut()
        .remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    Ok(res)
}

pub async fn userinfo(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let unauthorized = || {
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .finish()
    };
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
    match st.oidc.userinfo(token.trim()).await? {
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
