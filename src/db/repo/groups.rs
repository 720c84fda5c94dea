//! Groups and their members. The tree (which group sits inside which) is small and
//! read whole; what membership means is `domain::groups`.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{groups, user_groups, users};
use crate::domain::groups::Tree;

#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub parent_id: Option<String>,
    pub created_at: i64,
}

type Columns = (
    groups::id,
    groups::name,
    groups::description,
    groups::parent_id,
    groups::created_at,
);
const COLUMNS: Columns = (
    groups::id,
    groups::name,
    groups::description,
    groups::parent_id,
    groups::created_at,
);

fn row(t: (String, String, String, Option<String>, i64)) -> GroupRow {
    GroupRow {
        id: t.0,
        name: t.1,
        description: t.2,
        parent_id: t.3,
        created_at: t.4,
    }
}

/// Every group, by name.
pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<GroupRow>> {
    let rows: Vec<(String, String, String, Option<String>, i64)> = groups::table
        .order(groups::name.asc())
        .select(COLUMNS)
        .load(conn)?;
    Ok(rows.into_iter().map(row).collect())
}

pub fn find_by_name(conn: &mut AnyConnection, name: &str) -> QueryResult<Option<GroupRow>> {
    let found: Option<(String, String, String, Option<String>, i64)> = groups::table
        .filter(groups::name.eq(name))
        .select(COLUMNS)
        .first(conn)
        .optional()?;
    Ok(found.map(row))
}

/// The whole tree.
pub fn tree(conn: &mut AnyConnection) -> QueryResult<Tree> {
    let rows: Vec<(String, String, Option<String>)> = groups::table
        .select((groups::id, groups::name, groups::parent_id))
        .load(conn)?;
    Ok(Tree::new(rows))
}

pub fn create(conn: &mut AnyConnection, g: &GroupRow) -> QueryResult<()> {
    diesel::insert_into(groups::table)
        .values((
            groups::id.eq(&g.id),
            groups::name.eq(&g.name),
            groups::description.eq(&g.description),
            groups::parent_id.eq(&g.parent_id),
            groups::created_at.eq(g.created_at),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn set_parent(conn: &mut AnyConnection, id: &str, parent: Option<&str>) -> QueryResult<usize> {
    diesel::update(groups::table.find(id))
        .set(groups::parent_id.eq(parent))
        .execute(conn)
}

/// Deletes a group: its memberships go, its child groups move to the top level
/// (explicitly, for databases that do not enforce foreign keys).
pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(user_groups::table.filter(user_groups::group_id.eq(id))).execute(conn)?;
    diesel::update(groups::table.filter(groups::parent_id.eq(id)))
        .set(groups::parent_id.eq(None::<String>))
        .execute(conn)?;
    diesel::delete(groups::table.find(id)).execute(conn)
}

/// How many users are direct members of the group.
pub fn member_count(conn: &mut AnyConnection, id: &str) -> QueryResult<i64> {
    user_groups::table
        .filter(user_groups::group_id.eq(id))
        .count()
        .get_result(conn)
}

/// Direct members as (user id, email), by email.
pub fn members(conn: &mut AnyConnection, id: &str) -> QueryResult<Vec<(String, String)>> {
    user_groups::table
        .inner_join(users::table)
        .filter(user_groups::group_id.eq(id))
        .select((users::id, users::email))
        .order(users::email_normalized.asc())
        .load(conn)
}

/// Users who are direct members of any of `ids`.
pub fn member_ids_of_any(conn: &mut AnyConnection, ids: &[String]) -> QueryResult<Vec<String>> {
    user_groups::table
        .filter(user_groups::group_id.eq_any(ids))
        .select(user_groups::user_id)
        .distinct()
        .load(conn)
}

/// The ids of the groups the user is a direct member of.
pub fn direct_of_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<String>> {
    user_groups::table
        .filter(user_groups::user_id.eq(user_id))
        .select(user_groups::group_id)
        .load(conn)
}

/// The names of the groups the user is in, inherited ones included, sorted. A service
/// account is in its owner group.
pub fn effective_of_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<String>> {
    let mut direct = direct_of_user(conn, user_id)?;
    let owner: Option<Option<String>> = users::table
        .find(user_id)
        .select(users::owner_group_id)
        .first(conn)
        .optional()?;
    direct.extend(owner.flatten());
    if direct.is_empty() {
        return Ok(Vec::new());
    }
    Ok(tree(conn)?.effective(&direct))
}

/// Returns true when the user was not a member yet.
pub fn add_member(
    conn: &mut AnyConnection,
    user_id: &str,
    group_id: &str,
    now: i64,
) -> QueryResult<bool> {
    let already: bool = diesel::select(diesel::dsl::exists(
        user_groups::table.find((user_id, group_id)),
    ))
    .get_result(conn)?;
    if already {
        return Ok(false);
    }
    diesel::insert_into(user_groups::table)
        .values((
            user_groups::user_id.eq(user_id),
            user_groups::group_id.eq(group_id),
            user_groups::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Returns true when the user was a member and is no more.
pub fn remove_member(conn: &mut AnyConnection, user_id: &str, group_id: &str) -> QueryResult<bool> {
    diesel::delete(user_groups::table.find((user_id, group_id)))
        .execute(conn)
        .map(|n| n > 0)
}
