//! Configuration: an optional TOML file, then environment variables on top.
//!
//! Every key has a default that serves a single machine, so nothing is required to start.
//! Unknown keys are an error at start-up, named, in the file and among `PORTCULLIS_*`
//! variables alike: a typo must not silently fall back to a default.
//!
//! This module is a leaf: it imports nothing from the crate but `domain`. The database
//! URL's scheme is parsed here, and `db` takes `DbBackend` and the path from here.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

/// The file as written by the operator. Every field is optional; `validate` fills defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub data_dir: Option<String>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub redis_prefix: Option<String>,
    pub smtp_url: Option<String>,
    pub mail_from: Option<String>,
    pub secret_key_file: Option<String>,
    pub registration_enabled: Option<bool>,
    pub registration_allowed_domains: Option<Vec<String>>,
    pub forward_auth_allowed_domains: Option<Vec<String>>,
    pub metrics_token: Option<String>,
    pub audit_retention_days: Option<i64>,
    pub access_token_ttl_secs: Option<i64>,
    pub refresh_token_ttl_secs: Option<i64>,
    pub access_token_signing_alg: Option<String>,
    pub signing_key_rotation_days: Option<i64>,
    pub token_requests_per_client_per_minute: Option<u32>,
    pub password_min_length: Option<usize>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
    pub hash_concurrency: Option<usize>,
    pub session_idle_timeout_secs: Option<i64>,
    pub session_lifetime_secs: Option<i64>,
    pub trusted_proxies: Option<Vec<String>>,
    pub login_attempts_per_ip_per_minute: Option<u32>,
    pub login_failures_before_backoff: Option<u32>,
    pub registrations_per_ip_per_hour: Option<u32>,
    pub setup_link_ttl_secs: Option<i64>,
    pub require_verified_email: Option<bool>,
    pub admin_requires_second_factor: Option<bool>,
    pub email_verification_ttl_secs: Option<i64>,
    pub password_reset_ttl_secs: Option<i64>,
    pub mail_retry_base_secs: Option<i64>,
    pub mail_retry_max_secs: Option<i64>,
    pub mail_give_up_after_secs: Option<i64>,
    pub password_resets_per_ip_per_hour: Option<u32>,
    pub password_resets_per_address_per_hour: Option<u32>,
    pub verification_resends_per_account_per_hour: Option<u32>,
    pub registration_notices_per_address_per_hour: Option<u32>,
    pub step_up_window_secs: Option<i64>,
}

