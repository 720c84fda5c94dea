//! `client create`: registers an OAuth / OpenID Connect client.

use clap::Subcommand;

use crate::auth::audit::AuditCtx;
use crate::clock::Clock;
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client; prints client_id=… and, for a confidential client, client_secret=… (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Where codes are sent back; needed for authorization_code (the default
        /// grant), not for a device-only client.
        #[arg(long = "redirect-uri")]
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
        /// The app must push its authorization requests to /oauth/par first (RFC 9126);
        /// a plain request to /oauth/authorize is refused. Default: off.
        #[arg(long)]
        require_par: bool,
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
            require_par,
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
                require_par,
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
