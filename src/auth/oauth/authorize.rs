//! The provider's records behind the front channel: clients (the admin pages and the
//! CLI), consents (and the apps page), authorization codes, and the end of a user's
//! app grants. The authorize decision itself is `decision`'s; tokens are `grants`'.
//!
//! Client secrets are generated here (32 random bytes), so SHA-256 at rest compared in
//! constant time is right; codes live 60 s and work once.

use crate::auth::oauth::OAuthProvider;
use crate::auth::oauth::cache::BackChannelCache;
use crate::auth::oauth::error::ClientError;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::clock::Clock;
use crate::db::conn::write_transaction;
use crate::db::repo::oauth::{self as repo, AuthCode, Client};
use crate::db::{AnyConnection, Db};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::tokens::{generate, hash};

pub const CODE_TTL_SECS: i64 = 60;
pub const SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "roles",
    "groups",
    "offline_access",
];
pub const GRANTS: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

/// A client's settings, as the CLI and /admin/clients give them.
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub scopes: Vec<String>,
    pub grants: Vec<String>,
    pub skip_consent: bool,
    /// RS256 (the default), ES256 or EdDSA.
    pub id_token_alg: String,
    /// Names of the groups whose members (inherited ones included) may use the app;
    /// empty: every account.
    pub allowed_groups: Vec<String>,
    /// Issue codes only to sessions proven with a second factor.
    pub require_two_factor: bool,
    /// Networks (CIDR or single addresses) the browser must be in at authorize;
    /// empty: anywhere.
    pub allowed_networks: Vec<String>,
}

/// The allowed networks as stored (a JSON array), each checked; `Err` names a bad one.
fn allowed_networks(raw: &[String]) -> Result<String, ClientError> {
    let nets = crate::domain::access::app::parse_network_list(&raw.join(","))
        .map_err(|e| ClientError::Invalid(format!("allowed networks: {e}")))?;
    Ok(json!(nets).to_string())
}

/// The allowed groups, checked against the groups that exist; `Err` names one that
/// does not.
async fn allowed_groups(db: &Db, names: &[String]) -> Result<String, ClientError> {
    let names = crate::domain::access::app::parse_group_list(&names.join(","))
        .map_err(|e| ClientError::Invalid(format!("allowed groups: {e}")))?;
    let wanted = names.clone();
    let missing = db
        .run(move |c| {
            let mut missing = None;
            for n in &wanted {
                if crate::db::repo::groups::find_by_name(c, n)
                    .map_err(InternalError::from)?
                    .is_none()
                {
                    missing = Some(n.clone());
                    break;
                }
            }
            Ok::<_, InternalError>(missing)
        })
        .await?;
    if let Some(n) = missing {
        return Err(ClientError::Invalid(format!("there is no group named {n}")));
    }
    Ok(json!(names).to_string())
}

/// Checks the settings and fills defaults; `Err` says what is wrong, for the operator.
fn settings(c: &NewClient) -> Result<(Vec<String>, Vec<String>), String> {
    if c.name.trim().is_empty() || c.name.len() > 100 {
        return Err("a client needs a name (at most 100 characters)".into());
    }
    for u in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
        match url::Url::parse(u) {
            Ok(url) if url.fragment().is_none() && matches!(url.scheme(), "https" | "http") => {}
            _ => {
                return Err(format!(
                    "not an absolute http(s) URL without a fragment: {u}"
                ));
            }
        }
    }
    let scopes = if c.scopes.is_empty() {
        vec!["openid".into(), "profile".into(), "email".into()]
    } else {
        c.scopes.clone()
    };
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(format!("unknown scope: {bad}"));
    }
    let grants = if c.grants.is_empty() {
        vec!["authorization_code".into(), "refresh_token".into()]
    } else {
        c.grants.clone()
    };
    if let Some(bad) = grants.iter().find(|g| !GRANTS.contains(&g.as_str())) {
        return Err(format!("unknown grant: {bad}"));
    }
    if grants.iter().any(|g| g == "authorization_code") && c.redirect_uris.is_empty() {
        return Err("a client using authorization_code needs at least one redirect URI".into());
    }
    if c.public && grants.iter().any(|g| g == "client_credentials") {
        return Err("a public client has no secret, so it cannot use client_credentials".into());
    }
    if crate::auth::oauth::signing_keys::supported(&c.id_token_alg).is_none() {
        return Err(format!(
            "unsupported ID token algorithm: {} (RS256, ES256 or EdDSA)",
            c.id_token_alg
        ));
    }
    Ok((scopes, grants))
}