/// Environment variables and the file key each one overrides.
const ENV_KEYS: &[(&str, &str)] = &[
    ("PORTCULLIS_LISTEN", "listen"),
    ("PORTCULLIS_PUBLIC_URL", "public_url"),
    ("PORTCULLIS_DATA_DIR", "data_dir"),
    ("DATABASE_URL", "database_url"),
    ("REDIS_URL", "redis_url"),
    ("PORTCULLIS_REDIS_PREFIX", "redis_prefix"),
    ("SMTP_URL", "smtp_url"),
    ("PORTCULLIS_MAIL_FROM", "mail_from"),
    ("PORTCULLIS_SECRET_KEY_FILE", "secret_key_file"),
    ("PORTCULLIS_REGISTRATION_ENABLED", "registration_enabled"),
    (
        "PORTCULLIS_REGISTRATION_ALLOWED_DOMAINS",
        "registration_allowed_domains",
    ),
    (
        "PORTCULLIS_FORWARD_AUTH_ALLOWED_DOMAINS",
        "forward_auth_allowed_domains",
    ),
    ("PORTCULLIS_METRICS_TOKEN", "metrics_token"),
    ("PORTCULLIS_AUDIT_RETENTION_DAYS", "audit_retention_days"),
    ("PORTCULLIS_ACCESS_TOKEN_TTL_SECS", "access_token_ttl_secs"),
    (
        "PORTCULLIS_REFRESH_TOKEN_TTL_SECS",
        "refresh_token_ttl_secs",
    ),
    (
        "PORTCULLIS_ACCESS_TOKEN_SIGNING_ALG",
        "access_token_signing_alg",
    ),
    (
        "PORTCULLIS_SIGNING_KEY_ROTATION_DAYS",
        "signing_key_rotation_days",
    ),
    (
        "PORTCULLIS_TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE",
        "token_requests_per_client_per_minute",
    ),
    ("PORTCULLIS_PASSWORD_MIN_LENGTH", "password_min_length"),
    ("PORTCULLIS_ARGON2_MEMORY_KIB", "argon2_memory_kib"),
    ("PORTCULLIS_ARGON2_ITERATIONS", "argon2_iterations"),
    ("PORTCULLIS_ARGON2_PARALLELISM", "argon2_parallelism"),
    ("PORTCULLIS_HASH_CONCURRENCY", "hash_concurrency"),
    (
        "PORTCULLIS_SESSION_IDLE_TIMEOUT_SECS",
        "session_idle_timeout_secs",
    ),
    ("PORTCULLIS_SESSION_LIFETIME_SECS", "session_lifetime_secs"),
    ("PORTCULLIS_TRUSTED_PROXIES", "trusted_proxies"),
    (
        "PORTCULLIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE",
        "login_attempts_per_ip_per_minute",
    ),
    (
        "PORTCULLIS_LOGIN_FAILURES_BEFORE_BACKOFF",
        "login_failures_before_backoff",
    ),
    (
        "PORTCULLIS_REGISTRATIONS_PER_IP_PER_HOUR",
        "registrations_per_ip_per_hour",
    ),
    ("PORTCULLIS_SETUP_LINK_TTL_SECS", "setup_link_ttl_secs"),
    (
        "PORTCULLIS_REQUIRE_VERIFIED_EMAIL",
        "require_verified_email",
    ),
    (
        "PORTCULLIS_ADMIN_REQUIRES_SECOND_FACTOR",
        "admin_requires_second_factor",
    ),
    (
        "PORTCULLIS_EMAIL_VERIFICATION_TTL_SECS",
        "email_verification_ttl_secs",
    ),
    (
        "PORTCULLIS_PASSWORD_RESET_TTL_SECS",
        "password_reset_ttl_secs",
    ),
    ("PORTCULLIS_MAIL_RETRY_BASE_SECS", "mail_retry_base_secs"),
    ("PORTCULLIS_MAIL_RETRY_MAX_SECS", "mail_retry_max_secs"),
    (
        "PORTCULLIS_MAIL_GIVE_UP_AFTER_SECS",
        "mail_give_up_after_secs",
    ),
    (
        "PORTCULLIS_PASSWORD_RESETS_PER_IP_PER_HOUR",
        "password_resets_per_ip_per_hour",
    ),
    (
        "PORTCULLIS_PASSWORD_RESETS_PER_ADDRESS_PER_HOUR",
        "password_resets_per_address_per_hour",
    ),
    (
        "PORTCULLIS_VERIFICATION_RESENDS_PER_ACCOUNT_PER_HOUR",
        "verification_resends_per_account_per_hour",
    ),
    (
        "PORTCULLIS_REGISTRATION_NOTICES_PER_ADDRESS_PER_HOUR",
        "registration_notices_per_address_per_hour",
    ),
    ("PORTCULLIS_STEP_UP_WINDOW_SECS", "step_up_window_secs"),
];

/// Variables with the prefix that are not configuration keys but are still legitimate.
const ENV_ALLOWED_EXTRA: &[&str] = &["PORTCULLIS_CONFIG"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("unknown configuration variable {0}")]
    UnknownEnv(String),
    #[error("invalid value for {key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbBackend {
    Sqlite,
    Postgres,
}

/// Picks the backend from the URL scheme. Unknown schemes are refused with a clear
/// message instead of falling through to SQLite (which would create a stray file).
pub fn backend_of(url: &str) -> Result<DbBackend, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DbBackend::Postgres)
    } else if url.starts_with("sqlite://") || url.starts_with("sqlite:") {
        Ok(DbBackend::Sqlite)
    } else {
        Err(format!(
            "unsupported database URL scheme in {:?}: use sqlite://PATH or postgres://…",
            url.split(':').next().unwrap_or("")
        ))
    }
}

