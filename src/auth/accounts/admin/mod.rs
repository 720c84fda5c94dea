//! What administrators do to users. The web layer checks that the actor may use the
//! page at all (each route names its permission); the rules that must hold whoever
//! asks live here, in the write transaction of each act:
//! - an actor acts on another user only if they hold every permission that user holds
//!   (a helpdesk role cannot disable, reset or delete a full administrator);
//! - nobody hands out or takes away a role granting a permission they do not hold;
//! - the last active administrator cannot be demoted, disabled or deleted (by another
//!   administrator or, from `/account/delete`, by themself), even when two
//!   administrators remove each other at the same moment on two instances.
//!
//! Every write on a user goes through [`target`], the only maker of a [`Target`]: it
//! serialises changes to the admin set, finds the user and applies the first rule,
//! auditing a refusal. The acts below take a `Target`, so a new one cannot skip it.
//! [`Admin`] is the service the pages and the command line call: its acts are in
//! `acts`, what the `/admin/users` pages read in `directory`.

use crate::auth::oauth::cache::BackChannelCache;
use std::collections::BTreeSet;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::access::permissions::{
    Permission, may_act_on, may_grant, permissions_of, permissions_of_role,
};
use crate::auth::audit::{AuditCtx, record};
use crate::auth::sessions::Sessions;
use crate::clock::Clock;
use crate::db::repo::{roles, users};
use crate::db::{AnyConnection, Db};
use crate::mail::MailCtx;

mod acts;
mod directory;

pub use self::directory::{Directory, Listed, UserDetail};
pub use crate::db::repo::directory::{Query as DirectoryQuery, Status};
pub use crate::db::repo::users::User;
use crate::domain::audit::{AuditAction, Outcome};

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
    #[error("This account is disabled: enable it before sending it a reset link.")]
    AccountDisabled,
    #[error("A service account has no password to reset.")]
    ServiceAccount,
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

impl Target {
    /// Audits the act as done to the target, in its transaction.
    fn done(
        &self,
        c: &mut AnyConnection,
        ctx: &AuditCtx,
        now: i64,
        act: AuditAction,
        details: serde_json::Value,
    ) -> crate::db::QueryResult<()> {
        let target = Some(self.user.id.as_str());
        record(c, ctx, now, act, Outcome::Success, target, details)
    }
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
}
