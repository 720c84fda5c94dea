//! `/account/*`: what a signed-in user sees and changes about their own account.

pub mod apps;
pub mod data;
pub mod delete;
pub mod profile;
pub mod security_keys;
pub mod sessions;
pub mod tokens;
pub mod totp;
