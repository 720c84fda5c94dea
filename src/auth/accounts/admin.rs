//! What administrators do to users. The web layer checks that the actor may use the
//! page at all (each route names its permission); the rules that must hold whoever
//! asks live here, in the write transaction of each act:
//! - an actor acts on another user only if they hold every permission that user holds
//!   (a helpdesk role cannot disable, reset or delete a full administrator);
//! - nobody hands out or takes away a role granting a permission they do not hold;
//! - the last active administrator cannot be demoted, disabled or deleted, even when
//!   two administrators remove each other at the same moment on two instances.
//!
//! Every write on a user goes through [`target`], the only maker of a [`Target`]: it
//! serialises changes to the admin set, finds the user and applies the first rule,
//! auditing a refusal. The acts below take a `Target`, so a new one cannot skip it.
//! [`Admin`] is the service the pages and the command line call.

use crate::auth::oauth::authorize::{GrantsEnd, end_app_grants};
use crate::auth::oauth::cache::BackChannelCache;
use std::collections::BTreeSet;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::access::permissions::{
    Permission, may_act_on, may_grant, permissions_of, permissions_of_role,
};
use crate::auth::audit::reader::NamedEvent;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::sessions::Sessions;
use crate::clock::Clock;
use crate::db::repo::audit::Filter;
use crate::db::repo::sessions::SessionRow;
use crate::db::repo::{directory, mfa, roles, users, webauthn};
use crate::db::{AnyConnection, Db};
use crate::mail::MailCtx;

pub use crate::db::repo::directory::{Query as DirectoryQuery, Status};
pub use crate::db::repo::users::User;
use crate::domain::audit::{AuditAction, Outcome};
use crate::mail::messages::MethodRemoved;
use crate::mail::outbox::enqueue;

#[derive(Debug, thiserror::Error)]
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
    #[error("You cannot change this account: it holds permissions you do not hold.")]
    Outranked,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Who performs an admin write on a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user on `/admin`, by id. What they hold is read again inside each
    /// write transaction: a role taken away a moment ago bounds them at once.
    User(String),
    /// The operator's shell (the command line), which already owns the database.
    Operator,
}

/// A user an admin write may change, with what the actor holds. Made only by
/// [`target`], after the checks, inside the write transaction.
pub(crate) struct Target {
    user: User,
    /// The actor's permissions; `None` for the operator's shell.
    held: Option<BTreeSet<Permission>>,
    /// The actor acts on their own account (the per-act rules for that apply).
    own: bool,
}

/// Opens an admin write on `uid`; call it first in the write transaction. On
/// PostgreSQL it takes the admin-set lock, so the last-admin checks of concurrent acts
/// (on any instance) see each other's writes: under READ COMMITTED without it, two
/// admins removing each other both count the other as "another active admin". SQLite's
/// `BEGIN IMMEDIATE` already lets one writer in at a time. Then it finds the user and
/// refuses unless the actor holds every permission the user holds: a disabled or
/// deleted actor holds none. Acting on yourself is left to each act's own rules. A
/// refusal is audited as `act` with outcome `denied` (the caller commits that record
/// and nothing else).
pub(crate) fn target(
    c: &mut AnyConnection,
    actor: &Actor,
    uid: &str,
    act: AuditAction,
    ctx: &AuditCtx,
    now: i64,
    details: serde_json::Value,
) -> crate::db::QueryResult<Result<Target, AdminError>> {
    crate::db::conn::serialize(c, crate::db::conn::locks::ADMIN_SET)?;
    let Some(user) = users::find(c, uid)? else {
        return Ok(Err(AdminError::NoSuchUser));
    };
    let (held, own) = match actor {
        Actor::Operator => (None, false),
        Actor::User(id) => {
            let active = users::find(c, id)?.is_some_and(|u| !u.disabled);
            let held = if active {
                permissions_of(c, id)?
            } else {
                BTreeSet::new()
            };
            (Some(held), id == uid)
        }
    };
    if let Some(held) = &held
        && !own
    {
        let holds = permissions_of(c, uid)?;
        if !may_act_on(held, &holds) {
            let missing: Vec<&str> = holds.difference(held).map(|p| p.name()).collect();
            let mut details = details;
            if let Some(map) = details.as_object_mut() {
                map.insert("reason".into(), json!("outranked"));
                map.insert("missing".into(), json!(missing));
            }
            record(c, ctx, now, act, Outcome::Denied, Some(uid), details)?;
            return Ok(Err(AdminError::Outranked));
        }
    }
    Ok(Ok(Target { user, held, own }))
}

