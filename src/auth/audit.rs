//! Every security-relevant action goes through `record`, in the same transaction as the
//! change it describes where there is one, so the log and the data cannot disagree.

use serde_json::Value;

use crate::db::AnyConnection;
use crate::db::repo::audit::{ChainHead, NewAuditEvent, insert, insert_after};
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
    insert(conn, &event(ctx, now, action, outcome, target, details))
}

/// Appends `ev` (made by `event`) after `head`, the chain's head that the transaction
/// took with its statement before (see `repo::audit::locked_head_expr`); with `None` it
/// takes the chain's lock here, as `record` does.
pub fn record_event(
    conn: &mut AnyConnection,
    head: Option<ChainHead>,
    ev: &NewAuditEvent,
) -> diesel::QueryResult<()> {
    match head {
        Some(head) => insert_after(conn, head, std::slice::from_ref(ev)),
        None => insert(conn, ev),
    }
}

/// The row for an event (and its log line).
pub fn event(
    ctx: &AuditCtx,
    now: i64,
    action: AuditAction,
    outcome: Outcome,
    target: Option<&str>,
    details: Value,
) -> NewAuditEvent {
    tracing::info!(
        event = action.name(),
        outcome = outcome.name(),
        actor = ctx.actor_id.as_deref().unwrap_or("-"),
        target = target.unwrap_or("-"),
        ip = ctx.ip.as_deref().unwrap_or("-"),
        request_id = ctx.request_id.as_deref().unwrap_or("-"),
        "audit"
    );
    NewAuditEvent {
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
    }
}

/// Group commit for events that stand alone (no data change goes with them), such as
/// every `client_credentials` token: the events of concurrent requests are appended in
/// one transaction under one chain lock, and each request goes on only once its event
/// is committed, so nothing is issued unaudited. Under no load a batch is one event.
#[derive(Clone)]
pub struct Batcher {
    tx: tokio::sync::mpsc::Sender<(NewAuditEvent, tokio::sync::oneshot::Sender<bool>)>,
}

const MAX_BATCH: usize = 256;

impl Batcher {
    /// Starts the writer task (needs a Tokio runtime).
    pub fn start(db: crate::db::Db) -> Self {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<(NewAuditEvent, tokio::sync::oneshot::Sender<bool>)>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let events: Vec<NewAuditEvent> = batch.iter().map(|(e, _)| e.clone()).collect();
                let ok = db
                    .run(move |c| {
                        crate::db::repo::audit::insert_many(c, &events)
                            .map_err(super::InternalError::from)
                    })
                    .await;
                if let Err(e) = &ok {
                    tracing::error!(error = %e, events = batch.len(), "audit append failed");
                }
                for (_, done) in batch {
                    let _ = done.send(ok.is_ok());
                }
            }
        });
        Self { tx }
    }

    /// Appends one event; returns once it is committed.
    pub async fn record(
        &self,
        ctx: &AuditCtx,
        now: i64,
        action: AuditAction,
        outcome: Outcome,
        target: Option<&str>,
        details: Value,
    ) -> Result<(), super::InternalError> {
        let (done, committed) = tokio::sync::oneshot::channel();
        let ev = event(ctx, now, action, outcome, target, details);
        let failed = || super::InternalError::Other("the audit event was not written".into());
        self.tx.send((ev, done)).await.map_err(|_| failed())?;
        match committed.await {
            Ok(true) => Ok(()),
            _ => Err(failed()),
        }
    }
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

/// The result of checking the audit hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    Intact {
        events: u64,
    },
    /// The first event that does not verify, and why.
    Broken {
        id: i64,
        problem: &'static str,
    },
}

/// Reads the whole log in id order, in batches (constant memory), and checks each
/// event's hash and its link to the one before.
pub fn verify_chain(conn: &mut AnyConnection) -> diesel::QueryResult<ChainVerdict> {
    use crate::db::repo::audit::batch_after;
    use crate::domain::audit::chain_hash;
    // After retention pruned the oldest events, the chain continues from the anchor.
    let anchor = anchor(conn)?;
    let mut started = anchor.is_some();
    let (mut prev, mut last_id) = anchor.map(|(id, h)| (h, id)).unwrap_or_default();
    let mut events = 0u64;
    loop {
        let batch = batch_after(conn, last_id, 1000)?;
        if batch.is_empty() {
            return Ok(ChainVerdict::Intact { events });
        }
        for row in batch {
            last_id = row.id;
            events += 1;
            if row.hash.is_empty() {
                // Events from before the chain existed may only come first.
                if started {
                    return Ok(ChainVerdict::Broken {
                        id: row.id,
                        problem: "its hash was removed",
                    });
                }
                continue;
            }
            started = true;
            if row.prev_hash != prev {
                return Ok(ChainVerdict::Broken {
                    id: row.id,
                    problem: "it does not follow the event before it: an event was deleted, changed or reordered",
                });
            }
            if chain_hash(&row.prev_hash, &row.chain_fields()) != row.hash {
                return Ok(ChainVerdict::Broken {
                    id: row.id,
                    problem: "its content was changed",
                });
            }
            prev = row.hash;
        }
    }
}

const ANCHOR: &str = "audit_anchor";

/// The id and hash of the last event pruned by retention, if any.
fn anchor(conn: &mut AnyConnection) -> diesel::QueryResult<Option<(i64, String)>> {
    Ok(crate::db::repo::settings::get(conn, ANCHOR)?
        .and_then(|v| serde_json::from_str::<Value>(&v).ok())
        .and_then(|v| Some((v["id"].as_i64()?, v["hash"].as_str()?.to_string()))))
}

/// Retention: deletes events older than `cutoff`, only from the oldest end, keeps the
/// last deleted event's hash as the anchor the rest verifies from, and records the
/// pruning itself as an event (so a forged anchor contradicts the chain). Serialised
/// with appends. Returns how many events went.
pub fn prune(
    conn: &mut AnyConnection,
    ctx: &AuditCtx,
    cutoff: i64,
    now: i64,
) -> diesel::QueryResult<usize> {
    use crate::db::schema::audit_events as a;
    use diesel::prelude::*;
    crate::db::conn::ensure_write_transaction(conn, |c| {
        crate::db::conn::serialize(c, crate::db::conn::locks::AUDIT_CHAIN)?;
        let last: Option<(i64, String)> = a::table
            .filter(a::created_at.lt(cutoff))
            .order(a::id.desc())
            .select((a::id, a::hash))
            .first(c)
            .optional()?;
        let Some((id, hash)) = last else { return Ok(0) };
        let n = diesel::delete(a::table.filter(a::id.le(id))).execute(c)?;
        let anchor = serde_json::json!({"id": id, "hash": hash});
        crate::db::repo::settings::put(c, ANCHOR, &anchor.to_string(), now)?;
        record(
            c,
            ctx,
            now,
            AuditAction::AuditPruned,
            Outcome::Success,
            None,
            serde_json::json!({"deleted": n, "anchor": anchor}),
        )?;
        Ok(n)
    })
}
