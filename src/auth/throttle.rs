//! Throttling of everything that guesses.
//!
//! - per client IP: keyed rate limits (sign-in attempts, registrations, resets);
//! - per account: progressive back-off after repeated failures. While an account is
//!   backed off even the correct password is refused, so an attacker spreading guesses
//!   over many IPs gains nothing.
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
        crate::counters::rate_limited(limit);
    }
    verdict
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: i64,
    last_failure: i64,
    /// Guesses reserved and not checked yet.
    held: u32,
}

/// Whether one more guess may be checked now: none while backed off; while guesses are
/// in flight, only as many as the free failures left (after the back-off: none beside
/// the one in flight).
fn may_guess(count: u32, held: u32, free: u32) -> bool {
    held == 0 || count.saturating_add(held) < free
}

/// GCRA: one "theoretical arrival time" per key, in Redis's own clock (TIME), so the
/// instances' clocks do not matter. Returns {0 when allowed, else milliseconds to wait;
/// the value of KEYS[2] when one is given (its field ARGV[3] when that is given, nil
/// when unset)}: the token endpoint reads the OAuth cache generation in the same round
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

/// A guess at an account, reserved before it is checked, with the client's per-IP
/// limit in the same round trip.
/// KEYS: the client's GCRA key, the account's failure record, the account's set of
/// guesses in flight, then the sets of guesses this instance saw succeed since its last
/// call (released here, so a sign-in pays no round trip of its own for that).
/// ARGV: GCRA interval (ms), GCRA burst, now (s, the application's clock), free
/// failures, longest back-off (s), how long a reservation holds (s), this reservation's
/// id, the number of releases, then their ids.
/// Returns {0, 1 when failures are on record else 0} when reserved; {1, ms} when the
/// client is over its limit; {2, s} while the account is backed off; {3, s} while the
/// guesses in flight already use up what the account may be guessed.
const RESERVE: &str = r"
local n = tonumber(ARGV[8])
for i = 1, n do redis.call('ZREM', KEYS[3 + i], ARGV[8 + i]) end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now_ms then tat = now_ms end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now_ms then return {1, allow_at - now_ms} end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now_ms)
local now = tonumber(ARGV[3])
local free = tonumber(ARGV[4])
local max = tonumber(ARGV[5])
local hold = tonumber(ARGV[6])
local f = redis.call('HMGET', KEYS[2], 'count', 'last', 'until')
local count = tonumber(f[1] or '0')
local last = tonumber(f[2] or '0')
local untl = tonumber(f[3] or '0')
if untl > now then return {2, untl - now} end
if now - last > max then count = 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local held = redis.call('ZCARD', KEYS[3])
if held > 0 and count + held >= free then return {3, 1} end
redis.call('ZADD', KEYS[3], now + hold, ARGV[7])
redis.call('EXPIRE', KEYS[3], hold)
if f[3] then return {0, 1} end
return {0, 0}
";

/// One failure of an account: its reservation (KEYS[2], ARGV[5]) becomes a counted
/// failure: forgets old failures, counts, and sets the back-off.
/// ARGV: now (s), free failures, first back-off (s), longest back-off (s), id.
/// Returns the back-off in seconds (0: none).
const FAILURE: &str = r"
redis.call('ZREM', KEYS[2], ARGV[5])
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

/// How long a shared reservation holds at most (s). A check ends long before (a
/// request does not live this long); a check that outlives it is refused anyway
/// ([`Reservation::outlived`]), so a reservation lost to Redis's expiry never lets an
/// extra guess through. It is also how long a success's reservation can linger when
/// no later call releases it (the background task does, every few seconds).
const HOLD_SECS: i64 = 5 * 60;
/// At most this many releases ride along with one reservation.
const MAX_RELEASES_PER_CALL: usize = 64;

#[derive(Clone)]
struct Shared {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    gcra: Arc<redis::Script>,
    reserve: Arc<redis::Script>,
    failure: Arc<redis::Script>,
    /// Reservations (set key, id) whose guess succeeded with no failure on record:
    /// released by this instance's next reservation, never by a round trip of their own.
    releases: Arc<std::sync::Mutex<Vec<(String, String)>>>,
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
    notice_address: Arc<DefaultKeyedRateLimiter<String>>,
    client_auth_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    ceremony_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    token_client: Arc<DefaultKeyedRateLimiter<String>>,
    accounts: Arc<DashMap<String, Failures>>,
    free_failures: u32,
    clock: Clock,
}

