//! `/admin/groups` (the groups, their nesting, create and delete),
//! `/admin/groups/{name}` (its members, add by email, remove, parent) and the groups
//! section of `/admin/users/{id}`. Each needs `groups.write`; writes also a recent
//! sign-in and a CSRF token; deleting a group and removing a member ask first. Who
//! may change whom is decided by the service.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::auth::access::groups::{Editor, GroupError};
use crate::auth::access::permissions::Permission;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::form::{Pairs, field};
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::{DoneQuery, Shown, see_other};
use crate::web::url_encode as enc;
use crate::web::views::{AdminGroupPage, AdminGroupsPage, GroupView, MemberView, render};

/// The notices after `?done=…`.
const NOTICES: &[(&str, &str)] = &[
    ("created", "The group was created."),
    ("deleted", "The group was deleted."),
    ("added", "The member was added."),
    ("removed", "The member was removed."),
    ("parent", "The parent group was set."),
];

/// A refusal the editor can act on as (status, message); internal errors propagate.
fn group_error(e: GroupError) -> Result<(StatusCode, String), AppError> {
    let status = match e {
        GroupError::Internal(e) => return Err(e.into()),
        GroupError::Forbidden | GroupError::Outranked => StatusCode::FORBIDDEN,
        GroupError::Exists(_) | GroupError::Cycle(..) | GroupError::OwnsServiceAccounts(..) => {
            StatusCode::CONFLICT
        }
        GroupError::NoSuchGroup(_) | GroupError::NoSuchUser(_) | GroupError::NoSuchAccount => {
            StatusCode::NOT_FOUND
        }
        GroupError::BadName(_) => StatusCode::BAD_REQUEST,
    };
    Ok((status, e.to_string()))
}

async fn list_page(ctx: &Ctx, shown: Shown) -> Result<HttpResponse, AppError> {
    let groups = ctx
        .state
        .groups
        .list()
        .await?
        .into_iter()
        .map(|g| GroupView {
            name: g.name,
            description: g.description,
            parent: g.parent.unwrap_or_default(),
            members: g.members,
        })
        .collect();
    Ok(render(
        shown.status,
        &AdminGroupsPage {
            chrome: ctx.chrome(),
            groups,
            notice: shown.notice,
            error: shown.error,
        },
    ))
}

pub async fn list(ctx: Ctx, q: web::Query<DoneQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::GroupsWrite).await?;
    list_page(&ctx, Shown::ok(q.notice(NOTICES))).await
}

async fn editor(ctx: &Ctx, back: &str) -> Result<Editor, AppError> {
    let admin = ctx
        .require_permission_recent(Permission::GroupsWrite, back)
        .await?;
    Ok(Editor::User(admin.user.uid.clone()))
}

pub async fn create(ctx: Ctx, form: Pairs) -> Result<HttpResponse, AppError> {
    let editor = editor(&ctx, "/admin/groups").await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let parent = Some(field(&form, "parent")).filter(|p| !p.trim().is_empty());
    match ctx
        .state
        .groups
        .create(
            &editor,
            field(&form, "name"),
            field(&form, "description"),
            parent,
            &ctx.audit(),
        )
        .await
    {
        Ok(()) => Ok(see_other("/admin/groups?done=created")),
        Err(e) => list_page(&ctx, Shown::refused(group_error(e)?)).await,
    }
}

pub async fn delete(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let editor = editor(&ctx, "/admin/groups").await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let ask = Ask {
        heading: "Delete this group?",
        message: "Its members leave it and lose whatever it gave them; groups inside it no longer sit inside it.",
        yes: "Yes, delete",
        fields: &[],
        cancel: "/admin/groups",
    };
    if let Some(page) = confirm::ask(&ctx, field(&form, "confirm"), ask) {
        return Ok(page);
    }
    match ctx.state.groups.delete(&editor, &path, &ctx.audit()).await {
        Ok(()) => Ok(see_other("/admin/groups?done=deleted")),
        Err(e) => list_page(&ctx, Shown::refused(group_error(e)?)).await,
    }
}

