//! Throttling of everything that guesses.
//!
//! - per client IP: keyed rate limits (sign-in attempts, registrations, resets);
//! - per account: progressive back-off after repeated failures. While an account is
//!   backed off even the correct password is refused, so an attacker spreading guesses
//!   over many IPs gains nothing.
//!
//! With `REDIS_URL` the counters live in Redis (GCRA and the back-off in Lua scripts,
//! each one atomic), so several instances share one budget. If Redis does not answer,
//! the in-process limiters (governor) answer instead: limits stay on, per instance.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::DashMap;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::clock::Clock;

/// Longest back-off, whatever the number of failures.
const MAX_BACKOFF_SECS: i64 = 15 * 60;
/// Anonymous passkey ceremonies a client may start per sign-in attempt it may make:
/// the login page starts one on every load, and only finishing one is an attempt.
const CEREMONIES_PER_ATTEMPT: u32 = 3;
/// First back-off once the free failures are used up; doubles with each further one.
const FIRST_BACKOFF_SECS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// Counts a refusal in /metrics and passes the verdict on.
fn noted(limit: &'static str, verdict: Result<(), RetryAfter>) -> Result<(), RetryAfter> {
    if verdict.is_err() {
        crate::web::metrics::rate_limited(limit);
    }
    verdict
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: i64,
    last_failure: i64,
}

/// GCRA: one "theoretical arrival time" per key, in Redis's own clock (TIME), so the
/// instances' clocks do not matter. Returns {0 when allowed, else milliseconds to wait;
/// the value of KEYS[2] when one is given (its field ARGV[3] when that is given, nil
/// when unset)}: the token endpoint reads the OAuth memo generation in the same round
/// trip as it counts the client's request, a sign-in the account's back-off.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local seen = false
if KEYS[2] and ARGV[3] then seen = redis.call('HGET', KEYS[2], ARGV[3])
elseif KEYS[2] then seen = redis.call('GET', KEYS[2]) or '0' end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then return {allow_at - now, seen} end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {0, seen}
";

/// One failure of an account: forgets old failures, counts, and sets the back-off.
/// ARGV: now (s), free failures, first back-off (s), longest back-off (s).
/// Returns the back-off in seconds (0: none).
const FAILURE: &str = r"
local now = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local first = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if now - last > max then count = 0 end
count = count + 1
local secs = 0
if count >= free then
  secs = math.min(first * 2 ^ math.min(count - free, 10), max)
end
redis.call('HSET', KEYS[1], 'count', count, 'last', now, 'until', now + secs)
redis.call('EXPIRE', KEYS[1], max * 2)
return secs
";

#[derive(Clone)]
struct Shared {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    gcra: Arc<redis::Script>,
    failure: Arc<redis::Script>,
}

#[derive(Clone)]
pub struct Throttle {
    shared: Option<Shared>,
    limits: Limits,
    login_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    register_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    reset_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    reset_address: Arc<DefaultKeyedRateLimiter<String>>,
    resend_account: Arc<DefaultKeyedRateLimiter<String>>,
    client_auth_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    ceremony_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    token_client: Arc<DefaultKeyedRateLimiter<String>>,
    accounts: Arc<DashMap<String, Failures>>,
    free_failures: u32,
    clock: Clock,
}

