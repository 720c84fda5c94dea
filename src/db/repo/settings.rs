//! Runtime settings: a row overrides the configured value; no row means the config.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::settings as s;

pub fn get(conn: &mut AnyConnection, name: &str) -> QueryResult<Option<String>> {
    s::table.find(name).select(s::value).first(conn).optional()
}

/// Sets a value (the caller holds a write transaction).
pub fn put(conn: &mut AnyConnection, name: &str, value: &str, now: i64) -> QueryResult<()> {
    diesel::delete(s::table.find(name)).execute(conn)?;
    diesel::insert_into(s::table)
        .values((s::name.eq(name), s::value.eq(value), s::updated_at.eq(now)))
        .execute(conn)
        .map(|_| ())
}
