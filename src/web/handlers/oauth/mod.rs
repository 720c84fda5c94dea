//! The OAuth 2.0 / OpenID Connect endpoints: front channel (discovery, JWKS, authorize,
//! logout) and back channel (token, revocation, introspection, userinfo).

pub mod back_channel;
pub mod front_channel;
