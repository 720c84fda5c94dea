//! `user create|set-role|unset-role|disable|enable`. The password comes from standard
//! input, never from argv.

use std::io::BufRead;

use clap::Subcommand;

use crate::auth::accounts::admin::{Actor, Admin, AdminError};
use crate::auth::accounts::{NewAccount, create_user};
use crate::auth::audit::AuditCtx;
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Mark the email address as already verified.
        #[arg(long)]
        verified: bool,
    },
    /// Give a user a role.
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Take a role from a user.
    UnsetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Disable an account: it cannot sign in, and every session, app grant and token
    /// it holds ends at once (as the admin page's Disable).
    Disable {
        /// The account's email address.
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled account again (its ended sessions and tokens stay ended).
    Enable {
        /// The account's email address.
        #[arg(long)]
        email: String,
    },
}

fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line)?;
    if n == 0 {
        anyhow::bail!(
            "no password on standard input (pipe one line, e.g. `printf '%s\\n' \"$PW\" | portcullis user create …`)"
        );
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Runs a user command; `Ok(message)` goes to stdout.
pub async fn run_user(config: &Config, cmd: UserCommand) -> anyhow::Result<String> {
    let db = crate::startup::open_database(config)?;
    let clock = Clock::system();
    let ctx = AuditCtx::cli();
    match cmd {
        UserCommand::Create {
            email,
            name,
            roles,
            verified,
        } => {
            let password = read_password_line()?;
            let hasher = crate::startup::hasher(config)?;
            let input = NewAccount {
                email,
                password,
                display_name: name,
            };
            let user = create_user(
                &db,
                &hasher,
                &clock,
                config.password_min_length,
                input,
                &roles,
                verified,
                &ctx,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!("created user {} ({})", user.email, user.id))
        }
        UserCommand::SetRole { email, role } => {
            let admin = operator_admin(config, db, clock).await?;
            set_role(&admin, &email, &role, true, &ctx).await
        }
        UserCommand::UnsetRole { email, role } => {
            let admin = operator_admin(config, db, clock).await?;
            set_role(&admin, &email, &role, false, &ctx).await
        }
        UserCommand::Disable { email } => {
            let admin = operator_admin(config, db, clock).await?;
            set_disabled(&admin, &email, true, &ctx).await?;
            Ok(format!(
                "{email} is disabled; its sessions and tokens have ended"
            ))
        }
        UserCommand::Enable { email } => {
            let admin = operator_admin(config, db, clock).await?;
            set_disabled(&admin, &email, false, &ctx).await?;
            Ok(format!("{email} is enabled"))
        }
    }
}

/// Runs `act` as the operator on the account with address `email` (given its id) and
/// turns its refusals into messages: refusing to leave no active administrator, it
/// says to do `first` first.
async fn on_account<T, Fut>(
    admin: &Admin,
    email: &str,
    first: &str,
    act: impl FnOnce(String) -> Fut,
) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = Result<T, AdminError>>,
{
    crate::domain::email::EmailAddress::parse(email).map_err(|m| anyhow::anyhow!("{m}"))?;
    let no_user = || anyhow::anyhow!("No account has that email address.");
    let user = admin.find_by_email(email).await?.ok_or_else(no_user)?;
    match act(user.id).await {
        Ok(v) => Ok(v),
        Err(AdminError::LastAdmin) => {
            anyhow::bail!("{} is the last administrator; {first} first.", user.email)
        }
        Err(e @ AdminError::NoSuchRole(_)) => anyhow::bail!("{e}"),
        Err(AdminError::Internal(e)) => Err(e.into()),
        Err(_) => Err(no_user()),
    }
}

/// Disables or enables an account by email, as the operator; the last active
/// administrator stays enabled.
async fn set_disabled(
    admin: &Admin,
    email: &str,
    disabled: bool,
    ctx: &AuditCtx,
) -> anyhow::Result<()> {
    let first = "make someone else an administrator";
    on_account(admin, email, first, |id| async move {
        admin
            .set_disabled(&Actor::Operator, &id, disabled, ctx)
            .await
    })
    .await
}

/// Gives (`assign`) or takes a role by email, as the operator: any role, but the last
/// active administrator keeps `admin`. The message says whether anything changed.
async fn set_role(
    admin: &Admin,
    email: &str,
    role: &str,
    assign: bool,
    ctx: &AuditCtx,
) -> anyhow::Result<String> {
    let first = "assign the role to someone else";
    let changed = on_account(admin, email, first, |id| async move {
        admin
            .set_role(&Actor::Operator, &id, role, assign, ctx)
            .await
    })
    .await?;
    Ok(match (assign, changed) {
        (true, true) => format!("{email} now has the role {role}"),
        (true, false) => format!("{email} already had the role {role}"),
        (false, true) => format!("{email} no longer has the role {role}"),
        (false, false) => format!("{email} did not have the role {role}"),
    })
}

/// The admin service for the operator's shell, built as the server builds it (the
/// sessions where the server keeps them, the cache's changes published to it). Mail
/// it queues waits in the outbox for a server's mail worker: none runs here.
async fn operator_admin(config: &Config, db: Db, clock: Clock) -> anyhow::Result<Admin> {
    use crate::auth::sessions::Sessions;
    let backend = crate::startup::session_state(config, &db, &clock).await?;
    let cache = BackChannelCache::publisher(config).await;
    let sessions = Sessions::new(
        db.clone(),
        clock.clone(),
        backend,
        config.session_idle_timeout_secs,
        config.session_lifetime_secs,
        cache.clone(),
    );
    let mail = crate::mail::MailCtx::from_config(config, Default::default());
    Ok(Admin::new(db, clock, mail, sessions, cache))
}
