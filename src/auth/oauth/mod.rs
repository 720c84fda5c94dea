//! The OAuth 2.0 / OpenID Connect provider, one service: [`OAuthProvider`]. It owns the
//! authorize decision (`decision`), clients, consents and codes (`authorize`), device
//! requests and their answers at `/device` (`device`), the token endpoint's grants
//! (`grants`), the checks on tokens we issued (`introspection`), RP-initiated logout
//! (`logout`), pushed authorization requests (`pushed`), signing keys and JWS, the back
//! channel's read cache, and the protocol's errors (`error`).

pub mod app_access;
pub mod app_context;
pub mod authorize;
pub mod cache;
pub mod client_assertion;
pub mod client_auth;
pub mod decision;
pub mod device;
pub mod error;
pub mod grants;
pub mod introspection;
pub mod jws;
pub mod logout;
pub mod pushed;
pub mod signing_keys;

use crate::auth::InternalError;
use crate::auth::oauth::signing_keys::{KeyRing, supported};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::master_key::Sealer;

/// A registered client, as the admin pages and the endpoints see it.
pub use crate::db::repo::oauth::Client;
pub use error::{ClientError, FlowError, OAuthError};

/// The provider: everything the OAuth endpoints and the client and app pages call.
/// Built once at start; cheap to share (it lives in the application state).
pub struct OAuthProvider {
    keys: KeyRing,
    audit: crate::auth::audit::Batcher,
    db: Db,
    clock: Clock,
    /// The public base URL without its trailing slash: `iss` in tokens and redirects.
    issuer: String,
    access_ttl: i64,
    refresh_ttl: i64,
    /// How long a device authorization request waits for its user (RFC 8628).
    device_ttl: i64,
    access_alg: &'static str,
    /// Every client must push its authorization requests (`require_par`).
    require_par: bool,
    /// Client records and access-token liveness kept between calls; every change
    /// that could make them wrong calls `cache.invalidate()` after committing.
    pub cache: crate::auth::oauth::cache::BackChannelCache,
}

impl OAuthProvider {
    pub fn new(
        db: Db,
        clock: Clock,
        sealer: Sealer,
        config: &Config,
        cache: crate::auth::oauth::cache::BackChannelCache,
    ) -> Self {
        let longest = config.access_token_ttl_secs.max(grants::ID_TOKEN_TTL_SECS);
        Self {
            audit: crate::auth::audit::Batcher::start(db.clone()),
            keys: KeyRing::new(
                db.clone(),
                clock.clone(),
                sealer,
                config.signing_key_rotation_days * 86_400,
                longest,
            ),
            db,
            clock,
            issuer: config.base_url().trim_end_matches('/').to_string(),
            access_ttl: config.access_token_ttl_secs,
            refresh_ttl: config.refresh_token_ttl_secs,
            device_ttl: config.device_code_ttl_secs,
            access_alg: supported(&config.access_token_signing_alg).unwrap_or("RS256"),
            require_par: config.require_par,
            cache,
        }
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The signing keys (rotation, JWKS).
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The JWKS document, served from memory; the first call after start creates the
    /// RS256 key if there is none.
    pub async fn jwks(&self) -> Result<bytes::Bytes, InternalError> {
        self.keys.jwks().await
    }

    /// The cache generation, read once per request and handed to `client`,
    /// `introspect` and the like: with Redis each read is a round trip, and taking it
    /// before every read of the request keeps the cache's rule (see `auth::oauth::cache`).
    pub async fn generation(&self) -> Option<u64> {
        self.cache.generation().await
    }

    /// A client record, from the cache when it is current for the request's
    /// `generation` (only found clients are memoised: one created later is seen at
    /// once).
    pub async fn client(
        &self,
        generation: Option<u64>,
        id: &str,
    ) -> Result<Option<Client>, InternalError> {
        if let Some(c) = self.cache.client(generation, id) {
            return Ok(Some(c));
        }
        let found = authorize::client(&self.db, id).await?;
        if let Some(c) = &found {
            self.cache.put_client(generation, c);
        }
        Ok(found)
    }

    /// A client record read from the database (the front channel and admin pages,
    /// which must see a change at once).
    pub async fn find_client(&self, id: &str) -> Result<Option<Client>, InternalError> {
        authorize::client(&self.db, id).await
    }
}
