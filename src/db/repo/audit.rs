use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::audit_events as a;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = a)]
pub struct NewAuditEvent {
    pub created_at: i64,
    pub event: String,
    pub outcome: String,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = a)]
pub struct AuditEvent {
    pub id: i64,
    pub created_at: i64,
    pub event: String,
    pub outcome: String,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
}

pub fn insert(conn: &mut AnyConnection, ev: &NewAuditEvent) -> QueryResult<()> {
    diesel::insert_into(a::table)
        .values(ev)
        .execute(conn)
        .map(|_| ())
}

/// Newest first; used by tests and the activity page.
pub fn recent(
    conn: &mut AnyConnection,
    target: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AuditEvent>> {
    let mut q = a::table.into_boxed();
    if let Some(t) = target {
        q = q.filter(a::target_id.eq(t));
    }
    q.order(a::id.desc())
        .limit(limit)
        .select(AuditEvent::as_select())
        .load(conn)
}
