//! The audit log's read side: the pages of `/admin/audit` and `/account/activity`
//! (user ids shown as email addresses where the user still exists), the exports'
//! batches, and checking the hash chain.

use super::checkpoint::Checkpoint;
use super::{AuditLog, ChainVerdict, verify_chain, verify_chain_expecting};
use crate::auth::InternalError;
use crate::db::AnyConnection;
use crate::db::repo::{audit, users};

pub use crate::db::repo::audit::{AuditEvent, Filter};

/// An event with its actor and target as email addresses (the id when the user is
/// gone, empty when there is none).
pub struct NamedEvent {
    pub event: AuditEvent,
    pub actor: String,
    pub target: String,
}

/// One page of events, newest first.
pub struct EventPage {
    pub events: Vec<NamedEvent>,
    /// The cursor of the next page (the last event's id), when there is one.
    pub next_before: Option<i64>,
}

/// Resolves the users `events` name to their email addresses, in one query.
pub(crate) fn named(
    c: &mut AnyConnection,
    events: Vec<AuditEvent>,
) -> crate::db::QueryResult<Vec<NamedEvent>> {
    let mut ids: Vec<String> = events
        .iter()
        .flat_map(|e| [e.actor_id.clone(), e.target_id.clone()])
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    let emails = users::emails_of(c, &ids)?;
    let name = |id: &Option<String>| match id {
        Some(i) => emails.get(i).cloned().unwrap_or_else(|| i.clone()),
        None => String::new(),
    };
    Ok(events
        .into_iter()
        .map(|e| NamedEvent {
            actor: name(&e.actor_id),
            target: name(&e.target_id),
            event: e,
        })
        .collect())
}

impl AuditLog {
    /// `filter` narrowed to the user given as an id or an email address, as typed into
    /// the viewer: an address is resolved to its user's id; an unknown one is kept, so
    /// it matches nothing (rather than everything). Empty: any user.
    pub async fn for_user(&self, user: &str, mut filter: Filter) -> Result<Filter, InternalError> {
        filter.user_id = self.user_id(user).await?;
        Ok(filter)
    }

    async fn user_id(&self, user: &str) -> Result<Option<String>, InternalError> {
        let user = user.trim().to_string();
        if user.is_empty() {
            return Ok(None);
        }
        if !user.contains('@') {
            return Ok(Some(user));
        }
        let norm = crate::domain::email::EmailAddress::parse(&user)
            .map(|e| e.normalized().to_string())
            .unwrap_or_else(|_| user.to_lowercase());
        let found = self
            .db
            .run(move |c| Ok::<_, InternalError>(users::find_by_email(c, &norm)?))
            .await?;
        Ok(Some(found.map(|u| u.id).unwrap_or(user)))
    }

    /// A page of the viewer: `filter` narrowed to `user` (see [`AuditLog::for_user`]).
    pub async fn search(
        &self,
        user: &str,
        filter: Filter,
        before: Option<i64>,
        size: i64,
    ) -> Result<EventPage, InternalError> {
        let filter = self.for_user(user, filter).await?;
        self.page(filter, before, size).await
    }

    /// A page of at most `size` events matching `filter`, after the cursor `before`.
    pub async fn page(
        &self,
        filter: Filter,
        before: Option<i64>,
        size: i64,
    ) -> Result<EventPage, InternalError> {
        self.db
            .run(move |c| {
                let mut events = audit::page(c, &filter, before, size + 1)?;
                let more = events.len() as i64 > size;
                events.truncate(size as usize);
                let next_before = more.then(|| events.last().map(|e| e.id).unwrap_or_default());
                Ok(EventPage {
                    events: named(c, events)?,
                    next_before,
                })
            })
            .await
    }

    /// The signed-in user's own events (`/account/activity`).
    pub async fn activity(
        &self,
        user_id: &str,
        before: Option<i64>,
        size: i64,
    ) -> Result<EventPage, InternalError> {
        let filter = Filter {
            user_id: Some(user_id.to_string()),
            ..Default::default()
        };
        self.page(filter, before, size).await
    }

    /// One batch of an export: at most `size` events after `before`, as stored (one
    /// round trip each, so an export's memory stays flat however many match).
    pub async fn export_batch(
        &self,
        filter: Filter,
        before: Option<i64>,
        size: i64,
    ) -> Result<Vec<AuditEvent>, InternalError> {
        self.db
            .run(move |c| Ok(audit::page(c, &filter, before, size)?))
            .await
    }

    /// Checks the whole hash chain (see [`verify_chain`]).
    pub async fn verify(&self) -> Result<ChainVerdict, InternalError> {
        self.db.run(|c| Ok(verify_chain(c)?)).await
    }

    /// Checks the hash chain and that it still reaches `expect` (see
    /// [`verify_chain_expecting`]); the caller checked the checkpoint's signature.
    pub async fn verify_expecting(
        &self,
        expect: Checkpoint,
    ) -> Result<ChainVerdict, InternalError> {
        self.db
            .run(move |c| Ok(verify_chain_expecting(c, &expect)?))
            .await
    }
}
