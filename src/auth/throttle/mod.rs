//! Throttling of everything that guesses: the public types ([`Throttle`],
//! [`RetryAfter`], [`Limits`], [`Limit`], [`Reservation`]) and the typed entry points
//! that handlers call.
//!
//! - per key (client IP, email address, account, OAuth client): rate limits, each one
//!   row of one table ([`Limit::spec`], limits.rs) and counted by one check
//!   ([`Throttle::check`]), which also counts every refusal in
//!   `rate_limit_rejections_total{limit=…}`;
//! - per account: progressive back-off after repeated failures (accounts.rs). While an
//!   account is backed off even the correct password is refused, so an attacker
//!   spreading guesses over many IPs gains nothing.
//!
//! Every guess at an account's secret (password, step-up, second-factor code or key)
//! goes through [`Throttle::reserve`] BEFORE it is checked: the attempt is counted
//! atomically (a DashMap entry, or one Redis script that also runs the per-IP limit),
//! so however many guesses arrive at once, at most the free failures, then one per
//! back-off window, are ever checked. The [`Reservation`] then says how the check
//! ended: a success resets the account, a failure stays counted (dropping a
//! reservation counts a failure too, so no path can forget).
//!
//! With `REDIS_URL` the counters live in Redis (GCRA and the back-off in Lua scripts,
//! each one atomic; shared.rs), so several instances share one budget. If Redis does
//! not answer, the in-process limiters (governor) answer instead: limits stay on, per
//! instance.

mod accounts;
mod limits;
mod shared;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;

use crate::clock::Clock;

use accounts::Failures;
pub use accounts::Reservation;
use limits::InProcess;
pub use limits::{Key, KeyKind, Limit, Period, Spec};
use shared::Shared;

/// A refusal: how many seconds to wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// Quotas, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub login_per_ip_per_minute: u32,
    pub register_per_ip_per_hour: u32,
    pub free_failures: u32,
    pub reset_per_ip_per_hour: u32,
    pub reset_per_address_per_hour: u32,
    pub resend_per_account_per_hour: u32,
    pub notice_per_address_per_hour: u32,
    pub token_per_client_per_minute: u32,
    pub personal_token_per_ip_per_minute: u32,
    pub personal_token_uses_per_minute: u32,
    pub device_code_per_account_per_hour: u32,
}

impl Limits {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            login_per_ip_per_minute: c.login_attempts_per_ip_per_minute,
            register_per_ip_per_hour: c.registrations_per_ip_per_hour,
            free_failures: c.login_failures_before_backoff,
            reset_per_ip_per_hour: c.password_resets_per_ip_per_hour,
            reset_per_address_per_hour: c.password_resets_per_address_per_hour,
            resend_per_account_per_hour: c.verification_resends_per_account_per_hour,
            notice_per_address_per_hour: c.registration_notices_per_address_per_hour,
            token_per_client_per_minute: c.token_requests_per_client_per_minute,
            personal_token_per_ip_per_minute: c.personal_token_requests_per_minute,
            personal_token_uses_per_minute: c.personal_token_uses_per_minute,
            device_code_per_account_per_hour: c.device_code_entries_per_account_per_hour,
        }
    }
}

#[derive(Clone)]
pub struct Throttle {
    /// Redis, when the counters are shared by every instance.
    shared: Option<Shared>,
    limits: Limits,
    /// One keyed limiter per [`Limit`]: without Redis, or when it does not answer.
    in_process: Arc<InProcess>,
    /// The accounts' failures and guesses in flight, when counted in this process.
    accounts: Arc<DashMap<String, Failures>>,
    free_failures: u32,
    clock: Clock,
}

impl Throttle {
    pub fn new(limits: Limits, clock: Clock) -> Self {
        Self {
            shared: None,
            in_process: Arc::new(InProcess::new(&limits)),
            accounts: Arc::new(DashMap::new()),
            free_failures: limits.free_failures.max(1),
            limits,
            clock,
        }
    }

    /// The same limits, counted in Redis across every instance.
    pub async fn with_redis(
        limits: Limits,
        clock: Clock,
        url: &str,
        prefix: &str,
    ) -> Result<Self, crate::auth::InternalError> {
        let mut throttle = Self::new(limits, clock);
        throttle.shared = Some(Shared::connect(url, prefix).await?);
        Ok(throttle)
    }

    /// A sign-in attempt from one client address that names no account (an account's
    /// guesses take [`Self::reserve`], which counts this same limit).
    pub async fn login_attempt(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.check(Limit::LoginFromIp, Key::Ip(ip)).await
    }

