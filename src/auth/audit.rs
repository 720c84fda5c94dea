//! Every security-relevant action goes through `record`, in the same transaction as the
//! change it describes where there is one, so the log and the data cannot disagree.

use serde_json::Value;

use crate::db::AnyConnection;
use crate::db::repo::audit::{NewAuditEvent, insert};
use crate::domain::audit::{AuditAction, Outcome};

/// Who did it and from where: filled in by the web layer from the request.
#[derive(Debug, Clone, Default)]
pub struct AuditCtx {
    pub actor_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl AuditCtx {
    /// For the command line: no request, the actor is the operator's shell.
    pub fn cli() -> Self {
        Self {
            user_agent: Some("portcullis-cli".into()),
            ..Default::default()
        }
    }

    pub fn with_actor(&self, actor: &str) -> Self {
        let mut c = self.clone();
        c.actor_id = Some(actor.to_string());
        c
    }
}

pub fn record(
    conn: &mut AnyConnection,
    ctx: &AuditCtx,
    now: i64,
    action: AuditAction,
    outcome: Outcome,
    target: Option<&str>,
    details: Value,
) -> diesel::QueryResult<()> {
    tracing::info!(
        event = action.name(),
        outcome = outcome.name(),
        actor = ctx.actor_id.as_deref().unwrap_or("-"),
        target = target.unwrap_or("-"),
        ip = ctx.ip.as_deref().unwrap_or("-"),
        request_id = ctx.request_id.as_deref().unwrap_or("-"),
        "audit"
    );
    insert(
        conn,
        &NewAuditEvent {
            created_at: now,
            event: action.name().to_string(),
            outcome: outcome.name().to_string(),
            actor_id: ctx.actor_id.clone(),
            target_id: target.map(str::to_string),
            ip: ctx.ip.clone(),
            user_agent: ctx
                .user_agent
                .as_ref()
                .map(|s| s.chars().take(512).collect()),
            request_id: ctx.request_id.clone(),
            details: details.to_string(),
        },
    )
}

/// An event with no data change to go with it (a lock-out, a refusal).
pub async fn record_alone(
    db: &crate::db::Db,
    now: i64,
    ctx: &AuditCtx,
    action: AuditAction,
    outcome: Outcome,
    target: Option<String>,
    details: Value,
) -> Result<(), super::InternalError> {
    let ctx = ctx.clone();
    db.run(move |c| {
        record(c, &ctx, now, action, outcome, target.as_deref(), details)
            .map_err(super::InternalError::from)
    })
    .await
}
