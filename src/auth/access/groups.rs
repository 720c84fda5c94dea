//! Groups on `/admin/groups` and from the command line. A group may sit inside a
//! parent; a member of a group is a member of every group above it
//! (`domain::groups`). Groups grant no permissions, but access rules let their
//! members into sites (`group:NAME`), so changing them follows the rule of every
//! administrator's act on users: an editor changes a membership only of a user they
//! hold every permission of, and moves or deletes a group only when that holds for
//! everyone whose groups would change. Each change is audited; a refusal for rank
//! is audited as denied.

use std::collections::BTreeSet;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::access::permissions::{Permission, may_act_on, permissions_of};
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::db::repo::groups::{self as repo, GroupRow};
use crate::db::repo::users;
use crate::db::{AnyConnection, Db, QueryResult};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::email::EmailAddress;
use crate::domain::groups::{NameError, validate_name};

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("{0}")]
    BadName(NameError),
    #[error("A group named {0} already exists.")]
    Exists(String),
    #[error("There is no group named {0}.")]
    NoSuchGroup(String),
    #[error("No account has the email address {0}.")]
    NoSuchUser(String),
    #[error("There is no such account.")]
    NoSuchAccount,
    #[error("{0} cannot be inside {1}: {1} is {0} or already inside it.")]
    Cycle(String, String),
    #[error("You may not manage groups.")]
    Forbidden,
    #[error("{0} owns service accounts ({1}): delete them first.")]
    OwnsServiceAccounts(String, String),
    #[error(
        "This change would affect an account that holds permissions you do not hold: ask an administrator."
    )]
    Outranked,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Who changes groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Editor {
    /// A signed-in administrator, by id: what they hold is read again in each write
    /// transaction, so a role taken away a moment ago bounds them at once.
    User(String),
    /// The operator's shell (the command line).
    Operator,
}

/// A group as the list shows it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub name: String,
    pub description: String,
    pub parent: Option<String>,
    /// Direct members.
    pub members: i64,
}

/// One group with its members.
#[derive(Debug, Clone)]
pub struct GroupDetail {
    pub name: String,
    pub description: String,
    pub parent: Option<String>,
    pub children: Vec<String>,
    /// Direct members as (user id, email).
    pub members: Vec<(String, String)>,
}

/// A user's groups, for the admin user page.
#[derive(Debug, Clone, Default)]
pub struct UserGroups {
    pub direct: Vec<String>,
    /// Direct ones and those inherited through parents.
    pub effective: Vec<String>,
    /// Every group name, for the "add to group" choice.
    pub all: Vec<String>,
}

/// The groups service.
#[derive(Clone)]
pub struct Groups {
    db: Db,
    clock: Clock,
    /// Userinfo lists a user's groups: emptied on every change.
    cache: BackChannelCache,
}

/// Whom a membership change is about.
enum Member {
    Email(String),
    Id(String),
}

type Tx<T> = QueryResult<Result<T, GroupError>>;

/// What the editor holds, or `Forbidden` unless they may manage groups; `None` for
/// the operator's shell.
fn editor_holds(
    c: &mut AnyConnection,
    editor: &Editor,
) -> QueryResult<Result<Option<BTreeSet<Permission>>, GroupError>> {
    match editor {
        Editor::Operator => Ok(Ok(None)),
        Editor::User(id) => {
            let active = users::find(c, id)?.is_some_and(|u| !u.disabled);
            let held = if active {
                permissions_of(c, id)?
            } else {
                BTreeSet::new()
            };
            if !held.contains(&Permission::GroupsWrite) {
                return Ok(Err(GroupError::Forbidden));
            }
            Ok(Ok(Some(held)))
        }
    }
}

/// A change to the groups as the audit log records it: `act`, about the user `target`
/// when it is about one.
struct Change<'a> {
    ctx: &'a AuditCtx,
    now: i64,
    act: AuditAction,
    target: Option<&'a str>,
}

