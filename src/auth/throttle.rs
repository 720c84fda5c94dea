//! Throttling of everything that guesses.
//!
//! - per client IP: governor keyed limiters (sign-in attempts, registrations);
//! - per account: progressive back-off after repeated failures. While an account is
//!   backed off even the correct password is refused, so an attacker spreading guesses
//!   over many IPs gains nothing.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::DashMap;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::clock::Clock;

/// Longest back-off, whatever the number of failures.
const MAX_BACKOFF_SECS: i64 = 15 * 60;
/// First back-off once the free failures are used up; doubles with each further one.
const FIRST_BACKOFF_SECS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: i64,
    last_failure: i64,
}

#[derive(Clone)]
pub struct Throttle {
    login_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    register_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    reset_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    reset_address: Arc<DefaultKeyedRateLimiter<String>>,
    resend_account: Arc<DefaultKeyedRateLimiter<String>>,
    accounts: Arc<DashMap<String, Failures>>,
    free_failures: u32,
    clock: Clock,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
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

/// Quotas, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub login_per_ip_per_minute: u32,
    pub register_per_ip_per_hour: u32,
    pub free_failures: u32,
    pub reset_per_ip_per_hour: u32,
    pub reset_per_address_per_hour: u32,
    pub resend_per_account_per_hour: u32,
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
        }
    }
}

fn per_hour<K: std::hash::Hash + Eq + Clone>(n: u32) -> Arc<DefaultKeyedRateLimiter<K>> {
    Arc::new(RateLimiter::keyed(Quota::per_hour(nz(n))))
}

impl Throttle {
    pub fn new(limits: Limits, clock: Clock) -> Self {
        Self {
            login_ip: Arc::new(RateLimiter::keyed(Quota::per_minute(nz(
                limits.login_per_ip_per_minute
            )))),
            register_ip: per_hour(limits.register_per_ip_per_hour),
            reset_ip: per_hour(limits.reset_per_ip_per_hour),
            reset_address: per_hour(limits.reset_per_address_per_hour),
            resend_account: per_hour(limits.resend_per_account_per_hour),
            accounts: Arc::new(DashMap::new()),
            free_failures: limits.free_failures.max(1),
            clock,
        }
    }

    fn check_ip(limiter: &DefaultKeyedRateLimiter<IpAddr>, ip: IpAddr) -> Result<(), RetryAfter> {
        limiter.check_key(&ip_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RetryAfter(wait.as_secs().max(1))
        })
    }

    pub fn login_attempt(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        Self::check_ip(&self.login_ip, ip)
    }

    pub fn registration(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        Self::check_ip(&self.register_ip, ip)
    }

    /// Password-reset requests from one client.
    pub fn reset_from_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        Self::check_ip(&self.reset_ip, ip)
    }

    /// Reset mails to one address: over the limit nothing is sent, silently.
    pub fn reset_to_address(&self, normalized: &str) -> bool {
        self.reset_address
            .check_key(&normalized.to_string())
            .is_ok()
    }

    /// Verification re-sends for one account: over the limit nothing is sent, silently.
    pub fn resend_for_account(&self, normalized: &str) -> bool {
        self.resend_account
            .check_key(&normalized.to_string())
            .is_ok()
    }

    /// Refuses while the account is backed off.
    pub fn account_allowed(&self, account: &str) -> Result<(), RetryAfter> {
        let now = self.clock.now();
        match self.accounts.get(account) {
            Some(f) if f.locked_until > now => Err(RetryAfter((f.locked_until - now) as u64)),
            _ => Ok(()),
        }
    }

    /// Counts a failure; returns the back-off that now applies, if any.
    pub fn account_failed(&self, account: &str) -> Option<RetryAfter> {
        let now = self.clock.now();
        let mut f = self.accounts.entry(account.to_string()).or_default();
        // Typos spread over a day are not an attack: failures are forgotten after a
        // quiet period as long as the longest back-off.
        if now - f.last_failure > MAX_BACKOFF_SECS {
            f.count = 0;
        }
        f.count += 1;
        f.last_failure = now;
        if f.count >= self.free_failures {
            let doublings = (f.count - self.free_failures).min(10);
            let secs = (FIRST_BACKOFF_SECS << doublings).min(MAX_BACKOFF_SECS);
            f.locked_until = now + secs;
            return Some(RetryAfter(secs as u64));
        }
        None
    }

    pub fn account_succeeded(&self, account: &str) {
        self.accounts.remove(account);
    }

    /// Drops state that no longer limits anyone (called periodically).
    pub fn prune(&self) {
        self.login_ip.retain_recent();
        self.register_ip.retain_recent();
        self.reset_ip.retain_recent();
        self.reset_address.retain_recent();
        self.resend_account.retain_recent();
        let now = self.clock.now();
        // Failures older than the longest back-off are forgotten.
        self.accounts
            .retain(|_, f| f.locked_until > now || now - f.last_failure <= MAX_BACKOFF_SECS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(login: u32, register: u32, free: u32) -> Limits {
        Limits {
            login_per_ip_per_minute: login,
            register_per_ip_per_hour: register,
            free_failures: free,
            reset_per_ip_per_hour: 10,
            reset_per_address_per_hour: 2,
            resend_per_account_per_hour: 2,
        }
    }

    #[test]
    fn backoff_grows_and_resets_on_success() {
        let clock = Clock::system();
        let t = Throttle::new(limits(100, 100, 3), clock.clone());
        assert!(t.account_failed("a").is_none());
        assert!(t.account_failed("a").is_none());
        assert_eq!(t.account_failed("a"), Some(RetryAfter(30)));
        assert!(t.account_allowed("a").is_err());
        clock.advance(31);
        assert!(t.account_allowed("a").is_ok());
        assert_eq!(t.account_failed("a"), Some(RetryAfter(60)));
        clock.advance(61);
        t.account_succeeded("a");
        assert!(t.account_failed("a").is_none());
        assert!(t.account_allowed("b").is_ok());
    }

    #[test]
    fn per_ip_limit_applies_per_address() {
        let t = Throttle::new(limits(2, 1, 5), Clock::system());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(t.login_attempt(a).is_ok());
        assert!(t.login_attempt(a).is_ok());
        assert!(t.login_attempt(a).is_err());
        assert!(t.login_attempt(b).is_ok());
        assert!(t.registration(a).is_ok());
        assert!(t.registration(a).is_err());
    }
}
