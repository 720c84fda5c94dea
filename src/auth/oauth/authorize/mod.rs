//! The provider's records behind the front channel: clients (`clients`: the admin
//! pages and the CLI), consents (`consents`: and the apps page), authorization codes
//! (here), and the end of a user's app grants (`app_grants`). The authorize decision
//! itself is `decision`'s; tokens are `grants`'.
//!
//! Client secrets are generated here (32 random bytes), so SHA-256 at rest compared in
//! constant time is right; codes live 60 s and work once.

use serde_json::Value;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::OAuthProvider;
use crate::db::conn::write_transaction;
use crate::db::repo::oauth::{self as repo, AuthCode};
use crate::db::{AnyConnection, Db};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::tokens::{generate, hash};

mod app_grants;
mod clients;
mod consents;

pub use app_grants::{
    GrantsEnd, end_app_grants, end_app_grants_now, end_personal_tokens, has_live_grant,
};
pub use clients::{
    DEVICE_GRANT, GRANTS, NewClient, SCOPES, client, client_authenticates, create_client,
    service_account_client,
};
pub use consents::{GrantedApp, consent_given};

pub const CODE_TTL_SECS: i64 = 60;

/// Runs `change` in one write transaction and, when it returns the event's details,
/// audits them as `action` (about the user `target`) in the same transaction. Returns
/// whether it did.
async fn audited(
    db: &Db,
    (ctx, now): (&AuditCtx, i64),
    (action, target): (AuditAction, Option<String>),
    change: impl FnOnce(&mut AnyConnection) -> crate::db::QueryResult<Option<Value>> + Send + 'static,
) -> Result<bool, InternalError> {
    let ctx = ctx.clone();
    db.run(move |c| {
        write_transaction(c, |c| {
            let Some(details) = change(c)? else {
                return Ok(false);
            };
            let target = target.as_deref();
            record(c, &ctx, now, action, Outcome::Success, target, details)?;
            Ok(true)
        })
        .map_err(|e: crate::db::QueryError| InternalError::from(e))
    })
    .await
}

/// What the signed-in user approved for the client, recorded with the code.
pub struct Grant {
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub sid: String,
}

impl OAuthProvider {
    pub async fn issue_code(&self, g: Grant) -> Result<String, InternalError> {
        let (db, clock) = (&self.db, &self.clock);
        let code = generate();
        let now = clock.now();
        let row = AuthCode {
            code_hash: hash(&code),
            client_id: g.client_id,
            user_id: g.user_id,
            redirect_uri: g.redirect_uri,
            scope: g.scope,
            nonce: g.nonce,
            code_challenge: g.code_challenge,
            auth_time: g.auth_time,
            amr: g.amr.join(" "),
            sid: g.sid,
            created_at: now,
            expires_at: now + CODE_TTL_SECS,
            used_at: None,
        };
        db.run(move |c| repo::insert_code(c, &row).map_err(InternalError::from))
            .await?;
        Ok(code)
    }
}
