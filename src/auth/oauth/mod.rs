//! The OAuth 2.0 / OpenID Connect provider: the authorize decision (clients, consents,
//! codes), the token endpoint's grants and the checks on tokens we issued, signing keys
//! and JWS, and the back channel's read cache.

pub mod authorize;
pub mod cache;
pub mod jws;
pub mod signing_keys;
pub mod tokens;

/// A registered client, as the admin pages and the endpoints see it.
pub use crate::db::repo::oauth::Client;
