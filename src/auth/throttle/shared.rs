//! Counting in Redis, shared by every instance: the connection, the key names, the Lua
//! scripts (GCRA for every [`Limit`]; the reservation and the failure of a guess at an
//! account), and the releases of successful guesses that ride along with this
//! instance's next reservation. Every call answers `None` or `Err` when Redis does
//! not: the callers then count in this process.

use std::sync::{Arc, Mutex};

use super::accounts::{FIRST_BACKOFF_SECS, HOLD_SECS, MAX_BACKOFF_SECS};
use super::limits::{Key, Limit};
use super::{Limits, RetryAfter};
use crate::auth::InternalError;

/// GCRA: one "theoretical arrival time" per key, in Redis's own clock (TIME), so the
/// instances' clocks do not matter. Returns {0 when allowed, else milliseconds to wait;
/// the value of KEYS[2] when one is given (its field ARGV[3] when that is given, nil
/// when unset)}: the token endpoint reads the OAuth cache generation in the same round
/// trip as it counts the client's request.
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

/// At most this many releases ride along with one reservation.
const MAX_RELEASES_PER_CALL: usize = 64;

/// The answer of [`RESERVE`]: its code and value.
pub(super) type ReserveAnswer = (u8, i64);

#[derive(Clone)]
pub(super) struct Shared {
    pub(super) conn: redis::aio::ConnectionManager,
    /// `{prefix}:limit:`, before every key of the throttle.
    prefix: String,
    gcra: Arc<redis::Script>,
    reserve: Arc<redis::Script>,
    failure: Arc<redis::Script>,
    /// Reservations (set key, id) whose guess succeeded with no failure on record:
    /// released by this instance's next reservation, never by a round trip of their own.
    releases: Arc<Mutex<Vec<(String, String)>>>,
}

impl Shared {
    pub(super) async fn connect(url: &str, prefix: &str) -> Result<Self, InternalError> {
        let err = InternalError::Redis;
        let client = redis::Client::open(url).map_err(err)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(std::time::Duration::from_secs(2))
            .set_response_timeout(std::time::Duration::from_secs(2))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(err)?;
        Ok(Self {
            conn,
            prefix: format!("{prefix}:limit:"),
            gcra: Arc::new(redis::Script::new(GCRA)),
            reserve: Arc::new(redis::Script::new(RESERVE)),
            failure: Arc::new(redis::Script::new(FAILURE)),
            releases: Arc::default(),
        })
    }

    fn limit_key(&self, limit: Limit, key: Key<'_>) -> String {
        format!("{}{}:{}", self.prefix, limit.spec().redis, key.redis_text())
    }

    fn account_key(&self, account: &str) -> String {
        format!("{}account:{account}", self.prefix)
    }

    fn held_key(&self, account: &str) -> String {
        format!("{}held:{account}", self.prefix)
    }

    /// GCRA for `limit` under `key`, also reading the key `read` (when given) in the
    /// same script: the verdict (not yet counted in /metrics) and what was read, or
    /// `None` when Redis did not answer.
    pub(super) async fn gcra(
        &self,
        limit: Limit,
        key: Key<'_>,
        limits: &Limits,
        read: Option<&str>,
    ) -> Option<(Result<(), RetryAfter>, Option<u64>)> {
        let (interval_ms, burst) = limit.gcra(limits);
        let mut conn = self.conn.clone();
        let mut invocation = self.gcra.key(self.limit_key(limit, key));
        if let Some(read) = read {
            invocation.key(read);
        }
        invocation.arg(interval_ms).arg(burst);
        let answer: Result<(u64, Option<u64>), _> = invocation.invoke_async(&mut conn).await;
        match answer {
            Ok((0, seen)) => Some((Ok(()), seen)),
            Ok((ms, seen)) => Some((Err(RetryAfter(ms.div_ceil(1000).max(1))), seen)),
            Err(e) => {
                tracing::warn!(error = %e, "shared rate limit unavailable; limiting per instance");
                None
            }
        }
    }

    /// Runs [`RESERVE`]: reservation `id` of a guess at `account` from `ip` (now: `now`,
    /// the application's clock), counting the client against [`Limit::LoginFromIp`];
    /// the releases waiting ride along.
    pub(super) async fn reserve(
        &self,
        limits: &Limits,
        ip: std::net::IpAddr,
        account: &str,
        id: &str,
        now: i64,
        free_failures: u32,
    ) -> Result<ReserveAnswer, redis::RedisError> {
        let (interval_ms, burst) = Limit::LoginFromIp.gcra(limits);
        let releases: Vec<(String, String)> = match self.releases.lock() {
            Ok(mut waiting) => {
                let keep = waiting.len().saturating_sub(MAX_RELEASES_PER_CALL);
                waiting.split_off(keep)
            }
            Err(_) => Vec::new(),
        };
        let mut invocation = self
            .reserve
            .key(self.limit_key(Limit::LoginFromIp, Key::Ip(ip)));
        invocation
            .key(self.account_key(account))
            .key(self.held_key(account));
        for (set, _) in &releases {
            invocation.key(set);
        }
        invocation
            .arg(interval_ms)
            .arg(burst)
            .arg(now)
            .arg(free_failures)
            .arg(MAX_BACKOFF_SECS)
            .arg(HOLD_SECS)
            .arg(id)
            .arg(releases.len());
        for (_, id) in &releases {
            invocation.arg(id);
        }
        let mut conn = self.conn.clone();
        let answer = invocation.invoke_async(&mut conn).await;
        if answer.is_err() {
            // Not released: the next call (or the periodic flush) tries again.
            if let Ok(mut waiting) = self.releases.lock() {
                waiting.extend(releases);
            }
        }
        answer
    }

    /// Runs [`FAILURE`]: the reservation `id` becomes a counted failure of `account`.
    /// Returns the back-off in seconds (0: none).
    pub(super) async fn failure(
        &self,
        account: &str,
        id: &str,
        now: i64,
        free_failures: u32,
    ) -> Result<i64, redis::RedisError> {
        let mut conn = self.conn.clone();
        self.failure
            .key(self.account_key(account))
            .key(self.held_key(account))
            .arg(now)
            .arg(free_failures)
            .arg(FIRST_BACKOFF_SECS)
            .arg(MAX_BACKOFF_SECS)
            .arg(id)
            .invoke_async(&mut conn)
            .await
    }

    /// A success with failures on record: they are forgotten, and the reservation
    /// `id` released, in one transaction.
    pub(super) async fn forget_failures(&self, account: &str, id: &str) {
        let mut conn = self.conn.clone();
        let done: Result<(), _> = redis::pipe()
            .atomic()
            .del(self.account_key(account))
            .ignore()
            .zrem(self.held_key(account), id)
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "shared back-off unavailable; per instance");
        }
    }

    /// A reservation whose place is given back by this instance's next reservation
    /// (or the periodic flush), without a round trip of its own.
    pub(super) fn release_later(&self, account: &str, id: &str) {
        if let Ok(mut waiting) = self.releases.lock() {
            waiting.push((self.held_key(account), id.to_string()));
        }
    }

    /// Releases every reservation waiting for a ride ([`Self::release_later`]).
    pub(super) async fn flush_releases(&self) {
        let releases: Vec<(String, String)> = match self.releases.lock() {
            Ok(mut waiting) => std::mem::take(&mut *waiting),
            Err(_) => return,
        };
        if releases.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (set, id) in &releases {
            pipe.zrem(set, id).ignore();
        }
        let mut conn = self.conn.clone();
        let done: Result<(), _> = pipe.query_async(&mut conn).await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "shared reservations not released; they expire by themselves");
        }
    }
}
