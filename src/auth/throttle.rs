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
}

#[derive(Clone)]
pub struct Throttle {
    login_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    register_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
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

impl Throttle {
    pub fn new(
        login_per_ip_per_minute: u32,
        register_per_ip_per_hour: u32,
        free_failures: u32,
        clock: Clock,
    ) -> Self {
        Self {
            login_ip: Arc::new(RateLimiter::keyed(Quota::per_minute(nz(
                login_per_ip_per_minute,
            )))),
            register_ip: Arc::new(RateLimiter::keyed(Quota::per_hour(nz(
                register_per_ip_per_hour,
            )))),
            accounts: Arc::new(DashMap::new()),
            free_failures: free_failures.max(1),
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
        f.count += 1;
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
        let now = self.clock.now();
        // Failures older than the longest back-off are forgotten.
        self.accounts.retain(|_, f| {
            f.locked_until + MAX_BACKOFF_SECS > now || f.locked_until == 0 && f.count > 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_resets_on_success() {
        let clock = Clock::system();
        let t = Throttle::new(100, 100, 3, clock.clone());
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
        let t = Throttle::new(2, 1, 5, Clock::system());
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
