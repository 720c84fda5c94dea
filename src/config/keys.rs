//! The configuration keys, each declared once: file key, environment variable, kind
//! (type, default, allowed range or check) and documentation. `config_keys!` turns the
//! table into `FileConfig` (what the operator wrote), `Config` (the checked values),
//! the environment and file readers, and the list that tests and docs iterate.

use crate::domain::brand;
use crate::domain::forward::cookie_domain::CookieDomain;
use std::net::IpAddr;

use super::parse::{
    AccessRules, DataDir, DatabaseUrl, Flag, InDataDir, Kind, List, Num, PublicUrl, Text, Unset,
    access_default, cookie_domain, cores, email_domain, forward_domain, ip_address, listen_address,
    signing_alg,
};
use super::{ConfigError, invalid};

/// One declared key, as data.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key in `portcullis.toml`.
    pub key: &'static str,
    /// The environment variable that overrides it.
    pub env: &'static str,
    pub doc: &'static str,
    /// Inclusive bounds, for numbers.
    pub range: Option<(i128, i128)>,
    /// The default as written, when it does not depend on other keys.
    pub default: Option<String>,
}

macro_rules! config_keys {
    ($(
        $(#[doc = $doc:literal])+
        $key:ident: $kind:ty = $make:expr, env $env:literal;
    )*) => {
        /// The file as written by the operator. Every field is optional; `validate`
        /// fills defaults and checks every value.
        #[derive(Debug, Clone, Default)]
        pub struct FileConfig {
            $(
                $(#[doc = $doc])+
                pub $key: Option<<$kind as Kind>::Raw>,
            )*
        }

        /// The validated runtime configuration.
        #[derive(Debug, Clone)]
        pub struct Config {
            $(
                $(#[doc = $doc])+
                pub $key: <$kind as Kind>::Out,
            )*
        }

        /// Every key, in declaration order.
        pub fn keys() -> Vec<KeyInfo> {
            vec![$(
                {
                    let kind: $kind = $make;
                    KeyInfo {
                        key: stringify!($key),
                        env: $env,
                        doc: concat!($($doc),+).trim_ascii(),
                        range: kind.range(),
                        default: kind.default_text(),
                    }
                },
            )*]
        }

        impl FileConfig {
            /// Sets `key` from the file; `Ok(false)` when no such key exists.
            pub(super) fn set_from_toml(
                &mut self,
                key: &str,
                value: toml::Value,
            ) -> Result<bool, String> {
                match key {
                    $(stringify!($key) => {
                        let kind: $kind = $make;
                        self.$key = Some(kind.read_toml(value)?);
                    })*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// Sets the key that environment variable `name` overrides; `Ok(false)`
            /// when `name` is not a configuration variable.
            pub(super) fn set_from_env(&mut self, name: &str, value: &str) -> Result<bool, String> {
                match name {
                    $($env => {
                        let kind: $kind = $make;
                        self.$key = Some(kind.read_env(value)?);
                    })*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// Defaults filled in and every value checked, in declaration order; an
            /// error names the file key.
            pub(super) fn check_each(self) -> Result<Config, ConfigError> {
                let mut ctx = super::parse::Ctx::default();
                Ok(Config {
                    $($key: {
                        let kind: $kind = $make;
                        kind.finish(self.$key, &mut ctx)
                            .map_err(|m| invalid(stringify!($key), m))?
                    },)*
                })
            }
        }
    };
}

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// A year and a day: the longest any lifetime may be set to.
const YEAR: i64 = 366 * DAY;
/// The ceiling of every request quota (per minute or per hour).
const QUOTA: u32 = 1_000_000;

config_keys! {
    /// Address to bind (`host:port`).
    listen: Text = Text::checked("127.0.0.1:8080", listen_address),
        env "PORTCULLIS_LISTEN";
    /// The URL users see: OIDC issuer, link base in emails, WebAuthn origin and RP ID,
    /// and whether cookies are `Secure` (https).
    public_url: PublicUrl = PublicUrl("http://localhost:8080"),
        env "PORTCULLIS_PUBLIC_URL";
    // Keys are checked in this order: the data directory comes before the keys whose
    // defaults lie inside it.
    /// Where the embedded defaults keep their files.
    data_dir: DataDir = DataDir,
        env "PORTCULLIS_DATA_DIR";
    /// `sqlite://…` or `postgres://…`; by default `sqlite://<data dir>/portcullis.db`.
    database_url: DatabaseUrl = DatabaseUrl("portcullis.db"),
        env "DATABASE_URL";
    /// When set, sessions and rate-limit counters live in Redis.
    redis_url: Unset = Unset,
        env "REDIS_URL";
    /// Prefix of every Redis key, so instances of several deployments can share one Redis.
    redis_prefix: Text = Text::new("portcullis"),
        env "PORTCULLIS_REDIS_PREFIX";
    /// `smtp://…` or `smtps://…`; when unset, mail is written to `<data dir>/outbox/`.
    smtp_url: Unset = Unset,
        env "SMTP_URL";
    /// Sender address.
    mail_from: Text = Text::new("portcullis@localhost"),
        env "PORTCULLIS_MAIL_FROM";
    /// The product name users see: page titles and header, emails, the authenticator
    /// app's issuer and the passkey prompt (at most 64 characters, no `:`).
    brand_name: Text = Text::checked(brand::DEFAULT_NAME, brand::check_name),
        env "PORTCULLIS_BRAND_NAME";
    /// An SVG or PNG logo (at most 512 KiB) shown in the header of every page.
    brand_logo: Unset = Unset,
        env "PORTCULLIS_BRAND_LOGO";
    /// The colour of buttons and links, `#rgb` or `#rrggbb`; refused below a 4.5:1
    /// contrast ratio on white.
    brand_accent_color: Text = Text::checked(brand::DEFAULT_ACCENT, brand::check_accent),
        env "PORTCULLIS_BRAND_ACCENT_COLOR";
    /// A stylesheet (at most 256 KiB) served after the built-in one.
    custom_css: Unset = Unset,
        env "PORTCULLIS_CUSTOM_CSS";
    /// The master key file; by default `<data dir>/secret.key`, created on first start.
    secret_key_file: InDataDir = InDataDir("secret.key"),
        env "PORTCULLIS_SECRET_KEY_FILE";
    /// Whether anyone may create an account at `/register`.
    registration_enabled: Flag = Flag(true),
        env "PORTCULLIS_REGISTRATION_ENABLED";
    /// When not empty, only addresses in these domains may register.
    registration_allowed_domains: List<String> = List::of(email_domain),
        env "PORTCULLIS_REGISTRATION_ALLOWED_DOMAINS";
    /// Where `/auth/forward?rd=` may send users back to (and their subdomains).
    forward_auth_allowed_domains: List<String> = List::of(forward_domain),
        env "PORTCULLIS_FORWARD_AUTH_ALLOWED_DOMAINS";
    /// Parent domains the session cookie is written for, so apps on sibling hosts
    /// behind forward auth see the sign-in (`example.com`, or
    /// `example.org=https://auth.example.org` for a domain with a sign-in address of
    /// its own). Each is also a domain forward auth may return to.
    cookie_domains: List<CookieDomain> = List::of(cookie_domain),
        env "PORTCULLIS_COOKIE_DOMAINS";
    /// Forward auth's decision where no access rule matches: `deny`, `one_factor`
    /// (any signed-in user) or `two_factor`.
    access_default: Text = Text::checked("one_factor", access_default),
        env "PORTCULLIS_ACCESS_DEFAULT";
    /// Access rules for the sites behind forward auth, tried in order (file:
    /// `[[access_rule]]` tables; environment: a JSON array of the same objects).
    access_rule: AccessRules = AccessRules,
        env "PORTCULLIS_ACCESS_RULE";
    /// A `two_factor` rule lets a session through if its second factor was proven at
    /// most this many seconds ago; else the user confirms it again.
    access_two_factor_max_age_secs: Num<i64> = Num::new(12 * HOUR, 1..=YEAR),
        env "PORTCULLIS_ACCESS_TWO_FACTOR_MAX_AGE_SECS";
    /// Bearer token for /metrics; without one, only loopback clients may scrape.
    metrics_token: Unset = Unset,
        env "PORTCULLIS_METRICS_TOKEN";
    /// Keep audit events this many days; 0 keeps them forever.
    audit_retention_days: Num<i64> = Num::new(0, 0..=100 * 366),
        env "PORTCULLIS_AUDIT_RETENTION_DAYS";
    /// Lifetime of OAuth access tokens, in seconds.
    access_token_ttl_secs: Num<i64> = Num::new(10 * MINUTE, 1..=7 * DAY),
        env "PORTCULLIS_ACCESS_TOKEN_TTL_SECS";
    /// Lifetime of a refresh token, in seconds (each use rotates it and starts a new one).
    refresh_token_ttl_secs: Num<i64> = Num::new(30 * DAY, 1..=YEAR),
        env "PORTCULLIS_REFRESH_TOKEN_TTL_SECS";
    /// JWS algorithm of access tokens: RS256, ES256 or EdDSA.
    access_token_signing_alg: Text = Text::checked("ES256", signing_alg),
        env "PORTCULLIS_ACCESS_TOKEN_SIGNING_ALG";
    /// A signing key signs for this many days, then a new one takes over.
    signing_key_rotation_days: Num<i64> = Num::new(30, 1..=366),
        env "PORTCULLIS_SIGNING_KEY_ROTATION_DAYS";
    /// Failed personal-access-token checks at forward auth one client address may make
    /// per minute (all instances); over it, its failing tokens are answered 429.
    personal_token_requests_per_minute: Num<u32> = Num::new(20, 1..=QUOTA),
        env "PORTCULLIS_PERSONAL_TOKEN_REQUESTS_PER_MINUTE";
    /// Requests one personal access token may make at forward auth per minute (all
    /// instances), in bursts of as many; over it, 429 with `Retry-After`.
    personal_token_uses_per_minute: Num<u32> = Num::new(6000, 1..=QUOTA),
        env "PORTCULLIS_PERSONAL_TOKEN_USES_PER_MINUTE";
    /// Every app must push its authorization requests first (RFC 9126, PAR): a
    /// plain request to /oauth/authorize is refused, whatever the client's setting.
    require_par: Flag = Flag(false),
        env "PORTCULLIS_REQUIRE_PAR";
    /// Token-endpoint (and PAR) requests one client may make per minute (all instances).
    token_requests_per_client_per_minute: Num<u32> = Num::new(6000, 1..=QUOTA),
        env "PORTCULLIS_TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE";
    /// Lifetime of a device authorization request (RFC 8628), in seconds: how long
    /// the user code shown on a device can be entered at `/device`.
    device_code_ttl_secs: Num<i64> = Num::new(10 * MINUTE, 60..=DAY),
        env "PORTCULLIS_DEVICE_CODE_TTL_SECS";
    /// Codes one account may enter at `/device` per hour (all instances); per client
    /// address, the sign-in attempts' quota applies.
    device_code_entries_per_account_per_hour: Num<u32> = Num::new(20, 1..=QUOTA),
        env "PORTCULLIS_DEVICE_CODE_ENTRIES_PER_ACCOUNT_PER_HOUR";
    /// Shortest password accepted, in characters.
    password_min_length: Num<usize> = Num::new(10, 8..=256),
        env "PORTCULLIS_PASSWORD_MIN_LENGTH";
    /// Argon2id memory per hash, in KiB (at least 8 per lane; at most 4 GiB).
    argon2_memory_kib: Num<u32> = Num::new(19_456, 8..=4 * 1024 * 1024),
        env "PORTCULLIS_ARGON2_MEMORY_KIB";
    /// Argon2id passes over the memory.
    argon2_iterations: Num<u32> = Num::new(2, 1..=1000),
        env "PORTCULLIS_ARGON2_ITERATIONS";
    /// Argon2id lanes.
    argon2_parallelism: Num<u32> = Num::new(1, 1..=64),
        env "PORTCULLIS_ARGON2_PARALLELISM";
    /// Password hashes computed at once; by default one per core.
    hash_concurrency: Num<usize> = Num::computed(cores, 1..=1024),
        env "PORTCULLIS_HASH_CONCURRENCY";
    /// A session unused this many seconds ends.
    session_idle_timeout_secs: Num<i64> = Num::new(30 * MINUTE, 1..=YEAR),
        env "PORTCULLIS_SESSION_IDLE_TIMEOUT_SECS";
    /// A session ends this many seconds after sign-in, used or not.
    session_lifetime_secs: Num<i64> = Num::new(12 * HOUR, 1..=YEAR),
        env "PORTCULLIS_SESSION_LIFETIME_SECS";
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: List<IpAddr> = List::of(ip_address),
        env "PORTCULLIS_TRUSTED_PROXIES";
    /// Sign-in attempts one IP address may make per minute.
    login_attempts_per_ip_per_minute: Num<u32> = Num::new(30, 1..=QUOTA),
        env "PORTCULLIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE";
    /// Failed sign-ins to one account before each further guess waits longer.
    login_failures_before_backoff: Num<u32> = Num::new(5, 1..=1000),
        env "PORTCULLIS_LOGIN_FAILURES_BEFORE_BACKOFF";
    /// Accounts one IP address may create per hour.
    registrations_per_ip_per_hour: Num<u32> = Num::new(20, 1..=QUOTA),
        env "PORTCULLIS_REGISTRATIONS_PER_IP_PER_HOUR";
    /// Lifetime of the first-start setup link, in seconds.
    setup_link_ttl_secs: Num<i64> = Num::new(HOUR, 1..=30 * DAY),
        env "PORTCULLIS_SETUP_LINK_TTL_SECS";
    /// Accounts must verify their email address before signing in.
    require_verified_email: Flag = Flag(true),
        env "PORTCULLIS_REQUIRE_VERIFIED_EMAIL";
    /// Anyone holding an admin permission must have a second factor to use /admin.
    admin_requires_second_factor: Flag = Flag(true),
        env "PORTCULLIS_ADMIN_REQUIRES_SECOND_FACTOR";
    /// Lifetime of an email verification link, in seconds.
    email_verification_ttl_secs: Num<i64> = Num::new(DAY, 1..=30 * DAY),
        env "PORTCULLIS_EMAIL_VERIFICATION_TTL_SECS";
    /// Lifetime of a password reset link, in seconds.
    password_reset_ttl_secs: Num<i64> = Num::new(30 * MINUTE, 1..=7 * DAY),
        env "PORTCULLIS_PASSWORD_RESET_TTL_SECS";
    /// First wait before a failed mail is retried, in seconds (doubling each time).
    mail_retry_base_secs: Num<i64> = Num::new(5, 1..=DAY),
        env "PORTCULLIS_MAIL_RETRY_BASE_SECS";
    /// Longest wait between two tries of a mail, in seconds.
    mail_retry_max_secs: Num<i64> = Num::new(5 * MINUTE, 1..=7 * DAY),
        env "PORTCULLIS_MAIL_RETRY_MAX_SECS";
    /// A mail still undelivered this many seconds after it was queued is dropped.
    mail_give_up_after_secs: Num<i64> = Num::new(3 * DAY, 1..=30 * DAY),
        env "PORTCULLIS_MAIL_GIVE_UP_AFTER_SECS";
    /// Password reset requests one IP address may make per hour.
    password_resets_per_ip_per_hour: Num<u32> = Num::new(20, 1..=QUOTA),
        env "PORTCULLIS_PASSWORD_RESETS_PER_IP_PER_HOUR";
    /// Password reset mails to one address per hour.
    password_resets_per_address_per_hour: Num<u32> = Num::new(5, 1..=QUOTA),
        env "PORTCULLIS_PASSWORD_RESETS_PER_ADDRESS_PER_HOUR";
    /// Verification mails one account may ask for again per hour.
    verification_resends_per_account_per_hour: Num<u32> = Num::new(5, 1..=QUOTA),
        env "PORTCULLIS_VERIFICATION_RESENDS_PER_ACCOUNT_PER_HOUR";
    /// "Someone tried to register with your address" mails to one address per hour
    /// (all instances); over it, registrations still answer the same, unmailed.
    registration_notices_per_address_per_hour: Num<u32> = Num::new(3, 1..=QUOTA),
        env "PORTCULLIS_REGISTRATION_NOTICES_PER_ADDRESS_PER_HOUR";
    /// Sensitive account changes need a sign-in at most this many seconds old.
    step_up_window_secs: Num<i64> = Num::new(10 * MINUTE, 1..=DAY),
        env "PORTCULLIS_STEP_UP_WINDOW_SECS";
}

/// Checks between keys, after each key passed its own.
pub(super) fn check_together(c: &Config) -> Result<(), ConfigError> {
    for d in &c.cookie_domains {
        let host = c.public_url.host_str().unwrap_or_default();
        let portal_scheme = d
            .portal
            .as_ref()
            .map_or(c.public_url.scheme(), |p| p.scheme());
        if d.portal.is_none() && !d.covers(host) {
            return Err(invalid(
                "cookie_domains",
                format!(
                    "{}: the public URL's host {host} is not under it; name its sign-in \
                     address as {}=https://auth.{}",
                    d.domain, d.domain, d.domain
                ),
            ));
        }
        if portal_scheme != c.public_url.scheme() {
            return Err(invalid(
                "cookie_domains",
                format!(
                    "{}: its sign-in address must use {}",
                    d.domain,
                    c.public_url.scheme()
                ),
            ));
        }
    }
    // Argon2 needs 8 KiB of memory per lane.
    let least = c.argon2_parallelism.saturating_mul(8);
    if c.argon2_memory_kib < least {
        return Err(invalid(
            "argon2_memory_kib",
            format!(
                "{} is below 8 KiB per lane ({least} for argon2_parallelism = {})",
                c.argon2_memory_kib, c.argon2_parallelism
            ),
        ));
    }
    Ok(())
}
