//! `/admin/service-accounts` (list, create) and `/admin/service-accounts/{id}` (its
//! tokens: create, shown once, revoke; delete the account). Each needs `users.write`;
//! changes also a recent sign-in and a CSRF token.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::access::permissions::Permission;
use crate::auth::access::service_accounts::{ServiceAccount, ServiceAccountError};
use crate::auth::access::tokens::{NewToken, TokenError};
use crate::domain::personal_tokens::{DEFAULT_SCOPE, EXPIRY_CHOICES, SCOPES};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::form::{Pairs, all_of, field};
use crate::web::handlers::see_other;
use crate::web::url_encode as enc;
use crate::web::views::{
    AdminServiceAccountPage, AdminServiceAccountsPage, ExpiryChoice, ScopeChoice,
    ServiceAccountView, TokenView, render, when,
};

const LIST: &str = "/admin/service-accounts";

/// The lifetime the token form offers first, in days.
const DEFAULT_DAYS: u32 = 90;

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<String> {
    done.map(|d| {
        match d {
            "created" => "The service account was created.",
            "deleted" => "The service account was deleted; its tokens no longer work.",
            "revoked" => "Revoked. Scripts using that token are refused from now on.",
            "client-deleted" => {
                "The client was deleted. Its secret and its access tokens no longer work."
            }
            _ => "Done.",
        }
        .to_string()
    })
}

/// A refusal the administrator can act on as (status, message).
fn refusal(e: ServiceAccountError) -> Result<(StatusCode, String), AppError> {
    let status = match e {
        ServiceAccountError::Internal(e) => return Err(e.into()),
        ServiceAccountError::Token(TokenError::Internal(e)) => return Err(e.into()),
        ServiceAccountError::NoSuchAccount => return Err(AppError::NotFound),
        ServiceAccountError::Exists(_) => StatusCode::CONFLICT,
        ServiceAccountError::NoSuchGroup(_) => StatusCode::NOT_FOUND,
        ServiceAccountError::BadName(_) | ServiceAccountError::Token(_) => StatusCode::BAD_REQUEST,
    };
    Ok((status, e.to_string()))
}

/// A refusal where there is no form to show it next to.
fn fail(e: ServiceAccountError) -> AppError {
    match refusal(e) {
        Ok((_, msg)) => AppError::BadRequest(msg),
        Err(e) => e,
    }
}

fn view(a: ServiceAccount) -> ServiceAccountView {
    ServiceAccountView {
        id: a.id,
        name: a.name,
        email: a.email,
        group: a.group,
        tokens: a.tokens,
    }
}

async fn list_page(
    ctx: &Ctx,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let accounts = ctx
        .state
        .service_accounts
        .list()
        .await?
        .into_iter()
        .map(view)
        .collect();
    let groups = ctx
        .state
        .groups
        .list()
        .await?
        .into_iter()
        .map(|g| g.name)
        .collect();
    Ok(render(
        status,
        &AdminServiceAccountsPage {
            chrome: ctx.chrome(),
            accounts,
            groups,
            notice,
            error,
        },
    ))
}

pub async fn list(ctx: Ctx, q: web::Query<DoneQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::UsersWrite).await?;
    list_page(&ctx, StatusCode::OK, notice(q.done.as_deref()), None).await
}

pub async fn create(ctx: Ctx, form: Pairs) -> Result<HttpResponse, AppError> {
    ctx.require_permission_recent(Permission::UsersWrite, LIST)
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    match ctx
        .state
        .service_accounts
        .create(field(&form, "name"), field(&form, "group"), &ctx.audit())
        .await
    {
        // A fresh uuid: nothing in it needs escaping.
        Ok(id) => Ok(see_other(&format!("{LIST}/{id}?done=created"))),
        Err(e) => {
            let (status, msg) = refusal(e)?;
            list_page(&ctx, status, None, Some(msg)).await
        }
    }
}

/// A secret just made, shown on the account's page this once.
#[derive(Default)]
struct Shown {
    token: Option<String>,
    /// Client id and secret.
    client: Option<(String, String)>,
}

