//! The per-key rate limits, declared once: [`Limit`] names them, [`Limit::spec`] is the
//! table (metric label, Redis key name, period, quota, what the key is), and
//! [`Throttle::check`] is the one check. It counts in Redis when shared (GCRA,
//! shared.rs) or in this process (one governor limiter per limit, [`InProcess`]),
//! and counts every refusal in `rate_limit_rejections_total{limit=…}`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Limits, RetryAfter, Throttle};

/// Anonymous passkey ceremonies a client may start per sign-in attempt it may make:
/// the login page starts one on every load, and only finishing one is an attempt.
const CEREMONIES_PER_ATTEMPT: u32 = 3;

/// Every per-key rate limit. Its row of the table is [`Limit::spec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Sign-in attempts from one client address: passwords, passkeys, second factors,
    /// step-ups (the account's guesses count it in [`Throttle::reserve`]).
    LoginFromIp,
    /// Anonymous passkey ceremonies started from one client address.
    CeremonyFromIp,
    /// Failed client authentications at the token endpoints, per caller address.
    ClientAuthFromIp,
    /// Authenticated requests of one OAuth client (a public one: per caller too).
    TokenPerClient,
    /// Registrations from one client address.
    RegistrationFromIp,
    /// Password-reset and verification re-send requests from one client address.
    ResetFromIp,
    /// Reset mails to one address (over it: not sent, silently).
    ResetToAddress,
    /// "Someone tried to register with your address" mails (over it: not sent).
    RegistrationNoticeTo,
    /// Verification mails re-sent for one account (over it: not sent).
    ResendForAccount,
    /// Failed personal-access-token checks at forward auth, per client address.
    PersonalTokenFromIp,
    /// Uses of one personal access token at forward auth, keyed by the SHA-256 of
    /// the secret presented (known before the token is looked up, so the count rides
    /// in the same Redis round trip as the cache generation).
    PersonalTokenUse,
    /// User codes entered at `/device`, per client address.
    DeviceCodeFromIp,
    /// User codes entered at `/device`, per signed-in account.
    DeviceCodeForAccount,
}

/// What a limit's quota is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Minute,
    Hour,
}

/// What a limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The client's address; an IPv6 client by its /64 ([`ip_key`]).
    Ip,
    /// A name: a normalised email address, an account, an OAuth client's budget.
    Name,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Its value of `limit` in `rate_limit_rejections_total`.
    pub label: &'static str,
    /// Its Redis keys are `{prefix}:limit:{redis}:{key}`. Instances of different
    /// versions share them: never renamed.
    pub redis: &'static str,
    pub period: Period,
    pub key: KeyKind,
    /// Requests per period, from the configuration (0 counts as 1).
    pub quota: fn(&Limits) -> u32,
}

impl Limit {
    /// Every limit, in declaration order (`ALL[l as usize] == l`).
    pub const ALL: [Limit; 13] = [
        Limit::LoginFromIp,
        Limit::CeremonyFromIp,
        Limit::ClientAuthFromIp,
        Limit::TokenPerClient,
        Limit::RegistrationFromIp,
        Limit::ResetFromIp,
        Limit::ResetToAddress,
        Limit::RegistrationNoticeTo,
        Limit::ResendForAccount,
        Limit::PersonalTokenFromIp,
        Limit::PersonalTokenUse,
        Limit::DeviceCodeFromIp,
        Limit::DeviceCodeForAccount,
    ];

    /// The table.
    pub fn spec(self) -> Spec {
        use KeyKind::{Ip, Name};
        use Period::{Hour, Minute};
        match self {
            Limit::LoginFromIp => row("login_ip", "login", Minute, Ip, |l| {
                l.login_per_ip_per_minute
            }),
            Limit::CeremonyFromIp => row("ceremony_ip", "ceremony", Minute, Ip, |l| {
                l.login_per_ip_per_minute
                    .saturating_mul(CEREMONIES_PER_ATTEMPT)
            }),
            // Failed client authentications: the same budget as sign-in attempts.
            Limit::ClientAuthFromIp => row("client_auth", "client_auth", Minute, Ip, |l| {
                l.login_per_ip_per_minute
            }),
            Limit::TokenPerClient => row("token_client", "token", Minute, Name, |l| {
                l.token_per_client_per_minute
            }),
            Limit::RegistrationFromIp => row("register_ip", "register", Hour, Ip, |l| {
                l.register_per_ip_per_hour
            }),
            Limit::ResetFromIp => row("reset_ip", "reset_ip", Hour, Ip, |l| {
                l.reset_per_ip_per_hour
            }),
            Limit::ResetToAddress => row("reset_address", "reset_to", Hour, Name, |l| {
                l.reset_per_address_per_hour
            }),
            Limit::RegistrationNoticeTo => row("notice_address", "notice_to", Hour, Name, |l| {
                l.notice_per_address_per_hour
            }),
            Limit::ResendForAccount => row("resend_account", "resend", Hour, Name, |l| {
                l.resend_per_account_per_hour
            }),
            Limit::PersonalTokenFromIp => row("personal_token_ip", "pat", Minute, Ip, |l| {
                l.personal_token_per_ip_per_minute
            }),
            Limit::PersonalTokenUse => row("personal_token", "pat_use", Minute, Name, |l| {
                l.personal_token_uses_per_minute
            }),
            // A user code is a guess, like a password: the sign-in attempts' budget.
            Limit::DeviceCodeFromIp => row("device_code_ip", "device_ip", Minute, Ip, |l| {
                l.login_per_ip_per_minute
            }),
            Limit::DeviceCodeForAccount => {
                row("device_code_account", "device_user", Hour, Name, |l| {
                    l.device_code_per_account_per_hour
                })
            }
        }
    }

