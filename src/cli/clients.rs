//! `client create|list|delete|rotate-secret`: OAuth / OpenID Connect clients, through
//! the provider the `/admin/clients` pages use (same checks, audit and cache
//! invalidation).

use clap::Subcommand;

use crate::auth::audit::AuditCtx;
use crate::auth::oauth::{Client, ClientError, OAuthProvider};
use crate::clock::Clock;
use crate::config::Config;

// Parsed once per command line: the size of its biggest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client; prints client_id=… and, for a confidential client, client_secret=… (shown once).
    Create {
        /// The name users see on the consent page (at most 100 characters).
        #[arg(long)]
        name: String,
        /// Where the client receives codes, matched exactly (absolute http(s) URL, no
        /// fragment). Repeat for several; at least one for authorization_code (the
        /// default grant), none for a client of the device or client-credentials grant.
        #[arg(long = "redirect-uri", value_name = "URL")]
        redirect_uris: Vec<String>,
        /// Where the client may send users after signing out (RP-initiated logout),
        /// matched exactly. Repeat for several (default: none).
        #[arg(long = "post-logout-redirect-uri", value_name = "URL")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required). Default: confidential, with a
        /// secret.
        #[arg(long)]
        public: bool,
        /// A scope the client may ask for: openid, profile, email, roles, groups or
        /// offline_access. Repeat for several (default: openid, profile and email).
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// A grant the client may use: authorization_code, refresh_token,
        /// client_credentials (confidential only) or
        /// urn:ietf:params:oauth:grant-type:device_code (RFC 8628). Repeat for several
        /// (default: authorization_code and refresh_token).
        #[arg(long = "grant", value_name = "G")]
        grants: Vec<String>,
        /// First-party: no consent page. Default: users are asked to consent.
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
        /// How the client authenticates at the token, PAR, revocation, introspection and
        /// device endpoints: client_secret_basic (the default for a confidential
        /// client), client_secret_post, private_key_jwt (a JWT signed with one of its
        /// keys, given with --jwks or --jwks-file; no secret) or none (a public client).
        #[arg(long, value_name = "M")]
        token_endpoint_auth_method: Option<String>,
        /// private_key_jwt: the client's public keys, a JWK Set as JSON
        /// ({"keys": [...]}). Default: none (required for private_key_jwt, here or
        /// with --jwks-file).
        #[arg(long, value_name = "JSON", conflicts_with = "jwks_file")]
        jwks: Option<String>,
        /// private_key_jwt: a file holding the client's JWK Set (JSON). Default: none
        /// (keys given with --jwks instead).
        #[arg(long, value_name = "PATH")]
        jwks_file: Option<std::path::PathBuf>,
    },
    /// List every client, one line each: client id, name, type (confidential or
    /// public), grants, redirect URIs, and the service account it acts as, if any.
    List {
        /// One JSON object per line instead: {"client_id", "name", "public", "grants",
        /// "scopes", "redirect_uris", "service_account"} (default: tab-separated text).
        #[arg(long)]
        json: bool,
    },
    /// Delete a client: its tokens, consents and codes stop working at once.
    Delete {
        /// The client's id (client_id=… as printed by `client create`).
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        client_id: String,
    },
    /// Give a confidential client a new secret, printed once as client_secret=…; the
    /// old one stops working at once.
    RotateSecret {
        /// The client's id.
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        client_id: String,
    },
}

pub async fn run_client(config: &Config, cmd: ClientCommand) -> anyhow::Result<String> {
    let oauth = operator_oauth(config).await?;
    let ctx = AuditCtx::cli();
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
            token_endpoint_auth_method,
            jwks,
            jwks_file,
        } => {
            let jwks = match jwks_file {
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                    anyhow::anyhow!("cannot read the JWK Set {}: {e}", path.display())
                })?),
                None => jwks,
            };
            let public = public || token_endpoint_auth_method.as_deref() == Some("none");
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
                auth_method: token_endpoint_auth_method,
                jwks,
            };
            match oauth.create_client(new, &ctx).await.map_err(fail)? {
                (id, Some(secret)) => Ok(format!("client_id={id}\nclient_secret={secret}")),
                (id, None) => Ok(format!("client_id={id}")),
            }
        }
        ClientCommand::List { json } => {
            let clients = oauth.clients().await?;
            let lines: Vec<String> = clients.iter().map(|c| listed(c, json)).collect();
            Ok(lines.join("\n"))
        }
        ClientCommand::Delete { client_id } => {
            if !oauth.delete_client(&client_id, &ctx).await? {
                anyhow::bail!("there is no client with the id {client_id}");
            }
            Ok(format!("deleted client {client_id}"))
        }
        ClientCommand::RotateSecret { client_id } => {
            let secret = oauth.rotate_secret(&client_id, &ctx).await.map_err(fail)?;
            Ok(format!("client_secret={secret}"))
        }
    }
}

fn fail(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Invalid(msg) => anyhow::anyhow!("{msg}"),
        ClientError::Internal(e) => e.into(),
    }
}

/// One line of `client list`: a JSON object, or tab-separated text (`-` for none).
fn listed(c: &Client, json: bool) -> String {
    let kind = if c.is_public() {
        "public"
    } else {
        "confidential"
    };
    let (grants, uris) = (c.grants.split_whitespace(), c.redirect_uris());
    if json {
        return serde_json::json!({
            "client_id": c.client_id, "name": c.name, "public": c.is_public(),
            "grants": grants.collect::<Vec<_>>(),
            "scopes": c.scopes.split_whitespace().collect::<Vec<_>>(),
            "redirect_uris": uris, "service_account": c.service_account_id,
        })
        .to_string();
    }
    let or_none = |s: String| if s.is_empty() { "-".to_string() } else { s };
    let fields = [
        c.client_id.clone(),
        super::users::shown(&c.name),
        kind.to_string(),
        or_none(grants.collect::<Vec<_>>().join(",")),
        or_none(super::users::shown(&uris.join(","))),
        or_none(c.service_account_id.clone().unwrap_or_default()),
    ];
    fields.join("\t")
}

/// The provider for the operator's shell, as the server builds it; its changes are
/// published to running servers (see `auth::oauth::cache`).
async fn operator_oauth(config: &Config) -> anyhow::Result<OAuthProvider> {
    let master = crate::master_key::MasterKey::load_or_create(&config.secret_key_file)?;
    let db = crate::startup::open_database_with(config, &master)?;
    let cache = crate::auth::oauth::cache::BackChannelCache::publisher(config).await;
    let clock = Clock::system();
    Ok(crate::startup::oauth_provider(
        config, &db, &clock, &master, cache,
    ))
}
