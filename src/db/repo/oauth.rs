//! OAuth clients, signing keys, authorization codes and consents (device requests:
//! `device_codes`).

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{
    auth_codes, consents, oauth_clients, oauth_grants, refresh_tokens, revoked_access_tokens,
    signing_keys,
};

/// The `token_endpoint_auth_method` of clients that sign JWTs (RFC 7523).
pub const PRIVATE_KEY_JWT: &str = "private_key_jwt";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_clients)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub scopes: String,
    pub grants: String,
    pub skip_consent: bool,
    pub created_at: i64,
    pub id_token_alg: String,
    /// A JSON array of group names; empty: every account may use the app.
    pub allowed_groups: String,
    /// A code is issued only to a session proven with a second factor.
    pub require_two_factor: bool,
    /// A JSON array of networks the browser must be in at authorize; empty: anywhere.
    pub allowed_networks: String,
    /// Set for a service account's client credentials: it may use only
    /// client_credentials, and its tokens name the service account as `sub`.
    pub service_account_id: Option<String>,
    /// Authorization requests must be pushed (RFC 9126): a plain one is refused.
    pub require_par: bool,
    /// client_secret_basic, client_secret_post, none (public) or private_key_jwt.
    pub token_endpoint_auth_method: String,
}

impl Client {
    pub fn redirect_uris(&self) -> Vec<String> {
        serde_json::from_str(&self.redirect_uris).unwrap_or_default()
    }
    pub fn scopes(&self) -> Vec<String> {
        self.scopes.split_whitespace().map(str::to_string).collect()
    }
    pub fn post_logout_redirect_uris(&self) -> Vec<String> {
        serde_json::from_str(&self.post_logout_redirect_uris).unwrap_or_default()
    }
    pub fn allowed_groups(&self) -> Vec<String> {
        serde_json::from_str(&self.allowed_groups).unwrap_or_default()
    }
    pub fn allowed_networks(&self) -> Vec<String> {
        serde_json::from_str(&self.allowed_networks).unwrap_or_default()
    }
    pub fn grants(&self) -> Vec<String> {
        self.grants.split_whitespace().map(str::to_string).collect()
    }
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grants.split_whitespace().any(|g| g == grant)
    }
    /// No secret and no keys: the client only names itself.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none() && !self.uses_private_key_jwt()
    }
    /// The client proves itself with a JWT signed by one of its keys, never a secret.
    pub fn uses_private_key_jwt(&self) -> bool {
        self.token_endpoint_auth_method == PRIVATE_KEY_JWT
    }
}

pub fn list_clients(c: &mut AnyConnection) -> QueryResult<Vec<Client>> {
    oauth_clients::table
        .order((oauth_clients::name.asc(), oauth_clients::client_id.asc()))
        .select(Client::as_select())
        .load(c)
}

