//! Consents: what a user let an app have, checked and recorded at the consent page,
//! listed on /account/apps and withdrawn there (with every grant the app holds).

use serde_json::json;

use super::audited;
use crate::auth::InternalError;
use crate::auth::audit::AuditCtx;
use crate::auth::oauth::OAuthProvider;
use crate::db::repo::oauth as repo;
use crate::domain::audit::AuditAction;

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
        Ok(granted.is_some_and(|g| {
            let have: Vec<&str> = g.split_whitespace().collect();
            scope.split_whitespace().all(|s| have.contains(&s))
        }))
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
        let (db, clock) = (&self.db, &self.clock);
        let (u, cl, s) = (
            user_id.to_string(),
            client_id.to_string(),
            scope.to_string(),
        );
        let (now, event) = (clock.now(), (AuditAction::ConsentGranted, Some(u.clone())));
        audited(db, (ctx, now), event, move |c| {
            repo::grant(c, &u, &cl, &s, now)?;
            Ok(Some(json!({"client_id": cl, "scope": s})))
        })
        .await?;
        Ok(())
    }
}
