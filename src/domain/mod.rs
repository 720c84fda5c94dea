//! Pure types and rules: no I/O, no actix, no diesel.

pub mod access;
pub mod audit;
pub mod brand;
pub mod email;
pub mod export;
pub mod forward;
pub mod groups;
pub mod names;
pub mod password;
pub mod personal_tokens;
pub mod recovery_codes;
pub mod redirect;
pub mod service_accounts;
pub mod tokens;
pub mod totp;
pub mod user_code;
