//! Per-account back-off, and the reservation of every guess at an account before it is
//! checked ([`Throttle::reserve`], [`Reservation`]). Not a rate: free failures, then a
//! back-off that doubles with each further one. The client's per-IP sign-in limit
//! ([`Limit::LoginFromIp`]) is counted in the same step (the same Redis round trip),
//! and its refusals in /metrics under that limit's label; the back-off's own refusals
//! under `account_backoff`. Counted in Redis when shared (shared.rs's scripts), else
//! in a DashMap.

use std::net::IpAddr;

use super::limits::{Key, Limit, refused};
use super::shared::Shared;
use super::{RetryAfter, Throttle};

/// Longest back-off, whatever the number of failures.
pub(super) const MAX_BACKOFF_SECS: i64 = 15 * 60;
/// First back-off once the free failures are used up; doubles with each further one.
pub(super) const FIRST_BACKOFF_SECS: i64 = 30;
/// How long a shared reservation holds at most (s). A check ends long before (a
/// request does not live this long); a check that outlives it is refused anyway
/// ([`Reservation::outlived`]), so a reservation lost to Redis's expiry never lets an
/// extra guess through. It is also how long a success's reservation can linger when
/// no later call releases it (the background task does, every few seconds).
pub(super) const HOLD_SECS: i64 = 5 * 60;
/// The value of `limit` in `rate_limit_rejections_total` for a guess refused by the
/// account's back-off (or because the guesses in flight use up what it may be guessed).
const BACKOFF_LABEL: &str = "account_backoff";

/// A guess refused by the account's back-off: counted in /metrics, then passed on.
fn backed_off(wait: RetryAfter) -> RetryAfter {
    crate::counters::rate_limited(BACKOFF_LABEL);
    wait
}

/// One account's record, when counted in this process.
#[derive(Default)]
pub(super) struct Failures {
    count: u32,
    locked_until: i64,
    last_failure: i64,
    /// Guesses reserved and not checked yet.
    in_flight: u32,
}

/// Whether one more guess may be checked now: none while backed off; while guesses are
/// in flight, only as many as the free failures left (after the back-off: none beside
/// the one in flight).
fn may_guess(count: u32, in_flight: u32, free: u32) -> bool {
    in_flight == 0 || count.saturating_add(in_flight) < free
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
            (Some(id), Some(shared)) if h.recorded => {
                shared.forget_failures(&h.account, id).await;
            }
            (Some(id), Some(shared)) => shared.release_later(&h.account, id),
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
            (Some(id), Some(shared)) => shared.release_later(&h.account, id),
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

impl Throttle {
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
        if let Some(shared) = &self.shared {
            match self.shared_reserve(shared, ip, account).await {
                Ok(verdict) => return verdict,
                // Redis did not answer: both limits per instance, without asking again.
                Err(e) => {
                    tracing::warn!(error = %e, "shared rate limit unavailable; limiting per instance")
                }
            }
        }
        self.check_in_process(Limit::LoginFromIp, Key::Ip(ip))?;
        self.local_reserve(account)
    }

    async fn shared_reserve(
        &self,
        shared: &Shared,
        ip: IpAddr,
        account: &str,
    ) -> Result<Result<Reservation, RetryAfter>, redis::RedisError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = self.clock.now();
        let (code, value) = shared
            .reserve(&self.limits, ip, account, &id, now, self.free_failures)
            .await?;
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
            1 => {
                let wait = RetryAfter((value.max(0) as u64).div_ceil(1000).max(1));
                Err(refused(Limit::LoginFromIp, wait))
            }
            _ => Err(backed_off(RetryAfter(value.max(1) as u64))),
        })
    }

    fn local_reserve(&self, account: &str) -> Result<Reservation, RetryAfter> {
        let now = self.clock.now();
        let mut f = self.accounts.entry(account.to_string()).or_default();
        if f.locked_until > now {
            return Err(backed_off(RetryAfter((f.locked_until - now) as u64)));
        }
        if now - f.last_failure > MAX_BACKOFF_SECS {
            f.count = 0;
        }
        if !may_guess(f.count, f.in_flight, self.free_failures) {
            return Err(backed_off(RetryAfter(1)));
        }
        f.in_flight += 1;
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

    /// Ends a reservation in this process: `counted_here` when it was counted here. A
    /// success (`Some(true)`) forgets the failures (the guesses still in flight stay
    /// counted), a failure (`Some(false)`) counts one, `None` only gives the place back.
    fn local_settle(&self, account: &str, counted_here: bool, success: Option<bool>) {
        let now = self.clock.now();
        if success == Some(false) {
            self.local_failure(account, now, counted_here);
            return;
        }
        let Some(mut f) = self.accounts.get_mut(account) else {
            return;
        };
        if counted_here {
            f.in_flight = f.in_flight.saturating_sub(1);
        }
        if success == Some(true) {
            f.count = 0;
            f.locked_until = 0;
        }
        let idle = f.in_flight == 0 && f.count == 0 && f.locked_until == 0;
        drop(f);
        if idle {
            self.accounts.remove_if(account, |_, f| {
                f.in_flight == 0 && f.count == 0 && f.locked_until == 0
            });
        }
    }

    /// Counts a failure in this process; returns the back-off that now applies.
    /// `was_in_flight`: the guess was reserved here, and its place is given back in the
    /// same step (under the entry's lock) as the failure is counted. In two steps, a
    /// reservation between them would see neither and get a guess too many.
    fn local_failure(&self, account: &str, now: i64, was_in_flight: bool) -> Option<RetryAfter> {
        let mut f = self.accounts.entry(account.to_string()).or_default();
        if was_in_flight {
            f.in_flight = f.in_flight.saturating_sub(1);
        }
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
        if let (Some(id), Some(shared)) = (&h.shared_id, &self.shared) {
            let secs = shared
                .failure(&h.account, id, now, self.free_failures)
                .await;
            match secs {
                Ok(0) => return None,
                Ok(s) => return Some(RetryAfter(s as u64)),
                Err(e) => tracing::warn!(error = %e, "shared back-off unavailable; per instance"),
            }
            return self.local_failure(&h.account, now, false);
        }
        self.local_failure(&h.account, now, true)
    }

    /// Releases the reservations of successes this instance has not told Redis about
    /// yet (when no reservation carried them along). Called periodically.
    pub async fn flush_releases(&self) {
        if let Some(shared) = &self.shared {
            shared.flush_releases().await;
        }
    }

    /// Forgets failures older than the longest back-off.
    pub(super) fn prune_accounts(&self) {
        let now = self.clock.now();
        self.accounts.retain(|_, f| {
            f.in_flight > 0 || f.locked_until > now || now - f.last_failure <= MAX_BACKOFF_SECS
        });
    }
}
