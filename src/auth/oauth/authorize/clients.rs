//! OAuth clients: their settings checked, created (the secret shown once), updated,
//! given a new secret, deleted; and a client's secret checked at the token endpoint.

use serde_json::json;
use subtle::ConstantTimeEq;

use super::audited;
use crate::auth::InternalError;
use crate::auth::audit::AuditCtx;
use crate::auth::oauth::OAuthProvider;
use crate::auth::oauth::error::ClientError;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::oauth::{self as repo, Client};
use crate::domain::audit::AuditAction;
use crate::domain::tokens::{generate, hash};

pub const SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "roles",
    "groups",
    "offline_access",
];
/// RFC 8628's grant type: a device (a TV, a command-line tool) shows a code that its
/// user enters at `/device`.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const GRANTS: [&str; 4] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    DEVICE_GRANT,
];

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
    /// Authorization requests must be pushed first (RFC 9126); plain ones are refused.
    pub require_par: bool,
    /// How it authenticates at the back channel (`None`: client_secret_basic, or none
    /// for a public client); private_key_jwt needs `jwks`.
    pub auth_method: Option<String>,
    /// private_key_jwt: the client's public keys, a JWK Set (JSON).
    pub jwks: Option<String>,
}

/// The methods a client may register (RFC 7591's token_endpoint_auth_method).
pub const AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    repo::PRIVATE_KEY_JWT,
    "none",
];

/// The client's authentication method and its stored JWK Set; a public client
/// authenticates with `none`, a confidential one with a secret or its keys.
fn auth_method(c: &NewClient) -> Result<(String, Option<String>), String> {
    let default = if c.public {
        "none"
    } else {
        "client_secret_basic"
    };
    let method = c.auth_method.as_deref().unwrap_or(default);
    if !AUTH_METHODS.contains(&method) {
        return Err(format!(
            "unknown token endpoint auth method: {method} ({})",
            AUTH_METHODS.join(", ")
        ));
    }
    if c.public != (method == "none") {
        return Err("a public client authenticates with none, and only it".into());
    }
    match (method == repo::PRIVATE_KEY_JWT, c.jwks.as_deref()) {
        (true, Some(jwks)) => {
            let jwks = crate::auth::oauth::client_assertion::registered_jwks(jwks)?;
            Ok((method.to_string(), Some(jwks)))
        }
        (true, None) => Err("a private_key_jwt client needs its public keys (a JWK Set)".into()),
        (false, Some(_)) => Err("keys are only for a private_key_jwt client".into()),
        (false, None) => Ok((method.to_string(), None)),
    }
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

/// A fresh client id: 22 characters of a random token, starting with a letter or a
/// digit (an id starting with `-` reads as an option to a shell command).
fn new_client_id() -> String {
    loop {
        let t = generate();
        if t.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return t[..22].to_string();
        }
    }
}

