//! `group create|add|remove`, as the operator.

use clap::Subcommand;

use crate::auth::access::groups::{Editor, GroupError, Groups};
use crate::auth::audit::AuditCtx;
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Create a group, at the top level or inside a parent group.
    Create {
        /// The group's name: 1 to 64 lower-case letters, digits, '-', '_' or '.',
        /// starting with a letter or digit.
        #[arg(long)]
        name: String,
        /// An existing group to put this one inside; its members are then members of
        /// the parent too (default: none, a top-level group).
        #[arg(long)]
        parent: Option<String>,
        /// A short description shown on /admin/groups (default: empty).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Add a user to a group.
    Add {
        /// The group's name.
        #[arg(long)]
        group: String,
        /// The email address of the account to add.
        #[arg(long)]
        email: String,
    },
    /// Remove a user from a group.
    Remove {
        /// The group's name.
        #[arg(long)]
        group: String,
        /// The email address of the account to remove.
        #[arg(long)]
        email: String,
    },
}

/// Runs a group command as the operator; `Ok(message)` goes to stdout.
pub async fn run_group(config: &Config, cmd: GroupCommand) -> anyhow::Result<String> {
    let db = crate::startup::open_database(config)?;
    let cache = BackChannelCache::publisher(config).await;
    let groups = Groups::new(db, Clock::system(), cache);
    let ctx = AuditCtx::cli();
    match cmd {
        GroupCommand::Create {
            name,
            parent,
            description,
        } => {
            groups
                .create(
                    &Editor::Operator,
                    &name,
                    &description,
                    parent.as_deref(),
                    &ctx,
                )
                .await
                .map_err(fail)?;
            Ok(match parent {
                Some(p) => format!("created group {} inside {p}", name.trim()),
                None => format!("created group {}", name.trim()),
            })
        }
        GroupCommand::Add { group, email } => member(&groups, &group, &email, true, &ctx).await,
        GroupCommand::Remove { group, email } => member(&groups, &group, &email, false, &ctx).await,
    }
}

fn fail(e: GroupError) -> anyhow::Error {
    match e {
        GroupError::Internal(e) => anyhow::Error::from(e),
        e => anyhow::anyhow!("{e}"),
    }
}

/// `group add` (`add`) or `group remove`: the message says whether anything changed.
async fn member(
    groups: &Groups,
    group: &str,
    email: &str,
    add: bool,
    ctx: &AuditCtx,
) -> anyhow::Result<String> {
    let changed = groups
        .set_member(&Editor::Operator, group, email, add, ctx)
        .await
        .map_err(fail)?;
    Ok(match (add, changed) {
        (true, true) => format!("{email} is now in the group {group}"),
        (true, false) => format!("{email} was already in the group {group}"),
        (false, true) => format!("{email} is no longer in the group {group}"),
        (false, false) => format!("{email} was not in the group {group}"),
    })
}
