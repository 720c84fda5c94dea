//! The command line (CONTRACT.md): `serve`, `migrate`, `user create|set-role|unset-role`,
//! `group create|add|remove`, `token create`, and the others below.
//! Passwords come from standard input, never from argv (argv is visible to every user
//! of the machine through `ps`).

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::auth::accounts::admin::{Actor, Admin, AdminError};
use crate::auth::accounts::{NewAccount, create_user};
use crate::auth::audit::{AuditCtx, AuditLog};
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;

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
    let throttle = crate::auth::throttle::Throttle::new(
        crate::auth::throttle::Limits::from_config(config),
        clock.clone(),
    );
    let tokens = crate::auth::access::tokens::PersonalTokens::new(
        db.clone(),
        clock.clone(),
        throttle,
        cache.clone(),
    );
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
    let throttle = crate::auth::throttle::Throttle::new(
        crate::auth::throttle::Limits::from_config(config),
        clock.clone(),
    );
    // It only makes tokens: nothing to memoise, nothing to invalidate.
    let tokens = crate::auth::access::tokens::PersonalTokens::new(
        db,
        clock,
        throttle,
        crate::auth::oauth::cache::BackChannelCache::disabled(),
    );
    let new = crate::auth::access::tokens::NewToken {
        name,
        scopes,
        expires_in_days,
    };
    match tokens.create_for_email(&email, new, &AuditCtx::cli()).await {
        Ok((_, secret)) => Ok(format!("token={secret}")),
        Err(crate::auth::access::tokens::TokenError::NoSuchUser) => {
            anyhow::bail!("no active account with the email address {email}")
        }
        Err(crate::auth::access::tokens::TokenError::Input(e)) => anyhow::bail!("{e}"),
        Err(crate::auth::access::tokens::TokenError::Internal(e)) => Err(e.into()),
    }
}

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
    use crate::auth::access::groups::{Editor, GroupError, Groups};
    let db = crate::startup::open_database(config)?;
    let cache = BackChannelCache::publisher(config).await;
    let groups = Groups::new(db, Clock::system(), cache);
    let ctx = AuditCtx::cli();
    let fail = |e: GroupError| match e {
        GroupError::Internal(e) => anyhow::Error::from(e),
        e => anyhow::anyhow!("{e}"),
    };
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
        GroupCommand::Add { group, email } => {
            let changed = groups
                .set_member(&Editor::Operator, &group, &email, true, &ctx)
                .await
                .map_err(fail)?;
            Ok(if changed {
                format!("{email} is now in the group {group}")
            } else {
                format!("{email} was already in the group {group}")
            })
        }
        GroupCommand::Remove { group, email } => {
            let changed = groups
                .set_member(&Editor::Operator, &group, &email, false, &ctx)
                .await
                .map_err(fail)?;
            Ok(if changed {
                format!("{email} is no longer in the group {group}")
            } else {
                format!("{email} was not in the group {group}")
            })
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print what forward auth decides for this user and request, and which rule decides.
    Check {
        #[arg(long)]
        email: String,
        /// The address asked for, as the browser had it (https://app.example.com/admin).
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The client's address (default 127.0.0.1).
        #[arg(long, default_value = "127.0.0.1")]
        ip: std::net::IpAddr,
    },
}

/// `policy check`: the decision, the rule and why, one `key=value` per line.
pub async fn run_policy(config: &Config, cmd: PolicyCommand) -> anyhow::Result<String> {
    let PolicyCommand::Check {
        email,
        url,
        method,
        ip,
    } = cmd;
    let db = crate::startup::open_database(config)?;
    let access = crate::auth::access::Access::new(
        db.clone(),
        config.admin_requires_second_factor,
        crate::auth::oauth::cache::BackChannelCache::disabled(),
    );
    let policies = crate::startup::policies(
        config,
        &db,
        &Clock::system(),
        crate::auth::oauth::cache::BackChannelCache::disabled(),
    )
    .await?;
    let e = policies
        .test(&access, Some(&email), &url, &method, ip)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(format!(
        "decision={}\nrule={}\nwhy={}",
        e.decision, e.rule, e.why
    ))
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client; prints client_id=… and, for a confidential client, client_secret=… (shown once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required).
        #[arg(long)]
        public: bool,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// First-party: no consent page.
        #[arg(long)]
        skip_consent: bool,
        /// Only members of this group (or of a group inside it) may use the app;
        /// repeat for several groups, any one is enough. Default: every account.
        #[arg(long = "allowed-group", value_name = "GROUP")]
        allowed_groups: Vec<String>,
        /// Issue codes only to sessions proven with a second factor; accounts without
        /// one are refused. Default: off.
        #[arg(long)]
        require_two_factor: bool,
        /// Only browsers in this network (CIDR block or single address) may sign in
        /// to the app; repeat for several. Default: anywhere.
        #[arg(long = "allowed-network", value_name = "CIDR")]
        allowed_networks: Vec<String>,
    },
}

