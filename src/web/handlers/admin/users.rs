//! `/admin`, `/admin/users` and `/admin/users/{id}`. Each handler's first line names the
//! permission it needs; writes also need a recent sign-in (step-up) and a CSRF token.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::access::permissions::Permission;
use crate::auth::accounts::admin::{Actor, AdminError, DirectoryQuery, Status};
use crate::auth::audit::NamedEvent;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::{DoneQuery, see_other};
use crate::web::url_encode as enc;
use crate::web::views::{
    AdminHomePage, AdminUserPage, AdminUsersPage, EventRow, KeyRow, SessionView, UserRow, render,
    when,
};

const PAGE_SIZE: i64 = 50;

pub async fn home(ctx: Ctx) -> Result<HttpResponse, AppError> {
    // Anyone holding at least one admin permission; each section checks its own.
    let user = ctx.require_user()?.clone();
    let perms = ctx.state.access.permissions(&user.uid).await?;
    let Some(first) = perms.iter().next().copied() else {
        return Err(AppError::Forbidden(
            "You do not have access to this page.".into(),
        ));
    };
    ctx.require_permission(first).await?;
    Ok(render(
        StatusCode::OK,
        &AdminHomePage {
            chrome: ctx.chrome(),
            perms: perms.iter().map(|p| p.name()).collect(),
        },
    ))
}

#[derive(Deserialize, Default)]
pub struct UsersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    mfa: String,
    after: Option<String>,
}

pub async fn users(ctx: Ctx, q: web::Query<UsersQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::UsersRead).await?;
    let q = q.into_inner();
    let query = DirectoryQuery {
        prefix: Some(q.q.trim().to_lowercase()).filter(|s| !s.is_empty()),
        role: Some(q.role.clone()).filter(|s| !s.is_empty()),
        status: match q.status.as_str() {
            "active" => Some(Status::Active),
            "disabled" => Some(Status::Disabled),
            "unverified" => Some(Status::Unverified),
            _ => None,
        },
        second_factor: match q.mfa.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        after: q.after.clone(),
    };
    let found = ctx.state.admin.directory(query, PAGE_SIZE).await?;
    let (roles, more, found) = (found.roles, found.more, found.users);
    let next = more.then(|| {
        format!(
            "q={}&role={}&status={}&mfa={}&after={}",
            enc(&q.q),
            enc(&q.role),
            enc(&q.status),
            enc(&q.mfa),
            enc(&found
                .last()
                .map(|u| u.email_normalized.clone())
                .unwrap_or_default())
        )
    });
    let users = found
        .into_iter()
        .map(|u| UserRow {
            status: match Status::of(&u) {
                Status::Disabled => "Disabled",
                Status::Unverified => "Email not confirmed",
                Status::Active => "Active",
            },
            created: when(u.created_at),
            name: u.display_name.unwrap_or_default(),
            email: u.email,
            id: u.id,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &AdminUsersPage {
            chrome: ctx.chrome(),
            q: q.q,
            role: q.role,
            status: q.status,
            mfa: q.mfa,
            roles,
            users,
            next,
        },
    ))
}

/// Audit rows for display, with user ids shown as email addresses where known.
pub fn event_rows(events: Vec<NamedEvent>) -> Vec<EventRow> {
    events
        .into_iter()
        .map(|n| EventRow {
            id: n.event.id,
            time: when(n.event.created_at),
            actor: n.actor,
            target: n.target,
            event: n.event.event,
            outcome: n.event.outcome,
            ip: n.event.ip.unwrap_or_default(),
            details: n.event.details,
        })
        .collect()
}

async fn user_page(
    ctx: &Ctx,
    id: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let admin = ctx.require_permission(Permission::UsersRead).await?;
    let Some(d) = ctx.state.admin.detail(id).await? else {
        return Err(AppError::NotFound);
    };
    let sessions = d
        .sessions
        .into_iter()
        .map(|r| SessionView::of(r, false))
        .collect();
    let events = event_rows(d.events);
    let groups = ctx.state.groups.of_user(&d.user.id).await?;
    let can_groups = admin.perms.contains(&Permission::GroupsWrite);
    Ok(render(
        status,
        &AdminUserPage {
            chrome: ctx.chrome(),
            id: d.user.id.clone(),
            email: d.user.email.clone(),
            name: d.user.display_name.clone().unwrap_or_default(),
            verified: d.user.email_verified,
            disabled: d.user.disabled,
            created: when(d.user.created_at),
            other_roles: d
                .all_roles
                .into_iter()
                .filter(|r| !d.roles.contains(r))
                .collect(),
            roles: d.roles,
            inherited_groups: groups
                .effective
                .iter()
                .filter(|g| !groups.direct.contains(g))
                .cloned()
                .collect(),
            other_groups: groups
                .all
                .iter()
                .filter(|g| !groups.direct.contains(g))
                .cloned()
                .collect(),
            groups: groups.direct,
            can_groups,
            totp: d.totp,
            keys: d
                .keys
                .iter()
                .map(|k| KeyRow {
                    name: k.name.clone(),
                    kind: if k.kind == crate::auth::mfa::webauthn::KIND_PASSKEY {
                        "Passkey"
                    } else {
                        "Security key"
                    },
                    last_used: k.last_used_at.map(when).unwrap_or_else(|| "never".into()),
                })
                .collect(),
            recovery_codes_left: d.recovery_codes_left,
            sessions,
            events,
            can_write: admin.perms.contains(&Permission::UsersWrite),
            notice,
            error,
        },
    ))
}