/// One guess at an account, counted before it is checked ([`Throttle::reserve`]).
/// Say how the check ended with [`Self::succeeded`] or [`Self::failed`]; dropped
/// unsaid (an error, a cancelled request), it counts as a failure.
#[must_use = "a reservation is a guess: say how it ended (dropping it counts a failure)"]
pub struct Reservation {
    held: Option<Held>,
}

struct Held {
    throttle: Throttle,
    account: String,
    /// Where it was counted: in Redis (`Some(id)`, its member in the set of guesses in
    /// flight) or in this process.
    shared_id: Option<String>,
    /// Failures were on record: a success must reset them (a round trip in Redis).
    recorded: bool,
    /// The application's clock (s) after which the reservation no longer holds.
    deadline: i64,
}

impl Reservation {
    /// Nothing reserved: input that names no account.
    pub fn none() -> Self {
        Self { held: None }
    }

    /// The check took longer than the reservation holds: its verdict must not be used
    /// (answer "try again"; dropping the reservation counts a failure).
    pub fn outlived(&self) -> bool {
        self.held
            .as_ref()
            .is_some_and(|h| h.throttle.clock.now() > h.deadline)
    }

    /// The guess was right: the account's failures are forgotten. Costs no round trip
    /// when none were on record.
    pub async fn succeeded(mut self) {
        let Some(h) = self.held.take() else { return };
        let t = &h.throttle;
        match (&h.shared_id, t.shared.as_ref()) {
            (Some(id), Some(sh)) if h.recorded => {
                let mut conn = sh.conn.clone();
                let r: Result<(), _> = redis::pipe()
                    .atomic()
                    .del(Throttle::account_key(sh, &h.account))
                    .ignore()
                    .zrem(Throttle::held_key(sh, &h.account), id)
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "shared back-off unavailable; per instance");
                }
            }
            (Some(id), Some(sh)) => t.release_later(sh, &h.account, id),
            _ => {}
        }
        t.local_settle(&h.account, h.shared_id.is_none(), Some(true));
    }

    /// Nothing was guessed after all (the request was refused before the secret was
    /// checked, or for another reason after it was found right): the place is given
    /// back; the failures on record stay as they are.
    pub fn released(mut self) {
        let Some(h) = self.held.take() else { return };
        match (&h.shared_id, h.throttle.shared.as_ref()) {
            (Some(id), Some(sh)) => h.throttle.release_later(sh, &h.account, id),
            _ => h.throttle.local_settle(&h.account, true, None),
        }
    }

    /// The guess was wrong: it stays counted. Returns the back-off that now applies.
    pub async fn failed(mut self) -> Option<RetryAfter> {
        let h = self.held.take()?;
        h.throttle.settle_failure(&h).await
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(h) = self.held.take() else { return };
        if h.shared_id.is_none() {
            h.throttle.local_settle(&h.account, true, Some(false));
            return;
        }
        // Counted in Redis: the failure is recorded in the background; until then the
        // reservation itself holds the account's budget.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = h.throttle.settle_failure(&h).await;
            });
        }
    }
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
    pub notice_per_address_per_hour: u32,
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
            notice_per_address_per_hour: c.registration_notices_per_address_per_hour,
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
            notice_address: per_hour(limits.notice_per_address_per_hour),
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
    ) -> Result<Self, crate::auth::InternalError> {
        let err = |e: redis::RedisError| crate::auth::InternalError::Other(format!("redis: {e}"));
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
            reserve: Arc::new(redis::Script::new(RESERVE)),
            failure: Arc::new(redis::Script::new(FAILURE)),
            releases: Arc::default(),
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

    fn held_key(sh: &Shared, account: &str) -> String {
        format!("{}held:{account}", sh.prefix)
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

    /// Reserves one guess at `account` (counted before it is checked, whatever the
    /// concurrency), after the client's per-IP sign-in limit, in one Redis round trip
    /// when Redis is shared. Refused while the account is backed off, or while the
    /// guesses in flight use up what it may be guessed. `account` empty: input that
    /// names no account gets the per-IP limit only, and is never stored as a key (it
    /// could be a password typed in the wrong box).
    pub async fn reserve(&self, ip: IpAddr, account: &str) -> Result<Reservation, RetryAfter> {
        if account.is_empty() {
            return self.login_attempt(ip).await.map(|()| Reservation::none());
        }
        if let Some(sh) = &self.shared {
            match self.shared_reserve(sh, ip, account).await {
                Ok(verdict) => return verdict,
                // Redis did not answer: both limits per instance, without asking again.
                Err(e) => {
                    tracing::warn!(error = %e, "shared rate limit unavailable; limiting per instance")
                }
            }
        }
        Self::check_ip(&self.login_ip, ip)?;
        self.local_reserve(account)
    }

    async fn shared_reserve(
        &self,
        sh: &Shared,
        ip: IpAddr,
        account: &str,
    ) -> Result<Result<Reservation, RetryAfter>, redis::RedisError> {
        let q = self.limits.login_per_ip_per_minute.max(1);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = self.clock.now();
        let releases: Vec<(String, String)> = match sh.releases.lock() {
            Ok(mut v) => {
                let keep = v.len().saturating_sub(MAX_RELEASES_PER_CALL);
                v.split_off(keep)
            }
            Err(_) => Vec::new(),
        };
        let mut invocation = sh.reserve.key(format!("{}login:{}", sh.prefix, ip_key(ip)));
        invocation
            .key(Self::account_key(sh, account))
            .key(Self::held_key(sh, account));
        for (k, _) in &releases {
            invocation.key(k);
        }
        invocation
            .arg((60_000 / u64::from(q)).max(1))
            .arg(q)
            .arg(now)
            .arg(self.free_failures)
            .arg(MAX_BACKOFF_SECS)
            .arg(HOLD_SECS)
            .arg(&id)
            .arg(releases.len());
        for (_, r) in &releases {
            invocation.arg(r);
        }
        let mut conn = sh.conn.clone();
        let res: Result<(u8, i64), _> = invocation.invoke_async(&mut conn).await;
        let (code, value) = match res {
            Ok(v) => v,
            Err(e) => {
                // Not released: the next call (or the periodic flush) tries again.
                if let Ok(mut v) = sh.releases.lock() {
                    v.extend(releases);
                }
                return Err(e);
            }
        };
        Ok(match code {
            0 => Ok(Reservation {
                held: Some(Held {
                    throttle: self.clone(),
                    account: account.to_string(),
                    shared_id: Some(id),
                    recorded: value != 0,
                    deadline: now + HOLD_SECS,
                }),
            }),
            1 => Err(RetryAfter((value.max(0) as u64).div_ceil(1000).max(1))),
            _ => noted("account_backoff", Err(RetryAfter(value.max(1) as u64)))
                .map(|()| Reservation::none()),
        })
    }

    fn local_reserve(&self, account: &str) -> Result<Reservation, RetryAfter> {
        let now = self.clock.now();
        let mut f = self.accounts.entry(account.to_string()).or_default();
        if f.locked_until > now {
            return noted(
                "account_backoff",
                Err(RetryAfter((f.locked_until - now) as u64)),
            )
            .map(|()| Reservation::none());
        }
        if now - f.last_failure > MAX_BACKOFF_SECS {
            f.count = 0;
        }
        if !may_guess(f.count, f.held, self.free_failures) {
            return noted("account_backoff", Err(RetryAfter(1))).map(|()| Reservation::none());
        }
        f.held += 1;
        Ok(Reservation {
            held: Some(Held {
                throttle: self.clone(),
                account: account.to_string(),
                shared_id: None,
                recorded: f.count > 0,
                deadline: i64::MAX,
            }),
        })
    }

    /// A reservation counted in Redis whose place is given back by this instance's
    /// next reservation (or the periodic flush), without a round trip of its own.
    fn release_later(&self, sh: &Shared, account: &str, id: &str) {
        if let Ok(mut v) = sh.releases.lock() {
            v.push((Self::held_key(sh, account), id.to_string()));
        }
    }

    /// Ends a reservation in this process: `held` when it was counted here. A success
    /// (`Some(true)`) forgets the failures (the guesses still in flight stay counted),
    /// a failure (`Some(false)`) counts one, `None` only gives the place back.
    fn local_settle(&self, account: &str, held: bool, success: Option<bool>) {
        let now = self.clock.now();
        if success == Some(false) {
            if held && let Some(mut f) = self.accounts.get_mut(account) {
                f.held = f.held.saturating_sub(1);
            }
            self.local_failure(account, now);
            return;
        }
        let Some(mut f) = self.accounts.get_mut(account) else {
            return;
        };
        if held {
            f.held = f.held.saturating_sub(1);
        }
        if success == Some(true) {
            f.count = 0;
            f.locked_until = 0;
        }
        let idle = f.held == 0 && f.count == 0 && f.locked_until == 0;
        drop(f);
        if idle {
            self.accounts.remove_if(account, |_, f| {
                f.held == 0 && f.count == 0 && f.locked_until == 0
            });
        }
    }

    /// Counts a failure in this process; returns the back-off that now applies.
    fn local_failure(&self, account: &str, now: i64) -> Option<RetryAfter> {
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

    /// A reservation's guess failed: counted where it was reserved.
    async fn settle_failure(&self, h: &Held) -> Option<RetryAfter> {
        let now = self.clock.now();
        if let (Some(id), Some(sh)) = (&h.shared_id, &self.shared) {
            let mut conn = sh.conn.clone();
            let secs: Result<i64, _> = sh
                .failure
                .key(Self::account_key(sh, &h.account))
                .key(Self::held_key(sh, &h.account))
                .arg(now)
                .arg(self.free_failures)
                .arg(FIRST_BACKOFF_SECS)
                .arg(MAX_BACKOFF_SECS)
                .arg(id)
                .invoke_async(&mut conn)
                .await;
            match secs {
                Ok(0) => return None,
                Ok(s) => return Some(RetryAfter(s as u64)),
                Err(e) => tracing::warn!(error = %e, "shared back-off unavailable; per instance"),
            }
            return self.local_failure(&h.account, now);
        }
        if let Some(mut f) = self.accounts.get_mut(&h.account) {
            f.held = f.held.saturating_sub(1);
        }
        self.local_failure(&h.account, now)
    }

    /// Releases the reservations of successes this instance has not told Redis about
    /// yet (when no reservation carried them along). Called periodically.
    pub async fn flush_releases(&self) {
        let Some(sh) = &self.shared else { return };
        let releases: Vec<(String, String)> = match sh.releases.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => return,
        };
        if releases.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (k, id) in &releases {
            pipe.zrem(k, id).ignore();
        }
        let mut conn = sh.conn.clone();
        let r: Result<(), _> = pipe.query_async(&mut conn).await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "shared reservations not released; they expire by themselves");
        }
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

    /// "Someone tried to register with your address" mails to one address: counted
    /// for every registration of it (before anyone knows whether it is taken, so the
    /// answer takes as long either way); over the limit nothing is sent, silently.
    /// Without it, rotating client addresses could mail anyone without end.
    pub async fn registration_notice_to(&self, normalized: &str) -> bool {
        let q = self.limits.notice_per_address_per_hour;
        if let Some(v) = self
            .shared_check("notice_to", normalized, 3_600_000, q)
            .await
        {
            return v.is_ok();
        }
        self.notice_address
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

    /// The shared limiter's Redis connection, for others that need one (multiplexed).
    pub fn redis_connection(&self) -> Option<redis::aio::ConnectionManager> {
        self.shared.as_ref().map(|s| s.conn.clone())
    }

    /// Drops state that no longer limits anyone (called periodically).
    pub fn prune(&self) {
        self.login_ip.retain_recent();
        self.register_ip.retain_recent();
        self.reset_ip.retain_recent();
        self.reset_address.retain_recent();
        self.resend_account.retain_recent();
        self.notice_address.retain_recent();
        self.client_auth_ip.retain_recent();
        self.ceremony_ip.retain_recent();
        self.token_client.retain_recent();
        let now = self.clock.now();
        // Failures older than the longest back-off are forgotten.
        self.accounts.retain(|_, f| {
            f.held > 0 || f.locked_until > now || now - f.last_failure <= MAX_BACKOFF_SECS
        });
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
            notice_per_address_per_hour: 2,
            token_per_client_per_minute: 100,
        }
    }

    const IP: &str = "10.0.0.9";

    async fn guess(t: &Throttle, account: &str) -> Result<Reservation, RetryAfter> {
        t.reserve(IP.parse().unwrap(), account).await
    }

    async fn backoff_grows_and_resets_on_success(t: Throttle, clock: Clock) {
        assert!(guess(&t, "a").await.unwrap().failed().await.is_none());
        assert!(guess(&t, "a").await.unwrap().failed().await.is_none());
        assert_eq!(
            guess(&t, "a").await.unwrap().failed().await,
            Some(RetryAfter(30))
        );
        // Backed off: refused, even before anything is checked; not another account,
        // nor input that names no account.
        assert!(matches!(guess(&t, "a").await, Err(RetryAfter(29..=30))));
        assert!(guess(&t, "b").await.is_ok());
        assert!(guess(&t, "").await.is_ok());
        clock.advance(31);
        assert_eq!(
            guess(&t, "a").await.unwrap().failed().await,
            Some(RetryAfter(60))
        );
        clock.advance(61);
        // A success forgets the failures: counting starts again.
        guess(&t, "a").await.unwrap().succeeded().await;
        assert!(guess(&t, "a").await.unwrap().failed().await.is_none());
        assert!(guess(&t, "a").await.unwrap().failed().await.is_none());
        guess(&t, "a").await.unwrap().succeeded().await;
        assert!(guess(&t, "a").await.unwrap().failed().await.is_none());
    }

    /// Guesses in flight count before they are checked: with 3 free failures, a 4th
    /// guess is refused while 3 are in flight, whatever they turn out to be; a success
    /// among them frees its own place only.
    async fn guesses_in_flight_are_counted(t: Throttle, clock: Clock) {
        let a = guess(&t, "c").await.unwrap();
        let b = guess(&t, "c").await.unwrap();
        let c = guess(&t, "c").await.unwrap();
        assert!(guess(&t, "c").await.is_err());
        assert!(guess(&t, "d").await.is_ok());
        b.succeeded().await;
        // The success reset the (no) failures; two guesses are still in flight.
        let d = guess(&t, "c").await.unwrap();
        assert!(guess(&t, "c").await.is_err());
        assert!(a.failed().await.is_none());
        assert!(c.failed().await.is_none());
        // Two failures on record, one guess in flight: no place left.
        assert!(guess(&t, "c").await.is_err());
        // A reservation dropped unsaid is a failure, the third: backed off.
        drop(d);
        for _ in 0..50 {
            if guess(&t, "c").await.is_err_and(|r| r.0 > 1) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(matches!(guess(&t, "c").await, Err(RetryAfter(2..=30))));
        // After the back-off: one guess at a time.
        clock.advance(31);
        let e = guess(&t, "c").await.unwrap();
        assert!(guess(&t, "c").await.is_err());
        assert_eq!(e.failed().await, Some(RetryAfter(60)));
        // Successes release their places without a round trip of their own: a burst
        // of right guesses, one after another, never locks the account.
        for _ in 0..10 {
            guess(&t, "e").await.unwrap().succeeded().await;
        }
        t.flush_releases().await;
    }

    async fn per_ip_limit_applies_per_address(t: Throttle) {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(t.login_attempt(a).await.is_ok());
        t.reserve(a, "someone@example.com")
            .await
            .unwrap()
            .succeeded()
            .await;
        // Both paths spend the one per-address budget.
        assert!(t.login_attempt(a).await.is_err());
        assert!(t.reserve(a, "other@example.com").await.is_err());
        assert!(t.reserve(b, "someone@example.com").await.is_ok());
        assert!(t.registration(a).await.is_ok());
        assert!(t.registration(a).await.is_err());
    }

    #[tokio::test]
    async fn in_process_limits() {
        let clock = Clock::system();
        backoff_grows_and_resets_on_success(
            Throttle::new(limits(100, 100, 3), clock.clone()),
            clock.clone(),
        )
        .await;
        guesses_in_flight_are_counted(Throttle::new(limits(100, 100, 3), clock.clone()), clock)
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
        backoff_grows_and_resets_on_success(t.clone(), clock.clone()).await;
        guesses_in_flight_are_counted(t, clock).await;
        let t = Throttle::with_redis(limits(2, 1, 5), Clock::system(), &url, &prefix)
            .await
            .expect("redis");
        per_ip_limit_applies_per_address(t).await;
    }
}