pub async fn run_client(config: &Config, cmd: ClientCommand) -> anyhow::Result<String> {
    let db = crate::startup::open_database(config)?;
    match cmd {
        ClientCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            scopes,
            grants,
            skip_consent,
            allowed_groups,
            require_two_factor,
            allowed_networks,
        } => {
            let new = crate::auth::oauth::authorize::NewClient {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                public,
                scopes,
                grants,
                skip_consent,
                id_token_alg: "RS256".into(),
                allowed_groups,
                require_two_factor,
                allowed_networks,
            };
            match crate::auth::oauth::authorize::create_client(
                &db,
                &Clock::system(),
                new,
                &AuditCtx::cli(),
            )
            .await
            {
                Ok((id, Some(secret))) => Ok(format!("client_id={id}\nclient_secret={secret}")),
                Ok((id, None)) => Ok(format!("client_id={id}")),
                Err(crate::auth::oauth::ClientError::Invalid(msg)) => anyhow::bail!("{msg}"),
                Err(crate::auth::oauth::ClientError::Internal(e)) => Err(e.into()),
            }
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exits non-zero naming the first bad event.
    Verify {
        /// A checkpoint printed by `audit checkpoint` or the server's log: also fail
        /// when the log no longer reaches its event or the hash there differs.
        #[arg(long, value_name = "CHECKPOINT")]
        expect: Option<String>,
    },
    /// Print a signed checkpoint of the audit log (checkpoint=…) and the public key
    /// that checks it (public_key=…), for keeping outside the database.
    Checkpoint,
}

/// `Ok` with a report when the chain is intact, `Err` naming the first bad event.
pub async fn run_audit(config: &Config, cmd: AuditCommand) -> anyhow::Result<String> {
    use crate::auth::audit::checkpoint::{Checkpoint, Signer};
    let master = crate::master_key::MasterKey::load_or_create(&config.secret_key_file)?;
    let signer = Signer::new(&master);
    let db = crate::startup::open_database_with(config, &master)?;
    match cmd {
        AuditCommand::Checkpoint => {
            let now = Clock::system().now();
            let taken = db
                .run(move |c| {
                    crate::auth::audit::checkpoint::take(c, &signer, now)
                        .map_err(crate::db::DbError::from)
                        .map(|r| r.map(|cp| (cp, signer.public_key())))
                })
                .await?;
            match taken {
                Ok((cp, public_key)) => Ok(format!("checkpoint={cp}\npublic_key={public_key}")),
                Err(refusal) => anyhow::bail!("{refusal}"),
            }
        }
        AuditCommand::Verify { expect } => {
            let expect = match expect {
                Some(text) => {
                    let cp: Checkpoint =
                        text.parse().map_err(|e| anyhow::anyhow!("--expect: {e}"))?;
                    if !signer.signed(&cp) {
                        anyhow::bail!(
                            "--expect: the checkpoint's signature is not valid for this server's key: forged or altered"
                        );
                    }
                    Some(cp)
                }
                None => None,
            };
            let log = AuditLog::new(db, Clock::system());
            let verdict = match expect {
                Some(cp) => log.verify_expecting(cp).await?,
                None => log.verify().await?,
            };
            match verdict {
                crate::auth::audit::ChainVerdict::Intact { events } => {
                    Ok(format!("audit log intact: {events} events verified"))
                }
                crate::auth::audit::ChainVerdict::Broken { id, problem } => {
                    anyhow::bail!("audit log altered at event {id}: {problem}")
                }
            }
        }
    }
}

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
            let changed = set_role(&admin, &email, &role, true, &ctx).await?;
            Ok(if changed {
                format!("{email} now has the role {role}")
            } else {
                format!("{email} already had the role {role}")
            })
        }
        UserCommand::UnsetRole { email, role } => {
            let admin = operator_admin(config, db, clock).await?;
            let changed = set_role(&admin, &email, &role, false, &ctx).await?;
            Ok(if changed {
                format!("{email} no longer has the role {role}")
            } else {
                format!("{email} did not have the role {role}")
            })
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

/// Disables or enables an account by email, as the operator; the last active
/// administrator stays enabled.
async fn set_disabled(
    admin: &Admin,
    email: &str,
    disabled: bool,
    ctx: &AuditCtx,
) -> anyhow::Result<()> {
    crate::domain::email::EmailAddress::parse(email).map_err(|m| anyhow::anyhow!("{m}"))?;
    let no_user = || anyhow::anyhow!("No account has that email address.");
    let user = admin.find_by_email(email).await?.ok_or_else(no_user)?;
    match admin
        .set_disabled(&Actor::Operator, &user.id, disabled, ctx)
        .await
    {
        Ok(()) => Ok(()),
        Err(AdminError::LastAdmin) => anyhow::bail!(
            "{} is the last administrator; make someone else an administrator first.",
            user.email
        ),
        Err(AdminError::Internal(e)) => Err(e.into()),
        Err(_) => Err(no_user()),
    }
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

/// Gives (`assign`) or takes a role by email, as the operator: any role, but the last
/// active administrator keeps `admin`.
async fn set_role(
    admin: &Admin,
    email: &str,
    role: &str,
    assign: bool,
    ctx: &AuditCtx,
) -> anyhow::Result<bool> {
    crate::domain::email::EmailAddress::parse(email).map_err(|m| anyhow::anyhow!("{m}"))?;
    let no_user = || anyhow::anyhow!("No account has that email address.");
    let user = admin.find_by_email(email).await?.ok_or_else(no_user)?;
    match admin
        .set_role(&Actor::Operator, &user.id, role, assign, ctx)
        .await
    {
        Ok(changed) => Ok(changed),
        Err(AdminError::LastAdmin) => anyhow::bail!(
            "{} is the last administrator; assign the role to someone else first.",
            user.email
        ),
        Err(e @ AdminError::NoSuchRole(_)) => anyhow::bail!("{e}"),
        Err(AdminError::Internal(e)) => Err(e.into()),
        Err(_) => Err(no_user()),
    }
}
