//! `/admin/service-accounts` (list, create) and `/admin/service-accounts/{id}` (its
//! tokens: create, shown once, revoke; delete the account). Each needs `users.write`;
//! changes also a recent sign-in and a CSRF token, and whatever takes a credential
//! away asks first.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::auth::access::permissions::Permission;
use crate::auth::access::service_accounts::{ServiceAccount, ServiceAccountError};
use crate::auth::access::tokens::{NewToken, TokenError};
use crate::domain::personal_tokens::DEFAULT_SCOPE;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::form::{Pairs, all_of, field};
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::{DoneQuery, Shown, see_other};
use crate::web::url_encode as enc;
use crate::web::views::{
    AdminServiceAccountPage, AdminServiceAccountsPage, ExpiryChoice, ScopeChoice,
    ServiceAccountView, TokenView, render, render_secret, when,
};

const LIST: &str = "/admin/service-accounts";

/// The lifetime the token form offers first, in days.
const DEFAULT_DAYS: u32 = 90;

/// The notices after `?done=…`.
const NOTICES: &[(&str, &str)] = &[
    ("created", "The service account was created."),
    (
        "deleted",
        "The service account was deleted; its tokens no longer work.",
    ),
    (
        "revoked",
        "Revoked. Scripts using that token are refused from now on.",
    ),
    (
        "client-deleted",
        "The client was deleted. Its secret and its access tokens no longer work.",
    ),
];

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

async fn list_page(ctx: &Ctx, shown: Shown) -> Result<HttpResponse, AppError> {
    let accounts = ctx
        .state
        .service_accounts
        .list()
        .await?
        .into_iter()
        .map(view)
        .collect();
    let groups = super::group_names(ctx).await?;
    Ok(render(
        shown.status,
        &AdminServiceAccountsPage {
            chrome: ctx.chrome(),
            accounts,
            groups,
            notice: shown.notice,
            error: shown.error,
        },
    ))
}

pub async fn list(ctx: Ctx, q: web::Query<DoneQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::UsersWrite).await?;
    list_page(&ctx, Shown::ok(q.notice(NOTICES))).await
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
        Err(e) => list_page(&ctx, Shown::refused(refusal(e)?)).await,
    }
}

/// A secret just made, shown on the account's page this once.
enum Secret {
    None,
    Token(String),
    /// Client id and secret.
    Client((String, String)),
}

async fn account_page(
    ctx: &Ctx,
    id: &str,
    shown: Shown,
    secret: Secret,
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
    let tokens = tokens.into_iter().map(TokenView::of).collect();
    let (created, new_client) = match secret {
        Secret::None => (None, None),
        Secret::Token(t) => (Some(t), None),
        Secret::Client(c) => (None, Some(c)),
    };
    let scopes = ScopeChoice::all(&[DEFAULT_SCOPE]);
    let expiries = ExpiryChoice::all(Some(DEFAULT_DAYS));
    Ok(render_secret(
        shown.status,
        &AdminServiceAccountPage {
            chrome: ctx.chrome(),
            account: view(account),
            tokens,
            created,
            notice: shown.notice,
            error: shown.error,
            scopes,
            expiries,
            clients,
            new_client,
        },
    ))
}

pub async fn show(
    ctx: Ctx,
    path: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::UsersWrite).await?;
    let shown = Shown::ok(q.notice(NOTICES));
    account_page(&ctx, &path, shown, Secret::None).await
}

/// The account's id from the path, once the administrator may change it (a recent
/// sign-in) and the form's CSRF token checked.
async fn writable(ctx: &Ctx, path: web::Path<String>, form: &Pairs) -> Result<String, AppError> {
    let id = path.into_inner();
    let back = format!("{LIST}/{}", enc(&id));
    ctx.require_permission_recent(Permission::UsersWrite, &back)
        .await?;
    ctx.check_csrf(field(form, "csrf_token"))?;
    Ok(id)
}

