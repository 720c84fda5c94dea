//! `/admin/clients`: OAuth / OpenID Connect clients (create, edit, rotate the secret,
//! delete). Every route needs `clients.write`; changes also need a recent sign-in.
//! Rotating asks first; deleting asks for the client's name typed out.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::auth::access::permissions::Permission;
use crate::auth::oauth::authorize::{GRANTS, NewClient, SCOPES};
use crate::auth::oauth::signing_keys::ALGS;
use crate::auth::oauth::{Client, ClientError};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::form::{Pairs, all_of, field};
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::{DoneQuery, see_other};
use crate::web::views::{AdminClientPage, AdminClientsPage, Choice, ClientForm, ClientRow, render};

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Who may use a client, in a few words for the list.
fn access_summary(c: &Client) -> String {
    let groups = c.allowed_groups();
    let who = if groups.is_empty() {
        "Everyone".to_string()
    } else {
        groups.join(", ")
    };
    let who = if c.allowed_networks().is_empty() {
        who
    } else {
        format!("{who}, from {}", c.allowed_networks().join(", "))
    };
    if c.require_two_factor {
        format!("{who} (second factor)")
    } else {
        who
    }
}

fn choices(all: &[&'static str], chosen: &[String]) -> Vec<Choice> {
    all.iter()
        .map(|v| Choice {
            value: v,
            checked: chosen.iter().any(|c| c == v),
        })
        .collect()
}

fn form_of(c: &Client) -> ClientForm {
    let settings = NewClient {
        name: c.name.clone(),
        redirect_uris: c.redirect_uris(),
        post_logout_redirect_uris: c.post_logout_redirect_uris(),
        public: c.is_public(),
        scopes: c.scopes(),
        grants: c.grants(),
        skip_consent: c.skip_consent,
        id_token_alg: c.id_token_alg.clone(),
        allowed_groups: c.allowed_groups(),
        require_two_factor: c.require_two_factor,
        allowed_networks: c.allowed_networks(),
        require_par: c.require_par,
        auth_method: Some(c.token_endpoint_auth_method.clone()),
        jwks: None,
    };
    form_from(&settings, Some(c.client_id.clone()))
}

fn blank_form() -> ClientForm {
    ClientForm {
        client_id: None,
        name: String::new(),
        redirect_uris: String::new(),
        post_logout_redirect_uris: String::new(),
        public: false,
        scopes: choices(
            &SCOPES,
            &["openid".into(), "profile".into(), "email".into()],
        ),
        grants: choices(
            &GRANTS,
            &["authorization_code".into(), "refresh_token".into()],
        ),
        skip_consent: false,
        algs: choices(&ALGS, &["RS256".into()]),
        allowed_groups: String::new(),
        require_two_factor: false,
        allowed_networks: String::new(),
        require_par: false,
        known_groups: Vec::new(),
    }
}

/// What the admin typed, for saving and for showing again after an error.
fn submitted(pairs: &[(String, String)]) -> NewClient {
    NewClient {
        name: field(pairs, "name").to_string(),
        redirect_uris: lines(field(pairs, "redirect_uris")),
        post_logout_redirect_uris: lines(field(pairs, "post_logout_redirect_uris")),
        public: field(pairs, "public") == "1",
        scopes: all_of(pairs, "scope"),
        grants: all_of(pairs, "grant"),
        skip_consent: field(pairs, "skip_consent") == "1",
        id_token_alg: field(pairs, "id_token_alg").to_string(),
        allowed_groups: field(pairs, "allowed_groups")
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
        require_two_factor: field(pairs, "require_two_factor") == "1",
        allowed_networks: field(pairs, "allowed_networks")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
        require_par: field(pairs, "require_par") == "1",
        // The admin pages register secrets; keys are registered from the command line.
        auth_method: None,
        jwks: None,
    }
}

fn form_from(n: &NewClient, id: Option<String>) -> ClientForm {
    ClientForm {
        client_id: id,
        name: n.name.clone(),
        redirect_uris: n.redirect_uris.join("\n"),
        post_logout_redirect_uris: n.post_logout_redirect_uris.join("\n"),
        public: n.public,
        scopes: choices(&SCOPES, &n.scopes),
        grants: choices(&GRANTS, &n.grants),
        skip_consent: n.skip_consent,
        algs: choices(&ALGS, std::slice::from_ref(&n.id_token_alg)),
        allowed_groups: n.allowed_groups.join(", "),
        require_two_factor: n.require_two_factor,
        allowed_networks: n.allowed_networks.join(", "),
        require_par: n.require_par,
        known_groups: Vec::new(),
    }
}

async fn list_page(
    ctx: &Ctx,
    status: StatusCode,
    form: ClientForm,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let form = with_groups(ctx, form).await?;
    let clients = ctx
        .state
        .oauth
        .clients()
        .await?
        .into_iter()
        .map(|c| ClientRow {
            kind: if c.is_public() {
                "public"
            } else {
                "confidential"
            },
            grants: c.grants.clone(),
            redirect_uris: c.redirect_uris(),
            access: access_summary(&c),
            client_id: c.client_id,
            name: c.name,
        })
        .collect();
    Ok(render(
        status,
        &AdminClientsPage {
            chrome: ctx.chrome(),
            clients,
            form,
            notice,
            error,
        },
    ))
}

pub async fn list(ctx: Ctx, q: web::Query<DoneQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::ClientsWrite).await?;
    let notice = (q.done.as_deref() == Some("deleted")).then(|| "The client was deleted.".into());
    list_page(&ctx, StatusCode::OK, blank_form(), notice, None).await
}

