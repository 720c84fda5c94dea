//! `user create|set-role|unset-role|list|disable|enable|reset-password`, each through
//! the admin service the `/admin/users` pages use. The password comes from standard
//! input, never from argv.

use std::io::BufRead;

use clap::Subcommand;

use crate::auth::accounts::admin::{Actor, Admin, AdminError, Listed, Status};
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
        /// The new account's email address, which it signs in with.
        #[arg(long)]
        email: String,
        /// The name shown on pages and in the OIDC `name` claim (default: none).
        #[arg(long)]
        name: Option<String>,
        /// A role to give the account: `admin` or a role made on /admin/roles. Repeat
        /// for several (default: none).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Mark the email address as already confirmed (default: the account must
        /// confirm it from the emailed link before signing in).
        #[arg(long)]
        verified: bool,
    },
    /// Give a user a role.
    SetRole {
        /// The account's email address.
        #[arg(long)]
        email: String,
        /// The role: `admin` or a role made on /admin/roles.
        #[arg(long)]
        role: String,
    },
    /// Take a role from a user (the last active administrator keeps `admin`).
    UnsetRole {
        /// The account's email address.
        #[arg(long)]
        email: String,
        /// The role to take away.
        #[arg(long)]
        role: String,
    },
    /// List every account, one line each: id, email, name, roles, status (active,
    /// disabled or unverified) and kind (person, or service for a service account).
    List {
        /// One JSON object per line instead: {"id", "email", "name", "roles",
        /// "status", "kind", "created_at"} (default: tab-separated text).
        #[arg(long)]
        json: bool,
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
    /// Mail the user a password reset link, the same message as "Forgot password?"
    /// sends (earlier links stop working). Not for a disabled or service account.
    ResetPassword {
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
        UserCommand::List { json } => {
            let admin = operator_admin(config, db, clock).await?;
            let everyone = admin.everyone().await?;
            let lines: Vec<String> = everyone.iter().map(|l| listed(l, json)).collect();
            Ok(lines.join("\n"))
        }
        UserCommand::ResetPassword { email } => {
            let admin = &operator_admin(config, db, clock).await?;
            let ctx = &ctx;
            on_account(admin, &email, "", |id| async move {
                admin.send_password_reset(&Actor::Operator, &id, ctx).await
            })
            .await?;
            Ok(format!("a password reset link is on its way to {email}"))
        }
    }
}

/// `setup-link`: a fresh one-time link to create the first administrator, the earlier
/// ones voided; refused once an administrator exists.
pub async fn run_setup_link(config: &Config) -> anyhow::Result<String> {
    let db = crate::startup::open_database(config)?;
    let renewed = crate::auth::accounts::setup::renew_link(
        &db,
        &Clock::system(),
        &config.base_url(),
        config.setup_link_ttl_secs,
        &AuditCtx::cli(),
    )
    .await?;
    renewed.ok_or_else(|| {
        anyhow::anyhow!(
            "an administrator exists already, so there is no setup link: sign in as one, or use `portcullis user create --role admin`"
        )
    })
}

/// One line of `user list`: a JSON object, or tab-separated text with `-` for none.
/// Names and addresses come from users: the text form shows their control characters
/// escaped, so none reaches the operator's terminal.
fn listed(l: &Listed, json: bool) -> String {
    let u = &l.user;
    let status = Status::of(u).name();
    let kind = if u.is_service() { "service" } else { "person" };
    if json {
        return serde_json::json!({
            "id": u.id, "email": u.email, "name": u.display_name, "roles": l.roles,
            "status": status, "kind": kind, "created_at": u.created_at,
        })
        .to_string();
    }
    let roles = if l.roles.is_empty() {
        "-".to_string()
    } else {
        l.roles.join(",")
    };
    let name = u.display_name.as_deref().filter(|n| !n.is_empty());
    let (email, name) = (shown(&u.email), shown(name.unwrap_or("-")));
    [u.id.as_str(), &email, &name, &roles, status, kind].join("\t")
}

/// `text` with control characters (tabs and escape sequences among them) escaped.
pub(super) fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
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
        Err(
            e @ (AdminError::NoSuchRole(_)
            | AdminError::AccountDisabled
            | AdminError::ServiceAccount),
        ) => anyhow::bail!("{e}"),
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