pub async fn user(
    ctx: Ctx,
    path: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, AppError> {
    let notice = q.done.as_deref().map(|d| {
        match d {
            "assign-role" => "The role was assigned.",
            "remove-role" => "The role was removed.",
            "disable" => "The account is disabled and signed out everywhere.",
            "enable" => "The account is enabled again.",
            "revoke-sessions" => "Every session and app of this user was signed out.",
            "reset-second-factors" => {
                "Second factors removed: the user signs in with the password and enrols again."
            }
            "send-password-reset" => "A password reset link was sent.",
            "add-group" => "The user was added to the group.",
            "remove-group" => "The user was removed from the group.",
            _ => "Done.",
        }
        .to_string()
    });
    user_page(&ctx, &path, StatusCode::OK, notice, None).await
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    confirm: String,
}

/// What the confirmation step asks, as (heading, message, yes), before an act that
/// takes something away from the user; `None` for the acts that need none. `role` is
/// the role a `remove-role` takes away.
fn ask_first(action: &str, role: &str) -> Option<(&'static str, String, &'static str)> {
    let (heading, message, yes) = match action {
        "disable" => (
            "Disable this account?",
            "The user is signed out everywhere, every app they let in loses access, and they cannot sign in until the account is enabled again.",
            "Yes, disable",
        ),
        "revoke-sessions" => (
            "Sign this user out everywhere?",
            "Every session and every app they let in ends; they can sign in again.",
            "Yes, sign out everywhere",
        ),
        "reset-second-factors" => (
            "Reset this user's second factors?",
            "Their authenticator app, security keys, passkeys and recovery codes are removed; they sign in with the password alone and enrol again.",
            "Yes, reset",
        ),
        "remove-role" => {
            let message = format!(
                "The user loses the role \"{role}\" and what it lets them do, from their next request."
            );
            return Some(("Remove this role?", message, "Yes, remove role"));
        }
        _ => return None,
    };
    Some((heading, message.to_string(), yes))
}

/// Every write on a user: `/admin/users/{id}/{action}`.
pub async fn action(
    ctx: Ctx,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    let (id, action) = path.into_inner();
    let back = format!("/admin/users/{id}");
    let admin_user = ctx
        .require_permission_recent(Permission::UsersWrite, &back)
        .await?;
    ctx.check_csrf(&form.csrf_token)?;
    // Deleting asks for the typed email address instead (in the same `confirm` field).
    if let Some((heading, message, yes)) = ask_first(&action, &form.role) {
        let role = [("role", form.role.as_str())];
        let ask = Ask {
            heading,
            message: &message,
            yes,
            fields: if action == "remove-role" { &role } else { &[] },
            cancel: &back,
        };
        if let Some(page) = confirm::ask(&ctx, &form.confirm, ask) {
            return Ok(page);
        }
    }
    let (admin, audit) = (&ctx.state.admin, ctx.audit());
    let actor = Actor::User(admin_user.user.uid.clone());
    let outcome: Result<(), AdminError> = match action.as_str() {
        "assign-role" | "remove-role" => admin
            .set_role(&actor, &id, &form.role, action == "assign-role", &audit)
            .await
            .map(|_| ()),
        "disable" | "enable" => {
            admin
                .set_disabled(&actor, &id, action == "disable", &audit)
                .await
        }
        "revoke-sessions" => admin.revoke_sessions(&actor, &id, &audit).await.map(|_| ()),
        "reset-second-factors" => admin
            .reset_second_factors(&actor, &id, &audit)
            .await
            .map(|_| ()),
        "send-password-reset" => admin.send_password_reset(&actor, &id, &audit).await,
        "delete" => match admin.delete(&actor, &id, &form.confirm, &audit).await {
            Ok(()) => return Ok(see_other("/admin/users?deleted=1")),
            Err(e) => Err(e),
        },
        _ => return Err(AppError::NotFound),
    };
    match outcome {
        Ok(()) => Ok(see_other(&format!("{back}?done={action}"))),
        Err(AdminError::NoSuchUser) => Err(AppError::NotFound),
        Err(AdminError::Internal(e)) => Err(e.into()),
        Err(e) => {
            let status = match e {
                AdminError::Escalation(_) | AdminError::Outranked => StatusCode::FORBIDDEN,
                AdminError::LastAdmin | AdminError::OwnAccount => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            user_page(&ctx, &id, status, None, Some(e.to_string())).await
        }
    }
}
