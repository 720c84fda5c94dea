//! What administrators do to users. Permission checks happen in the web layer (each
//! route names its permission); the rules that must hold whoever asks live here:
//! nobody hands out a permission they do not hold, and the last active administrator
//! cannot be demoted, disabled or deleted.

use super::memo::Memo;
use super::oidc::{GrantsEnd, end_app_grants};
use std::collections::BTreeSet;

use serde_json::json;

use super::InternalError;
use super::audit::{AuditCtx, record};
use super::rbac::{Permission, may_grant, permissions_of_role};
use super::recovery::MailCtx;
use super::sessions::Sessions;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::{directory, mfa, roles, users, users::User, webauthn};
use crate::domain::audit::{AuditAction, Outcome};
use crate::mail::messages::MethodRemoved;
use crate::mail::outbox::enqueue;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("There is no such user.")]
    NoSuchUser,
    #[error("There is no role named {0}.")]
    NoSuchRole(String),
    #[error(
        "You cannot hand out or take away the role {0}: it grants permissions you do not hold."
    )]
    Escalation(String),
    #[error("This is the last active administrator: make someone else an administrator first.")]
    LastAdmin,
    #[error("You cannot do that to your own account here; ask another administrator.")]
    OwnAccount,
    #[error("Type the user's email address exactly to confirm.")]
    ConfirmationMismatch,
}

/// Whether `user_id` is the only enabled holder of `admin`.
fn is_last_admin(c: &mut crate::db::AnyConnection, user_id: &str) -> diesel::QueryResult<bool> {
    use crate::db::schema::{user_roles, users as u};
    use diesel::prelude::*;
    let holds = roles::of_user(c, user_id)?.iter().any(|r| r == "admin");
    if !holds {
        return Ok(false);
    }
    let active: i64 = user_roles::table
        .inner_join(u::table)
        .filter(user_roles::role.eq("admin"))
        .filter(u::disabled.eq(false))
        .count()
        .get_result(c)?;
    Ok(active <= 1)
}

/// Everything `/admin/users/{id}` shows.
pub struct UserDetail {
    pub user: User,
    pub roles: Vec<String>,
    pub totp: bool,
    pub keys: Vec<webauthn::StoredCredential>,
    pub recovery_codes_left: i64,
}

pub async fn detail(db: &Db, user_id: &str) -> Result<Option<UserDetail>, InternalError> {
    let uid = user_id.to_string();
    db.run(move |c| {
        let Some(user) = users::find(c, &uid)? else {
            return Ok(None);
        };
        Ok(Some(UserDetail {
            roles: roles::of_user(c, &uid)?,
            totp: mfa::has_totp(c, &uid)?,
            keys: webauthn::for_user(c, &uid)?,
            recovery_codes_left: mfa::unused_recovery_codes(c, &uid)?,
            user,
        }))
    })
    .await
}

/// Assigns or removes a role. `held` are the acting admin's permissions.
#[expect(clippy::too_many_arguments)]
pub async fn set_role(
    db: &Db,
    clock: &Clock,
    memo: &Memo,
    held: &BTreeSet<Permission>,
    user_id: &str,
    role: &str,
    assign: bool,
    ctx: &AuditCtx,
) -> Result<Result<bool, AdminError>, InternalError> {
    let (uid, role, ctx, now, held) = (
        user_id.to_string(),
        role.to_string(),
        ctx.clone(),
        clock.now(),
        held.clone(),
    );
    let done = db
        .run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                change_role(c, &uid, &role, assign, Some(&held), &ctx, now)
            })
            .map_err(|e: diesel::result::Error| InternalError::from(e))
        })
        .await?;
    // Userinfo answers with the user's roles.
    if done == Ok(true) {
        memo.invalidate().await;
    }
    Ok(done)
}

/// Assigns or removes a role, in the caller's write transaction; audited when it
/// changed something. `held` are the actor's permissions (no escalation); `None` is
/// the operator's shell, which may hand out anything. The last enabled admin keeps
/// `admin` either way.
pub(crate) fn change_role(
    c: &mut crate::db::AnyConnection,
    uid: &str,
    role: &str,
    assign: bool,
    held: Option<&BTreeSet<Permission>>,
    ctx: &AuditCtx,
    now: i64,
) -> diesel::QueryResult<Result<bool, AdminError>> {
    if users::find(c, uid)?.is_none() {
        return Ok(Err(AdminError::NoSuchUser));
    }
    if !roles::exists(c, role)? {
        return Ok(Err(AdminError::NoSuchRole(role.to_string())));
    }
    if let Some(held) = held
        && !may_grant(held, &permissions_of_role(c, role)?)
    {
        return Ok(Err(AdminError::Escalation(role.to_string())));
    }
    let changed = if assign {
        roles::assign(c, uid, role, now)?
    } else {
        if role == "admin" && is_last_admin(c, uid)? {
            return Ok(Err(AdminError::LastAdmin));
        }
        roles::unassign(c, uid, role)?
    };
    if changed {
        let action = if assign {
            AuditAction::RoleAssigned
        } else {
            AuditAction::RoleRemoved
        };
        record(
            c,
            ctx,
            now,
            action,
            Outcome::Success,
            Some(uid),
            json!({"role": role}),
        )?;
    }
    Ok(Ok(changed))
}

