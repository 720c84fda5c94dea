//! Custom roles on `/admin/roles`. Built-in roles (`admin`: every permission, `user`:
//! none) cannot be changed or deleted, so the last admin always keeps `roles.write`
//! and nobody can edit their way into a lock-out. Nobody creates or edits a role to
//! grant a permission they do not hold, nor changes or deletes a role held by someone
//! holding permissions they do not hold.

use std::collections::BTreeSet;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::access::permissions::{
    Permission, may_act_on, may_grant, permissions_of_holders, permissions_of_role,
};
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::roles as repo;
use crate::domain::audit::{AuditAction, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("A role name is 1 to 40 lower-case letters, digits, '-' or '_'.")]
    BadName,
    #[error("A role named {0} already exists.")]
    Exists(String),
    #[error("There is no role named {0}.")]
    NoSuchRole(String),
    #[error("Built-in roles cannot be changed or deleted.")]
    Builtin,
    #[error("You cannot grant permissions you do not hold.")]
    Escalation,
    #[error("Unknown permission: {0}.")]
    UnknownPermission(String),
    #[error("Someone who holds this role holds permissions you do not hold: ask an administrator.")]
    Outranked,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// A role as `/admin/roles` lists it, with its permissions and how many hold it.
pub use crate::db::repo::roles::RoleRow as Role;

/// The custom roles as a service: listing, saving and deleting them.
#[derive(Clone)]
pub struct Roles {
    db: Db,
    clock: Clock,
    /// Userinfo lists a user's roles: emptied when a role goes.
    cache: BackChannelCache,
}

/// Changing or deleting a role acts on everyone who holds it, so the editor must hold
/// every permission each holder holds (the rule of `auth::accounts::admin`). A refusal is audited
/// as `act` with outcome `denied`.
fn outranked_by_holders(
    c: &mut crate::db::AnyConnection,
    held: &BTreeSet<Permission>,
    name: &str,
    act: AuditAction,
    ctx: &AuditCtx,
    now: i64,
) -> crate::db::QueryResult<bool> {
    let holds = permissions_of_holders(c, name)?;
    if may_act_on(held, &holds) {
        return Ok(false);
    }
    let missing: Vec<&str> = holds.difference(held).map(|p| p.name()).collect();
    record(
        c,
        ctx,
        now,
        act,
        Outcome::Denied,
        None,
        json!({"role": name, "reason": "outranked", "missing": missing}),
    )?;
    Ok(true)
}

fn valid_name(n: &str) -> bool {
    (1..=40).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn parse_perms(names: &[String]) -> Result<BTreeSet<Permission>, RoleError> {
    names
        .iter()
        .map(|n| Permission::parse(n).ok_or_else(|| RoleError::UnknownPermission(n.clone())))
        .collect()
}

impl Roles {
    pub fn new(db: Db, clock: Clock, cache: BackChannelCache) -> Self {
        Self { db, clock, cache }
    }

    /// Every role, built-in ones first.
    pub async fn list(&self) -> Result<Vec<Role>, InternalError> {
        self.db.run(|c| Ok(repo::all(c)?)).await
    }

    /// Creates (`existing = false`) or updates a custom role; `held` is what the editor
    /// holds.
    pub async fn save(
        &self,
        held: &BTreeSet<Permission>,
        name: &str,
        description: &str,
        permissions: &[String],
        existing: bool,
        ctx: &AuditCtx,
    ) -> Result<(), RoleError> {
        let name = name.trim().to_string();
        if !valid_name(&name) {
            return Err(RoleError::BadName);
        }
        let perms = parse_perms(permissions)?;
        if !may_grant(held, &perms) {
            return Err(RoleError::Escalation);
        }
        let description: String = description.trim().chars().take(200).collect();
        let (held, ctx, now) = (held.clone(), ctx.clone(), self.clock.now());
        self.db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    match (repo::is_builtin(c, &name)?, existing) {
                        (Some(_), false) => return Ok(Err(RoleError::Exists(name.clone()))),
                        (None, true) => return Ok(Err(RoleError::NoSuchRole(name.clone()))),
                        (Some(true), true) => return Ok(Err(RoleError::Builtin)),
                        _ => {}
                    }
                    if existing {
                        // Taking a permission away is also a grant decision: only over ones held.
                        if !may_grant(&held, &permissions_of_role(c, &name)?) {
                            return Ok(Err(RoleError::Escalation));
                        }
                        if outranked_by_holders(
                            c,
                            &held,
                            &name,
                            AuditAction::RoleUpdated,
                            &ctx,
                            now,
                        )? {
                            return Ok(Err(RoleError::Outranked));
                        }
                        repo::set_description(c, &name, &description)?;
                    } else {
                        repo::create(c, &name, &description, now)?;
                    }
                    let names: Vec<&str> = perms.iter().map(|p| p.name()).collect();
                    repo::set_permissions(c, &name, &names)?;
                    let action = if existing {
                        AuditAction::RoleUpdated
                    } else {
                        AuditAction::RoleCreated
                    };
                    record(
                        c,
                        &ctx,
                        now,
                        action,
                        Outcome::Success,
                        None,
                        json!({"role": name, "permissions": names}),
                    )?;
                    Ok(Ok(()))
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?
    }

    /// Deletes a custom role; `held` is what the editor holds.
    pub async fn delete(
        &self,
        held: &BTreeSet<Permission>,
        name: &str,
        ctx: &AuditCtx,
    ) -> Result<(), RoleError> {
        let (name, held, ctx, now) = (
            name.to_string(),
            held.clone(),
            ctx.clone(),
            self.clock.now(),
        );
        self.db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    match repo::is_builtin(c, &name)? {
                        None => return Ok(Err(RoleError::NoSuchRole(name.clone()))),
                        Some(true) => return Ok(Err(RoleError::Builtin)),
                        Some(false) => {}
                    }
                    if !may_grant(&held, &permissions_of_role(c, &name)?) {
                        return Ok(Err(RoleError::Escalation));
                    }
                    if outranked_by_holders(c, &held, &name, AuditAction::RoleDeleted, &ctx, now)? {
                        return Ok(Err(RoleError::Outranked));
                    }
                    let holders = repo::holders_count(c, &name)?;
                    repo::delete(c, &name)?;
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::RoleDeleted,
                        Outcome::Success,
                        None,
                        json!({"role": name, "holders": holders}),
                    )?;
                    Ok(Ok(()))
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await??;
        // Its holders' userinfo lists it no more.
        self.cache.invalidate().await;
        Ok(())
    }
}