/// The file path inside a `sqlite://` URL.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

/// The validated runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub secret_key_file: PathBuf,
    pub registration_enabled: bool,
    pub registration_allowed_domains: Vec<String>,
    /// Where `/auth/forward?rd=` may send users back to (and their subdomains).
    pub forward_auth_allowed_domains: Vec<String>,
    /// Bearer token for /metrics; without one, only loopback clients may scrape.
    pub metrics_token: Option<String>,
    /// Keep audit events this many days; 0 keeps them forever.
    pub audit_retention_days: i64,
    /// Lifetime of OAuth access tokens.
    pub access_token_ttl_secs: i64,
    /// Lifetime of a refresh token (each use rotates it and starts a new one).
    pub refresh_token_ttl_secs: i64,
    /// JWS algorithm of access tokens: RS256, ES256 or EdDSA.
    pub access_token_signing_alg: String,
    /// A signing key signs for this many days, then a new one takes over.
    pub signing_key_rotation_days: i64,
    /// Token-endpoint requests one client may make per minute (all instances).
    pub token_requests_per_client_per_minute: u32,
    pub password_min_length: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub hash_concurrency: usize,
    pub session_idle_timeout_secs: i64,
    pub session_lifetime_secs: i64,
    pub trusted_proxies: Vec<IpAddr>,
    pub login_attempts_per_ip_per_minute: u32,
    pub login_failures_before_backoff: u32,
    pub registrations_per_ip_per_hour: u32,
    pub setup_link_ttl_secs: i64,
    pub require_verified_email: bool,
    /// Anyone holding an admin permission must have a second factor to use /admin.
    pub admin_requires_second_factor: bool,
    pub email_verification_ttl_secs: i64,
    pub password_reset_ttl_secs: i64,
    pub mail_retry_base_secs: i64,
    pub mail_retry_max_secs: i64,
    pub mail_give_up_after_secs: i64,
    pub password_resets_per_ip_per_hour: u32,
    pub password_resets_per_address_per_hour: u32,
    pub verification_resends_per_account_per_hour: u32,
    /// "Someone tried to register with your address" mails to one address per hour
    /// (all instances); over it, registrations still answer the same, unmailed.
    pub registration_notices_per_address_per_hour: u32,
    pub step_up_window_secs: i64,
}

impl Config {
    /// Loads the file (if any) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(path, &env)
    }

    /// Same as `load`, with the environment passed in (tests build configs without
    /// touching the process environment).
    pub fn load_from(path: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let path = path.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, _)| k == "PORTCULLIS_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        let mut file = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        apply_env(&mut file, env)?;
        file.validate()
    }
}

