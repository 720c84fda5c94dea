//! Every security-relevant action goes through `record`, in the same transaction as the
//! change it describes where there is one, so the log and the data cannot disagree.

pub mod checkpoint;
pub mod reader;

pub use reader::{AuditEvent, EventPage, Filter, NamedEvent};

use serde_json::Value;

use crate::clock::Clock;
use crate::db::repo::audit::{ChainHead, NewAuditEvent, insert, insert_after};
use crate::db::{AnyConnection, Db};
use crate::domain::audit::{AuditAction, Outcome};

/// The audit log as a service, for events that stand alone (no change of data in the
/// same transaction): a sign-out, a refused attempt. Changes record inside their own
/// transaction with [`record`].
#[derive(Clone)]
pub struct AuditLog {
    db: Db,
    clock: Clock,
}

impl AuditLog {
    pub fn new(db: Db, clock: Clock) -> Self {
        Self { db, clock }
    }

    pub async fn record(
        &self,
        ctx: &AuditCtx,
        action: AuditAction,
        outcome: Outcome,
        target: Option<&str>,
        details: Value,
    ) -> Result<(), super::InternalError> {
        let (ctx, now, target) = (ctx.clone(), self.clock.now(), target.map(str::to_string));
        self.db
            .run(move |c| {
                record(c, &ctx, now, action, outcome, target.as_deref(), details)
                    .map_err(super::InternalError::from)
            })
            .await
    }
}

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
) -> crate::db::QueryResult<()> {
    insert(conn, &event(ctx, now, action, outcome, target, details))
}

/// Appends `ev` (made by `event`) after `head`, the chain's head that the transaction
/// took with its statement before (see `repo::audit::locked_head_expr`); with `None` it
/// takes the chain's lock here, as `record` does.
pub fn record_event(
    conn: &mut AnyConnection,
    head: Option<ChainHead>,
    ev: &NewAuditEvent,
) -> crate::db::QueryResult<()> {
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
    ) -> Result<(), crate::auth::InternalError> {
        let (done, committed) = tokio::sync::oneshot::channel();
        let ev = event(ctx, now, action, outcome, target, details);
        let failed = || crate::auth::InternalError::AuditNotWritten;
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
) -> Result<(), crate::auth::InternalError> {
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

/// The event that marks where keyed (HMAC) links begin in a chain that had plain
/// SHA-256 links before.
pub const CHAIN_KEYED: &str = "audit.chain_keyed";

fn no_key() -> crate::db::QueryError {
    crate::db::abort("the audit chain key is not loaded (open the database with the master key)")
}

/// Reads the whole log in id order, in batches (constant memory), and checks each
/// event's link to the one before and its hash: keyed (HMAC) from the chain's first
/// event or from its `audit.chain_keyed` transition on, plain SHA-256 before that.
pub fn verify_chain(conn: &mut AnyConnection) -> crate::db::QueryResult<ChainVerdict> {
    Ok(walk(conn, None)?.0)
}

/// `verify_chain`, and also that the log still reaches the checkpoint's event with the
/// checkpoint's hash there (a checkpoint kept outside the database is what catches the
/// deletion of the newest events). The caller checks the checkpoint's signature.
pub fn verify_chain_expecting(
    conn: &mut AnyConnection,
    expect: &crate::auth::audit::checkpoint::Checkpoint,
) -> crate::db::QueryResult<ChainVerdict> {
    Ok(walk(conn, Some((expect.id, expect.hash.as_str())))?.0)
}

/// The verdict and, when intact, the chain's head: its newest event (or retention's
/// anchor when no event is left) as (id, hash).
pub(crate) fn walk(
    conn: &mut AnyConnection,
    expect: Option<(i64, &str)>,
) -> crate::db::QueryResult<(ChainVerdict, Option<(i64, String)>)> {
    use crate::db::repo::audit::batch_after;
    use crate::domain::audit::chain_hash;
    let broken = |id: i64, problem: &'static str| Ok((ChainVerdict::Broken { id, problem }, None));
    let key = crate::db::conn::chain_key().ok_or_else(no_key)?;
    // After retention pruned the oldest events, the chain continues from the anchor.
    let anchor = anchor(conn)?;
    let mut started = anchor.is_some();
    let (mut prev, mut last_id) = anchor.clone().map(|(id, h)| (h, id)).unwrap_or_default();
    // The anchor lives in the settings table; the `audit.pruned` event that retention
    // appended after it (and that is chained) must name the same one.
    let mut anchor_confirmed = anchor.is_none();
    let mut expect_seen = false;
    if let (Some((id, hash)), Some((anchor_id, anchor_hash))) = (expect, &anchor) {
        if id == *anchor_id && hash != anchor_hash {
            return broken(
                id,
                "its hash differs from the checkpoint's: the log was rewritten",
            );
        }
        // At or before the anchor: retention removed it, after the checkpoint was taken.
        expect_seen = id <= *anchor_id;
    }
    let mut keyed = false;
    let mut hashed = false;
    let mut events = 0u64;
    loop {
        let batch = batch_after(conn, last_id, 1000)?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            last_id = row.id;
            events += 1;
            if row.hash.is_empty() {
                // Events from before the chain existed may only come first.
                if started {
                    return broken(row.id, "its hash was removed");
                }
                continue;
            }
            started = true;
            if row.prev_hash != prev {
                return broken(
                    row.id,
                    "it does not follow the event before it: an event was deleted, changed or reordered",
                );
            }
            let fields = row.chain_fields();
            if key.verifies(&row.prev_hash, &fields, &row.hash) {
                // Keyed links begin at the chain's first event or at the transition.
                if !keyed && hashed && row.event != CHAIN_KEYED {
                    return broken(
                        row.id,
                        "keyed links begin here without the recorded transition (audit.chain_keyed)",
                    );
                }
                keyed = true;
            } else if keyed {
                return broken(
                    row.id,
                    "its content was changed, or it was written without the chain key",
                );
            } else if row.event == CHAIN_KEYED {
                return broken(
                    row.id,
                    "a transition to keyed links that was not written with the chain key",
                );
            } else if chain_hash(&row.prev_hash, &fields) != row.hash {
                return broken(row.id, "its content was changed");
            }
            hashed = true;
            if !anchor_confirmed && row.event == AuditAction::AuditPruned.name() {
                let details: Value = serde_json::from_str(&row.details).unwrap_or_default();
                anchor_confirmed = anchor.as_ref().is_some_and(|(id, hash)| {
                    details["anchor"]["id"].as_i64() == Some(*id)
                        && details["anchor"]["hash"].as_str() == Some(hash)
                });
            }
            if let Some((id, hash)) = expect
                && id == row.id
            {
                if row.hash != hash {
                    return broken(
                        id,
                        "its hash differs from the checkpoint's: the log was rewritten",
                    );
                }
                expect_seen = true;
            }
            prev = row.hash;
        }
    }
    if let Some((id, _)) = &anchor
        && !anchor_confirmed
    {
        return broken(
            *id,
            "retention's anchor is not the one its audit.pruned event recorded",
        );
    }
    if hashed && !keyed {
        return broken(
            last_id,
            "the log ends without keyed links: the events written with the chain key were removed",
        );
    }
    if let Some((id, _)) = expect
        && !expect_seen
    {
        return if id > last_id {
            broken(
                id,
                "the log no longer reaches this event of the checkpoint: the newest events were deleted",
            )
        } else {
            broken(id, "this event of the checkpoint is missing")
        };
    }
    let head = if last_id > 0 && started {
        Some((last_id, prev))
    } else {
        None
    };
    Ok((ChainVerdict::Intact { events }, head))
}