    /// An anonymous WebAuthn ceremony started (a passkey sign-in from `/login`, asked for
    /// on every load of the page), per caller address.
    pub async fn ceremony_from_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.check(Limit::CeremonyFromIp, Key::Ip(ip)).await
    }

    /// A failed client authentication at the token endpoints, per caller address.
    pub async fn client_auth_failed(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.check(Limit::ClientAuthFromIp, Key::Ip(ip)).await
    }

    /// A personal access token that did not check out at forward auth, per caller
    /// address (a guess). Over the limit the caller is told to wait.
    pub async fn personal_token_failed(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.check(Limit::PersonalTokenFromIp, Key::Ip(ip)).await
    }

    /// One use of a personal access token at forward auth, by the SHA-256 of the
    /// secret presented.
    pub async fn personal_token_use(&self, token_hash: &str) -> Result<(), RetryAfter> {
        self.check(Limit::PersonalTokenUse, Key::Name(token_hash))
            .await
    }

    /// [`Self::personal_token_use`] counted in Redis, reading the counter `read` in the
    /// same round trip (0 when unset); `None` as for [`Self::token_request_reading`].
    pub async fn personal_token_use_reading(
        &self,
        token_hash: &str,
        read: &str,
    ) -> Option<(Result<(), RetryAfter>, u64)> {
        self.check_reading(Limit::PersonalTokenUse, Key::Name(token_hash), read)
            .await
    }

    /// One authenticated request of a client at the token endpoints.
    pub async fn token_request(&self, budget: &str) -> Result<(), RetryAfter> {
        self.check(Limit::TokenPerClient, Key::Name(budget)).await
    }

    /// [`Self::token_request`] counted in Redis, reading the counter `read` in the same
    /// round trip (0 when unset). `None` without Redis or when it did not answer: the
    /// caller takes the ordinary path, which falls back to the in-process limiter.
    pub async fn token_request_reading(
        &self,
        budget: &str,
        read: &str,
    ) -> Option<(Result<(), RetryAfter>, u64)> {
        self.check_reading(Limit::TokenPerClient, Key::Name(budget), read)
            .await
    }

    /// A user code entered at `/device` (right or wrong: counted before it is looked
    /// up), per client address and per signed-in account. Codes are short, so every
    /// entry is a guess.
    pub async fn device_code_entry(&self, ip: IpAddr, user_id: &str) -> Result<(), RetryAfter> {
        self.check(Limit::DeviceCodeFromIp, Key::Ip(ip)).await?;
        self.check(Limit::DeviceCodeForAccount, Key::Name(user_id))
            .await
    }

    /// A registration from one client address.
    pub async fn registration(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.check(Limit::RegistrationFromIp, Key::Ip(ip)).await
    }

    /// Password-reset (and verification re-send) requests from one client.
    pub async fn reset_from_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.check(Limit::ResetFromIp, Key::Ip(ip)).await
    }

    /// Reset mails to one address: over the limit nothing is sent, silently.
    pub async fn reset_to_address(&self, normalized: &str) -> bool {
        self.mail_allowed(Limit::ResetToAddress, normalized).await
    }

    /// "Someone tried to register with your address" mails to one address: counted
    /// for every registration of it (before anyone knows whether it is taken, so the
    /// answer takes as long either way); over the limit nothing is sent, silently.
    /// Without it, rotating client addresses could mail anyone without end.
    pub async fn registration_notice_to(&self, normalized: &str) -> bool {
        self.mail_allowed(Limit::RegistrationNoticeTo, normalized)
            .await
    }

    /// Verification re-sends for one account: over the limit nothing is sent, silently.
    pub async fn resend_for_account(&self, normalized: &str) -> bool {
        self.mail_allowed(Limit::ResendForAccount, normalized).await
    }

    /// A mail limit: the caller drops the mail silently when refused (still counted in
    /// /metrics), so the answer reveals nothing about the address.
    async fn mail_allowed(&self, limit: Limit, normalized: &str) -> bool {
        self.check(limit, Key::Name(normalized)).await.is_ok()
    }

    /// The shared limiter's Redis connection, for others that need one (multiplexed).
    pub fn redis_connection(&self) -> Option<redis::aio::ConnectionManager> {
        self.shared.as_ref().map(|s| s.conn.clone())
    }

    /// Drops state that no longer limits anyone (called periodically).
    pub fn prune(&self) {
        self.in_process.prune();
        self.prune_accounts();
    }
}