pub async fn create(ctx: Ctx, form: Pairs) -> Result<HttpResponse, AppError> {
    ctx.require_permission_recent(Permission::ClientsWrite, "/admin/clients")
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let new = submitted(&form);
    let shown = form_from(&new, None);
    match ctx.state.oauth.create_client(new, &ctx.audit()).await {
        Ok((id, secret)) => {
            let client = existing(&ctx, &id).await?;
            client_page(
                &ctx,
                StatusCode::CREATED,
                form_of(&client),
                secret,
                Some("The client was created."),
                None,
            )
            .await
        }
        Err(ClientError::Invalid(why)) => {
            list_page(&ctx, StatusCode::BAD_REQUEST, shown, None, Some(why)).await
        }
        Err(ClientError::Internal(e)) => Err(e.into()),
    }
}

/// The form with the names of the groups that exist, offered for "Allowed groups".
async fn with_groups(ctx: &Ctx, mut form: ClientForm) -> Result<ClientForm, AppError> {
    form.known_groups = super::group_names(ctx).await?;
    Ok(form)
}

/// One client's page: its form, and a secret when one was just generated.
async fn client_page(
    ctx: &Ctx,
    status: StatusCode,
    form: ClientForm,
    secret: Option<String>,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let form = with_groups(ctx, form).await?;
    Ok(render(
        status,
        &AdminClientPage {
            chrome: ctx.chrome(),
            form,
            secret,
            notice: notice.map(str::to_string),
            error,
        },
    ))
}

async fn existing(ctx: &Ctx, id: &str) -> Result<Client, AppError> {
    ctx.state
        .oauth
        .find_client(id)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn show(
    ctx: Ctx,
    path: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::ClientsWrite).await?;
    let client = existing(&ctx, &path).await?;
    client_page(
        &ctx,
        StatusCode::OK,
        form_of(&client),
        None,
        (q.done.as_deref() == Some("saved")).then_some("The client was saved."),
        None,
    )
    .await
}

/// What every change to one client checks first: a recent sign-in with the
/// write permission, the form's CSRF token, and that the client exists.
async fn writable(
    ctx: &Ctx,
    path: web::Path<String>,
    form: &Pairs,
) -> Result<(String, Client), AppError> {
    let id = path.into_inner();
    ctx.require_permission_recent(Permission::ClientsWrite, &format!("/admin/clients/{id}"))
        .await?;
    ctx.check_csrf(field(form, "csrf_token"))?;
    let client = existing(ctx, &id).await?;
    Ok((id, client))
}

pub async fn update(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let (id, client) = writable(&ctx, path, &form).await?;
    let mut new = submitted(&form);
    new.public = client.is_public();
    let shown = form_from(&new, Some(id.clone()));
    match ctx.state.oauth.update_client(&id, new, &ctx.audit()).await {
        Ok(()) => Ok(see_other(&format!("/admin/clients/{id}?done=saved"))),
        Err(ClientError::Internal(e)) => Err(e.into()),
        Err(ClientError::Invalid(why)) => {
            client_page(&ctx, StatusCode::BAD_REQUEST, shown, None, None, Some(why)).await
        }
    }
}

pub async fn rotate_secret(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let (id, client) = writable(&ctx, path, &form).await?;
    let message = format!(
        "{} gets a new secret, shown once on the next page; the current secret stops working at once, so the app fails until it is given the new one.",
        client.name
    );
    // The client was found by this id: it is a real one, safe in a link as it is.
    let back = format!("/admin/clients/{id}");
    let ask = Ask {
        heading: "Rotate this client's secret?",
        message: &message,
        yes: "Yes, rotate",
        fields: &[],
        cancel: &back,
    };
    if let Some(page) = confirm::ask(&ctx, field(&form, "confirm"), ask) {
        return Ok(page);
    }
    let secret = match ctx.state.oauth.rotate_secret(&id, &ctx.audit()).await {
        Ok(secret) => secret,
        Err(ClientError::Invalid(why)) => return Err(AppError::BadRequest(why)),
        Err(ClientError::Internal(e)) => return Err(e.into()),
    };
    client_page(
        &ctx,
        StatusCode::OK,
        form_of(&client),
        Some(secret),
        Some("A new secret is in place; the old one no longer works."),
        None,
    )
    .await
}

pub async fn delete(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let (id, client) = writable(&ctx, path, &form).await?;
    if field(&form, "confirm").trim() != client.name {
        return client_page(
            &ctx,
            StatusCode::BAD_REQUEST,
            form_of(&client),
            None,
            None,
            Some("Type the client's name exactly to delete it.".into()),
        )
        .await;
    }
    ctx.state.oauth.delete_client(&id, &ctx.audit()).await?;
    Ok(see_other("/admin/clients?done=deleted"))
}