/// Registers a client; returns its id and, for a confidential client, the secret
/// (shown once, stored as SHA-256).
pub async fn create_client(
    db: &Db,
    clock: &Clock,
    c: NewClient,
    ctx: &AuditCtx,
) -> Result<(String, Option<String>), ClientError> {
    let (scopes, grants) = settings(&c).map_err(ClientError::Invalid)?;
    let allowed = allowed_groups(db, &c.allowed_groups).await?;
    let networks = allowed_networks(&c.allowed_networks)?;
    let client_id = generate()[..22].to_string();
    let secret = (!c.public).then(generate);
    let row = Client {
        client_id: client_id.clone(),
        name: c.name.trim().to_string(),
        secret_hash: secret.as_deref().map(hash),
        redirect_uris: json!(c.redirect_uris).to_string(),
        post_logout_redirect_uris: json!(c.post_logout_redirect_uris).to_string(),
        scopes: scopes.join(" "),
        grants: grants.join(" "),
        skip_consent: c.skip_consent,
        created_at: clock.now(),
        id_token_alg: c.id_token_alg,
        allowed_groups: allowed,
        require_two_factor: c.require_two_factor,
        allowed_networks: networks,
        service_account_id: None,
    };
    let (ctx, now) = (ctx.clone(), clock.now());
    db.run(move |conn| {
        write_transaction(conn, |conn| {
            repo::insert_client(conn, &row)?;
            record(
                conn,
                &ctx,
                now,
                AuditAction::ClientCreated,
                Outcome::Success,
                None,
                json!({"client_id": row.client_id, "name": row.name, "public": row.secret_hash.is_none(),
                       "allowed_groups": row.allowed_groups(), "require_two_factor": row.require_two_factor,
                       "allowed_networks": row.allowed_networks()}),
            )
        })
        .map_err(InternalError::from)
    })
    .await?;
    Ok((client_id, secret))
}

impl OAuthProvider {
    /// Saves a client's new settings (whether it is public does not change: that would
    /// mean issuing or dropping a secret).
    pub async fn update_client(
        &self,
        id: &str,
        mut c: NewClient,
        ctx: &AuditCtx,
    ) -> Result<(), ClientError> {
        let (db, clock, cache) = (&self.db, &self.clock, &self.cache);
        let Some(existing) = client(db, id).await? else {
            return Err(ClientError::Invalid("no such client".into()));
        };
        c.public = existing.is_public();
        let (scopes, grants) = settings(&c).map_err(ClientError::Invalid)?;
        if existing.service_account_id.is_some() && grants != ["client_credentials"] {
            return Err(ClientError::Invalid(
                "a service account's client uses client_credentials only".into(),
            ));
        }
        let allowed = allowed_groups(db, &c.allowed_groups).await?;
        let networks = allowed_networks(&c.allowed_networks)?;
        let row = Client {
            name: c.name.trim().to_string(),
            redirect_uris: json!(c.redirect_uris).to_string(),
            post_logout_redirect_uris: json!(c.post_logout_redirect_uris).to_string(),
            scopes: scopes.join(" "),
            grants: grants.join(" "),
            skip_consent: c.skip_consent,
            id_token_alg: c.id_token_alg,
            allowed_groups: allowed,
            require_two_factor: c.require_two_factor,
            allowed_networks: networks,
            ..existing
        };
        let (ctx, now) = (ctx.clone(), clock.now());
        db.run(move |conn| {
            write_transaction(conn, |conn| {
                repo::update_client(conn, &row)?;
                record(
                    conn,
                    &ctx,
                    now,
                    AuditAction::ClientUpdated,
                    Outcome::Success,
                    None,
                    json!({
                        "client_id": row.client_id, "name": row.name,
                        "redirect_uris": row.redirect_uris(), "scopes": row.scopes,
                        "grants": row.grants, "skip_consent": row.skip_consent,
                        "allowed_groups": row.allowed_groups(),
                        "require_two_factor": row.require_two_factor,
                        "allowed_networks": row.allowed_networks(),
                    }),
                )
            })
            .map_err(InternalError::from)
        })
        .await?;
        cache.invalidate().await;
        Ok(())
    }
}

