//! `/admin/roles` (custom roles and their permissions; deleting one asks first) and
//! `/admin/settings`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::auth::access::permissions::Permission;
use crate::auth::access::roles::RoleError;
use crate::auth::settings::{Registration, parse_domains};
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::form::{Pairs, all_of, field};
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::{DoneQuery, see_other};
use crate::web::views::{AdminRolesPage, AdminSettingsPage, PermissionView, RoleView, render};

async fn roles_page(
    ctx: &Ctx,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let rows = ctx.state.roles.list().await?;
    let roles = rows
        .into_iter()
        .map(|r| RoleView {
            permissions: Permission::ALL
                .iter()
                .map(|p| PermissionView {
                    name: p.name(),
                    describe: p.describe(),
                    held: r.permissions.iter().any(|n| n == p.name()),
                })
                .collect(),
            name: r.name,
            description: r.description,
            builtin: r.builtin,
            holders: r.holders,
        })
        .collect();
    Ok(render(
        status,
        &AdminRolesPage {
            chrome: ctx.chrome(),
            roles,
            all: Permission::ALL
                .iter()
                .map(|p| PermissionView {
                    name: p.name(),
                    describe: p.describe(),
                    held: false,
                })
                .collect(),
            notice,
            error,
        },
    ))
}

pub async fn show(ctx: Ctx, q: web::Query<DoneQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::RolesWrite).await?;
    let notice = q.done.as_deref().map(|d| match d {
        "created" => "The role was created.".to_string(),
        "deleted" => "The role was deleted.".to_string(),
        _ => "The role was saved.".to_string(),
    });
    roles_page(&ctx, StatusCode::OK, notice, None).await
}

fn role_error(e: RoleError) -> Result<(StatusCode, String), AppError> {
    let status = match e {
        RoleError::Internal(e) => return Err(e.into()),
        RoleError::Escalation | RoleError::Builtin | RoleError::Outranked => StatusCode::FORBIDDEN,
        RoleError::Exists(_) => StatusCode::CONFLICT,
        RoleError::NoSuchRole(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    Ok((status, e.to_string()))
}

async fn save(ctx: Ctx, name: Option<String>, form: Pairs) -> Result<HttpResponse, AppError> {
    let admin = ctx
        .require_permission_recent(Permission::RolesWrite, "/admin/roles")
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let existing = name.is_some();
    let name = name.unwrap_or_else(|| field(&form, "name").to_string());
    match ctx
        .state
        .roles
        .save(
            &admin.perms,
            &name,
            field(&form, "description"),
            &all_of(&form, "permission"),
            existing,
            &ctx.audit(),
        )
        .await
    {
        Ok(()) => Ok(see_other(if existing {
            "/admin/roles?done=saved"
        } else {
            "/admin/roles?done=created"
        })),
        Err(e) => {
            let (status, msg) = role_error(e)?;
            roles_page(&ctx, status, None, Some(msg)).await
        }
    }
}

pub async fn create(ctx: Ctx, form: Pairs) -> Result<HttpResponse, AppError> {
    save(ctx, None, form).await
}

pub async fn update(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    save(ctx, Some(path.into_inner()), form).await
}

pub async fn delete(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let admin = ctx
        .require_permission_recent(Permission::RolesWrite, "/admin/roles")
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let roles = ctx.state.roles.list().await?;
    let Some(role) = roles.iter().find(|r| r.name == *path) else {
        return Err(AppError::NotFound);
    };
    let holders = match role.holders {
        0 => "No user holds it.".to_string(),
        1 => "One user holds it and loses its permissions at once.".to_string(),
        n => format!("{n} users hold it and lose its permissions at once."),
    };
    let message = format!("The role \"{}\" is deleted. {holders}", role.name);
    let ask = Ask {
        heading: "Delete this role?",
        message: &message,
        yes: "Yes, delete",
        fields: &[],
        cancel: "/admin/roles",
    };
    if let Some(page) = confirm::ask(&ctx, field(&form, "confirm"), ask) {
        return Ok(page);
    }
    match ctx
        .state
        .roles
        .delete(&admin.perms, &path, &ctx.audit())
        .await
    {
        Ok(()) => Ok(see_other("/admin/roles?done=deleted")),
        Err(e) => {
            let (status, msg) = role_error(e)?;
            roles_page(&ctx, status, None, Some(msg)).await
        }
    }
}

async fn settings_page(
    ctx: &Ctx,
    status: StatusCode,
    current: Registration,
    domains_input: Option<String>,
    notice: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    render(
        status,
        &AdminSettingsPage {
            chrome: ctx.chrome(),
            registration_enabled: current.enabled,
            domains: domains_input.unwrap_or_else(|| current.allowed_domains.join(", ")),
            notice,
            error,
        },
    )
}

pub async fn settings_show(ctx: Ctx, q: web::Query<DoneQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::SettingsWrite).await?;
    let current = ctx.state.settings.registration().await?;
    let notice = q
        .done
        .is_some()
        .then(|| "Saved. The change is in effect on every instance.".to_string());
    Ok(settings_page(&ctx, StatusCode::OK, current, None, notice, None).await)
}

pub async fn settings_save(ctx: Ctx, form: Pairs) -> Result<HttpResponse, AppError> {
    ctx.require_permission_recent(Permission::SettingsWrite, "/admin/settings")
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let enabled = field(&form, "registration_enabled") == "on";
    let raw = field(&form, "allowed_domains").to_string();
    match parse_domains(&raw) {
        Ok(allowed_domains) => {
            let new = Registration {
                enabled,
                allowed_domains,
            };
            ctx.state
                .settings
                .set_registration(new, &ctx.audit())
                .await?;
            Ok(see_other("/admin/settings?done=1"))
        }
        Err(msg) => {
            let current = Registration {
                enabled,
                allowed_domains: Vec::new(),
            };
            Ok(settings_page(
                &ctx,
                StatusCode::BAD_REQUEST,
                current,
                Some(raw),
                None,
                Some(msg),
            )
            .await)
        }
    }
}
