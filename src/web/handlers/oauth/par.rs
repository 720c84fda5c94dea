//! `POST /oauth/par`: pushed authorization requests (RFC 9126). The client
//! authenticates as at the token endpoint (and is counted against the same per-client
//! limit); the parameters are an authorization request's, checked by the provider as
//! `/oauth/authorize` checks them. The answer is 201 with the `request_uri`, or an
//! RFC 6749 section 5.2 JSON error.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::auth::oauth::client_auth::Purpose;
use crate::auth::oauth::decision::AuthorizeRequest;
use crate::auth::oauth::{FlowError, OAuthError};
use crate::web::error::AppError;
use crate::web::form::Pairs;
use crate::web::handlers::oauth::back_channel::{ClientFields, audit_ctx, authenticate_with};
use crate::web::handlers::oauth::error::{answer, json_no_store};
use crate::web::state::AppState;

pub async fn push(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    answer(push_inner(&req, &st, &form.into_inner()).await)
}

async fn push_inner(
    req: &HttpRequest,
    st: &AppState,
    pairs: &[(String, String)],
) -> Result<HttpResponse, FlowError> {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let client = authenticate_with(
        req,
        st,
        ClientFields {
            id: get("client_id"),
            secret: get("client_secret"),
            assertion_type: get("client_assertion_type"),
            assertion: get("client_assertion"),
        },
        Purpose::Token,
    )
    .await?;
    // RFC 6749 section 3.1: no parameter twice.
    if pairs
        .iter()
        .enumerate()
        .any(|(i, (k, _))| pairs[..i].iter().any(|(n, _)| n == k))
    {
        return Err(OAuthError::InvalidRequest("a parameter was sent more than once").into());
    }
    // RFC 9126 section 2.1: a pushed request cannot point at another one.
    if get("request_uri").is_some() {
        return Err(OAuthError::InvalidRequest("request_uri cannot be pushed").into());
    }
    if get("request").is_some() {
        return Err(OAuthError::InvalidRequest("request objects are not supported").into());
    }
    let max_age = match get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => {
            return Err(OAuthError::InvalidRequest("max_age must be a number of seconds").into());
        }
    };
    let owned = |k: &str| get(k).map(str::to_string);
    let request = AuthorizeRequest {
        client_id: client.client_id.clone(),
        redirect_uri: owned("redirect_uri").unwrap_or_default(),
        response_type: owned("response_type").unwrap_or_default(),
        scope: owned("scope").unwrap_or_default(),
        state: owned("state"),
        nonce: owned("nonce"),
        code_challenge: owned("code_challenge"),
        code_challenge_method: owned("code_challenge_method"),
        prompt: owned("prompt"),
        max_age,
        acr_values: owned("acr_values"),
        login_hint: owned("login_hint"),
        path: String::new(),
        pushed: true,
    };
    let audit = audit_ctx(req, st, &client);
    let pushed = st.oauth.push(&client, request, &audit).await?;
    Ok(json_no_store(
        StatusCode::CREATED,
        json!({"request_uri": pushed.request_uri, "expires_in": pushed.expires_in}),
    ))
}