/// Whether `user_id` is the only enabled holder of `admin`. Only meaningful after
/// [`target`] took the admin-set lock in the same transaction.
fn is_last_admin(c: &mut AnyConnection, user_id: &str) -> crate::db::QueryResult<bool> {
    // Only an enabled admin counts: taking `admin` from (or disabling, or deleting) a
    // disabled one leaves the active admins as they were, so it is never refused.
    let holds = roles::of_user(c, user_id)?.iter().any(|r| r == "admin");
    let enabled = users::find(c, user_id)?.is_some_and(|u| !u.disabled);
    if !holds || !enabled {
        return Ok(false);
    }
    let others = roles::enabled_holders_besides(c, "admin", user_id)?;
    Ok(others == 0)
}

/// Assigns or removes a role, in the caller's write transaction (which must not have
/// written yet); audited when it changed something. The actor hands out or takes away
/// only roles whose permissions they hold; the operator's shell any. The last enabled
/// admin keeps `admin` either way.
pub(crate) fn change_role(
    c: &mut AnyConnection,
    actor: &Actor,
    uid: &str,
    role: &str,
    assign: bool,
    ctx: &AuditCtx,
    now: i64,
) -> crate::db::QueryResult<Result<bool, AdminError>> {
    let action = if assign {
        AuditAction::RoleAssigned
    } else {
        AuditAction::RoleRemoved
    };
    let t = match target(c, actor, uid, action, ctx, now, json!({"role": role}))? {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    if !roles::exists(c, role)? {
        return Ok(Err(AdminError::NoSuchRole(role.to_string())));
    }
    if let Some(held) = &t.held
        && !may_grant(held, &permissions_of_role(c, role)?)
    {
        return Ok(Err(AdminError::Escalation(role.to_string())));
    }
    let uid = t.user.id.as_str();
    let changed = if assign {
        roles::assign(c, uid, role, now)?
    } else {
        if role == "admin" && is_last_admin(c, uid)? {
            return Ok(Err(AdminError::LastAdmin));
        }
        roles::unassign(c, uid, role)?
    };
    if changed {
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

/// The administration of users as a service: every act on a user, and what the
/// `/admin/users` pages read. Every act passes through [`Admin::act_on`] (so through
/// [`target`]) or, for a role, through [`change_role`], which starts with `target`.
#[derive(Clone)]
pub struct Admin {
    db: Db,
    clock: Clock,
    mail: MailCtx,
    sessions: Sessions,
    /// Userinfo and access tokens answer from it: emptied after a change of roles or
    /// of the disabled flag.
    cache: BackChannelCache,
}

/// Everything `/admin/users/{id}` shows.
pub struct UserDetail {
    pub user: User,
    pub roles: Vec<String>,
    /// Every role there is (the page offers those the user does not hold).
    pub all_roles: Vec<String>,
    pub totp: bool,
    pub keys: Vec<webauthn::StoredCredential>,
    pub recovery_codes_left: i64,
    pub sessions: Vec<SessionRow>,
    /// The newest events about the user, emails resolved.
    pub events: Vec<NamedEvent>,
}

/// One page of `/admin/users`.
pub struct Directory {
    pub users: Vec<User>,
    /// More users follow the last one.
    pub more: bool,
    /// Every role there is, for the filter.
    pub roles: Vec<String>,
}

/// Events shown on a user's page.
const RECENT_EVENTS: i64 = 20;

impl Admin {
    pub fn new(
        db: Db,
        clock: Clock,
        mail: MailCtx,
        sessions: Sessions,
        cache: BackChannelCache,
    ) -> Self {
        Self {
            db,
            clock,
            mail,
            sessions,
            cache,
        }
    }

    /// Runs one admin write on a user in a write transaction that starts with
    /// [`target`]; `f` gets the checked target and the time of the act.
    async fn act_on<T: Send + 'static>(
        &self,
        actor: &Actor,
        uid: &str,
        act: AuditAction,
        ctx: &AuditCtx,
        details: serde_json::Value,
        f: impl FnOnce(&mut AnyConnection, Target, i64) -> crate::db::QueryResult<Result<T, AdminError>>
        + Send
        + 'static,
    ) -> Result<T, AdminError> {
        let (actor, uid) = (actor.clone(), uid.to_string());
        let (ctx, now) = (ctx.clone(), self.clock.now());
        self.db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    match target(c, &actor, &uid, act, &ctx, now, details)? {
                        Ok(t) => f(c, t, now),
                        Err(e) => Ok(Err(e)),
                    }
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?
    }

    /// One page of users matching `query` (at most `size`), with every role's name.
    pub async fn directory(
        &self,
        query: DirectoryQuery,
        size: i64,
    ) -> Result<Directory, InternalError> {
        self.db
            .run(move |c| {
                let mut users = directory::search(c, &query, size + 1)?;
                let more = users.len() as i64 > size;
                users.truncate(size as usize);
                Ok(Directory {
                    users,
                    more,
                    roles: roles::all_names(c)?,
                })
            })
            .await
    }

    /// The user's page: `None` when there is no such user.
    pub async fn detail(&self, user_id: &str) -> Result<Option<UserDetail>, InternalError> {
        let uid = user_id.to_string();
        let found = self
            .db
            .run(move |c| {
                let Some(user) = users::find(c, &uid)? else {
                    return Ok::<_, InternalError>(None);
                };
                let filter = Filter {
                    user_id: Some(uid.clone()),
                    ..Default::default()
                };
                let events = crate::db::repo::audit::page(c, &filter, None, RECENT_EVENTS)?;
                Ok(Some(UserDetail {
                    roles: roles::of_user(c, &uid)?,
                    all_roles: roles::all_names(c)?,
                    totp: mfa::has_totp(c, &uid)?,
                    keys: webauthn::for_user(c, &uid)?,
                    recovery_codes_left: mfa::unused_recovery_codes(c, &uid)?,
                    sessions: Vec::new(),
                    events: crate::auth::audit::reader::named(c, events)?,
                    user,
                }))
            })
            .await?;
        let Some(mut d) = found else { return Ok(None) };
        d.sessions = self.sessions.list(user_id).await?;
        Ok(Some(d))
    }

    /// The user with this email address (normalised as sign-in does), if any.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<User>, InternalError> {
        let norm = crate::domain::email::EmailAddress::parse(email)
            .map(|e| e.normalized().to_string())
            .unwrap_or_else(|_| email.trim().to_lowercase());
        self.db
            .run(move |c| Ok(users::find_by_email(c, &norm)?))
            .await
    }

    /// Assigns or removes a role; `true` when it changed something.
    pub async fn set_role(
        &self,
        actor: &Actor,
        user_id: &str,
        role: &str,
        assign: bool,
        ctx: &AuditCtx,
    ) -> Result<bool, AdminError> {
        let (uid, role) = (user_id.to_string(), role.to_string());
        let (ctx, now, actor) = (ctx.clone(), self.clock.now(), actor.clone());
        let changed = self
            .db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    change_role(c, &actor, &uid, &role, assign, &ctx, now)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await??;
        // Userinfo answers with the user's roles.
        if changed {
            self.cache.invalidate().await;
        }
        Ok(changed)
    }

    /// Disables (and signs out everywhere at once) or enables an account.
    pub async fn set_disabled(
        &self,
        actor: &Actor,
        user_id: &str,
        disabled: bool,
        ctx: &AuditCtx,
    ) -> Result<(), AdminError> {
        let action = if disabled {
            AuditAction::UserDisabled
        } else {
            AuditAction::UserEnabled
        };
        let ctx2 = ctx.clone();
        let t = self
            .act_on(actor, user_id, action, ctx, json!({}), move |c, t, now| {
                if disabled && t.own {
                    return Ok(Err(AdminError::OwnAccount));
                }
                if disabled && is_last_admin(c, &t.user.id)? {
                    return Ok(Err(AdminError::LastAdmin));
                }
                directory::set_disabled(c, &t.user.id, disabled, now)?;
                if disabled {
                    // Enabling again must not bring the apps' tokens back.
                    end_app_grants(c, &ctx2, now, &t.user.id, GrantsEnd::AdminDisabled)?;
                }
                record(
                    c,
                    &ctx2,
                    now,
                    action,
                    Outcome::Success,
                    Some(&t.user.id),
                    json!({}),
                )?;
                Ok(Ok(t))
            })
            .await?;
        // The account's access tokens follow the flag at once.
        self.cache.invalidate().await;
        if disabled {
            // After the flag: a sign-in racing with this is refused by the flag.
            self.end_sessions(&t, ctx).await?;
        }
        Ok(())
    }

    /// Signs the user out on every device; returns how many sessions ended.
    pub async fn revoke_sessions(
        &self,
        actor: &Actor,
        user_id: &str,
        ctx: &AuditCtx,
    ) -> Result<usize, AdminError> {
        let t = self
            .act_on(
                actor,
                user_id,
                AuditAction::SessionRevoked,
                ctx,
                json!({"all": true}),
                |_, t, _| Ok(Ok(t)),
            )
            .await?;
        Ok(self.end_sessions(&t, ctx).await?)
    }

    /// Ends every session of a checked target and audits it. The sessions live outside
    /// the database (Redis when configured), so this follows the target's transaction.
    async fn end_sessions(&self, t: &Target, ctx: &AuditCtx) -> Result<usize, InternalError> {
        let n = self.sessions.revoke_all(&t.user.id, None).await?;
        let (uid, ctx, now) = (t.user.id.clone(), ctx.clone(), self.clock.now());
        self.db
            .run(move |c| {
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
        self.cache.invalidate().await;
        Ok(n)
    }

    /// Removes the authenticator app, security keys, passkeys and recovery codes: the
    /// user signs in with the password alone and enrols again. They are told by email.
    pub async fn reset_second_factors(
        &self,
        actor: &Actor,
        user_id: &str,
        ctx: &AuditCtx,
    ) -> Result<usize, AdminError> {
        let (ctx2, mail) = (ctx.clone(), self.mail.clone());
        self.act_on(
            actor,
            user_id,
            AuditAction::MfaReset,
            ctx,
            json!({}),
            move |c, t, now| {
                let user = &t.user;
                let n = directory::delete_second_factors(c, &user.id)?;
                record(
                    c,
                    &ctx2,
                    now,
                    AuditAction::MfaReset,
                    Outcome::Success,
                    Some(&user.id),
                    json!({"removed": n}),
                )?;
                if n > 0 {
                    let notice = MethodRemoved {
                        base: mail.base.clone(),
                        email: user.email.clone(),
                        method: "every second factor, by an administrator".into(),
                    };
                    let rendered = notice.render_all().map_err(crate::db::abort)?;
                    enqueue(c, &mail.outbox, &user.email, rendered, now)?;
                }
                Ok(Ok(n))
            },
        )
        .await
    }

    /// Mails the user a password reset link, as `/password/forgot` would (a disabled
    /// account gets none, and the refusal is audited there).
    pub async fn send_password_reset(
        &self,
        actor: &Actor,
        user_id: &str,
        ctx: &AuditCtx,
    ) -> Result<(), AdminError> {
        let (ctx2, mail) = (ctx.clone(), self.mail.clone());
        self.act_on(
            actor,
            user_id,
            AuditAction::PasswordResetRequested,
            ctx,
            json!({}),
            move |c, t, now| {
                crate::auth::accounts::links::issue_reset(
                    c,
                    &mail,
                    &t.user.email_normalized,
                    &ctx2,
                    now,
                )?;
                Ok(Ok(()))
            },
        )
        .await
    }

    /// Deletes the account after the admin typed its email address.
    pub async fn delete(
        &self,
        actor: &Actor,
        user_id: &str,
        confirmation: &str,
        ctx: &AuditCtx,
    ) -> Result<(), AdminError> {
        // First shut the account (a sign-in racing with this is refused), then end its
        // sessions while their registry rows still exist, then delete.
        let (confirmation, ctx1) = (confirmation.trim().to_string(), ctx.clone());
        self.act_on(
            actor,
            user_id,
            AuditAction::UserDeleted,
            ctx,
            json!({}),
            move |c, t, now| {
                if t.own {
                    return Ok(Err(AdminError::OwnAccount));
                }
                if !confirmation.eq_ignore_ascii_case(&t.user.email) {
                    return Ok(Err(AdminError::ConfirmationMismatch));
                }
                if is_last_admin(c, &t.user.id)? {
                    return Ok(Err(AdminError::LastAdmin));
                }
                directory::set_disabled(c, &t.user.id, true, now)?;
                end_app_grants(c, &ctx1, now, &t.user.id, GrantsEnd::AdminDeleted)?;
                Ok(Ok(()))
            },
        )
        .await?;
        self.cache.invalidate().await;
        self.sessions.revoke_all(user_id, None).await?;
        let ctx2 = ctx.clone();
        // Checked again: the account may have gained a role since it was shut.
        self.act_on(
            actor,
            user_id,
            AuditAction::UserDeleted,
            ctx,
            json!({}),
            move |c, t, now| {
                // Rows of the user go with it (foreign keys cascade); audit rows stay.
                directory::delete_user(c, &t.user.id)?;
                record(
                    c,
                    &ctx2,
                    now,
                    AuditAction::UserDeleted,
                    Outcome::Success,
                    Some(&t.user.id),
                    json!({"email": t.user.email}),
                )?;
                Ok(Ok(()))
            },
        )
        .await
    }
}