/// The clients of a service account, oldest first.
pub fn of_service_account(c: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<Client>> {
    oauth_clients::table
        .filter(oauth_clients::service_account_id.eq(user_id))
        .order(oauth_clients::created_at.asc())
        .select(Client::as_select())
        .load(c)
}

/// Saves every editable field (not the id, the secret or the creation time).
pub fn update_client(c: &mut AnyConnection, client: &Client) -> QueryResult<bool> {
    diesel::update(oauth_clients::table.find(&client.client_id))
        .set((
            oauth_clients::name.eq(&client.name),
            oauth_clients::redirect_uris.eq(&client.redirect_uris),
            oauth_clients::post_logout_redirect_uris.eq(&client.post_logout_redirect_uris),
            oauth_clients::scopes.eq(&client.scopes),
            oauth_clients::grants.eq(&client.grants),
            oauth_clients::skip_consent.eq(client.skip_consent),
            oauth_clients::id_token_alg.eq(&client.id_token_alg),
            oauth_clients::allowed_groups.eq(&client.allowed_groups),
            oauth_clients::require_two_factor.eq(client.require_two_factor),
            oauth_clients::allowed_networks.eq(&client.allowed_networks),
            oauth_clients::require_par.eq(client.require_par),
        ))
        .execute(c)
        .map(|n| n == 1)
}

pub fn set_secret_hash(c: &mut AnyConnection, id: &str, hash: &str) -> QueryResult<bool> {
    diesel::update(oauth_clients::table.find(id))
        .set(oauth_clients::secret_hash.eq(Some(hash)))
        .execute(c)
        .map(|n| n == 1)
}

/// Deletes a client; its codes, consents, grants and refresh tokens go with it.
pub fn delete_client(c: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    // Explicit, so it does not depend on SQLite's foreign_keys pragma.
    let grants = oauth_grants::table
        .filter(oauth_grants::client_id.eq(id))
        .select(oauth_grants::id);
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::grant_id.eq_any(grants)))
        .execute(c)?;
    diesel::delete(oauth_grants::table.filter(oauth_grants::client_id.eq(id))).execute(c)?;
    diesel::delete(consents::table.filter(consents::client_id.eq(id))).execute(c)?;
    diesel::delete(auth_codes::table.filter(auth_codes::client_id.eq(id))).execute(c)?;
    super::pushed_requests::delete_of_client(c, id)?;
    super::device_codes::delete_of_client(c, id)?;
    super::client_assertions::delete_keys(c, id)?;
    diesel::delete(oauth_clients::table.find(id))
        .execute(c)
        .map(|n| n == 1)
}

pub fn insert_client(c: &mut AnyConnection, client: &Client) -> QueryResult<()> {
    diesel::insert_into(oauth_clients::table)
        .values(client)
        .execute(c)
        .map(|_| ())
}

pub fn find_client(c: &mut AnyConnection, id: &str) -> QueryResult<Option<Client>> {
    // An attacker's `client_id` may hold a NUL, which no stored id does and which
    // PostgreSQL refuses to bind (an error, so a 500): there is no such client.
    if id.contains('\0') {
        return Ok(None);
    }
    oauth_clients::table
        .find(id)
        .select(Client::as_select())
        .first(c)
        .optional()
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub private_sealed: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

pub fn insert_key(c: &mut AnyConnection, k: &SigningKey) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(k)
        .execute(c)
        .map(|_| ())
}

/// Every key still published in the JWKS.
pub fn published_keys(c: &mut AnyConnection) -> QueryResult<Vec<SigningKey>> {
    signing_keys::table
        .order(signing_keys::created_at.desc())
        .select(SigningKey::as_select())
        .load(c)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = auth_codes)]
pub struct AuthCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: String,
    pub sid: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub fn insert_code(c: &mut AnyConnection, code: &AuthCode) -> QueryResult<()> {
    diesel::insert_into(auth_codes::table)
        .values(code)
        .execute(c)
        .map(|_| ())
}

pub fn find_code(c: &mut AnyConnection, hash: &str) -> QueryResult<Option<AuthCode>> {
    auth_codes::table
        .find(hash)
        .select(AuthCode::as_select())
        .first(c)
        .optional()
}

/// Marks a code used; false when it already was (a second use).
pub fn use_code(c: &mut AnyConnection, hash: &str, now: i64) -> QueryResult<bool> {
    diesel::update(
        auth_codes::table
            .find(hash)
            .filter(auth_codes::used_at.is_null()),
    )
    .set(auth_codes::used_at.eq(now))
    .execute(c)
    .map(|n| n == 1)
}

