//! Consents: what a user let an app have, checked and recorded at the consent page,
//! listed on /account/apps and withdrawn there (with every grant the app holds).

use serde_json::json;

use super::audited;
use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::OAuthProvider;
use crate::db::AnyConnection;
use crate::db::conn::write_transaction;
use crate::db::repo::oauth as repo;
use crate::domain::audit::{AuditAction, Outcome};

/// An app the user let in, for /account/apps.
pub struct GrantedApp {
    pub client_id: String,
    pub name: String,
    pub scope: String,
    pub granted_at: i64,
}

impl OAuthProvider {
    pub async fn granted_apps(&self, user_id: &str) -> Result<Vec<GrantedApp>, InternalError> {
        let u = user_id.to_string();
        let rows = self
            .db
            .run(move |c| repo::consents_of(c, &u).map_err(InternalError::from))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(client_id, name, scope, granted_at)| GrantedApp {
                client_id,
                name,
                scope,
                granted_at,
            })
            .collect())
    }
}

impl OAuthProvider {
    /// Withdraws a user's consent for an app: the consent goes, and every grant the app
    /// holds for the user is revoked (its refresh tokens and access tokens stop working).
    pub async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        ctx: &AuditCtx,
    ) -> Result<bool, InternalError> {
        let (db, clock, cache) = (&self.db, &self.clock, &self.cache);
        let (u, cl, now) = (user_id.to_string(), client_id.to_string(), clock.now());
        let event = (AuditAction::ConsentRevoked, Some(u.clone()));
        let revoked = audited(db, (ctx, now), event, move |c| {
            let had = repo::delete_consent(c, &u, &cl)?;
            // Codes handed out but not yet exchanged would start new grants.
            repo::delete_unused_codes(c, &u, &cl)?;
            let grants = repo::revoke_grants_of(c, &u, &cl, now)?;
            if !had && grants == 0 {
                return Ok(None);
            }
            Ok(Some(json!({"client_id": cl, "grants_revoked": grants})))
        })
        .await?;
        cache.invalidate().await;
        Ok(revoked)
    }
}

impl OAuthProvider {
    pub async fn has_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
    ) -> Result<bool, InternalError> {
        let db = &self.db;
        let (u, c2) = (user_id.to_string(), client_id.to_string());
        let granted = db
            .run(move |c| repo::consent(c, &u, &c2).map_err(InternalError::from))
            .await?;
        Ok(granted.is_some_and(|have| covers(&have, scope)))
    }
}

impl OAuthProvider {
    pub async fn record_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        ctx: &AuditCtx,
    ) -> Result<(), InternalError> {
        let (ctx, now) = (ctx.clone(), self.clock.now());
        let (u, cl, s) = (
            user_id.to_string(),
            client_id.to_string(),
            scope.to_string(),
        );
        self.db
            .run(move |c| {
                write_transaction(c, |c| consent_given(c, (&ctx, now), &u, &cl, &s))
                    .map_err(InternalError::from)
            })
            .await
    }
}

/// Records, in the caller's transaction, that the user let the app have `scope`
/// (`consent.granted`), unless a consent on record already covers it (it is not
/// narrowed).
pub fn consent_given(
    c: &mut AnyConnection,
    (ctx, now): (&AuditCtx, i64),
    user_id: &str,
    client_id: &str,
    scope: &str,
) -> crate::db::QueryResult<()> {
    if repo::consent(c, user_id, client_id)?.is_some_and(|have| covers(&have, scope)) {
        return Ok(());
    }
    repo::grant(c, user_id, client_id, scope, now)?;
    let details = json!({"client_id": client_id, "scope": scope});
    record(
        c,
        ctx,
        now,
        AuditAction::ConsentGranted,
        Outcome::Success,
        Some(user_id),
        details,
    )
}

/// Whether a consent for `have` covers every scope in `scope`.
fn covers(have: &str, scope: &str) -> bool {
    let have: Vec<&str> = have.split_whitespace().collect();
    scope.split_whitespace().all(|s| have.contains(&s))
}
