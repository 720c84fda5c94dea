//! `/admin`, `/admin/users` and `/admin/users/{id}`. Each handler's first line names the
//! permission it needs; writes also need a recent sign-in (step-up) and a CSRF token.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::access::permissions::Permission;
use crate::auth::accounts::admin::{self, AdminError};
use crate::db::repo::audit::{AuditEvent, Filter, page as audit_page};
use crate::db::repo::{directory, roles, users};
use crate::web::caller::describe_browser;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::see_other;
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
    let query = directory::Query {
        prefix: Some(q.q.trim().to_lowercase()).filter(|s| !s.is_empty()),
        role: Some(q.role.clone()).filter(|s| !s.is_empty()),
        status: match q.status.as_str() {
            "active" => Some(directory::Status::Active),
            "disabled" => Some(directory::Status::Disabled),
            "unverified" => Some(directory::Status::Unverified),
            _ => None,
        },
        second_factor: match q.mfa.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        after: q.after.clone(),
    };
    let (mut found, roles) = ctx
        .state
        .db
        .run(move |c| {
            Ok::<_, AppError>((
                directory::search(c, &query, PAGE_SIZE + 1).map_err(AppError::from_db)?,
                roles::all_names(c).map_err(AppError::from_db)?,
            ))
        })
        .await?;
    let more = found.len() as i64 > PAGE_SIZE;
    found.truncate(PAGE_SIZE as usize);
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
            status: if u.disabled {
                "Disabled"
            } else if !u.email_verified {
                "Email not confirmed"
            } else {
                "Active"
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
pub async fn event_rows(ctx: &Ctx, events: Vec<AuditEvent>) -> Result<Vec<EventRow>, AppError> {
    let mut ids: Vec<String> = events
        .iter()
        .flat_map(|e| [e.actor_id.clone(), e.target_id.clone()])
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    let emails = ctx
        .state
        .db
        .run(move |c| users::emails_of(c, &ids).map_err(AppError::from_db))
        .await?;
    let name = |id: &Option<String>| match id {
        Some(i) => emails.get(i).cloned().unwrap_or_else(|| i.clone()),
        None => String::new(),
    };
    Ok(events
        .into_iter()
        .map(|e| EventRow {
            id: e.id,
            time: when(e.created_at),
            actor: name(&e.actor_id),
            target: name(&e.target_id),
            event: e.event,
            outcome: e.outcome,
            ip: e.ip.unwrap_or_default(),
            details: e.details,
        })
        .collect())
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

async fn user_page(
    ctx: &Ctx,
    id: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let admin = ctx.require_permission(Permission::UsersRead).await?;
    let st = &ctx.state;
    let Some(d) = admin::detail(&st.db, id).await? else {
        return Err(AppError::NotFound);
    };
    let uid = id.to_string();
    let filter = Filter {
        user_id: Some(uid.clone()),
        ..Default::default()
    };
    let (all_roles, events) = st
        .db
        .run(move |c| {
            Ok::<_, AppError>((
                roles::all_names(c).map_err(AppError::from_db)?,
                audit_page(c, &filter, None, 20).map_err(AppError::from_db)?,
            ))
        })
        .await?;
    let sessions = st
        .sessions
        .list(id)
        .await?
        .into_iter()
        .map(|r| SessionView {
            current: false,
            browser: describe_browser(&r.user_agent),
            ip: r.ip,
            created: when(r.created_at),
            last_seen: when(r.last_seen_at),
            sid: r.sid,
        })
        .collect();
    let events = event_rows(ctx, events).await?;
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
            other_roles: all_roles
                .into_iter()
                .filter(|r| !d.roles.contains(r))
                .collect(),
            roles: d.roles,
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

/// Every write on a user: `/admin/users/{id}/{action}`.
pub async fn action(
    ctx: Ctx,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    let (id, action) = path.into_inner();
    let back = format!("/admin/users/{id}");
    let admin = ctx
        .require_permission_recent(Permission::UsersWrite, &back)
        .await?;
    ctx.check_csrf(&form.csrf_token)?;
    let st = &ctx.state;
    let audit = ctx.audit();
    let actor = admin::Actor::User(admin.user.uid.clone());
    let outcome: Result<(), AdminError> = match action.as_str() {
        "assign-role" | "remove-role" => admin::set_role(
            &st.db,
            &st.clock,
            &st.oauth.cache,
            &actor,
            &id,
            &form.role,
            action == "assign-role",
            &audit,
        )
        .await?
        .map(|_| ()),
        "disable" | "enable" => {
            admin::set_disabled(
                &st.db,
                &st.clock,
                &st.sessions,
                &st.oauth.cache,
                &actor,
                &id,
                action == "disable",
                &audit,
            )
            .await?
        }
        "revoke-sessions" => admin::revoke_sessions(
            &st.db,
            &st.clock,
            &st.sessions,
            &st.oauth.cache,
            &actor,
            &id,
            &audit,
        )
        .await?
        .map(|_| ()),
        "reset-second-factors" => {
            admin::reset_second_factors(&st.db, &st.clock, &st.mail, &actor, &id, &audit)
                .await?
                .map(|_| ())
        }
        "send-password-reset" => {
            admin::send_password_reset(&st.db, &st.clock, &st.mail, &actor, &id, &audit).await?
        }
        "delete" => {
            match admin::delete(
                &st.db,
                &st.clock,
                &st.sessions,
                &st.oauth.cache,
                &actor,
                &id,
                &form.confirm,
                &audit,
            )
            .await?
            {
                Ok(()) => return Ok(see_other("/admin/users?deleted=1")),
                Err(e) => Err(e),
            }
        }
        _ => return Err(AppError::NotFound),
    };
    match outcome {
        Ok(()) => Ok(see_other(&format!("{back}?done={action}"))),
        Err(AdminError::NoSuchUser) => Err(AppError::NotFound),
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
