//! The throttle's unit tests: the table is well formed, and the in-process limiters
//! and the Redis scripts behave the same (the Redis test needs a Redis).

use std::collections::HashSet;
use std::net::IpAddr;

use super::*;
use crate::clock::Clock;

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
        personal_token_per_ip_per_minute: 10,
        personal_token_uses_per_minute: 100,
        device_code_per_account_per_hour: 20,
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
    guesses_in_flight_are_counted(Throttle::new(limits(100, 100, 3), clock.clone()), clock).await;
    per_ip_limit_applies_per_address(Throttle::new(limits(2, 1, 5), Clock::system())).await;
}

/// Reservations racing failures on two threads never get a guess past the free
/// failures: a failure gives its place back and counts in one step, so a reservation
/// between the two cannot see neither (that let a fourth code be checked in the API
/// suite's race).
#[test]
fn racing_reservations_never_exceed_the_free_failures() {
    const ACCOUNTS: usize = 60_000;
    const TRIES: usize = 4;
    let t = Throttle::new(limits(u32::MAX, 100, 3), Clock::system());
    let granted: Vec<std::sync::atomic::AtomicU32> =
        (0..ACCOUNTS).map(|_| Default::default()).collect();
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        for n in 0..2u8 {
            let (t, granted, start) = (&t, &granted, &start);
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let ip: IpAddr = format!("10.1.0.{n}").parse().unwrap();
                for (i, g) in granted.iter().enumerate() {
                    let account = format!("race{i}");
                    // Both threads at the same account at once.
                    start.wait();
                    for _ in 0..TRIES {
                        if let Ok(r) = rt.block_on(t.reserve(ip, &account)) {
                            g.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            // Dropped unsaid: a failure, settled on this thread.
                            drop(r);
                        }
                    }
                }
            });
        }
    });
    let worst = granted
        .iter()
        .map(|g| g.load(std::sync::atomic::Ordering::Relaxed))
        .max();
    assert_eq!(
        worst,
        Some(3),
        "an account was guessed more than its free failures"
    );
}

/// The same behaviour from the Redis scripts, against a real Redis: in the suite's Redis
/// pass (`TEST_REDIS_URL` set), so that `cargo test` alone needs nothing but the toolchain.
#[tokio::test]
async fn redis_limits_behave_the_same() {
    let Ok(url) = std::env::var("TEST_REDIS_URL") else {
        return;
    };
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

/// The table says each limit once: its own label in /metrics, its own Redis keys.
#[test]
fn every_limit_has_its_own_label_and_redis_name() {
    let mut labels = HashSet::new();
    let mut names = HashSet::new();
    for limit in Limit::ALL {
        let spec = limit.spec();
        assert!(labels.insert(spec.label), "label {} twice", spec.label);
        assert!(names.insert(spec.redis), "Redis name {} twice", spec.redis);
        assert!(
            spec.label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'),
            "{} is not snake_case",
            spec.label
        );
    }
    // The back-off's own label and keys are not a limit's.
    assert!(!labels.contains("account_backoff"));
    assert!(!names.contains("account") && !names.contains("held"));
}

/// Instances of different versions share the Redis keys and the quotas: the names
/// and sources are the ones every earlier version used.
#[test]
fn redis_names_and_quotas_are_the_ones_in_use() {
    let l = Limits {
        login_per_ip_per_minute: 11,
        register_per_ip_per_hour: 12,
        free_failures: 13,
        reset_per_ip_per_hour: 14,
        reset_per_address_per_hour: 15,
        resend_per_account_per_hour: 16,
        notice_per_address_per_hour: 17,
        token_per_client_per_minute: 18,
        personal_token_per_ip_per_minute: 19,
        personal_token_uses_per_minute: 20,
        device_code_per_account_per_hour: 21,
    };
    let table: Vec<_> = Limit::ALL
        .iter()
        .map(|&limit| {
            let spec = limit.spec();
            (spec.redis, spec.period, spec.key, limit.gcra(&l))
        })
        .collect();
    use KeyKind::{Ip, Name};
    use Period::{Hour, Minute};
    assert_eq!(
        table,
        [
            ("login", Minute, Ip, (60_000 / 11, 11)),
            ("ceremony", Minute, Ip, (60_000 / 33, 33)),
            ("client_auth", Minute, Ip, (60_000 / 11, 11)),
            ("token", Minute, Name, (60_000 / 18, 18)),
            ("register", Hour, Ip, (3_600_000 / 12, 12)),
            ("reset_ip", Hour, Ip, (3_600_000 / 14, 14)),
            ("reset_to", Hour, Name, (3_600_000 / 15, 15)),
            ("notice_to", Hour, Name, (3_600_000 / 17, 17)),
            ("resend", Hour, Name, (3_600_000 / 16, 16)),
            ("pat", Minute, Ip, (60_000 / 19, 19)),
            ("pat_use", Minute, Name, (60_000 / 20, 20)),
            ("device_ip", Minute, Ip, (60_000 / 11, 11)),
            ("device_user", Hour, Name, (3_600_000 / 21, 21)),
        ]
    );
    // A quota of 0 counts as 1.
    let zero = Limits {
        register_per_ip_per_hour: 0,
        ..l
    };
    assert_eq!(Limit::RegistrationFromIp.gcra(&zero), (3_600_000, 1));
}

/// Every limit counts per key, in process: one key's refusal leaves another alone.
#[tokio::test]
async fn every_limit_counts_per_key() {
    let one = Limits {
        login_per_ip_per_minute: 1,
        register_per_ip_per_hour: 1,
        free_failures: 3,
        reset_per_ip_per_hour: 1,
        reset_per_address_per_hour: 1,
        resend_per_account_per_hour: 1,
        notice_per_address_per_hour: 1,
        token_per_client_per_minute: 1,
        personal_token_per_ip_per_minute: 1,
        personal_token_uses_per_minute: 1,
        device_code_per_account_per_hour: 1,
    };
    let t = Throttle::new(one, Clock::system());
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    for limit in Limit::ALL {
        let (first, second) = match limit.spec().key {
            KeyKind::Ip => (Key::Ip(a), Key::Ip(b)),
            KeyKind::Name => (Key::Name("a@example.com"), Key::Name("b@example.com")),
        };
        let rounds = limit.quota(&one).get();
        for _ in 0..rounds {
            assert!(t.check(limit, first).await.is_ok(), "{limit:?}");
        }
        assert!(t.check(limit, first).await.is_err(), "{limit:?}");
        assert!(t.check(limit, second).await.is_ok(), "{limit:?}");
    }
    // An IPv6 client is counted by its /64.
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let same_64: IpAddr = "2001:db8::ffff:2".parse().unwrap();
    assert!(t.registration(v6).await.is_ok());
    assert!(t.registration(same_64).await.is_err());
}