/// Keys the chain: when its newest event carries a plain link (a chain written before
/// keying, on the first start with this release), appends `audit.chain_keyed`,
/// the first keyed link, under the chain's lock. From there on `verify_chain` accepts
/// only keyed links, and the transition's link covers the plain ones before it. Runs at
/// every start (`startup::open_database`); a no-op on a keyed or empty chain.
pub fn ensure_keyed(conn: &mut AnyConnection, now: i64) -> crate::db::QueryResult<bool> {
    use crate::db::repo::audit::{insert_after, last, lock_head};
    use crate::db::repo::settings;
    let key = crate::db::conn::chain_key().ok_or_else(no_key)?;
    crate::db::conn::ensure_write_transaction(conn, |c| {
        let head = lock_head(c)?;
        // Set once the chain is keyed (or starts keyed): a log that later ends in plain
        // links again is a rewritten one, not one to key, and `audit verify` says so.
        let marked = settings::get(c, KEYED)?.is_some();
        let mark = |c: &mut AnyConnection| settings::put(c, KEYED, &now.to_string(), now);
        let Some(newest) = last(c)? else {
            if !marked {
                mark(c)?;
            }
            return Ok(false);
        };
        let fields = newest.chain_fields();
        if key.verifies(&newest.prev_hash, &fields, &newest.hash) {
            if !marked {
                mark(c)?;
            }
            return Ok(false);
        }
        // Neither keyed with this key nor a plain link: another secret key file than
        // the one this log was keyed with, or an altered event. A transition here would
        // paper over either; `audit verify` names the event.
        let plain = newest.hash.is_empty()
            || crate::domain::audit::chain_hash(&newest.prev_hash, &fields) == newest.hash;
        if !plain || marked {
            tracing::error!(
                event_id = newest.id,
                "the newest audit event does not carry a keyed link: the log was rewritten, or this instance's secret key file is not the one the others use; run `portcullis audit verify`"
            );
            return Ok(false);
        }
        let ev = event(
            &AuditCtx::default(),
            now,
            AuditAction::ChainKeyed,
            Outcome::Success,
            None,
            serde_json::json!({"after_event": newest.id, "link": "hmac-sha256"}),
        );
        insert_after(c, head, std::slice::from_ref(&ev))?;
        mark(c)?;
        Ok(true)
    })
}

/// Settings key: when the chain became keyed.
const KEYED: &str = "audit_chain_keyed";

const ANCHOR: &str = "audit_anchor";

/// The id and hash of the last event pruned by retention, if any.
fn anchor(conn: &mut AnyConnection) -> crate::db::QueryResult<Option<(i64, String)>> {
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
) -> crate::db::QueryResult<usize> {
    crate::db::conn::ensure_write_transaction(conn, |c| {
        crate::db::conn::serialize(c, crate::db::conn::locks::AUDIT_CHAIN)?;
        let last = crate::db::repo::audit::newest_before(c, cutoff)?;
        let Some((id, hash)) = last else { return Ok(0) };
        let n = crate::db::repo::audit::delete_through(c, id)?;
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
