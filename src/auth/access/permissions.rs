//! Roles and permissions. A role is a named set of permissions; a user holds roles.
//! Every `/admin` route asks for one permission, read fresh from the database on each
//! request (a role removed a second ago no longer opens anything).

use std::collections::BTreeSet;

use crate::db::repo::roles as repo;
use crate::db::{AnyConnection, QueryResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    UsersRead,
    UsersWrite,
    RolesWrite,
    ClientsWrite,
    AuditRead,
    SettingsWrite,
    GroupsWrite,
    PoliciesWrite,
}

impl Permission {
    pub const ALL: [Permission; 8] = [
        Permission::UsersRead,
        Permission::UsersWrite,
        Permission::RolesWrite,
        Permission::ClientsWrite,
        Permission::AuditRead,
        Permission::SettingsWrite,
        Permission::GroupsWrite,
        Permission::PoliciesWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::UsersRead => "users.read",
            Permission::UsersWrite => "users.write",
            Permission::RolesWrite => "roles.write",
            Permission::ClientsWrite => "clients.write",
            Permission::AuditRead => "audit.read",
            Permission::SettingsWrite => "settings.write",
            Permission::GroupsWrite => "groups.write",
            Permission::PoliciesWrite => "policies.write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// What the permission allows, in words for the roles page.
    pub fn describe(self) -> &'static str {
        match self {
            Permission::UsersRead => "See users, their sessions and second factors",
            Permission::UsersWrite => {
                "Change users: roles, disable, sessions, second factors, delete"
            }
            Permission::RolesWrite => "Create, change and delete roles",
            Permission::ClientsWrite => "Manage OAuth / OpenID Connect clients",
            Permission::AuditRead => "Read and export the audit log",
            Permission::SettingsWrite => "Change runtime settings",
            Permission::GroupsWrite => "Create, nest and delete groups, and change their members",
            Permission::PoliciesWrite => {
                "Add and delete access rules: who reaches which site behind forward auth"
            }
        }
    }
}

/// The permissions a user holds through all their roles.
pub fn permissions_of(c: &mut AnyConnection, user_id: &str) -> QueryResult<BTreeSet<Permission>> {
    let names = repo::permission_names_of_user(c, user_id)?;
    Ok(names.iter().filter_map(|n| Permission::parse(n)).collect())
}

/// The permissions a role grants.
pub fn permissions_of_role(c: &mut AnyConnection, role: &str) -> QueryResult<BTreeSet<Permission>> {
    let names = repo::permission_names_of_role(c, role)?;
    Ok(names.iter().filter_map(|n| Permission::parse(n)).collect())
}

/// Every permission held (through any of their roles) by anyone who holds `role`:
/// changing a role acts on each of its holders.
pub fn permissions_of_holders(
    c: &mut AnyConnection,
    role: &str,
) -> QueryResult<BTreeSet<Permission>> {
    let names = repo::permission_names_of_holders(c, role)?;
    Ok(names.iter().filter_map(|n| Permission::parse(n)).collect())
}

/// No escalation: an actor may hand out (or take away) a role only when they hold
/// every permission it grants.
pub fn may_grant(held: &BTreeSet<Permission>, role_grants: &BTreeSet<Permission>) -> bool {
    role_grants.is_subset(held)
}

/// Dominance: an actor acts on another user only when they hold every permission that
/// user holds, so a limited role cannot disable, reset or delete a stronger account.
pub fn may_act_on(held: &BTreeSet<Permission>, target_holds: &BTreeSet<Permission>) -> bool {
    target_holds.is_subset(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_grants_need_a_superset() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.name()), Some(p));
        }
        assert_eq!(Permission::parse("users.*"), None);
        let held: BTreeSet<_> = [Permission::UsersRead, Permission::UsersWrite].into();
        assert!(may_grant(&held, &[Permission::UsersRead].into()));
        assert!(may_grant(&held, &BTreeSet::new()));
        assert!(!may_grant(&held, &Permission::ALL.into()));
        // Equal or fewer permissions may be acted on; anything beyond what is held not.
        assert!(may_act_on(&held, &held));
        assert!(may_act_on(&held, &BTreeSet::new()));
        assert!(!may_act_on(&held, &Permission::ALL.into()));
        assert!(!may_act_on(
            &BTreeSet::new(),
            &[Permission::UsersRead].into()
        ));
    }
}