pub fn consent(
    c: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> QueryResult<Option<String>> {
    consents::table
        .find((user_id, client_id))
        .select(consents::scope)
        .first(c)
        .optional()
}

pub fn grant(
    c: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    scope: &str,
    now: i64,
) -> QueryResult<()> {
    diesel::delete(consents::table.find((user_id, client_id))).execute(c)?;
    insert_once(c, |c| {
        diesel::insert_into(consents::table)
            .values((
                consents::user_id.eq(user_id),
                consents::client_id.eq(client_id),
                consents::scope.eq(scope),
                consents::granted_at.eq(now),
            ))
            .execute(c)
    })
}

pub fn retire_key(c: &mut AnyConnection, kid: &str, now: i64) -> QueryResult<()> {
    diesel::update(signing_keys::table.find(kid))
        .set(signing_keys::retired_at.eq(Some(now)))
        .execute(c)
        .map(|_| ())
}

/// Removes keys retired before `before`: nothing they signed is still valid.
pub fn delete_retired_keys(c: &mut AnyConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(signing_keys::table.filter(signing_keys::retired_at.lt(before))).execute(c)
}

/// The consents a user gave, with each client's name.
pub fn consents_of(
    c: &mut AnyConnection,
    user_id: &str,
) -> QueryResult<Vec<(String, String, String, i64)>> {
    consents::table
        .inner_join(oauth_clients::table.on(oauth_clients::client_id.eq(consents::client_id)))
        .filter(consents::user_id.eq(user_id))
        .order(oauth_clients::name.asc())
        .select((
            consents::client_id,
            oauth_clients::name,
            consents::scope,
            consents::granted_at,
        ))
        .load(c)
}

pub fn delete_consent(c: &mut AnyConnection, user_id: &str, client_id: &str) -> QueryResult<bool> {
    diesel::delete(consents::table.find((user_id, client_id)))
        .execute(c)
        .map(|n| n == 1)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_grants)]
pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub code_hash: String,
    pub scope: String,
    pub auth_time: i64,
    pub amr: String,
    pub sid: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn insert_grant(c: &mut AnyConnection, g: &GrantRow) -> QueryResult<()> {
    diesel::insert_into(oauth_grants::table)
        .values(g)
        .execute(c)
        .map(|_| ())
}

pub fn find_grant(c: &mut AnyConnection, id: &str) -> QueryResult<Option<GrantRow>> {
    oauth_grants::table
        .find(id)
        .select(GrantRow::as_select())
        .first(c)
        .optional()
}

/// Revokes a grant; returns it when this call revoked it (not already revoked).
pub fn revoke_grant(c: &mut AnyConnection, id: &str, now: i64) -> QueryResult<Option<GrantRow>> {
    let n = diesel::update(
        oauth_grants::table
            .find(id)
            .filter(oauth_grants::revoked_at.is_null()),
    )
    .set(oauth_grants::revoked_at.eq(Some(now)))
    .execute(c)?;
    if n == 0 {
        return Ok(None);
    }
    find_grant(c, id)
}

pub fn grant_of_code(c: &mut AnyConnection, code_hash: &str) -> QueryResult<Option<GrantRow>> {
    oauth_grants::table
        .filter(oauth_grants::code_hash.eq(code_hash))
        .select(GrantRow::as_select())
        .first(c)
        .optional()
}

/// Revokes every live grant of a user for a client; returns how many.
pub fn revoke_grants_of(
    c: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        oauth_grants::table
            .filter(oauth_grants::user_id.eq(user_id))
            .filter(oauth_grants::client_id.eq(client_id))
            .filter(oauth_grants::revoked_at.is_null()),
    )
    .set(oauth_grants::revoked_at.eq(Some(now)))
    .execute(c)
}

/// Revokes every live grant of a user, whatever the client; returns how many.
pub fn revoke_all_grants_of_user(
    c: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        oauth_grants::table
            .filter(oauth_grants::user_id.eq(user_id))
            .filter(oauth_grants::revoked_at.is_null()),
    )
    .set(oauth_grants::revoked_at.eq(Some(now)))
    .execute(c)
}

/// Deletes the codes of a user not yet exchanged (device approvals included), whatever
/// the client: each would start a new grant.
pub fn delete_unused_codes_of_user(c: &mut AnyConnection, user_id: &str) -> QueryResult<usize> {
    let devices = super::device_codes::delete_unclaimed(c, user_id, None)?;
    diesel::delete(
        auth_codes::table
            .filter(auth_codes::user_id.eq(user_id))
            .filter(auth_codes::used_at.is_null()),
    )
    .execute(c)
    .map(|n| n + devices)
}

