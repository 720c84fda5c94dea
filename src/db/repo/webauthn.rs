use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::webauthn_credentials as w;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = w)]
pub struct StoredCredential {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    pub name: String,
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

pub fn insert(conn: &mut AnyConnection, c: &StoredCredential) -> QueryResult<()> {
    diesel::insert_into(w::table)
        .values(c)
        .execute(conn)
        .map(|_| ())
}

pub fn for_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<StoredCredential>> {
    w::table
        .filter(w::user_id.eq(user_id))
        .order(w::created_at.asc())
        .select(StoredCredential::as_select())
        .load(conn)
}

pub fn exists_for_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(w::table.filter(w::user_id.eq(user_id)))).get_result(conn)
}

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<StoredCredential>> {
    w::table
        .find(id)
        .select(StoredCredential::as_select())
        .first(conn)
        .optional()
}

pub fn record_use(
    conn: &mut AnyConnection,
    id: &str,
    credential: Option<&str>,
    now: i64,
) -> QueryResult<usize> {
    match credential {
        Some(json) => diesel::update(w::table.find(id))
            .set((w::credential.eq(json), w::last_used_at.eq(now)))
            .execute(conn),
        None => diesel::update(w::table.find(id))
            .set(w::last_used_at.eq(now))
            .execute(conn),
    }
}

pub fn rename(conn: &mut AnyConnection, user_id: &str, id: &str, name: &str) -> QueryResult<usize> {
    diesel::update(w::table.find(id).filter(w::user_id.eq(user_id)))
        .set(w::name.eq(name))
        .execute(conn)
}

pub fn delete(conn: &mut AnyConnection, user_id: &str, id: &str) -> QueryResult<usize> {
    diesel::delete(w::table.find(id).filter(w::user_id.eq(user_id))).execute(conn)
}
