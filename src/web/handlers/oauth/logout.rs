//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::oauth::decision::origin_of;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::oauth::authorize::allow_targets;
use crate::web::views::{LogoutPage, render};

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
        Some(h) => st.oauth.id_token_hint(h).await?,
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
        Some(id) => st.oauth.find_client(id).await?,
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
