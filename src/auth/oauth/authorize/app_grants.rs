//! The end of a user's app grants (and personal tokens): the one place every event that
//! ends a user's app access goes through.

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::db::conn::write_transaction;
use crate::db::repo::oauth as repo;
use crate::db::{AnyConnection, Db};
use crate::domain::audit::{AuditAction, Outcome};

/// Why a user's app grants end, as the audit event's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantsEnd {
    PasswordReset,
    PasswordChanged,
    SignedOutEverywhere,
    AdminRevokedSessions,
    AdminDisabled,
    AdminDeleted,
}

impl GrantsEnd {
    fn reason(self) -> &'static str {
        match self {
            Self::PasswordReset => "password.reset",
            Self::PasswordChanged => "password.changed",
            Self::SignedOutEverywhere => "session.revoked",
            Self::AdminRevokedSessions => "admin.sessions_revoked",
            Self::AdminDisabled => "user.disabled",
            Self::AdminDeleted => "user.deleted",
        }
    }
}

/// Ends every app grant of a user: every refresh family of every client is revoked,
/// so its refresh tokens are refused and the access tokens it issued (they carry the
/// grant's id, checked at userinfo and introspection) stop working, and codes not yet
/// exchanged are deleted so that none starts a new grant. The one place every event
/// that ends a user's app access goes through (password reset, a password change that
/// asks for it, "sign out everywhere else", an administrator's revoke sessions,
/// disable and delete). Consents stay: they record what the user allowed, not a
/// credential, so an app gets back in only through a fresh authorization, and the
/// user is not asked again to allow what they allowed. The user's personal access
/// tokens end with them ([`end_personal_tokens`]).
///
/// Runs in the caller's transaction, so the event and the end of its grants commit
/// together; the caller then calls `cache.invalidate()` (every instance forgets what
/// it memoised about these tokens at its next call). Returns how many grants ended.
///
/// Codes go first: on PostgreSQL a code exchange committing at the same moment holds
/// its code's row, so the delete waits for it and the grant update that follows (a new
/// snapshot under READ COMMITTED) sees the grant it inserted; an exchange that comes
/// later finds its code gone. Call it before the transaction records any audit event:
/// that exchange takes the audit chain's lock after its code's, so waiting for its code
/// while holding the chain would deadlock.
pub fn end_app_grants(
    c: &mut AnyConnection,
    ctx: &AuditCtx,
    now: i64,
    user_id: &str,
    why: GrantsEnd,
) -> crate::db::QueryResult<usize> {
    let codes = repo::delete_unused_codes_of_user(c, user_id)?;
    let grants = repo::revoke_all_grants_of_user(c, user_id, now)?;
    // A script's personal access tokens are the account's credentials as much as an
    // app's grants: whatever ends the one ends the other.
    end_personal_tokens(c, ctx, now, user_id, why.reason())?;
    if grants > 0 || codes > 0 {
        record(
            c,
            ctx,
            now,
            AuditAction::TokenRevoked,
            Outcome::Success,
            Some(user_id),
            json!({"token_type": "app_grants", "reason": why.reason(),
                   "grants_revoked": grants, "codes_deleted": codes}),
        )?;
    }
    Ok(grants)
}

/// Ends every personal access token of a user (`auth::access::tokens`), in the
/// caller's transaction, audited as `personal_token.revoked` with `reason` when there
/// was any: from [`end_app_grants`], and at a password change that leaves apps alone.
pub fn end_personal_tokens(
    c: &mut AnyConnection,
    ctx: &AuditCtx,
    now: i64,
    user_id: &str,
    reason: &str,
) -> crate::db::QueryResult<usize> {
    let n = crate::db::repo::personal_tokens::revoke_all_of_user(c, user_id, now)?;
    if n > 0 {
        record(
            c,
            ctx,
            now,
            AuditAction::PersonalTokenRevoked,
            Outcome::Success,
            Some(user_id),
            json!({"reason": reason, "tokens_revoked": n}),
        )?;
    }
    Ok(n)
}

/// [`end_app_grants`] in a transaction of its own, published to the cache: for events
/// that have no transaction to join (ending sessions happens in the session store).
pub async fn end_app_grants_now(
    db: &Db,
    clock: &Clock,
    cache: &BackChannelCache,
    user_id: &str,
    why: GrantsEnd,
    ctx: &AuditCtx,
) -> Result<usize, InternalError> {
    let (uid, ctx, now) = (user_id.to_string(), ctx.clone(), clock.now());
    let n = db
        .run(move |c| {
            write_transaction(c, |c| end_app_grants(c, &ctx, now, &uid, why))
                .map_err(InternalError::from)
        })
        .await?;
    cache.invalidate().await;
    Ok(n)
}

/// Whether an app may still hold tokens of the user (for "Sign out everywhere else").
pub async fn has_live_grant(db: &Db, user_id: &str) -> Result<bool, InternalError> {
    let u = user_id.to_string();
    db.run(move |c| repo::has_live_grant(c, &u).map_err(InternalError::from))
        .await
}