async fn account_page(
    ctx: &Ctx,
    id: &str,
    status: StatusCode,
    shown: Shown,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let sa = &ctx.state.service_accounts;
    let Some(account) = sa.get(id).await? else {
        return Err(AppError::NotFound);
    };
    let (tokens, clients) = match (sa.tokens(id).await, sa.clients(id).await) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(e), _) | (_, Err(e)) => return Err(fail(e)),
    };
    let clients = clients
        .into_iter()
        .map(|c| (c.client_id, when(c.created_at)))
        .collect();
    let tokens = tokens
        .into_iter()
        .map(|t| TokenView {
            scopes: t.scopes.join(", "),
            created: when(t.created_at),
            last_used: t.last_used_at.map(when).unwrap_or_else(|| "never".into()),
            expires: t.expires_at.map(when).unwrap_or_else(|| "never".into()),
            id: t.id,
            name: t.name,
        })
        .collect();
    let scopes = SCOPES
        .iter()
        .enumerate()
        .map(|(i, (value, what))| ScopeChoice {
            id: format!("scope-{i}"),
            value,
            what,
            checked: *value == DEFAULT_SCOPE,
        })
        .collect();
    let expiries = EXPIRY_CHOICES
        .iter()
        .map(|d| ExpiryChoice {
            value: d.map_or_else(|| "never".to_string(), |d| d.to_string()),
            label: d.map_or_else(|| "Never".to_string(), |d| format!("{d} days")),
            selected: *d == Some(DEFAULT_DAYS),
        })
        .collect();
    let mut res = render(
        status,
        &AdminServiceAccountPage {
            chrome: ctx.chrome(),
            account: view(account),
            tokens,
            created: shown.token,
            notice,
            error,
            scopes,
            expiries,
            clients,
            new_client: shown.client,
        },
    );
    // The page may hold a secret: no cache keeps it.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

pub async fn show(
    ctx: Ctx,
    path: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::UsersWrite).await?;
    account_page(
        &ctx,
        &path,
        StatusCode::OK,
        Shown::default(),
        notice(q.done.as_deref()),
        None,
    )
    .await
}

pub async fn create_token(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let back = format!("{LIST}/{}", enc(&id));
    ctx.require_permission_recent(Permission::UsersWrite, &back)
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let days = match field(&form, "expires_in_days") {
        "" | "never" => None,
        d => Some(d.parse::<u32>().unwrap_or(0)), // 0 is refused with the expiry's message
    };
    let new = NewToken {
        name: field(&form, "name").to_string(),
        scopes: all_of(&form, "scope"),
        expires_in_days: days,
    };
    match ctx
        .state
        .service_accounts
        .create_token(&id, new, &ctx.audit())
        .await
    {
        Ok(secret) => {
            let shown = Shown {
                token: Some(secret),
                ..Shown::default()
            };
            account_page(&ctx, &id, StatusCode::OK, shown, None, None).await
        }
        Err(e) => {
            let (status, msg) = refusal(e)?;
            account_page(&ctx, &id, status, Shown::default(), None, Some(msg)).await
        }
    }
}

pub async fn revoke_token(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let back = format!("{LIST}/{}", enc(&id));
    ctx.require_permission_recent(Permission::UsersWrite, &back)
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    match ctx
        .state
        .service_accounts
        .revoke_token(&id, field(&form, "id"), &ctx.audit())
        .await
    {
        // The service found the account by this id: it is a real one, safe as it is.
        Ok(true) => Ok(see_other(&format!("{LIST}/{id}?done=revoked"))),
        Ok(false) => Err(AppError::NotFound),
        Err(e) => Err(fail(e)),
    }
}

pub async fn delete(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let back = format!("{LIST}/{}", enc(&id));
    ctx.require_permission_recent(Permission::UsersWrite, &back)
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    match ctx.state.service_accounts.delete(&id, &ctx.audit()).await {
        Ok(()) => Ok(see_other(&format!("{LIST}?done=deleted"))),
        Err(e) => Err(fail(e)),
    }
}

/// New client credentials for the account, shown once.
pub async fn add_client(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let back = format!("{LIST}/{}", enc(&id));
    ctx.require_permission_recent(Permission::UsersWrite, &back)
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    match ctx
        .state
        .service_accounts
        .add_client(&id, &ctx.audit())
        .await
    {
        Ok(client) => {
            let shown = Shown {
                client: Some(client),
                ..Shown::default()
            };
            account_page(&ctx, &id, StatusCode::OK, shown, None, None).await
        }
        Err(e) => Err(fail(e)),
    }
}

pub async fn delete_client(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let back = format!("{LIST}/{}", enc(&id));
    ctx.require_permission_recent(Permission::UsersWrite, &back)
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    match ctx
        .state
        .service_accounts
        .delete_client(&id, field(&form, "client_id"), &ctx.audit())
        .await
    {
        // The service found the account by this id: it is a real one, safe as it is.
        Ok(true) => Ok(see_other(&format!("{LIST}/{id}?done=client-deleted"))),
        Ok(false) => Err(AppError::NotFound),
        Err(e) => Err(fail(e)),
    }
}