/// Disables (and signs out everywhere at once) or enables an account.
pub async fn set_disabled(
    db: &Db,
    clock: &Clock,
    sessions: &Sessions,
    memo: &Memo,
    user_id: &str,
    disabled: bool,
    ctx: &AuditCtx,
) -> Result<Result<(), AdminError>, InternalError> {
    if disabled && ctx.actor_id.as_deref() == Some(user_id) {
        return Ok(Err(AdminError::OwnAccount));
    }
    let (uid, ctx2, now) = (user_id.to_string(), ctx.clone(), clock.now());
    let done = db
        .run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                if users::find(c, &uid)?.is_none() {
                    return Ok(Err(AdminError::NoSuchUser));
                }
                if disabled && is_last_admin(c, &uid)? {
                    return Ok(Err(AdminError::LastAdmin));
                }
                directory::set_disabled(c, &uid, disabled, now)?;
                if disabled {
                    // Enabling again must not bring the apps' tokens back.
                    end_app_grants(c, &ctx2, now, &uid, GrantsEnd::AdminDisabled)?;
                }
                let action = if disabled {
                    AuditAction::UserDisabled
                } else {
                    AuditAction::UserEnabled
                };
                record(
                    c,
                    &ctx2,
                    now,
                    action,
                    Outcome::Success,
                    Some(&uid),
                    json!({}),
                )?;
                Ok(Ok(()))
            })
            .map_err(|e: diesel::result::Error| InternalError::from(e))
        })
        .await?;
    if done.is_ok() {
        // The account's access tokens follow the flag at once.
        memo.invalidate().await;
    }
    if done.is_ok() && disabled {
        // After the flag: a sign-in racing with this is refused by the flag.
        revoke_sessions(db, clock, sessions, memo, user_id, ctx).await?;
    }
    Ok(done)
}

/// Signs the user out on every device and ends their app grants; returns how many
/// sessions ended.
pub async fn revoke_sessions(
    db: &Db,
    clock: &Clock,
    sessions: &Sessions,
    memo: &Memo,
    user_id: &str,
    ctx: &AuditCtx,
) -> Result<usize, InternalError> {
    let n = sessions.revoke_all(user_id, None).await?;
    let (uid, ctx, now) = (user_id.to_string(), ctx.clone(), clock.now());
    db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            end_app_grants(c, &ctx, now, &uid, GrantsEnd::AdminRevokedSessions)?;
            record(
                c,
                &ctx,
                now,
                AuditAction::SessionRevoked,
                Outcome::Success,
                Some(&uid),
                json!({"all": true, "count": n}),
            )
        })
        .map_err(InternalError::from)
    })
    .await?;
    memo.invalidate().await;
    Ok(n)
}

/// Removes the authenticator app, security keys, passkeys and recovery codes: the user
/// signs in with the password alone and enrols again. They are told by email.
pub async fn reset_second_factors(
    db: &Db,
    clock: &Clock,
    mail: &MailCtx,
    user_id: &str,
    ctx: &AuditCtx,
) -> Result<Result<usize, AdminError>, InternalError> {
    let (uid, ctx, now, mail) = (user_id.to_string(), ctx.clone(), clock.now(), mail.clone());
    db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            let Some(user) = users::find(c, &uid)? else {
                return Ok(Err(AdminError::NoSuchUser));
            };
            let n = directory::delete_second_factors(c, &uid)?;
            record(
                c,
                &ctx,
                now,
                AuditAction::MfaReset,
                Outcome::Success,
                Some(&uid),
                json!({"removed": n}),
            )?;
            if n > 0 {
                let notice = MethodRemoved {
                    base: mail.base.clone(),
                    email: user.email.clone(),
                    method: "every second factor, by an administrator".into(),
                };
                let rendered = notice
                    .render_all()
                    .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
                enqueue(c, &user.email, rendered, now)?;
            }
            Ok(Ok(n))
        })
        .map_err(|e: diesel::result::Error| InternalError::from(e))
    })
    .await
}

/// Deletes the account after the admin typed its email address.
pub async fn delete(
    db: &Db,
    clock: &Clock,
    sessions: &Sessions,
    memo: &Memo,
    user_id: &str,
    confirmation: &str,
    ctx: &AuditCtx,
) -> Result<Result<(), AdminError>, InternalError> {
    if ctx.actor_id.as_deref() == Some(user_id) {
        return Ok(Err(AdminError::OwnAccount));
    }
    let uid = user_id.to_string();
    let Some(user) = db
        .run(move |c| users::find(c, &uid).map_err(InternalError::from))
        .await?
    else {
        return Ok(Err(AdminError::NoSuchUser));
    };
    if !confirmation.trim().eq_ignore_ascii_case(&user.email) {
        return Ok(Err(AdminError::ConfirmationMismatch));
    }
    // First shut the account (a sign-in racing with this is refused), then end its
    // sessions while their registry rows still exist, then delete.
    let (uid, now, ctx2) = (user_id.to_string(), clock.now(), ctx.clone());
    let shut = db
        .run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                if is_last_admin(c, &uid)? {
                    return Ok(Err(AdminError::LastAdmin));
                }
                directory::set_disabled(c, &uid, true, now)?;
                end_app_grants(c, &ctx2, now, &uid, GrantsEnd::AdminDeleted)?;
                Ok(Ok(()))
            })
            .map_err(|e: diesel::result::Error| InternalError::from(e))
        })
        .await?;
    if let Err(e) = shut {
        return Ok(Err(e));
    }
    memo.invalidate().await;
    sessions.revoke_all(user_id, None).await?;
    let (uid, ctx, now) = (user_id.to_string(), ctx.clone(), clock.now());
    db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            // Rows of the user go with it (foreign keys cascade); audit rows stay.
            directory::delete_user(c, &uid)?;
            record(
                c,
                &ctx,
                now,
                AuditAction::UserDeleted,
                Outcome::Success,
                Some(&uid),
                json!({"email": user.email}),
            )
        })
        .map_err(InternalError::from)
    })
    .await?;
    Ok(Ok(()))
}