pub async fn create_token(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = writable(&ctx, path, &form).await?;
    let new = NewToken {
        name: field(&form, "name").to_string(),
        scopes: all_of(&form, "scope"),
        expires_in_days: ExpiryChoice::parse(field(&form, "expires_in_days")),
    };
    match ctx
        .state
        .service_accounts
        .create_token(&id, new, &ctx.audit())
        .await
    {
        Ok(token) => account_page(&ctx, &id, Shown::ok(None), Secret::Token(token)).await,
        Err(e) => {
            let shown = Shown::refused(refusal(e)?);
            account_page(&ctx, &id, shown, Secret::None).await
        }
    }
}

pub async fn revoke_token(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = writable(&ctx, path, &form).await?;
    let sa = &ctx.state.service_accounts;
    let token_id = field(&form, "id");
    let account = sa.get(&id).await?.ok_or(AppError::NotFound)?;
    let tokens = sa.tokens(&id).await.map_err(fail)?;
    // Another account's token is as unknown as a made-up id.
    let Some(token) = tokens.iter().find(|t| t.id == token_id) else {
        return Err(AppError::NotFound);
    };
    let message = format!(
        "Scripts using the token \"{}\" of the service account {} are refused from the next request. This cannot be undone.",
        token.name, account.name
    );
    let back = format!("{LIST}/{id}");
    let ask = Ask {
        heading: "Revoke this token?",
        message: &message,
        yes: "Yes, revoke",
        fields: &[("id", token_id)],
        cancel: &back,
    };
    if let Some(page) = confirm::ask(&ctx, field(&form, "confirm"), ask) {
        return Ok(page);
    }
    let outcome = sa.revoke_token(&id, token_id, &ctx.audit()).await;
    removed(&id, outcome, "revoked")
}

/// Where removing one of the account's credentials leads: back to the account's page
/// with `done`, or not found when the form named none of the account's.
fn removed(
    id: &str,
    outcome: Result<bool, ServiceAccountError>,
    done: &str,
) -> Result<HttpResponse, AppError> {
    match outcome {
        // The service found the account by this id: it is a real one, safe as it is.
        Ok(true) => Ok(see_other(&format!("{LIST}/{id}?done={done}"))),
        Ok(false) => Err(AppError::NotFound),
        Err(e) => Err(fail(e)),
    }
}

pub async fn delete(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = writable(&ctx, path, &form).await?;
    let back = format!("{LIST}/{id}");
    let ask = Ask {
        heading: "Delete this service account?",
        message: "Its tokens and client credentials stop working at once.",
        yes: "Yes, delete",
        fields: &[],
        cancel: &back,
    };
    if let Some(page) = confirm::ask(&ctx, field(&form, "confirm"), ask) {
        return Ok(page);
    }
    let sa = &ctx.state.service_accounts;
    sa.delete(&id, &ctx.audit()).await.map_err(fail)?;
    Ok(see_other(&format!("{LIST}?done=deleted")))
}

/// New client credentials for the account, shown once.
pub async fn add_client(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = writable(&ctx, path, &form).await?;
    let sa = &ctx.state.service_accounts;
    let client = sa.add_client(&id, &ctx.audit()).await.map_err(fail)?;
    account_page(&ctx, &id, Shown::ok(None), Secret::Client(client)).await
}

pub async fn delete_client(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = writable(&ctx, path, &form).await?;
    let sa = &ctx.state.service_accounts;
    let client = field(&form, "client_id");
    let account = sa.get(&id).await?.ok_or(AppError::NotFound)?;
    let clients = sa.clients(&id).await.map_err(fail)?;
    // Another account's client is not this account's to delete.
    if !clients.iter().any(|c| c.client_id == client) {
        return Err(AppError::NotFound);
    }
    let message = format!(
        "The client {client} of the service account {} is deleted: its secret and the access tokens it was given stop working at once. This cannot be undone.",
        account.name
    );
    let back = format!("{LIST}/{id}");
    let ask = Ask {
        heading: "Delete this client?",
        message: &message,
        yes: "Yes, delete",
        fields: &[("client_id", client)],
        cancel: &back,
    };
    if let Some(page) = confirm::ask(&ctx, field(&form, "confirm"), ask) {
        return Ok(page);
    }
    let outcome = sa.delete_client(&id, client, &ctx.audit()).await;
    removed(&id, outcome, "client-deleted")
}
