//! `/admin/*`: users, roles and settings, OAuth clients, and the audit log.

pub mod audit;
pub mod clients;
pub mod roles;
pub mod users;