fn apply_env(file: &mut FileConfig, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some((_, key)) = ENV_KEYS.iter().find(|(e, _)| e == name) else {
            if name.starts_with("PORTCULLIS_") && !ENV_ALLOWED_EXTRA.contains(&name.as_str()) {
                return Err(ConfigError::UnknownEnv(name.clone()));
            }
            continue;
        };
        let v = value.trim().to_string();
        let list = || -> Vec<String> {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let num = |name: &str| -> Result<u64, ConfigError> {
            v.parse::<u64>()
                .map_err(|_| invalid(name, "expected a whole number"))
        };
        match *key {
            "listen" => file.listen = Some(v.clone()),
            "public_url" => file.public_url = Some(v.clone()),
            "data_dir" => file.data_dir = Some(v.clone()),
            "database_url" => file.database_url = Some(v.clone()),
            "redis_url" => file.redis_url = Some(v.clone()).filter(|s| !s.is_empty()),
            "redis_prefix" => file.redis_prefix = Some(v.clone()),
            "smtp_url" => file.smtp_url = Some(v.clone()).filter(|s| !s.is_empty()),
            "mail_from" => file.mail_from = Some(v.clone()),
            "secret_key_file" => file.secret_key_file = Some(v.clone()),
            "registration_enabled" => {
                file.registration_enabled = Some(parse_bool(name, &v)?);
            }
            "registration_allowed_domains" => file.registration_allowed_domains = Some(list()),
            "forward_auth_allowed_domains" => file.forward_auth_allowed_domains = Some(list()),
            "metrics_token" => file.metrics_token = Some(v.clone()),
            "audit_retention_days" => file.audit_retention_days = Some(num(name)? as i64),
            "access_token_ttl_secs" => file.access_token_ttl_secs = Some(num(name)? as i64),
            "refresh_token_ttl_secs" => file.refresh_token_ttl_secs = Some(num(name)? as i64),
            "access_token_signing_alg" => file.access_token_signing_alg = Some(v.clone()),
            "signing_key_rotation_days" => file.signing_key_rotation_days = Some(num(name)? as i64),
            "token_requests_per_client_per_minute" => {
                file.token_requests_per_client_per_minute = Some(num(name)? as u32)
            }
            "trusted_proxies" => file.trusted_proxies = Some(list()),
            "password_min_length" => file.password_min_length = Some(num(name)? as usize),
            "argon2_memory_kib" => file.argon2_memory_kib = Some(num(name)? as u32),
            "argon2_iterations" => file.argon2_iterations = Some(num(name)? as u32),
            "argon2_parallelism" => file.argon2_parallelism = Some(num(name)? as u32),
            "hash_concurrency" => file.hash_concurrency = Some(num(name)? as usize),
            "session_idle_timeout_secs" => file.session_idle_timeout_secs = Some(num(name)? as i64),
            "session_lifetime_secs" => file.session_lifetime_secs = Some(num(name)? as i64),
            "login_attempts_per_ip_per_minute" => {
                file.login_attempts_per_ip_per_minute = Some(num(name)? as u32)
            }
            "login_failures_before_backoff" => {
                file.login_failures_before_backoff = Some(num(name)? as u32)
            }
            "registrations_per_ip_per_hour" => {
                file.registrations_per_ip_per_hour = Some(num(name)? as u32)
            }
            "setup_link_ttl_secs" => file.setup_link_ttl_secs = Some(num(name)? as i64),
            "require_verified_email" => file.require_verified_email = Some(parse_bool(name, &v)?),
            "admin_requires_second_factor" => {
                file.admin_requires_second_factor = Some(parse_bool(name, &v)?)
            }
            "email_verification_ttl_secs" => {
                file.email_verification_ttl_secs = Some(num(name)? as i64)
            }
            "password_reset_ttl_secs" => file.password_reset_ttl_secs = Some(num(name)? as i64),
            "mail_retry_base_secs" => file.mail_retry_base_secs = Some(num(name)? as i64),
            "mail_retry_max_secs" => file.mail_retry_max_secs = Some(num(name)? as i64),
            "mail_give_up_after_secs" => file.mail_give_up_after_secs = Some(num(name)? as i64),
            "password_resets_per_ip_per_hour" => {
                file.password_resets_per_ip_per_hour = Some(num(name)? as u32)
            }
            "password_resets_per_address_per_hour" => {
                file.password_resets_per_address_per_hour = Some(num(name)? as u32)
            }
            "verification_resends_per_account_per_hour" => {
                file.verification_resends_per_account_per_hour = Some(num(name)? as u32)
            }
            "registration_notices_per_address_per_hour" => {
                file.registration_notices_per_address_per_hour = Some(num(name)? as u32)
            }
            "step_up_window_secs" => file.step_up_window_secs = Some(num(name)? as i64),
            _ => {}
        }
    }
    Ok(())
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, "expected true or false")),
    }
}

