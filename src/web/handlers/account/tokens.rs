//! `/account/tokens`: personal access tokens for scripts. Listing and revoking are
//! plain forms (revoking asks first); creating one shows its secret on the answer to the form, once (it is
//! never stored, so it cannot be shown again).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::access::tokens::{NewToken, TokenError};
use crate::domain::personal_tokens::DEFAULT_SCOPE;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::form::{Pairs, all_of, field};
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::{DoneQuery, see_other};
use crate::web::views::{ExpiryChoice, ScopeChoice, TokenView, TokensPage, render_secret};

const PAGE: &str = "/account/tokens";

/// The lifetime the form offers first, in days.
const DEFAULT_DAYS: u32 = 90;

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    confirm: String,
}

/// What the form held, to show it again after a refusal.
struct Filled<'a> {
    name: &'a str,
    scopes: Vec<String>,
    days: Option<u32>,
}

async fn page(
    ctx: &Ctx,
    status: StatusCode,
    created: Option<String>,
    error: Option<String>,
    notice: Option<String>,
    filled: Option<Filled<'_>>,
) -> Result<HttpResponse, AppError> {
    let u = ctx.require_user()?;
    let tokens = ctx
        .state
        .personal_tokens
        .list(&u.uid)
        .await?
        .into_iter()
        .map(TokenView::of)
        .collect();
    let (name, asked, days) = match &filled {
        Some(f) => (f.name.to_string(), f.scopes.clone(), f.days),
        None => (
            String::new(),
            vec![DEFAULT_SCOPE.to_string()],
            Some(DEFAULT_DAYS),
        ),
    };
    let scopes = ScopeChoice::all(&asked);
    let expiries = ExpiryChoice::all(days);
    Ok(render_secret(
        status,
        &TokensPage {
            chrome: ctx.chrome(),
            tokens,
            created,
            error,
            notice,
            name,
            scopes,
            expiries,
        },
    ))
}

pub async fn show(ctx: Ctx, q: web::Query<DoneQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_user()?;
    let notice = (q.done.as_deref() == Some("revoked"))
        .then(|| "Revoked. Scripts using that token are refused from now on.".to_string());
    page(&ctx, StatusCode::OK, None, None, notice, None).await
}

pub async fn create(ctx: Ctx, form: Pairs) -> Result<HttpResponse, AppError> {
    // A stolen session must not be able to plant a lasting way in.
    let u = ctx.require_recent_auth(PAGE)?.clone();
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let name = field(&form, "name");
    let scopes = all_of(&form, "scope");
    let days = ExpiryChoice::parse(field(&form, "expires_in_days"));
    let new = NewToken {
        name: name.to_string(),
        scopes: scopes.clone(),
        expires_in_days: days,
    };
    match ctx
        .state
        .personal_tokens
        .create(&u.uid, new, &ctx.audit())
        .await
    {
        Ok((_, secret)) => page(&ctx, StatusCode::OK, Some(secret), None, None, None).await,
        Err(TokenError::Input(e)) => {
            let filled = Filled { name, scopes, days };
            page(
                &ctx,
                StatusCode::BAD_REQUEST,
                None,
                Some(e.to_string()),
                None,
                Some(filled),
            )
            .await
        }
        Err(TokenError::NoSuchUser) => Err(AppError::Forbidden(
            "This account cannot make tokens.".into(),
        )),
        Err(TokenError::Internal(e)) => Err(e.into()),
    }
}

pub async fn revoke(ctx: Ctx, form: web::Form<RevokeForm>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_user()?.clone();
    ctx.check_csrf(&form.csrf_token)?;
    let tokens = ctx.state.personal_tokens.list(&u.uid).await?;
    // Another user's token is as unknown as a made-up id.
    let Some(token) = tokens.iter().find(|t| t.id == form.id) else {
        return Err(AppError::NotFound);
    };
    let message = format!(
        "Scripts using the token \"{}\" are refused from the next request. This cannot be undone: a script needs a new token to get in again.",
        token.name
    );
    let ask = Ask {
        heading: "Revoke this token?",
        message: &message,
        yes: "Yes, revoke",
        fields: &[("id", &form.id)],
        cancel: PAGE,
    };
    if let Some(page) = confirm::ask(&ctx, &form.confirm, ask) {
        return Ok(page);
    }
    if !ctx
        .state
        .personal_tokens
        .revoke(&u.uid, &form.id, &ctx.audit())
        .await?
    {
        return Err(AppError::NotFound);
    }
    Ok(see_other(&format!("{PAGE}?done=revoked")))
}
