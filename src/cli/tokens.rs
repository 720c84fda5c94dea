//! `token create` (a personal access token, shown once) and `service-account
//! create|delete`, as the operator.

use clap::Subcommand;

use crate::auth::access::tokens::{NewToken, PersonalTokens, TokenError};
use crate::auth::audit::AuditCtx;
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;

#[derive(Subcommand, Debug)]
pub enum ServiceAccountCommand {
    /// Create a service account owned by a group; prints `email=NAME@service.invalid`.
    Create {
        /// The account's name: 1 to 64 lower-case letters, digits, '-' or '_',
        /// starting with a letter or digit.
        #[arg(long)]
        name: String,
        /// The existing group that owns it; the account counts as its member for
        /// access rules and Remote-Groups.
        #[arg(long)]
        group: String,
    },
    /// Delete a service account; every one of its tokens and clients stops working.
    Delete {
        /// The account's name.
        #[arg(long)]
        name: String,
    },
    /// Give a service account client credentials: an OAuth client that may use only
    /// the client_credentials grant, whose tokens name the account. Prints
    /// `client_id=…` and `client_secret=…` (the secret shown once).
    AddClient {
        /// The account's name.
        #[arg(long)]
        name: String,
    },
}

/// Runs a service-account command as the operator; `Ok(message)` goes to stdout.
pub async fn run_service_account(
    config: &Config,
    cmd: ServiceAccountCommand,
) -> anyhow::Result<String> {
    use crate::auth::access::service_accounts::{ServiceAccountError, ServiceAccounts};
    let db = crate::startup::open_database(config)?;
    let clock = Clock::system();
    let cache = BackChannelCache::publisher(config).await;
    let tokens = personal_tokens(config, db.clone(), clock.clone(), cache.clone());
    let accounts = ServiceAccounts::new(db, clock, cache, tokens);
    let ctx = AuditCtx::cli();
    let fail = |e: ServiceAccountError| match e {
        ServiceAccountError::Internal(e) => anyhow::Error::from(e),
        e => anyhow::anyhow!("{e}"),
    };
    match cmd {
        ServiceAccountCommand::Create { name, group } => {
            accounts.create(&name, &group, &ctx).await.map_err(fail)?;
            let name = name.trim();
            Ok(format!(
                "email={}",
                crate::domain::service_accounts::address(name)
            ))
        }
        ServiceAccountCommand::Delete { name } => {
            accounts.delete_by_name(&name, &ctx).await.map_err(fail)?;
            Ok(format!("deleted service account {}", name.trim()))
        }
        ServiceAccountCommand::AddClient { name } => {
            let Some(account) = accounts.by_name(&name).await? else {
                return Err(fail(ServiceAccountError::NoSuchAccount));
            };
            let (id, secret) = accounts.add_client(&account.id, &ctx).await.map_err(fail)?;
            Ok(format!("client_id={id}\nclient_secret={secret}"))
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a personal access token for a user; prints token=… (shown once).
    Create {
        /// The account the token acts as (an active one).
        #[arg(long)]
        email: String,
        /// What the token is for, as its owner will see it (1 to 60 characters).
        #[arg(long)]
        name: String,
        /// What the token may do: `forward` (reach sites behind forward auth) or
        /// `forward:read` (only GET, HEAD and OPTIONS there). Repeat for several;
        /// default `forward`.
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// Days until the token stops working (1 to 3650); default: it never expires.
        #[arg(long, value_name = "D")]
        expires_in_days: Option<u32>,
    },
}

/// `token create`: the secret as one `token=…` line.
pub async fn run_token(config: &Config, cmd: TokenCommand) -> anyhow::Result<String> {
    let TokenCommand::Create {
        email,
        name,
        scopes,
        expires_in_days,
    } = cmd;
    let db = crate::startup::open_database(config)?;
    let clock = Clock::system();
    // It only makes tokens: nothing to memoise, nothing to invalidate.
    let tokens = personal_tokens(config, db, clock, BackChannelCache::disabled());
    let new = NewToken {
        name,
        scopes,
        expires_in_days,
    };
    match tokens.create_for_email(&email, new, &AuditCtx::cli()).await {
        Ok((_, secret)) => Ok(format!("token={secret}")),
        Err(TokenError::NoSuchUser) => {
            anyhow::bail!("no active account with the email address {email}")
        }
        Err(TokenError::Input(e)) => anyhow::bail!("{e}"),
        Err(TokenError::Internal(e)) => Err(e.into()),
    }
}

/// The personal-token service, throttled as the server's is.
fn personal_tokens(
    config: &Config,
    db: Db,
    clock: Clock,
    cache: BackChannelCache,
) -> PersonalTokens {
    let limits = crate::auth::throttle::Limits::from_config(config);
    let throttle = crate::auth::throttle::Throttle::new(limits, clock.clone());
    PersonalTokens::new(db, clock, throttle, cache)
}
