//! The command line (CONTRACT.md): `serve`, `migrate`, `user create|set-role|unset-role`,
//! `group create|add|remove`, `token create`, and the others below.
//! Passwords come from standard input, never from argv (argv is visible to every user
//! of the machine through `ps`).

//!
//! One module a command group: `users`, `groups`, `tokens` (personal tokens and service
//! accounts), `clients`, `policy`, `audit`. Each `run_*` builds the services it needs as
//! the server does, acts as the operator and returns what goes to stdout.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod audit;
mod clients;
mod groups;
mod policy;
mod tokens;
mod users;

pub use audit::{AuditCommand, run_audit};
pub use clients::{ClientCommand, run_client};
pub use groups::{GroupCommand, run_group};
pub use policy::{PolicyCommand, run_policy};
pub use tokens::{ServiceAccountCommand, TokenCommand, run_service_account, run_token};
pub use users::{UserCommand, run_user};

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version,
    about = "A small, fast, safe-by-default authentication service"
)]
pub struct Cli {
    /// Configuration file (default: $PORTCULLIS_CONFIG, else none).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply migrations, then serve HTTP until SIGINT/SIGTERM (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// OAuth / OpenID Connect clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Access rules.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Personal access tokens (scripts through forward auth).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Groups of users (for access rules, Remote-Groups and the OIDC groups claim).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Service accounts: no password, no sign-in; they reach sites behind forward auth
    /// with tokens (`token create --email NAME@service.invalid`), and APIs with client
    /// credentials (`service-account add-client`).
    #[command(subcommand)]
    ServiceAccount(ServiceAccountCommand),
}
