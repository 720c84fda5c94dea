//! Builds the application: storage, keys, session store, mailer, background tasks, and
//! the HTTP server with its middleware. Binds its own listener so tests can use port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::auth::password::Hasher;
use crate::auth::sessions::Sessions;
use crate::auth::sessions::store::StateBackend;
use crate::auth::throttle::{Limits, Throttle};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{Db, migrate};
use crate::mail::MailCtx;
use crate::mail::Mailer;
use crate::master_key::MasterKey;
use crate::web::session_store::Store;
use crate::web::state::AppState;
use crate::web::{csrf, error, headers, request_id, routes};
use tokio::sync::{Notify, watch};

pub struct Application {
    port: u16,
    server: Server,
    pub state: web::Data<AppState>,
    /// The database and the hasher behind the services: handlers reach neither (they
    /// call services); background tasks, the command line and the tests do.
    pub db: Db,
    pub hasher: Hasher,
    pub setup_link: Option<String>,
    shutdown: watch::Sender<bool>,
    checkpoints: Arc<crate::auth::audit::checkpoint::Signer>,
}

#[derive(Clone)]
pub struct AppHandle {
    server: actix_web::dev::ServerHandle,
    shutdown: watch::Sender<bool>,
}

impl AppHandle {
    pub async fn stop(&self) {
        self.server.stop(true).await;
        let _ = self.shutdown.send(true);
    }
}

/// Opens the database and applies migrations (shared by `serve`, `migrate` and the CLI).
pub fn open_database(config: &Config) -> anyhow::Result<Db> {
    let master = MasterKey::load_or_create(&config.secret_key_file)?;
    open_database_with(config, &master)
}

/// The same with the master key in hand: the handle carries the audit chain's key (every
/// audited write chains with it), and a chain written before keying gets its recorded
/// transition here, before anything else is appended.
pub fn open_database_with(config: &Config, master: &MasterKey) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url)
        .map_err(|e| anyhow::anyhow!("database: {e}"))?
        .with_chain_key(crate::domain::audit::ChainKey::new(
            &master.derive::<32>("audit-chain-hmac"),
        ));
    let n = migrate::run(&db).map_err(|e| anyhow::anyhow!("{e}"))?;
    if n > 0 {
        tracing::info!(applied = n, "database migrations applied");
    }
    let now = Clock::system().now();
    let keyed = db
        .run_sync(|c| crate::auth::audit::ensure_keyed(c, now).map_err(crate::db::DbError::from))
        .map_err(|e| anyhow::anyhow!("audit chain: {e}"))?;
    if keyed {
        tracing::warn!("the audit chain is keyed from now on (event audit.chain_keyed)");
    }
    Ok(db)
}

/// Where session state lives: Redis when configured (shared by every instance),
/// otherwise the database. The server and the command line must agree.
pub async fn session_state(
    config: &Config,
    db: &Db,
    clock: &Clock,
) -> anyhow::Result<StateBackend> {
    Ok(match &config.redis_url {
        Some(url) => StateBackend::redis(url, &config.redis_prefix)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        // The session cache (SQLite only) looks again at a state once the command
        // line moved the generation it shares with the server.
        None => StateBackend::database(
            db.clone(),
            clock.clone(),
            crate::auth::oauth::cache::BackChannelCache::sqlite(config),
        ),
    })
}

/// The OAuth provider over `db` (the server's, and the command line's for its client
/// commands), its signing keys sealed under the master key.
pub fn oauth_provider(
    config: &Config,
    db: &Db,
    clock: &Clock,
    master: &MasterKey,
    cache: crate::auth::oauth::cache::BackChannelCache,
) -> crate::auth::oauth::OAuthProvider {
    crate::auth::oauth::OAuthProvider::new(
        db.clone(),
        clock.clone(),
        crate::master_key::Sealer::new(master, "oidc-signing-keys"),
        config,
        cache,
    )
}