impl OAuthProvider {
    /// Registers a client (see [`create_client`]).
    pub async fn create_client(
        &self,
        c: NewClient,
        ctx: &AuditCtx,
    ) -> Result<(String, Option<String>), ClientError> {
        create_client(&self.db, &self.clock, c, ctx).await
    }

    /// A new secret for a confidential client: the old one stops working at once.
    pub async fn rotate_secret(
        &self,
        id: &str,
        ctx: &AuditCtx,
    ) -> Result<Option<String>, InternalError> {
        let (db, clock, cache) = (&self.db, &self.clock, &self.cache);
        let Some(existing) = client(db, id).await? else {
            return Ok(None);
        };
        if existing.is_public() {
            return Ok(None);
        }
        let secret = generate();
        let (h, id, ctx, now) = (hash(&secret), id.to_string(), ctx.clone(), clock.now());
        db.run(move |conn| {
            write_transaction(conn, |conn| {
                repo::set_secret_hash(conn, &id, &h)?;
                record(
                    conn,
                    &ctx,
                    now,
                    AuditAction::ClientUpdated,
                    Outcome::Success,
                    None,
                    json!({"client_id": id, "secret": "rotated"}),
                )
            })
            .map_err(InternalError::from)
        })
        .await?;
        cache.invalidate().await;
        Ok(Some(secret))
    }
}

impl OAuthProvider {
    /// Deletes a client with everything issued to it.
    pub async fn delete_client(&self, id: &str, ctx: &AuditCtx) -> Result<bool, InternalError> {
        let (db, clock, cache) = (&self.db, &self.clock, &self.cache);
        let (id, ctx, now) = (id.to_string(), ctx.clone(), clock.now());
        let deleted = db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let Some(existing) = repo::find_client(conn, &id)? else {
                        return Ok(false);
                    };
                    repo::delete_client(conn, &id)?;
                    record(
                        conn,
                        &ctx,
                        now,
                        AuditAction::ClientDeleted,
                        Outcome::Success,
                        None,
                        json!({"client_id": id, "name": existing.name}),
                    )?;
                    Ok(true)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        cache.invalidate().await;
        Ok(deleted)
    }
}

impl OAuthProvider {
    pub async fn clients(&self) -> Result<Vec<Client>, InternalError> {
        self.db
            .run(|c| repo::list_clients(c).map_err(InternalError::from))
            .await
    }
}

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
        let (u, cl, ctx, now) = (
            user_id.to_string(),
            client_id.to_string(),
            ctx.clone(),
            clock.now(),
        );
        let revoked = db
            .run(move |c| {
                write_transaction(c, |c| {
                    let had = repo::delete_consent(c, &u, &cl)?;
                    // Codes handed out but not yet exchanged would start new grants.
                    repo::delete_unused_codes(c, &u, &cl)?;
                    let grants = repo::revoke_grants_of(c, &u, &cl, now)?;
                    if !had && grants == 0 {
                        return Ok(false);
                    }
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::ConsentRevoked,
                        Outcome::Success,
                        Some(&u),
                        json!({"client_id": cl, "grants_revoked": grants}),
                    )?;
                    Ok(true)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        cache.invalidate().await;
        Ok(revoked)
    }
}

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

pub async fn client(db: &Db, id: &str) -> Result<Option<Client>, InternalError> {
    let id = id.to_string();
    db.run(move |c| repo::find_client(c, &id).map_err(InternalError::from))
        .await
}

/// Client authentication at the token endpoint: the secret compared as SHA-256 in
/// constant time. Public clients have none and must use PKCE.
pub fn client_authenticates(client: &Client, secret: Option<&str>) -> bool {
    match (&client.secret_hash, secret) {
        (Some(stored), Some(given)) => hash(given).as_bytes().ct_eq(stored.as_bytes()).into(),
        (None, None) => true,
        _ => false,
    }
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
        let (u, cl, s, ctx, now) = (
            user_id.to_string(),
            client_id.to_string(),
            scope.to_string(),
            ctx.clone(),
            clock.now(),
        );
        db.run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                repo::grant(c, &u, &cl, &s, now)?;
                record(
                    c,
                    &ctx,
                    now,
                    AuditAction::ConsentGranted,
                    Outcome::Success,
                    Some(&u),
                    json!({"client_id": cl, "scope": s}),
                )
            })
            .map_err(InternalError::from)
        })
        .await
    }
}
