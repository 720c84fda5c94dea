//! The per-account lock-out under concurrency, as an attacker runs it: many guesses for
//! one account in flight at once. A guess is counted before it is checked, so however
//! many arrive together, at most the free failures are ever checked before the
//! back-off, and the right password sent among them while the account is locked does
//! not sign in. The same for the step-up (`/login/reauth`) and second-factor codes.
//! Also: the "someone tried to register with your address" notice is capped per address,
//! whichever client addresses the attempts come from.

use std::time::Duration;

use portcullis::config::FileConfig;
use reqwest::StatusCode;

use crate::helpers::*;
use crate::mfa::{enrol, hotp};

const FREE: u32 = 3;
const GUESSES: usize = 30;

/// `FREE` failures before the back-off; a per-IP budget that never interferes; one
/// slower hash at a time, so the guesses queue at the hasher: the window a lock-out
/// that counts only after checking leaves open.
fn config() -> FileConfig {
    FileConfig {
        login_failures_before_backoff: Some(FREE),
        login_attempts_per_ip_per_minute: Some(100_000),
        hash_concurrency: Some(1),
        argon2_iterations: Some(4),
        ..Default::default()
    }
}

/// POSTs `fields` to `path` with `client` (cookies shared), returning the status.
async fn post(
    client: reqwest::Client,
    url: String,
    fields: Vec<(&'static str, String)>,
) -> (StatusCode, Option<String>) {
    let r = client.post(url).form(&fields).send().await.expect("POST");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = r.status();
    let _ = r.bytes().await;
    (status, location)
}

struct Race {
    wrong: Vec<(StatusCode, Option<String>)>,
    right: (StatusCode, Option<String>),
}

/// Sends `GUESSES` wrong guesses at once and, as soon as one of them is answered with
/// `first` (any answer when `None`: the account is then busy or locked), the right one;
/// waits for all.
async fn race(
    b: &Browser,
    path: &str,
    wrong: impl Fn(usize) -> Vec<(&'static str, String)>,
    right: Vec<(&'static str, String)>,
    first: Option<StatusCode>,
) -> Race {
    let url = format!("{}{path}", b.base);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = (0..GUESSES)
        .map(|i| {
            let (client, url, fields, tx) = (b.client.clone(), url.clone(), wrong(i), tx.clone());
            tokio::spawn(async move {
                let answer = post(client, url, fields).await;
                let _ = tx.send(answer.0);
                answer
            })
        })
        .collect();
    drop(tx);
    while let Some(status) = rx.recv().await {
        if first.is_none_or(|f| f == status) {
            break;
        }
    }
    let right = post(b.client.clone(), url, right).await;
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("guess task"));
    }
    Race {
        wrong: answers,
        right,
    }
}

fn count(answers: &[(StatusCode, Option<String>)], status: StatusCode) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

async fn events(app: &TestApp, name: &str) -> usize {
    app.audit_names()
        .await
        .iter()
        .filter(|e| e.as_str() == name)
        .count()
}

#[tokio::test]
async fn concurrent_password_guesses_check_at_most_the_free_failures() {
    let app = spawn_app_with(Options { file: config() }).await;
    app.create_user("race@example.com", &[]).await;
    let b = app.browser();
    let token = b.get("/login").await.csrf();
    let form = |password: String| {
        vec![
            ("csrf_token", token.clone()),
            ("email", "race@example.com".to_string()),
            ("password", password),
        ]
    };
    let r = race(
        &b,
        "/login",
        |i| form(format!("wrong guess number {i}")),
        form(PASSWORD.to_string()),
        None,
    )
    .await;
    let (checked, refused) = (
        count(&r.wrong, StatusCode::UNAUTHORIZED),
        count(&r.wrong, StatusCode::TOO_MANY_REQUESTS),
    );
    assert_eq!(checked + refused, GUESSES, "{:?}", r.wrong);
    assert!(
        checked <= FREE as usize,
        "{checked} wrong passwords were checked, at most {FREE} may be"
    );
    assert!(events(&app, "login.failed").await <= FREE as usize);
    assert_eq!(
        r.right.0,
        StatusCode::TOO_MANY_REQUESTS,
        "the right password, sent while the guesses lock the account, must not sign in: {:?}",
        r.right
    );
    assert_eq!(events(&app, "login.succeeded").await, 0);
    assert!(events(&app, "rate_limit.exceeded").await >= 1);
    // The refusal says when to come back.
    let p = b.login("race@example.com", PASSWORD).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(p.headers.get("retry-after").is_some());
    // After the back-off the right password works again.
    app.clock.advance(31);
    b.login_ok("race@example.com").await;
}

#[tokio::test]
async fn concurrent_step_up_guesses_check_at_most_the_free_failures() {
    let app = spawn_app_with(Options { file: config() }).await;
    app.create_user("stolen@example.com", &[]).await;
    // A stolen signed-in session, without the password.
    let b = app.browser();
    b.login_ok("stolen@example.com").await;
    let token = b.get("/login/reauth?next=%2Faccount").await.csrf();
    let form = |password: String| {
        vec![
            ("csrf_token", token.clone()),
            ("password", password),
            ("next", "/account".to_string()),
        ]
    };
    let r = race(
        &b,
        "/login/reauth",
        |i| form(format!("wrong guess number {i}")),
        form(PASSWORD.to_string()),
        None,
    )
    .await;
    let checked = count(&r.wrong, StatusCode::UNAUTHORIZED);
    assert_eq!(
        checked + count(&r.wrong, StatusCode::TOO_MANY_REQUESTS),
        GUESSES,
        "{:?}",
        r.wrong
    );
    assert!(
        checked <= FREE as usize,
        "{checked} step-up passwords were checked, at most {FREE} may be"
    );
    assert!(events(&app, "reauth.failed").await <= FREE as usize);
    assert_eq!(r.right.0, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.right);
    assert_eq!(events(&app, "reauth.succeeded").await, 0);
}

#[tokio::test]
async fn concurrent_second_factor_guesses_check_at_most_the_free_failures() {
    let app = spawn_app_with(Options { file: config() }).await;
    app.create_user("codes@example.com", &[]).await;
    let owner = app.browser();
    owner.login_ok("codes@example.com").await;
    let (secret, _) = enrol(&app, &owner).await;
    // The attacker knows the password, not the code.
    let g = app.browser();
    assert_redirect(&g.login("codes@example.com", PASSWORD).await, "/login/mfa");
    let token = g.get("/login/mfa").await.csrf();
    let step = app.clock.now() as u64 / 30;
    let valid: Vec<String> = (step - 1..=step + 1).map(|s| hotp(&secret, s, 6)).collect();
    let wrong_codes: Vec<String> = (0..)
        .map(|i: u32| format!("{:06}", (i * 7919 + 1) % 1_000_000))
        .filter(|c| !valid.contains(c))
        .take(GUESSES)
        .collect();
    let form = |code: String| vec![("csrf_token", token.clone()), ("code", code)];
    let r = race(
        &g,
        "/login/mfa",
        |i| form(wrong_codes[i].clone()),
        // A code is checked in milliseconds: wait until the guesses lock the account.
        form(hotp(&secret, step, 6)),
        Some(StatusCode::TOO_MANY_REQUESTS),
    )
    .await;
    let failed = events(&app, "mfa.failed").await;
    assert!(
        failed <= FREE as usize,
        "{failed} codes were checked, at most {FREE} may be: {:?}",
        r.wrong
    );
    assert_ne!(
        r.right.1.as_deref(),
        Some("/account"),
        "the right code, sent while the guesses lock the account, must not sign in"
    );
    assert_eq!(r.right.0, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.right);
    assert_eq!(events(&app, "mfa.succeeded").await, 0);
}

#[tokio::test]
async fn registration_notices_to_one_address_are_capped_whatever_the_client_address() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            trusted_proxies: Some(vec!["127.0.0.1".into()]),
            registration_notices_per_address_per_hour: Some(2),
            // One registration per client address: each attempt below needs its own,
            // so the per-IP cap is not what stops the mail.
            registrations_per_ip_per_hour: Some(1),
            ..Default::default()
        },
    })
    .await;
    app.create_user("victim@example.com", &[]).await;
    let b = app.browser();
    let token = b.get("/register").await.csrf();
    for i in 0..10 {
        let r = b
            .client
            .post(format!("{}/register", b.base))
            .header("x-forwarded-for", format!("203.0.113.{}", i + 1))
            .form(&[
                ("csrf_token", token.as_str()),
                ("email", "Victim@Example.com"),
                ("password", "another strong passphrase 7"),
                ("display_name", ""),
            ])
            .send()
            .await
            .expect("POST /register");
        // Every attempt gets the answer a new address gets: nothing to enumerate.
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers().get("location").and_then(|v| v.to_str().ok()),
            Some("/login?registered=1")
        );
    }
    // Give the mail worker time to write whatever it was given.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let notices = app
        .wait_for_outbox(2)
        .await
        .into_iter()
        .filter(|m| m.contains("To: victim@example.com"))
        .count();
    assert_eq!(notices, 2, "notices mailed to one address, capped at 2");
    // The operator sees every attempt, mailed or not.
    let attempts = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.event == "user.registered" && e.details.contains("email already registered"))
        .count();
    assert_eq!(attempts, 10);
}