pub fn hasher(config: &Config) -> anyhow::Result<Hasher> {
    Hasher::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
        config.hash_concurrency,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        // The brand's files first: a bad logo or stylesheet stops the start before
        // anything is created.
        let brand = Arc::new(crate::web::brand::Brand::load(&config)?);
        // Before anything is created (`main` did it already; embedders and tests enter
        // here).
        crate::files::secure(&config);
        let master = MasterKey::load_or_create(&config.secret_key_file)?;
        let db = open_database_with(&config, &master)?;
        let hasher = hasher(&config)?;
        let state_backend = session_state(&config, &db, &clock).await?;
        let throttle = match &config.redis_url {
            Some(url) => {
                Throttle::with_redis(
                    Limits::from_config(&config),
                    clock.clone(),
                    url,
                    &config.redis_prefix,
                )
                .await?
            }
            None => Throttle::new(Limits::from_config(&config), clock.clone()),
        };
        let mailer = Mailer::from_config(&config)?;
        let mail_wake = Arc::new(Notify::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        crate::mail::worker::spawn(
            db.clone(),
            mailer,
            clock.clone(),
            crate::mail::worker::Settings {
                from: config.mail_from.clone(),
                retry_base_secs: config.mail_retry_base_secs,
                retry_max_secs: config.mail_retry_max_secs,
                give_up_after_secs: config.mail_give_up_after_secs,
                on_failure: Arc::new(|c, now, details| {
                    crate::auth::audit::record(
                        c,
                        &crate::auth::audit::AuditCtx::default(),
                        now,
                        crate::domain::audit::AuditAction::MailFailed,
                        crate::domain::audit::Outcome::Failure,
                        None,
                        details,
                    )
                }),
            },
            mail_wake.clone(),
            shutdown_rx.clone(),
        );

        let setup_link = crate::auth::accounts::setup::issue_link_if_needed(
            &db,
            &clock,
            &config.base_url(),
            config.setup_link_ttl_secs,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(link) = &setup_link {
            tracing::warn!("no administrator yet: open this one-time link to create one: {link}");
        }

        let listener = TcpListener::bind(&config.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let port = listener.local_addr()?.port();

        // Browsers accept only domain names as relying-party ids: on an IP address
        // everything but WebAuthn still works.
        crate::web::metrics::handle();
        let webauthn = match crate::auth::mfa::webauthn::relying_party(
            &config.public_url,
            &config.brand_name,
        ) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(public_url = %config.public_url, error = %e, "security keys and passkeys are off: the public URL's host must be a domain name");
                None
            }
        };
        // What the OAuth back channel may keep in memory (see auth::oauth::cache): with Redis,
        // changes are published to every instance; alone on SQLite, to every process on
        // the database (the command line's changes too);
        // PostgreSQL without Redis keeps nothing (another instance's change would go
        // unseen).
        let cache = match throttle.redis_connection() {
            Some(conn) => {
                crate::auth::oauth::cache::BackChannelCache::redis(conn, &config.redis_prefix)
            }
            None if db.backend() == crate::config::DbBackend::Sqlite => {
                crate::auth::oauth::cache::BackChannelCache::sqlite(&config)
            }
            None => crate::auth::oauth::cache::BackChannelCache::disabled(),
        };
        let ceremonies = crate::auth::sign_in::passkey_ceremony::Ceremonies::new(
            &master,
            throttle.redis_connection(),
            &config.redis_prefix,
        );
        let sessions = Sessions::new(
            db.clone(),
            clock.clone(),
            state_backend,
            config.session_idle_timeout_secs,
            config.session_lifetime_secs,
            cache.clone(),
        );
        let mail = MailCtx::from_config(&config, crate::mail::outbox::Outbox::new(mail_wake));
        let mfa_keys = crate::auth::mfa::MfaKeys {
            sealer: crate::master_key::Sealer::new(&master, "totp-secrets"),
            pepper: master.derive::<32>("recovery-codes"),
        };
        let accounts = crate::auth::accounts::Accounts {
            db: db.clone(),
            clock: clock.clone(),
            hasher: hasher.clone(),
            throttle: throttle.clone(),
            mail: mail.clone(),
            cache: cache.clone(),
            sessions: sessions.clone(),
            config: config.clone(),
        };
        let second_factors = crate::auth::mfa::SecondFactors::new(
            db.clone(),
            clock.clone(),
            mfa_keys.clone(),
            mail.clone(),
            webauthn.clone(),
        );
        let admin = crate::auth::accounts::admin::Admin::new(
            db.clone(),
            clock.clone(),
            mail.clone(),
            sessions.clone(),
            cache.clone(),
        );
        let roles =
            crate::auth::access::roles::Roles::new(db.clone(), clock.clone(), cache.clone());
        let groups =
            crate::auth::access::groups::Groups::new(db.clone(), clock.clone(), cache.clone());
        let settings = crate::auth::settings::Settings::new(db.clone(), clock.clone(), &config);
        let mfa_keys = crate::auth::mfa::MfaKeys {
            sealer: crate::master_key::Sealer::new(&master, "totp-secrets"),
            pepper: master.derive::<32>("recovery-codes"),
        };
        let sign_in = crate::auth::sign_in::SignIn::new(crate::auth::sign_in::Parts {
            db: db.clone(),
            clock: clock.clone(),
            hasher: hasher.clone(),
            sessions: sessions.clone(),
            throttle: throttle.clone(),
            mfa_keys: mfa_keys.clone(),
            mail: mail.clone(),
            webauthn: webauthn.clone(),
            ceremonies,
            config: config.clone(),
        });
        let access = crate::auth::access::Access::new(
            db.clone(),
            config.admin_requires_second_factor,
            cache.clone(),
        );
        let personal_tokens = crate::auth::access::tokens::PersonalTokens::new(
            db.clone(),
            clock.clone(),
            throttle.clone(),
            cache.clone(),
        );
        let closing = crate::auth::accounts::closing::Closing::new(
            db.clone(),
            clock.clone(),
            sign_in.clone(),
            admin.clone(),
        );
        let state = web::Data::new(AppState {
            brand,
            accounts,
            closing,
            second_factors,
            admin,
            roles,
            groups,
            settings,
            sign_in,
            oauth: oauth_provider(&config, &db, &clock, &master, cache.clone()),
            discovery: crate::web::handlers::oauth::discovery::discovery_document(&config),
            csrf_key: master.derive::<32>("csrf"),
            access: access.clone(),
            forward: crate::auth::access::forward::ForwardAuth::new(
                access,
                policies(&config, &db, &clock, cache.clone()).await?,
                &config,
            ),
            personal_tokens: personal_tokens.clone(),
            service_accounts: crate::auth::access::service_accounts::ServiceAccounts::new(
                db.clone(),
                clock.clone(),
                cache.clone(),
                personal_tokens,
            ),
            audit_log: crate::auth::audit::AuditLog::new(db.clone(), clock.clone()),
            health: crate::auth::health::Health::new(db.clone(), clock.clone()),
            config,
            sessions,
            throttle,
            clock,
        });
        let checkpoints = Arc::new(crate::auth::audit::checkpoint::Signer::new(&master));
        spawn_checkpoints(
            state.clone(),
            db.clone(),
            checkpoints.clone(),
            shutdown_rx.clone(),
        );
        spawn_background(state.clone(), db.clone(), shutdown_rx);

        let cookie_key = Key::try_from(&master.derive::<64>("session-cookie")[..])
            .map_err(|e| anyhow::anyhow!("cookie key: {e}"))?;
        let https = state.config.is_https();
        let cookie_name = state.config.session_cookie_name();
        let idle = state.config.session_idle_timeout_secs;
        let store = Store::new(state.sessions.clone());
        let data = state.clone();
        // Each worker has a runtime, and a blocking pool, of its own; together they need
        // no more threads than the database pool has connections.
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let blocking_threads = (db.max_connections() as usize).div_ceil(workers).max(2);
        let server = HttpServer::new(move || {
            let sessions_mw = SessionMiddleware::builder(store.clone(), cookie_key.clone())
                .cookie_name(cookie_name.into())
                .cookie_secure(https)
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_path("/".into())
                .cookie_content_security(CookieContentSecurity::Signed)
                .session_lifecycle(
                    BrowserSession::default()
                        .state_ttl(actix_web::cookie::time::Duration::seconds(idle)),
                )
                .build();
            App::new()
                .app_data(data.clone())
                .app_data(
                    web::FormConfig::default()
                        .limit(16 * 1024)
                        .error_handler(error::form_error),
                )
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PayloadConfig::default().limit(64 * 1024))
                .configure(routes::configure)
                .wrap(from_fn(csrf::middleware))
                .wrap(sessions_mw)
                .wrap(from_fn(crate::web::session_store::with_generation))
                .wrap(from_fn(crate::web::cookie_domain::middleware))
                .wrap(from_fn(headers::middleware))
                .wrap(from_fn(crate::web::brand::middleware))
                .wrap(from_fn(request_id::middleware))
                .wrap(from_fn(crate::web::metrics::middleware))
        })
        .shutdown_timeout(30)
        .workers(workers)
        // Blocking work is database calls, bounded by the pool (password hashing has
        // threads of its own, `auth::password`): more threads than that only wait, and
        // each keeps its stack and its allocator cache resident (on SQLite, eight more
        // than the pool's connections: 0.5-0.8 MiB more at the bench's peak). The
        // limit is per worker; tokio's default is 512.
        .worker_max_blocking_threads(blocking_threads)
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            server,
            state,
            db,
            hasher,
            setup_link,
            shutdown,
            checkpoints,
        })
    }

    /// Stops this instance from outside (tests, embedding): HTTP first, gracefully,
    /// then the background workers.
    pub fn handle(&self) -> AppHandle {
        AppHandle {
            server: self.server.handle(),
            shutdown: self.shutdown.clone(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM; in-flight requests finish first.
    /// The audit log's checkpoint goes to the log last, after the final requests' events.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let now = self.state.clock.now();
        crate::auth::audit::checkpoint::log(&self.db, &self.checkpoints, now).await;
        served
    }
}

/// A signed checkpoint of the audit chain in the log every hour (the first at start):
/// copies kept outside the database, for `audit verify --expect`. The one at stop is
/// `run_until_stopped`'s, after the last requests; this task only ends then (a database
/// call started here while the runtime winds down would be cancelled, and say so).
fn spawn_checkpoints(
    state: web::Data<AppState>,
    db: Db,
    signer: Arc<crate::auth::audit::checkpoint::Signer>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = hourly.tick() => {}
                _ = shutdown.changed() => break,
            }
            crate::auth::audit::checkpoint::log(&db, &signer, state.clock.now()).await;
        }
    });
}

