//! `/admin/*`: users, roles and settings, groups, access rules, OAuth clients, and the
//! audit log.

pub mod audit;
pub mod clients;
pub mod groups;
pub mod policies;
pub mod roles;
pub mod service_accounts;
pub mod users;