impl FileConfig {
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen = self.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        if listen.parse::<SocketAddr>().is_err() && !listen.contains(':') {
            return Err(invalid("listen", "expected host:port"));
        }
        let public_url_raw = self
            .public_url
            .unwrap_or_else(|| "http://localhost:8080".into());
        let public_url =
            Url::parse(&public_url_raw).map_err(|e| invalid("public_url", e.to_string()))?;
        if !matches!(public_url.scheme(), "http" | "https") || public_url.host_str().is_none() {
            return Err(invalid("public_url", "expected an http(s) URL with a host"));
        }
        let data_dir = PathBuf::from(self.data_dir.unwrap_or_else(|| "./data".into()));
        let database_url = self
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("portcullis.db").display()));
        backend_of(&database_url).map_err(|m| invalid("database_url", m))?;
        let secret_key_file = self
            .secret_key_file
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("secret.key"));
        let domains = self
            .registration_allowed_domains
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        let mut forward_domains = Vec::new();
        for d in self.forward_auth_allowed_domains.unwrap_or_default() {
            if d.trim().is_empty() {
                continue;
            }
            forward_domains.push(crate::domain::forward::normalize_domain(&d).ok_or_else(
                || {
                    invalid(
                        "forward_auth_allowed_domains",
                        format!("{d} is not a domain name (with an optional :port)"),
                    )
                },
            )?);
        }
        let mut trusted_proxies = Vec::new();
        for p in self.trusted_proxies.unwrap_or_default() {
            trusted_proxies
                .push(p.parse::<IpAddr>().map_err(|_| {
                    invalid("trusted_proxies", format!("{p} is not an IP address"))
                })?);
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let positive = |key: &str, v: i64| -> Result<i64, ConfigError> {
            if v <= 0 {
                Err(invalid(key, "must be positive"))
            } else {
                Ok(v)
            }
        };
        let min_len = self.password_min_length.unwrap_or(10);
        if !(8..=256).contains(&min_len) {
            return Err(invalid("password_min_length", "must be between 8 and 256"));
        }
        Ok(Config {
            listen,
            public_url,
            data_dir,
            database_url,
            redis_url: self.redis_url.filter(|s| !s.is_empty()),
            redis_prefix: self.redis_prefix.unwrap_or_else(|| "portcullis".into()),
            smtp_url: self.smtp_url.filter(|s| !s.is_empty()),
            mail_from: self
                .mail_from
                .unwrap_or_else(|| "portcullis@localhost".into()),
            secret_key_file,
            registration_enabled: self.registration_enabled.unwrap_or(true),
            registration_allowed_domains: domains,
            forward_auth_allowed_domains: forward_domains,
            metrics_token: self.metrics_token.filter(|t| !t.is_empty()),
            audit_retention_days: self.audit_retention_days.unwrap_or(0).max(0),
            access_token_ttl_secs: positive(
                "access_token_ttl_secs",
                self.access_token_ttl_secs.unwrap_or(600),
            )?,
            refresh_token_ttl_secs: positive(
                "refresh_token_ttl_secs",
                self.refresh_token_ttl_secs.unwrap_or(30 * 24 * 3600),
            )?,
            access_token_signing_alg: match self.access_token_signing_alg.as_deref() {
                None => "ES256".to_string(),
                Some(a @ ("RS256" | "ES256" | "EdDSA")) => a.to_string(),
                Some(_) => {
                    return Err(invalid(
                        "access_token_signing_alg",
                        "expected RS256, ES256 or EdDSA",
                    ));
                }
            },
            signing_key_rotation_days: positive(
                "signing_key_rotation_days",
                self.signing_key_rotation_days.unwrap_or(30),
            )?,
            token_requests_per_client_per_minute: self
                .token_requests_per_client_per_minute
                .unwrap_or(6000)
                .max(1),
            password_min_length: min_len,
            argon2_memory_kib: self.argon2_memory_kib.unwrap_or(19456),
            argon2_iterations: self.argon2_iterations.unwrap_or(2),
            argon2_parallelism: self.argon2_parallelism.unwrap_or(1),
            hash_concurrency: self.hash_concurrency.unwrap_or(cores).max(1),
            session_idle_timeout_secs: positive(
                "session_idle_timeout_secs",
                self.session_idle_timeout_secs.unwrap_or(30 * 60),
            )?,
            session_lifetime_secs: positive(
                "session_lifetime_secs",
                self.session_lifetime_secs.unwrap_or(12 * 3600),
            )?,
            trusted_proxies,
            login_attempts_per_ip_per_minute: self
                .login_attempts_per_ip_per_minute
                .unwrap_or(30)
                .max(1),
            login_failures_before_backoff: self.login_failures_before_backoff.unwrap_or(5).max(1),
            registrations_per_ip_per_hour: self.registrations_per_ip_per_hour.unwrap_or(20).max(1),
            setup_link_ttl_secs: positive(
                "setup_link_ttl_secs",
                self.setup_link_ttl_secs.unwrap_or(3600),
            )?,
            require_verified_email: self.require_verified_email.unwrap_or(true),
            admin_requires_second_factor: self.admin_requires_second_factor.unwrap_or(true),
            email_verification_ttl_secs: positive(
                "email_verification_ttl_secs",
                self.email_verification_ttl_secs.unwrap_or(24 * 3600),
            )?,
            password_reset_ttl_secs: positive(
                "password_reset_ttl_secs",
                self.password_reset_ttl_secs.unwrap_or(30 * 60),
            )?,
            mail_retry_base_secs: positive(
                "mail_retry_base_secs",
                self.mail_retry_base_secs.unwrap_or(5),
            )?,
            mail_retry_max_secs: positive(
                "mail_retry_max_secs",
                self.mail_retry_max_secs.unwrap_or(300),
            )?,
            mail_give_up_after_secs: positive(
                "mail_give_up_after_secs",
                self.mail_give_up_after_secs.unwrap_or(3 * 24 * 3600),
            )?,
            password_resets_per_ip_per_hour: self
                .password_resets_per_ip_per_hour
                .unwrap_or(20)
                .max(1),
            password_resets_per_address_per_hour: self
                .password_resets_per_address_per_hour
                .unwrap_or(5)
                .max(1),
            verification_resends_per_account_per_hour: self
                .verification_resends_per_account_per_hour
                .unwrap_or(5)
                .max(1),
            registration_notices_per_address_per_hour: self
                .registration_notices_per_address_per_hour
                .unwrap_or(3)
                .max(1),
            step_up_window_secs: positive(
                "step_up_window_secs",
                self.step_up_window_secs.unwrap_or(600),
            )?,
        })
    }
}