async fn group_page(ctx: &Ctx, name: &str, shown: Shown) -> Result<HttpResponse, AppError> {
    let Some(g) = ctx.state.groups.detail(name).await? else {
        return Err(AppError::NotFound);
    };
    let mut others = super::group_names(ctx).await?;
    others.retain(|x| *x != g.name);
    Ok(render(
        shown.status,
        &AdminGroupPage {
            chrome: ctx.chrome(),
            description: g.description,
            parent: g.parent.unwrap_or_default(),
            children: g.children,
            members: g
                .members
                .into_iter()
                .map(|(id, email)| MemberView { id, email })
                .collect(),
            others,
            name: g.name,
            notice: shown.notice,
            error: shown.error,
        },
    ))
}

pub async fn show(
    ctx: Ctx,
    path: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::GroupsWrite).await?;
    group_page(&ctx, &path, Shown::ok(q.notice(NOTICES))).await
}

/// `/admin/groups/{name}/{action}`: `add`, `remove` (a member, by email), `parent`.
pub async fn action(
    ctx: Ctx,
    path: web::Path<(String, String)>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let (name, action) = path.into_inner();
    let back = format!("/admin/groups/{}", enc(&name));
    let editor = editor(&ctx, &back).await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    if action == "remove" {
        let email = field(&form, "email");
        let message = format!(
            "{email} leaves the group \"{name}\" and loses whatever it gave them, from their next request."
        );
        let ask = Ask {
            heading: "Remove this member?",
            message: &message,
            yes: "Yes, remove",
            fields: &[("email", email)],
            cancel: &back,
        };
        if let Some(page) = confirm::ask(&ctx, field(&form, "confirm"), ask) {
            return Ok(page);
        }
    }
    let (groups, audit) = (&ctx.state.groups, ctx.audit());
    let outcome = match action.as_str() {
        "add" | "remove" => groups
            .set_member(
                &editor,
                &name,
                field(&form, "email"),
                action == "add",
                &audit,
            )
            .await
            .map(|_| if action == "add" { "added" } else { "removed" }),
        "parent" => {
            let parent = Some(field(&form, "parent")).filter(|p| !p.trim().is_empty());
            groups
                .set_parent(&editor, &name, parent, &audit)
                .await
                .map(|_| "parent")
        }
        _ => return Err(AppError::NotFound),
    };
    match outcome {
        Ok(done) => Ok(see_other(&format!("{back}?done={done}"))),
        Err(GroupError::NoSuchGroup(_)) => Err(AppError::NotFound),
        Err(e) => group_page(&ctx, &name, Shown::refused(group_error(e)?)).await,
    }
}

/// `/admin/users/{id}/groups`: add the user to, or remove them from, a group (`op`).
pub async fn user_groups(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let back = format!("/admin/users/{}", enc(&id));
    let editor = editor(&ctx, &back).await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let (add, group) = (field(&form, "op") == "add", field(&form, "group"));
    if !add {
        // Back to the page as `users::action` links it (the link is escaped as HTML).
        let cancel = format!("/admin/users/{id}");
        let message = format!(
            "The user leaves the group \"{group}\" and loses whatever it gave them, from their next request."
        );
        let ask = Ask {
            heading: "Remove from this group?",
            message: &message,
            yes: "Yes, remove",
            fields: &[("op", "remove"), ("group", group)],
            cancel: &cancel,
        };
        if let Some(page) = confirm::ask(&ctx, field(&form, "confirm"), ask) {
            return Ok(page);
        }
    }
    match ctx
        .state
        .groups
        .set_member_by_id(&editor, group, &id, add, &ctx.audit())
        .await
    {
        // The service found the account by this id: it is a real one, safe as it is.
        Ok(_) => Ok(see_other(&format!(
            "/admin/users/{id}?done={}",
            if add { "add-group" } else { "remove-group" }
        ))),
        Err(e) => {
            let (status, msg) = group_error(e)?;
            Err(match status {
                StatusCode::FORBIDDEN => AppError::Forbidden(msg),
                StatusCode::NOT_FOUND => AppError::NotFound,
                _ => AppError::BadRequest(msg),
            })
        }
    }
}
