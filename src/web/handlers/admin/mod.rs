//! `/admin/*`: users, roles and settings, groups, access rules, OAuth clients, and the
//! audit log.

pub mod audit;
pub mod clients;
pub mod groups;
pub mod policies;
pub mod roles;
pub mod service_accounts;
pub mod users;

use crate::web::ctx::Ctx;
use crate::web::error::AppError;

/// The names of every group, for the pages that offer a choice of them.
async fn group_names(ctx: &Ctx) -> Result<Vec<String>, AppError> {
    let groups = ctx.state.groups.list().await?;
    Ok(groups.into_iter().map(|g| g.name).collect())
}
