//! Synchronous query functions, one module per aggregate. They take a connection and
//! know nothing of HTTP; transactions are opened by the caller when several must agree.

pub mod access_rules;
pub mod audit;
pub mod client_assertions;
pub mod device_codes;
pub mod directory;
pub mod groups;
pub mod mfa;
pub mod oauth;
pub mod outbox;
pub mod personal_tokens;
pub mod pushed_requests;
pub mod roles;
pub mod session_state;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod users;
pub mod webauthn;
