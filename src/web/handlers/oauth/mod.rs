//! The OAuth 2.0 / OpenID Connect endpoints: discovery and JWKS, authorize (with
//! consent), the device page (`/device`, RFC 8628), RP-initiated logout, and the back
//! channel (token, device authorization, revocation, introspection, userinfo, pushed
//! authorization requests). Each calls the provider (`auth::oauth::OAuthProvider`)
//! and maps what it answers; `error` turns an `OAuthError` into a response.

pub mod authorize;
pub mod back_channel;
pub mod device;
pub mod discovery;
pub mod error;
pub mod logout;
pub mod par;