/// The row of a service account's client credentials (`access::service_accounts`
/// stores it with the account's checks): confidential, `client_credentials` only,
/// scope `groups`, bound to the account. Returns it with its secret (shown once,
/// stored as SHA-256).
pub fn service_account_client(account_id: &str, name: &str, now: i64) -> (Client, String) {
    let secret = generate();
    let row = Client {
        client_id: new_client_id(),
        name: name.to_string(),
        secret_hash: Some(hash(&secret)),
        redirect_uris: "[]".into(),
        post_logout_redirect_uris: "[]".into(),
        scopes: "groups".into(),
        grants: "client_credentials".into(),
        skip_consent: false,
        created_at: now,
        id_token_alg: "RS256".into(),
        allowed_groups: "[]".into(),
        require_two_factor: false,
        allowed_networks: "[]".into(),
        service_account_id: Some(account_id.to_string()),
        require_par: false,
        token_endpoint_auth_method: "client_secret_basic".into(),
    };
    (row, secret)
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
    let (method, jwks) = auth_method(&c).map_err(ClientError::Invalid)?;
    let allowed = allowed_groups(db, &c.allowed_groups).await?;
    let networks = allowed_networks(&c.allowed_networks)?;
    let client_id = new_client_id();
    // A private_key_jwt client proves itself with its keys: a secret would be a
    // second, weaker way in.
    let secret = (!c.public && jwks.is_none()).then(generate);
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
        require_par: c.require_par,
        token_endpoint_auth_method: method,
    };
    let event = (AuditAction::ClientCreated, None);
    audited(db, (ctx, clock.now()), event, move |conn| {
        repo::insert_client(conn, &row)?;
        if let Some(jwks) = &jwks {
            crate::db::repo::client_assertions::insert_keys(conn, &row.client_id, jwks)?;
        }
        Ok(Some(
            json!({"client_id": row.client_id, "name": row.name, "public": row.secret_hash.is_none(),
                   "allowed_groups": row.allowed_groups(), "require_two_factor": row.require_two_factor,
                   "allowed_networks": row.allowed_networks(), "require_par": row.require_par,
                   "token_endpoint_auth_method": row.token_endpoint_auth_method}),
        ))
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
            require_par: c.require_par,
            ..existing
        };
        let event = (AuditAction::ClientUpdated, None);
        audited(db, (ctx, clock.now()), event, move |conn| {
            repo::update_client(conn, &row)?;
            Ok(Some(json!({
                "client_id": row.client_id, "name": row.name,
                "redirect_uris": row.redirect_uris(), "scopes": row.scopes,
                "grants": row.grants, "skip_consent": row.skip_consent,
                "allowed_groups": row.allowed_groups(),
                "require_two_factor": row.require_two_factor,
                "allowed_networks": row.allowed_networks(),
                "require_par": row.require_par,
            })))
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

    /// A new secret for a confidential client: the old one stops working at once (the
    /// cache's memo of the client goes on every instance, and on SQLite in every
    /// process: see `cache`). Audited as `client.updated`.
    pub async fn rotate_secret(&self, id: &str, ctx: &AuditCtx) -> Result<String, ClientError> {
        let (db, clock, cache) = (&self.db, &self.clock, &self.cache);
        let Some(existing) = client(db, id).await? else {
            return Err(ClientError::Invalid(
                "There is no client with that id.".into(),
            ));
        };
        if existing.uses_private_key_jwt() {
            return Err(ClientError::Invalid(
                "This client signs with its keys: it has no secret to rotate.".into(),
            ));
        }
        if existing.is_public() {
            return Err(ClientError::Invalid(
                "A public client has no secret to rotate.".into(),
            ));
        }
        let secret = generate();
        let (h, id) = (hash(&secret), id.to_string());
        let event = (AuditAction::ClientUpdated, None);
        audited(db, (ctx, clock.now()), event, move |conn| {
            repo::set_secret_hash(conn, &id, &h)?;
            Ok(Some(json!({"client_id": id, "secret": "rotated"})))
        })
        .await?;
        cache.invalidate().await;
        Ok(secret)
    }
}

impl OAuthProvider {
    /// Deletes a client with everything issued to it.
    pub async fn delete_client(&self, id: &str, ctx: &AuditCtx) -> Result<bool, InternalError> {
        let (db, clock, cache) = (&self.db, &self.clock, &self.cache);
        let id = id.to_string();
        let event = (AuditAction::ClientDeleted, None);
        let deleted = audited(db, (ctx, clock.now()), event, move |conn| {
            let Some(existing) = repo::find_client(conn, &id)? else {
                return Ok(None);
            };
            repo::delete_client(conn, &id)?;
            Ok(Some(json!({"client_id": id, "name": existing.name})))
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

pub async fn client(db: &Db, id: &str) -> Result<Option<Client>, InternalError> {
    let id = id.to_string();
    db.run(move |c| repo::find_client(c, &id).map_err(InternalError::from))
        .await
}

/// Client authentication at the token endpoint: the secret compared as SHA-256 in
/// constant time. Public clients have none and must use PKCE. A private_key_jwt client
/// never authenticates this way: it has no secret, and naming itself is not enough.
pub fn client_authenticates(client: &Client, secret: Option<&str>) -> bool {
    if client.uses_private_key_jwt() {
        return false;
    }
    match (&client.secret_hash, secret) {
        (Some(stored), Some(given)) => hash(given).as_bytes().ct_eq(stored.as_bytes()).into(),
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    /// One id in 32 drawn without the check started with `-` or `_`.
    #[test]
    fn client_ids_start_with_a_letter_or_a_digit() {
        for _ in 0..2000 {
            let id = super::new_client_id();
            assert_eq!(id.len(), 22);
            assert!(id.starts_with(|c: char| c.is_ascii_alphanumeric()), "{id}");
        }
    }
}
