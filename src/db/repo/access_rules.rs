//! Access rules stored from `/admin/policies`, in the order they are tried.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::access_rules;

/// (id, spec as JSON), in order.
pub fn all(c: &mut AnyConnection) -> QueryResult<Vec<(String, String)>> {
    access_rules::table
        .order((access_rules::position.asc(), access_rules::created_at.asc()))
        .select((access_rules::id, access_rules::spec))
        .load(c)
}

/// Appends a rule after the others.
pub fn append(c: &mut AnyConnection, id: &str, spec: &str, now: i64) -> QueryResult<()> {
    let last: Option<i64> = access_rules::table
        .select(diesel::dsl::max(access_rules::position))
        .first(c)?;
    diesel::insert_into(access_rules::table)
        .values((
            access_rules::id.eq(id),
            access_rules::position.eq(last.unwrap_or(0) + 1),
            access_rules::spec.eq(spec),
            access_rules::created_at.eq(now),
        ))
        .execute(c)
        .map(|_| ())
}

/// The spec of the rule removed, if it was there.
pub fn remove(c: &mut AnyConnection, id: &str) -> QueryResult<Option<String>> {
    let spec = access_rules::table
        .find(id)
        .select(access_rules::spec)
        .first::<String>(c)
        .optional()?;
    if spec.is_some() {
        diesel::delete(access_rules::table.find(id)).execute(c)?;
    }
    Ok(spec)
}