/// Write-behind and pruning, off the request path.
fn spawn_background(state: web::Data<AppState>, db: Db, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        // Retention runs about hourly (every 240 ticks), starting with the first tick.
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {
                    // Last write-behind before the process goes.
                    let _ = state.sessions.flush().await;
                    break;
                }
            }
            if let Err(e) = state.sessions.flush().await {
                tracing::warn!(error = %e, "session write-behind failed; will retry");
            }
            state.throttle.prune();
            state.throttle.flush_releases().await;
            let days = state.config.audit_retention_days;
            if days > 0 && ticks.is_multiple_of(240) {
                let now = state.clock.now();
                let ctx = crate::auth::audit::AuditCtx::cli();
                let pruned = db
                    .run(move |c| {
                        crate::auth::audit::prune(c, &ctx, now - days * 86_400, now)
                            .map_err(crate::db::DbError::from)
                    })
                    .await;
                match pruned {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "audit retention"),
                    Err(e) => tracing::warn!(error = %e, "audit retention failed; will retry"),
                }
            }
            if ticks.is_multiple_of(240) {
                let now = state.clock.now();
                let pruned = db
                    .run(move |c| {
                        crate::db::repo::oauth::prune(c, now).map_err(crate::db::DbError::from)
                    })
                    .await;
                if let Err(e) = pruned {
                    tracing::warn!(error = %e, "pruning spent OAuth tokens failed; will retry");
                }
            }
            ticks += 1;
        }
    });
}

/// The access rules service: the configured rules, then those stored by admins.
pub async fn policies(
    config: &Config,
    db: &Db,
    clock: &Clock,
    cache: crate::auth::oauth::cache::BackChannelCache,
) -> anyhow::Result<crate::auth::access::policy::Policies> {
    let p = crate::auth::access::policy::Policies::new(
        db.clone(),
        clock.clone(),
        cache,
        config.access_rule.clone(),
        crate::domain::access::Policy::parse(&config.access_default).map_err(anyhow::Error::msg)?,
        config.access_two_factor_max_age_secs,
    );
    p.load_stored().await?;
    Ok(p)
}
