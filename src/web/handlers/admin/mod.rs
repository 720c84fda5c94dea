//! `/admin/*`: users, roles and settings, groups, OAuth clients, and the audit log.

pub mod audit;
pub mod clients;
pub mod groups;
pub mod roles;
pub mod users;