impl Config {
    pub fn backend(&self) -> DbBackend {
        backend_of(&self.database_url).unwrap_or(DbBackend::Sqlite)
    }

    /// Cookies are `Secure` (and `__Host-` prefixed) exactly when users reach us over https.
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The public URL without a trailing slash, for building absolute links.
    pub fn base_url(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_string()
    }

    /// The origin (`scheme://host[:port]`) that browsers send in `Origin`.
    pub fn origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_serve_one_machine() {
        let c = Config::load_from(None, &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.public_url.as_str(), "http://localhost:8080/");
        assert!(c.database_url.starts_with("sqlite://"));
        assert_eq!(c.password_min_length, 10);
        assert_eq!(c.argon2_memory_kib, 19456);
        assert!(!c.is_https());
    }

    #[test]
    fn unknown_env_key_is_named() {
        let err = Config::load_from(None, &env(&[("PORTCULLIS_LISTN", "x")])).unwrap_err();
        assert!(err.to_string().contains("PORTCULLIS_LISTN"));
    }

    #[test]
    fn unknown_file_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:1\"\nlistn = 3\n").unwrap();
        let err = Config::load_from(Some(&p), &[]).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(&p, "registration_enabled = true\n").unwrap();
        let c = Config::load_from(
            Some(&p),
            &env(&[
                ("PORTCULLIS_REGISTRATION_ENABLED", "false"),
                (
                    "PORTCULLIS_REGISTRATION_ALLOWED_DOMAINS",
                    "Example.com, @corp.org",
                ),
            ]),
        )
        .unwrap();
        assert!(!c.registration_enabled);
        assert_eq!(
            c.registration_allowed_domains,
            vec!["example.com", "corp.org"]
        );
    }

    #[test]
    fn bad_database_scheme_is_refused() {
        let err = Config::load_from(None, &env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("database_url"));
    }
}