    /// The configured quota, at least one.
    pub(super) fn quota(self, limits: &Limits) -> NonZeroU32 {
        NonZeroU32::new((self.spec().quota)(limits)).unwrap_or(NonZeroU32::MIN)
    }

    /// The quota as GCRA's emission interval (ms) and burst, as the Redis scripts
    /// take them.
    pub(super) fn gcra(self, limits: &Limits) -> (u64, u32) {
        let burst = self.quota(limits).get();
        let period_ms = match self.spec().period {
            Period::Minute => 60_000,
            Period::Hour => 3_600_000,
        };
        ((period_ms / u64::from(burst)).max(1), burst)
    }
}

/// One row: label, Redis name, period, key, quota.
fn row(
    label: &'static str,
    redis: &'static str,
    period: Period,
    key: KeyKind,
    quota: fn(&Limits) -> u32,
) -> Spec {
    Spec {
        label,
        redis,
        period,
        key,
        quota,
    }
}

// `InProcess` indexes its limiters by `Limit as usize`.
const _: () = {
    let mut i = 0;
    while i < Limit::ALL.len() {
        assert!(Limit::ALL[i] as usize == i);
        i += 1;
    }
};

/// What one request is counted under.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

impl Key<'_> {
    fn kind(self) -> KeyKind {
        match self {
            Key::Ip(_) => KeyKind::Ip,
            Key::Name(_) => KeyKind::Name,
        }
    }

    /// As it is counted: an IPv6 client by its /64.
    fn counted(self) -> CountedKey {
        match self {
            Key::Ip(ip) => CountedKey::Ip(ip_key(ip)),
            Key::Name(name) => CountedKey::Name(name.to_string()),
        }
    }

    /// As it is written in a Redis key.
    pub(super) fn redis_text(self) -> String {
        match self {
            Key::Ip(ip) => ip_key(ip).to_string(),
            Key::Name(name) => name.to_string(),
        }
    }
}

/// A key as the in-process limiters store it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum CountedKey {
    Ip(IpAddr),
    Name(String),
}

/// IPv6 clients usually own a /64: key on it so one host cannot rotate addresses.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut s = v6.segments();
            s[4..].fill(0);
            IpAddr::V6(s.into())
        }
    }
}

/// One in-process limiter per [`Limit`], indexed by `Limit as usize`.
pub(super) struct InProcess([DefaultKeyedRateLimiter<CountedKey>; Limit::ALL.len()]);

impl InProcess {
    pub(super) fn new(limits: &Limits) -> Self {
        Self(Limit::ALL.map(|limit| {
            let quota = limit.quota(limits);
            RateLimiter::keyed(match limit.spec().period {
                Period::Minute => Quota::per_minute(quota),
                Period::Hour => Quota::per_hour(quota),
            })
        }))
    }

    fn check(&self, limit: Limit, key: Key<'_>) -> Result<(), RetryAfter> {
        self.0[limit as usize]
            .check_key(&key.counted())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                RetryAfter(wait.as_secs().max(1))
            })
    }

    pub(super) fn prune(&self) {
        for limiter in &self.0 {
            limiter.retain_recent();
        }
    }
}

/// A refusal of `limit`: counted in `rate_limit_rejections_total`, then passed on.
pub(super) fn refused(limit: Limit, wait: RetryAfter) -> RetryAfter {
    crate::counters::rate_limited(limit.spec().label);
    wait
}

impl Throttle {
    /// One request counted against `limit` under `key`: in Redis when shared (and it
    /// answers), else in this process. Every refusal is counted in /metrics.
    pub async fn check(&self, limit: Limit, key: Key<'_>) -> Result<(), RetryAfter> {
        debug_assert_eq!(key.kind(), limit.spec().key, "{limit:?} is keyed otherwise");
        if let Some(shared) = &self.shared
            && let Some((verdict, _)) = shared.gcra(limit, key, &self.limits, None).await
        {
            return verdict.map_err(|wait| refused(limit, wait));
        }
        self.check_in_process(limit, key)
    }

    /// [`Self::check`] in this process only (Redis did not answer).
    pub(super) fn check_in_process(&self, limit: Limit, key: Key<'_>) -> Result<(), RetryAfter> {
        self.in_process
            .check(limit, key)
            .map_err(|wait| refused(limit, wait))
    }

    /// [`Self::check`] in Redis, reading the counter `read` in the same round trip (0
    /// when unset). `None` without Redis or when it did not answer (nothing counted).
    pub async fn check_reading(
        &self,
        limit: Limit,
        key: Key<'_>,
        read: &str,
    ) -> Option<(Result<(), RetryAfter>, u64)> {
        debug_assert_eq!(key.kind(), limit.spec().key, "{limit:?} is keyed otherwise");
        let shared = self.shared.as_ref()?;
        let (verdict, seen) = shared.gcra(limit, key, &self.limits, Some(read)).await?;
        Some((
            verdict.map_err(|wait| refused(limit, wait)),
            seen.unwrap_or(0),
        ))
    }
}
