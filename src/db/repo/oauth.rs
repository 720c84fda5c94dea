//! OAuth clients, signing keys, authorization codes and consents.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{auth_codes, consents, oauth_clients, signing_keys};

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
}

impl Client {
    pub fn redirect_uris(&self) -> Vec<String> {
        serde_json::from_str(&self.redirect_uris).unwrap_or_default()
    }
    pub fn scopes(&self) -> Vec<String> {
        self.scopes.split_whitespace().map(str::to_string).collect()
    }
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }
}

pub fn insert_client(c: &mut AnyConnection, client: &Client) -> QueryResult<()> {
    diesel::insert_into(oauth_clients::table)
        .values(client)
        .execute(c)
        .map(|_| ())
}

pub fn find_client(c: &mut AnyConnection, id: &str) -> QueryResult<Option<Client>> {
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

/// The newest key not retired: the one that signs.
pub fn active_key(c: &mut AnyConnection) -> QueryResult<Option<SigningKey>> {
    signing_keys::table
        .filter(signing_keys::retired_at.is_null())
        .order(signing_keys::created_at.desc())
        .select(SigningKey::as_select())
        .first(c)
        .optional()
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
    diesel::insert_into(consents::table)
        .values((
            consents::user_id.eq(user_id),
            consents::client_id.eq(client_id),
            consents::scope.eq(scope),
            consents::granted_at.eq(now),
        ))
        .execute(c)
        .map(|_| ())
}