impl<'a> Change<'a> {
    fn new(ctx: &'a AuditCtx, now: i64, act: AuditAction, target: Option<&'a str>) -> Self {
        Change {
            ctx,
            now,
            act,
            target,
        }
    }

    /// Refused as `Outranked` (audited as denied, with `details`) unless `held` outranks
    /// none of `users`.
    fn rank(
        &self,
        c: &mut AnyConnection,
        held: Option<&BTreeSet<Permission>>,
        users: &[String],
        details: serde_json::Value,
    ) -> Tx<()> {
        let Some(held) = held else {
            return Ok(Ok(()));
        };
        let mut missing = BTreeSet::new();
        for u in users {
            let holds = permissions_of(c, u)?;
            if !may_act_on(held, &holds) {
                missing.extend(holds.difference(held).map(|p| p.name()));
            }
        }
        if missing.is_empty() {
            return Ok(Ok(()));
        }
        let mut details = details;
        if let Some(map) = details.as_object_mut() {
            map.insert("reason".into(), json!("outranked"));
            map.insert("missing".into(), json!(missing));
        }
        let (ctx, now) = (self.ctx, self.now);
        record(c, ctx, now, self.act, Outcome::Denied, self.target, details)?;
        Ok(Err(GroupError::Outranked))
    }

    /// Audits the change as done, with `details`.
    fn done(&self, c: &mut AnyConnection, details: serde_json::Value) -> Tx<()> {
        let (ctx, now) = (self.ctx, self.now);
        record(
            c,
            ctx,
            now,
            self.act,
            Outcome::Success,
            self.target,
            details,
        )?;
        Ok(Ok(()))
    }
}

fn find(c: &mut AnyConnection, name: &str) -> QueryResult<Result<GroupRow, GroupError>> {
    Ok(repo::find_by_name(c, name.trim())?
        .ok_or_else(|| GroupError::NoSuchGroup(name.trim().to_string())))
}

/// Everyone whose effective groups change when `group` moves or goes: the members of
/// it and of every group below it.
fn affected(c: &mut AnyConnection, group_id: &str) -> QueryResult<Vec<String>> {
    let below = repo::tree(c)?.subtree(group_id);
    repo::member_ids_of_any(c, &below)
}

