use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{role_permissions, roles, user_roles, users};

pub fn exists(conn: &mut AnyConnection, role: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(roles::table.find(role))).get_result(conn)
}

pub fn of_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<String>> {
    user_roles::table
        .filter(user_roles::user_id.eq(user_id))
        .select(user_roles::role)
        .order(user_roles::role.asc())
        .load(conn)
}

/// Every role assignment as (user id, role), ordered by user then role: the roles of
/// many users in one statement (`user list`).
pub fn assignments(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String)>> {
    user_roles::table
        .select((user_roles::user_id, user_roles::role))
        .order((user_roles::user_id.asc(), user_roles::role.asc()))
        .load(conn)
}

/// Returns true when the role was newly assigned.
pub fn assign(conn: &mut AnyConnection, user_id: &str, role: &str, now: i64) -> QueryResult<bool> {
    let already: bool =
        diesel::select(diesel::dsl::exists(user_roles::table.find((user_id, role))))
            .get_result(conn)?;
    if already {
        return Ok(false);
    }
    diesel::insert_into(user_roles::table)
        .values((
            user_roles::user_id.eq(user_id),
            user_roles::role.eq(role),
            user_roles::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Returns true when the role was held and is now removed.
pub fn unassign(conn: &mut AnyConnection, user_id: &str, role: &str) -> QueryResult<bool> {
    diesel::delete(user_roles::table.find((user_id, role)))
        .execute(conn)
        .map(|n| n > 0)
}

pub fn holders_count(conn: &mut AnyConnection, role: &str) -> QueryResult<i64> {
    user_roles::table
        .filter(user_roles::role.eq(role))
        .count()
        .get_result(conn)
}

/// Every role name, builtin first then alphabetical.
pub fn all_names(conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    roles::table
        .order((roles::builtin.desc(), roles::name.asc()))
        .select(roles::name)
        .load(conn)
}

pub struct RoleRow {
    pub name: String,
    pub description: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
    pub holders: i64,
}

/// Every role with its permissions and how many users hold it.
pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<RoleRow>> {
    use crate::db::schema::role_permissions as rp;
    let rows: Vec<(String, String, bool)> = roles::table
        .order((roles::builtin.desc(), roles::name.asc()))
        .select((roles::name, roles::description, roles::builtin))
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, description, builtin) in rows {
        let permissions = rp::table
            .filter(rp::role.eq(&name))
            .select(rp::permission)
            .order(rp::permission.asc())
            .load(conn)?;
        let holders = holders_count(conn, &name)?;
        out.push(RoleRow {
            name,
            description,
            builtin,
            permissions,
            holders,
        });
    }
    Ok(out)
}

pub fn is_builtin(conn: &mut AnyConnection, role: &str) -> QueryResult<Option<bool>> {
    roles::table
        .find(role)
        .select(roles::builtin)
        .first(conn)
        .optional()
}

pub fn create(
    conn: &mut AnyConnection,
    name: &str,
    description: &str,
    now: i64,
) -> QueryResult<()> {
    diesel::insert_into(roles::table)
        .values((
            roles::name.eq(name),
            roles::description.eq(description),
            roles::builtin.eq(false),
            roles::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn set_description(
    conn: &mut AnyConnection,
    name: &str,
    description: &str,
) -> QueryResult<usize> {
    diesel::update(roles::table.find(name))
        .set(roles::description.eq(description))
        .execute(conn)
}

pub fn set_permissions(conn: &mut AnyConnection, name: &str, perms: &[&str]) -> QueryResult<()> {
    use crate::db::schema::role_permissions as rp;
    diesel::delete(rp::table.filter(rp::role.eq(name))).execute(conn)?;
    for p in perms {
        diesel::insert_into(rp::table)
            .values((rp::role.eq(name), rp::permission.eq(*p)))
            .execute(conn)?;
    }
    Ok(())
}

/// Deletes a role; assignments and permissions go with it (foreign keys cascade, and
/// are removed explicitly for databases where they do not).
pub fn delete(conn: &mut AnyConnection, name: &str) -> QueryResult<usize> {
    use crate::db::schema::role_permissions as rp;
    diesel::delete(rp::table.filter(rp::role.eq(name))).execute(conn)?;
    diesel::delete(user_roles::table.filter(user_roles::role.eq(name))).execute(conn)?;
    diesel::delete(roles::table.find(name)).execute(conn)
}

/// The permission names a user holds through all their roles.
pub fn permission_names_of_user(
    conn: &mut AnyConnection,
    user_id: &str,
) -> QueryResult<Vec<String>> {
    role_permissions::table
        .inner_join(user_roles::table.on(user_roles::role.eq(role_permissions::role)))
        .filter(user_roles::user_id.eq(user_id))
        .select(role_permissions::permission)
        .distinct()
        .load(conn)
}

/// The permission names a role grants.
pub fn permission_names_of_role(conn: &mut AnyConnection, role: &str) -> QueryResult<Vec<String>> {
    role_permissions::table
        .filter(role_permissions::role.eq(role))
        .select(role_permissions::permission)
        .load(conn)
}

/// Every permission name held (through any of their roles) by anyone who holds `role`.
pub fn permission_names_of_holders(
    conn: &mut AnyConnection,
    role: &str,
) -> QueryResult<Vec<String>> {
    let holders: Vec<String> = user_roles::table
        .filter(user_roles::role.eq(role))
        .select(user_roles::user_id)
        .load(conn)?;
    role_permissions::table
        .inner_join(user_roles::table.on(user_roles::role.eq(role_permissions::role)))
        .filter(user_roles::user_id.eq_any(holders))
        .select(role_permissions::permission)
        .distinct()
        .load(conn)
}

/// Enabled holders of `role` other than `user_id`.
pub fn enabled_holders_besides(
    conn: &mut AnyConnection,
    role: &str,
    user_id: &str,
) -> QueryResult<i64> {
    user_roles::table
        .inner_join(users::table)
        .filter(user_roles::role.eq(role))
        .filter(users::disabled.eq(false))
        .filter(users::id.ne(user_id))
        .count()
        .get_result(conn)
}
