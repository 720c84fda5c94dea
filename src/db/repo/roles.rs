use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{roles, user_roles};

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