/// Whether an account had failures on record when it was checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Recorded(bool);

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
    pub token_per_client_per_minute: u32,
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
            token_per_client_per_minute: c.token_requests_per_client_per_minute,
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
            // Failed client authentications: the same budget as sign-in attempts.
            client_auth_ip: Arc::new(RateLimiter::keyed(Quota::per_minute(nz(
                limits.login_per_ip_per_minute
            )))),
            ceremony_ip: Arc::new(RateLimiter::keyed(Quota::per_minute(nz(limits
                .login_per_ip_per_minute
                .saturating_mul(CEREMONIES_PER_ATTEMPT))))),
            token_client: Arc::new(RateLimiter::keyed(Quota::per_minute(nz(
                limits.token_per_client_per_minute
            )))),
            accounts: Arc::new(DashMap::new()),
            free_failures: limits.free_failures.max(1),
            clock,
            shared: None,
            limits,
        }
    }

    /// The same limits, counted in Redis across every instance.
    pub async fn with_redis(
        limits: Limits,
        clock: Clock,
        url: &str,
        prefix: &str,
    ) -> Result<Self, super::InternalError> {
        let err = |e: redis::RedisError| super::InternalError::Other(format!("redis: {e}"));
        let client = redis::Client::open(url).map_err(err)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(std::time::Duration::from_secs(2))
            .set_response_timeout(std::time::Duration::from_secs(2))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(err)?;
        let mut t = Self::new(limits, clock);
        t.shared = Some(Shared {
            conn,
            prefix: format!("{prefix}:limit:"),
            gcra: Arc::new(redis::Script::new(GCRA)),
            failure: Arc::new(redis::Script::new(FAILURE)),
        });
        Ok(t)
    }

    /// GCRA in Redis: `Some(verdict)`, or `None` when Redis did not answer.
    async fn shared_check(
        &self,
        name: &str,
        key: &str,
        period_ms: u64,
        quota: u32,
    ) -> Option<Result<(), RetryAfter>> {
        self.shared_gcra(name, key, period_ms, quota, None)
            .await
            .map(|(verdict, _)| verdict)
    }

    /// GCRA in Redis, also reading the key `read` (when given; its hash field when one
    /// is named) in the same script.
    async fn shared_gcra(
        &self,
        name: &str,
        key: &str,
        period_ms: u64,
        quota: u32,
        read: Option<(&str, Option<&str>)>,
    ) -> Option<(Result<(), RetryAfter>, Option<u64>)> {
        let sh = self.shared.as_ref()?;
        let quota = quota.max(1);
        let mut conn = sh.conn.clone();
        let mut invocation = sh.gcra.key(format!("{}{name}:{key}", sh.prefix));
        if let Some((r, _)) = read {
            invocation.key(r);
        }
        invocation
            .arg((period_ms / u64::from(quota)).max(1))
            .arg(quota);
        if let Some((_, Some(field))) = read {
            invocation.arg(field);
        }
        let res: Result<(u64, Option<u64>), _> = invocation.invoke_async(&mut conn).await;
        match res {
            Ok((0, seen)) => Some((Ok(()), seen)),
            Ok((ms, seen)) => Some((Err(RetryAfter(ms.div_ceil(1000).max(1))), seen)),
            Err(e) => {
                tracing::warn!(error = %e, "shared rate limit unavailable; limiting per instance");
                None
            }
        }
    }

    fn account_key(sh: &Shared, account: &str) -> String {
        format!("{}account:{account}", sh.prefix)
    }

    fn check_ip(limiter: &DefaultKeyedRateLimiter<IpAddr>, ip: IpAddr) -> Result<(), RetryAfter> {
        limiter.check_key(&ip_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RetryAfter(wait.as_secs().max(1))
        })
    }

    pub async fn login_attempt(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let q = self.limits.login_per_ip_per_minute;
        if let Some(v) = self
            .shared_check("login", &ip_key(ip).to_string(), 60_000, q)
            .await
        {
            return v;
        }
        Self::check_ip(&self.login_ip, ip)
    }

    /// [`Self::login_attempt`] and then [`Self::account_check`] for `account` (skipped
    /// when empty: input that is not an address names no account), in one Redis round
    /// trip when Redis is shared.
    pub async fn login_check(&self, ip: IpAddr, account: &str) -> Result<Recorded, RetryAfter> {
        if account.is_empty() {
            return self.login_attempt(ip).await.map(|()| Recorded::default());
        }
        if let Some(sh) = &self.shared {
            let q = self.limits.login_per_ip_per_minute;
            let backoff = Self::account_key(sh, account);
            let address = ip_key(ip).to_string();
            let read = Some((backoff.as_str(), Some("until")));
            if let Some((verdict, until)) =
                self.shared_gcra("login", &address, 60_000, q, read).await
            {
                verdict?;
                return self.backoff_verdict(until.map(|u| u as i64));
            }
            // Redis did not answer: both limits per instance, without asking it again.
        }
        Self::check_ip(&self.login_ip, ip)?;
        self.local_account_check(account)
    }

    /// An anonymous WebAuthn ceremony started (a passkey sign-in from `/login`, asked for
    /// on every load of the page), per caller address.
    pub async fn ceremony_from_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let q = self
            .limits
            .login_per_ip_per_minute
            .saturating_mul(CEREMONIES_PER_ATTEMPT);
        if let Some(v) = self
            .shared_check("ceremony", &ip_key(ip).to_string(), 60_000, q)
            .await
        {
            return noted("ceremony_ip", v);
        }
        noted("ceremony_ip", Self::check_ip(&self.ceremony_ip, ip))
    }

    /// A failed client authentication at the token endpoints, per caller address.
    pub async fn client_auth_failed(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let q = self.limits.login_per_ip_per_minute;
        if let Some(v) = self
            .shared_check("client_auth", &ip_key(ip).to_string(), 60_000, q)
            .await
        {
            return noted("client_auth", v);
        }
        noted("client_auth", Self::check_ip(&self.client_auth_ip, ip))
    }

    /// One authenticated request of a client at the token endpoints.
    pub async fn token_request(&self, client_id: &str) -> Result<(), RetryAfter> {
        let q = self.limits.token_per_client_per_minute;
        if let Some(v) = self.shared_check("token", client_id, 60_000, q).await {
            return noted("token_client", v);
        }
        noted(
            "token_client",
            self.token_client
                .check_key(&client_id.to_string())
                .map_err(|not_until| {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    RetryAfter(wait.as_secs().max(1))
                }),
        )
    }

    /// [`Self::token_request`] counted in Redis, reading the counter `read` in the same
    /// round trip (0 when unset). `None` without Redis or when it did not answer: the
    /// caller takes the ordinary path, which falls back to the in-process limiter.
    pub async fn token_request_reading(
        &self,
        client_id: &str,
        read: &str,
    ) -> Option<(Result<(), RetryAfter>, u64)> {
        let q = self.limits.token_per_client_per_minute;
        let (verdict, seen) = self
            .shared_gcra("token", client_id, 60_000, q, Some((read, None)))
            .await?;
        Some((noted("token_client", verdict), seen.unwrap_or(0)))
    }

    pub async fn registration(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let q = self.limits.register_per_ip_per_hour;
        if let Some(v) = self
            .shared_check("register", &ip_key(ip).to_string(), 3_600_000, q)
            .await
        {
            return v;
        }
        Self::check_ip(&self.register_ip, ip)
    }

    /// Password-reset requests from one client.
    pub async fn reset_from_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let q = self.limits.reset_per_ip_per_hour;
        if let Some(v) = self
            .shared_check("reset_ip", &ip_key(ip).to_string(), 3_600_000, q)
            .await
        {
            return v;
        }
        Self::check_ip(&self.reset_ip, ip)
    }

    /// Reset mails to one address: over the limit nothing is sent, silently.
    pub async fn reset_to_address(&self, normalized: &str) -> bool {
        let q = self.limits.reset_per_address_per_hour;
        if let Some(v) = self
            .shared_check("reset_to", normalized, 3_600_000, q)
            .await
        {
            return v.is_ok();
        }
        self.reset_address
            .check_key(&normalized.to_string())
            .is_ok()
    }

    /// Verification re-sends for one account: over the limit nothing is sent, silently.
    pub async fn resend_for_account(&self, normalized: &str) -> bool {
        let q = self.limits.resend_per_account_per_hour;
        if let Some(v) = self.shared_check("resend", normalized, 3_600_000, q).await {
            return v.is_ok();
        }
        self.resend_account
            .check_key(&normalized.to_string())
            .is_ok()
    }

    /// Refuses while the account is backed off.
    pub async fn account_allowed(&self, account: &str) -> Result<(), RetryAfter> {
        self.account_check(account).await.map(|_| ())
    }

    /// `account_allowed`, also saying whether failures were on record: a success after
    /// none has nothing to reset (`account_succeeded_after`), which saves a sign-in one
    /// Redis round trip. A failure recorded meanwhile by a concurrent attempt then
    /// stays counted, as a failure it is.
    pub async fn account_check(&self, account: &str) -> Result<Recorded, RetryAfter> {
        if let Some(sh) = &self.shared {
            let mut conn = sh.conn.clone();
            let until: Result<Option<i64>, _> = redis::cmd("HGET")
                .arg(Self::account_key(sh, account))
                .arg("until")
                .query_async(&mut conn)
                .await;
            match until {
                Ok(u) => return self.backoff_verdict(u),
                Err(e) => tracing::warn!(error = %e, "shared back-off unavailable; per instance"),
            }
        }
        self.local_account_check(account)
    }

    /// The verdict on a shared back-off record's `until` (seconds). The failure script
    /// always sets `until`: no field, no record.
    fn backoff_verdict(&self, until: Option<i64>) -> Result<Recorded, RetryAfter> {
        let now = self.clock.now();
        match until {
            Some(u) if u > now => {
                noted("account_backoff", Err(RetryAfter((u - now) as u64))).map(|()| Recorded(true))
            }
            u => Ok(Recorded(u.is_some())),
        }
    }

    fn local_account_check(&self, account: &str) -> Result<Recorded, RetryAfter> {
        let now = self.clock.now();
        match self.accounts.get(account) {
            Some(f) if f.locked_until > now => noted(
                "account_backoff",
                Err(RetryAfter((f.locked_until - now) as u64)),
            )
            .map(|()| Recorded(true)),
            _ => Ok(Recorded(true)),
        }
    }

    /// Counts a failure; returns the back-off that now applies, if any.
    pub async fn account_failed(&self, account: &str) -> Option<RetryAfter> {
        let now = self.clock.now();
        if let Some(sh) = &self.shared {
            let mut conn = sh.conn.clone();
            let secs: Result<i64, _> = sh
                .failure
                .key(Self::account_key(sh, account))
                .arg(now)
                .arg(self.free_failures)
                .arg(FIRST_BACKOFF_SECS)
                .arg(MAX_BACKOFF_SECS)
                .invoke_async(&mut conn)
                .await;
            match secs {
                Ok(0) => return None,
                Ok(s) => return Some(RetryAfter(s as u64)),
                Err(e) => tracing::warn!(error = %e, "shared back-off unavailable; per instance"),
            }
        }
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

    /// `account_succeeded` after `account_check`: skips the shared reset when nothing
    /// was on record.
    pub async fn account_succeeded_after(&self, account: &str, recorded: Recorded) {
        if recorded.0 {
            self.account_succeeded(account).await;
        } else {
            self.accounts.remove(account);
        }
    }

    pub async fn account_succeeded(&self, account: &str) {
        if let Some(sh) = &self.shared {
            let mut conn = sh.conn.clone();
            let r: Result<(), _> = redis::cmd("DEL")
                .arg(Self::account_key(sh, account))
                .query_async(&mut conn)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "shared back-off unavailable; per instance");
            }
        }
        self.accounts.remove(account);
    }

    /// Drops state that no longer limits anyone (called periodically).
    /// The shared limiter's Redis connection, for others that need one (multiplexed).
    pub fn redis_connection(&self) -> Option<redis::aio::ConnectionManager> {
        self.shared.as_ref().map(|s| s.conn.clone())
    }

    pub fn prune(&self) {
        self.login_ip.retain_recent();
        self.register_ip.retain_recent();
        self.reset_ip.retain_recent();
        self.reset_address.retain_recent();
        self.resend_account.retain_recent();
        self.client_auth_ip.retain_recent();
        self.ceremony_ip.retain_recent();
        self.token_client.retain_recent();
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
            token_per_client_per_minute: 100,
        }
    }

    async fn backoff_grows_and_resets_on_success(t: Throttle, clock: Clock) {
        assert!(t.account_failed("a").await.is_none());
        assert!(t.account_failed("a").await.is_none());
        assert_eq!(t.account_failed("a").await, Some(RetryAfter(30)));
        assert!(t.account_allowed("a").await.is_err());
        // A sign-in's combined check refuses the backed-off account, not another one,
        // nor input that names no account.
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(matches!(
            t.login_check(ip, "a").await,
            Err(RetryAfter(29..=30))
        ));
        assert!(t.login_check(ip, "b").await.is_ok());
        assert!(t.login_check(ip, "").await.is_ok());
        clock.advance(31);
        assert!(t.account_allowed("a").await.is_ok());
        assert_eq!(t.account_failed("a").await, Some(RetryAfter(60)));
        clock.advance(61);
        // A sign-in's path: the check says failures are on record, so the success
        // resets them and counting starts again.
        let recorded = t.account_check("a").await.unwrap();
        t.account_succeeded_after("a", recorded).await;
        assert!(t.account_failed("a").await.is_none());
        assert!(t.account_failed("a").await.is_none());
        assert!(t.account_allowed("b").await.is_ok());
        t.account_succeeded("a").await;
        assert!(t.account_failed("a").await.is_none());
    }

    async fn per_ip_limit_applies_per_address(t: Throttle) {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(t.login_attempt(a).await.is_ok());
        assert!(t.login_check(a, "someone@example.com").await.is_ok());
        // Both paths spend the one per-address budget.
        assert!(t.login_attempt(a).await.is_err());
        assert!(t.login_check(a, "other@example.com").await.is_err());
        assert!(t.login_check(b, "someone@example.com").await.is_ok());
        assert!(t.registration(a).await.is_ok());
        assert!(t.registration(a).await.is_err());
    }

    #[tokio::test]
    async fn in_process_limits() {
        let clock = Clock::system();
        backoff_grows_and_resets_on_success(
            Throttle::new(limits(100, 100, 3), clock.clone()),
            clock,
        )
        .await;
        per_ip_limit_applies_per_address(Throttle::new(limits(2, 1, 5), Clock::system())).await;
    }

    /// The same behaviour from the Redis scripts (a real Redis; the test needs one).
    #[tokio::test]
    async fn redis_limits_behave_the_same() {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("unit{}", uuid::Uuid::new_v4().simple());
        let clock = Clock::system();
        let t = Throttle::with_redis(limits(100, 100, 3), clock.clone(), &url, &prefix)
            .await
            .expect("redis");
        backoff_grows_and_resets_on_success(t, clock).await;
        let t = Throttle::with_redis(limits(2, 1, 5), Clock::system(), &url, &prefix)
            .await
            .expect("redis");
        per_ip_limit_applies_per_address(t).await;
    }
}