macro_rules! tri {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl Groups {
    pub fn new(db: Db, clock: Clock, cache: BackChannelCache) -> Self {
        Self { db, clock, cache }
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection, i64) -> Tx<T> + Send + 'static,
    ) -> Result<T, GroupError> {
        let now = self.clock.now();
        let out = self
            .db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    crate::db::conn::serialize(c, crate::db::conn::locks::GROUP_TREE)?;
                    f(c, now)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await??;
        // Userinfo and introspection list groups: they read them fresh from now on.
        self.cache.invalidate().await;
        Ok(out)
    }

    /// Every group, by name, with its parent and how many direct members it has.
    pub async fn list(&self) -> Result<Vec<GroupSummary>, InternalError> {
        self.db
            .run(|c| {
                let rows = repo::all(c)?;
                let tree = repo::tree(c)?;
                let mut out = Vec::with_capacity(rows.len());
                for g in rows {
                    out.push(GroupSummary {
                        members: repo::member_count(c, &g.id)?,
                        parent: g
                            .parent_id
                            .as_deref()
                            .and_then(|p| tree.name(p))
                            .map(str::to_string),
                        name: g.name,
                        description: g.description,
                    });
                }
                Ok(out)
            })
            .await
    }

    /// One group with its direct members; `None` when there is none by that name.
    pub async fn detail(&self, name: &str) -> Result<Option<GroupDetail>, InternalError> {
        let name = name.to_string();
        self.db
            .run(move |c| {
                let Some(g) = repo::find_by_name(c, &name)? else {
                    return Ok(None);
                };
                let all = repo::all(c)?;
                let parent = g
                    .parent_id
                    .as_deref()
                    .and_then(|p| all.iter().find(|x| x.id == p))
                    .map(|x| x.name.clone());
                let children = all
                    .iter()
                    .filter(|x| x.parent_id.as_deref() == Some(g.id.as_str()))
                    .map(|x| x.name.clone())
                    .collect();
                Ok(Some(GroupDetail {
                    members: repo::members(c, &g.id)?,
                    name: g.name,
                    description: g.description,
                    parent,
                    children,
                }))
            })
            .await
    }

    /// The groups of a user: direct ones, effective ones (with those inherited
    /// through parents) and every group there is.
    pub async fn of_user(&self, user_id: &str) -> Result<UserGroups, InternalError> {
        let uid = user_id.to_string();
        self.db
            .run(move |c| {
                let tree = repo::tree(c)?;
                let direct_ids = repo::direct_of_user(c, &uid)?;
                let mut direct: Vec<String> = direct_ids
                    .iter()
                    .filter_map(|id| tree.name(id).map(str::to_string))
                    .collect();
                direct.sort();
                Ok(UserGroups {
                    effective: tree.effective(&direct_ids),
                    direct,
                    all: repo::all(c)?.into_iter().map(|g| g.name).collect(),
                })
            })
            .await
    }

    /// The effective groups of a user (inherited ones included), sorted.
    pub async fn effective(&self, user_id: &str) -> Result<Vec<String>, InternalError> {
        let uid = user_id.to_string();
        self.db
            .run(move |c| Ok(repo::effective_of_user(c, &uid)?))
            .await
    }

    /// Creates a group, at the top level or inside `parent`.
    pub async fn create(
        &self,
        editor: &Editor,
        name: &str,
        description: &str,
        parent: Option<&str>,
        ctx: &AuditCtx,
    ) -> Result<(), GroupError> {
        let name = validate_name(name).map_err(GroupError::BadName)?;
        let description: String = description.trim().chars().take(200).collect();
        let parent = parent.map(str::trim).filter(|p| !p.is_empty());
        let parent = parent.map(str::to_string);
        let (editor, ctx) = (editor.clone(), ctx.clone());
        self.write(move |c, now| {
            tri!(editor_holds(c, &editor));
            if repo::find_by_name(c, &name)?.is_some() {
                return Ok(Err(GroupError::Exists(name)));
            }
            let parent_id = match &parent {
                Some(p) => Some(tri!(find(c, p)).id),
                None => None,
            };
            repo::create(
                c,
                &GroupRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: name.clone(),
                    description,
                    parent_id,
                    created_at: now,
                },
            )?;
            let details = json!({"group": name, "parent": parent});
            Change::new(&ctx, now, AuditAction::GroupCreated, None).done(c, details)
        })
        .await
    }

    /// Moves a group inside `parent`, or to the top level with `None`. Refused when
    /// it would put the group inside itself.
    pub async fn set_parent(
        &self,
        editor: &Editor,
        name: &str,
        parent: Option<&str>,
        ctx: &AuditCtx,
    ) -> Result<(), GroupError> {
        let name = name.trim().to_string();
        let parent = parent.map(str::trim).filter(|p| !p.is_empty());
        let parent = parent.map(str::to_string);
        let (editor, ctx) = (editor.clone(), ctx.clone());
        self.write(move |c, now| {
            let held = tri!(editor_holds(c, &editor));
            let g = tri!(find(c, &name));
            let parent_id = match &parent {
                Some(p) => {
                    let p_row = tri!(find(c, p));
                    if repo::tree(c)?.would_cycle(&g.id, &p_row.id) {
                        return Ok(Err(GroupError::Cycle(g.name, p_row.name)));
                    }
                    Some(p_row.id)
                }
                None => None,
            };
            let details = json!({"group": g.name, "parent": parent});
            let users = affected(c, &g.id)?;
            let change = Change::new(&ctx, now, AuditAction::GroupUpdated, None);
            tri!(change.rank(c, held.as_ref(), &users, details.clone()));
            repo::set_parent(c, &g.id, parent_id.as_deref())?;
            change.done(c, details)
        })
        .await
    }

    /// Deletes a group: its members leave it (and the groups above it, unless they
    /// are in those otherwise); groups inside it move to the top level. Refused while
    /// it owns service accounts.
    pub async fn delete(
        &self,
        editor: &Editor,
        name: &str,
        ctx: &AuditCtx,
    ) -> Result<(), GroupError> {
        let name = name.trim().to_string();
        let (editor, ctx) = (editor.clone(), ctx.clone());
        self.write(move |c, now| {
            let held = tri!(editor_holds(c, &editor));
            let g = tri!(find(c, &name));
            // A service account's groups are its owner group: it must not be left
            // without one (and so outside every rule that names it).
            let owned = users::services_owned_by(c, &g.id)?;
            if !owned.is_empty() {
                return Ok(Err(GroupError::OwnsServiceAccounts(
                    g.name,
                    owned.join(", "),
                )));
            }
            let users = affected(c, &g.id)?;
            let change = Change::new(&ctx, now, AuditAction::GroupDeleted, None);
            tri!(change.rank(c, held.as_ref(), &users, json!({"group": g.name})));
            let members = repo::member_count(c, &g.id)?;
            repo::delete(c, &g.id)?;
            change.done(c, json!({"group": g.name, "members": members}))
        })
        .await
    }

    /// Adds (`add`) or removes the account with `email` to or from a group. Returns
    /// whether anything changed.
    pub async fn set_member(
        &self,
        editor: &Editor,
        group: &str,
        email: &str,
        add: bool,
        ctx: &AuditCtx,
    ) -> Result<bool, GroupError> {
        self.change_member(
            editor,
            group,
            Member::Email(email.trim().to_string()),
            add,
            ctx,
        )
        .await
    }

    /// [`Self::set_member`] for the account with id `user_id`.
    pub async fn set_member_by_id(
        &self,
        editor: &Editor,
        group: &str,
        user_id: &str,
        add: bool,
        ctx: &AuditCtx,
    ) -> Result<bool, GroupError> {
        self.change_member(editor, group, Member::Id(user_id.to_string()), add, ctx)
            .await
    }

    async fn change_member(
        &self,
        editor: &Editor,
        group: &str,
        member: Member,
        add: bool,
        ctx: &AuditCtx,
    ) -> Result<bool, GroupError> {
        let group = group.trim().to_string();
        let (editor, ctx) = (editor.clone(), ctx.clone());
        self.write(move |c, now| {
            let held = tri!(editor_holds(c, &editor));
            let g = tri!(find(c, &group));
            let found = match &member {
                Member::Email(e) => {
                    let norm = EmailAddress::parse(e)
                        .map(|a| a.normalized().to_string())
                        .unwrap_or_else(|_| e.to_lowercase());
                    users::find_by_email(c, &norm)?
                }
                Member::Id(id) => users::find(c, id)?,
            };
            let Some(user) = found else {
                return Ok(Err(match member {
                    Member::Email(e) => GroupError::NoSuchUser(e),
                    Member::Id(_) => GroupError::NoSuchAccount,
                }));
            };
            let action = if add {
                AuditAction::GroupMemberAdded
            } else {
                AuditAction::GroupMemberRemoved
            };
            let details = json!({"group": g.name});
            let change = Change::new(&ctx, now, action, Some(&user.id));
            let user_ids = std::slice::from_ref(&user.id);
            tri!(change.rank(c, held.as_ref(), user_ids, details.clone()));
            let changed = if add {
                repo::add_member(c, &user.id, &g.id, now)?
            } else {
                repo::remove_member(c, &user.id, &g.id)?
            };
            if changed {
                tri!(change.done(c, details));
            }
            Ok(Ok(changed))
        })
        .await
    }
}
