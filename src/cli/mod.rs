//! The command line (CONTRACT.md): `serve`, `migrate`, `setup-link`, `user …`,
//! `client …`, `group create|add|remove`, `token create`, and the others below. Every
//! argument has a line of help (a test below walks the tree).
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
pub use users::{UserCommand, run_setup_link, run_user};

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version,
    about = "A small, fast, safe-by-default authentication service"
)]
pub struct Cli {
    /// Configuration file in TOML; environment variables override it (default:
    /// $PORTCULLIS_CONFIG, else none: defaults and environment only).
    #[arg(long, global = true, value_name = "FILE")]
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
    /// While no administrator exists: print a fresh one-time link to create the first
    /// one (earlier links stop working). Fails once an administrator exists.
    SetupLink,
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

#[cfg(test)]
mod tests {
    use clap::{ArgAction, CommandFactory};

    use super::Cli;

    /// `--help` is the operator's manual: every command says what it does, every
    /// argument has a line of help, one that repeats says so, and one that may be left
    /// out without a shown default says what happens then. A new flag cannot forget it.
    #[test]
    fn every_command_and_argument_explains_itself() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "portcullis", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    /// Client ids made before they were kept from starting with `-` still name a
    /// client on the command line.
    #[test]
    fn a_client_id_may_start_with_a_hyphen() {
        use clap::Parser;
        for sub in ["delete", "rotate-secret"] {
            let parsed = Cli::try_parse_from(["portcullis", "client", sub, "--client-id", "-1abc"]);
            assert!(parsed.is_ok(), "client {sub}: {:?}", parsed.err());
        }
    }

    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if cmd.get_about().is_none() {
            missing.push(format!("{path}: says nothing about what it does"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let name = format!("{path} --{}", arg.get_long().unwrap_or(id));
            let Some(help) = arg.get_help().map(|h| h.to_string().to_lowercase()) else {
                missing.push(format!("{name}: no help"));
                continue;
            };
            if matches!(arg.get_action(), ArgAction::Append) && !help.contains("repeat") {
                missing.push(format!("{name}: repeats, but its help does not say so"));
            }
            let optional = arg.get_action().takes_values()
                && !arg.is_required_set()
                && arg.get_default_values().is_empty();
            if optional && !help.contains("default") {
                missing.push(format!(
                    "{name}: may be left out, but its help has no default"
                ));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
}