/// Whether the user has a grant not revoked (an app may still hold its tokens).
pub fn has_live_grant(c: &mut AnyConnection, user_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        oauth_grants::table
            .filter(oauth_grants::user_id.eq(user_id))
            .filter(oauth_grants::revoked_at.is_null()),
    ))
    .get_result(c)
}

/// The user's grants not revoked (apps that may hold their tokens), oldest first.
pub fn live_grants_of_user(c: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<GrantRow>> {
    oauth_grants::table
        .filter(oauth_grants::user_id.eq(user_id))
        .filter(oauth_grants::revoked_at.is_null())
        .order((oauth_grants::created_at.asc(), oauth_grants::id.asc()))
        .select(GrantRow::as_select())
        .load(c)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshRow {
    pub token_hash: String,
    pub grant_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub fn insert_refresh(c: &mut AnyConnection, r: &RefreshRow) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(r)
        .execute(c)
        .map(|_| ())
}

pub fn find_refresh(c: &mut AnyConnection, hash: &str) -> QueryResult<Option<RefreshRow>> {
    refresh_tokens::table
        .find(hash)
        .select(RefreshRow::as_select())
        .first(c)
        .optional()
}

/// Marks a refresh token used; false when it already was (a replay).
pub fn use_refresh(c: &mut AnyConnection, hash: &str, now: i64) -> QueryResult<bool> {
    diesel::update(
        refresh_tokens::table
            .find(hash)
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(Some(now)))
    .execute(c)
    .map(|n| n == 1)
}

/// Inserts, or does nothing when a concurrent request already did (a savepoint keeps
/// PostgreSQL's transaction usable after the conflict).
fn insert_once<F>(c: &mut AnyConnection, insert: F) -> QueryResult<()>
where
    F: FnOnce(&mut AnyConnection) -> QueryResult<usize>,
{
    use diesel::Connection;
    use diesel::result::{DatabaseErrorKind, Error};
    match c.transaction(insert) {
        Ok(_) | Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn revoke_jti(c: &mut AnyConnection, jti: &str, expires_at: i64) -> QueryResult<()> {
    if jti_revoked(c, jti)? {
        return Ok(());
    }
    insert_once(c, |c| {
        diesel::insert_into(revoked_access_tokens::table)
            .values((
                revoked_access_tokens::jti.eq(jti),
                revoked_access_tokens::expires_at.eq(expires_at),
            ))
            .execute(c)
    })
}

/// Deletes a user's codes for a client not yet exchanged (device approvals included).
pub fn delete_unused_codes(
    c: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> QueryResult<usize> {
    let devices = super::device_codes::delete_unclaimed(c, user_id, Some(client_id))?;
    diesel::delete(
        auth_codes::table
            .filter(auth_codes::user_id.eq(user_id))
            .filter(auth_codes::client_id.eq(client_id))
            .filter(auth_codes::used_at.is_null()),
    )
    .execute(c)
    .map(|n| n + devices)
}

pub fn jti_revoked(c: &mut AnyConnection, jti: &str) -> QueryResult<bool> {
    revoked_access_tokens::table
        .find(jti)
        .count()
        .get_result::<i64>(c)
        .map(|n| n > 0)
}

/// Forgets what can no longer be used: expired revocations, refresh tokens, codes and
/// pushed authorization requests.
pub fn prune(c: &mut AnyConnection, now: i64) -> QueryResult<()> {
    diesel::delete(revoked_access_tokens::table.filter(revoked_access_tokens::expires_at.lt(now)))
        .execute(c)?;
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.lt(now))).execute(c)?;
    diesel::delete(auth_codes::table.filter(auth_codes::expires_at.lt(now - 3600))).execute(c)?;
    super::pushed_requests::prune(c, now)?;
    super::device_codes::prune(c, now)?;
    super::client_assertions::prune(c, now)?;
    Ok(())
}
