//! The sign-in gate: a sign-in that began before the account changed (disabled, password
//! reset, second factors replaced) or a step-up on a session revoked meanwhile never ends
//! in a session. Anonymous passkey ceremonies keep nothing on the server.

use portcullis::auth::audit::AuditCtx;
use portcullis::auth::sign_in::gate::{self, Entrant, Proof};
use portcullis::db::DbError;
use portcullis::db::repo::{directory, mfa as mfa_rows, users};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::mfa::{enrol, hotp};

/// A user with an authenticator app, and a fresh browser whose password step is done:
/// returns (user id, secret, that browser, the CSRF token of /login/mfa).
async fn pending_second_step(app: &TestApp, email: &str) -> (String, Vec<u8>, Browser, String) {
    let uid = app.create_user(email, &["admin"]).await;
    let b = app.browser();
    b.login_ok(email).await;
    let (secret, _) = enrol(app, &b).await;
    let fresh = app.browser();
    let p = fresh.login(email, PASSWORD).await;
    assert_redirect(&p, "/login/mfa");
    let csrf = fresh.get("/login/mfa").await.csrf();
    (uid, secret, fresh, csrf)
}

/// Finishes the second step with the next code; asserts no session came of it.
async fn second_step_is_refused(app: &TestApp, b: &Browser, csrf: &str, secret: &[u8]) {
    let step = app.clock.now() as u64 / 30;
    let p = b
        .post(
            "/login/mfa",
            &[("csrf_token", csrf), ("code", &hotp(secret, step + 1, 6))],
        )
        .await;
    assert_redirect(&p, "/login");
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "signed in after the account changed"
    );
    assert_eq!(b.get("/admin").await.status, StatusCode::SEE_OTHER);
    let refused =
        app.audit().await.into_iter().any(|e| {
            e.event == "login.failed" && e.details.contains("account changed during sign-in")
        });
    assert!(refused, "the refusal is audited");
}

#[tokio::test]
async fn a_second_step_finished_after_the_account_was_disabled_signs_nobody_in() {
    let app = spawn_app().await;
    app.create_user("other-admin@example.com", &["admin"]).await;
    let (uid, secret, b, csrf) = pending_second_step(&app, "dis@example.com").await;
    // An administrator disables the account between the password and the code.
    let (u, now) = (uid.clone(), app.clock.now());
    app.db
        .run_sync(move |c| directory::set_disabled(c, &u, true, now).map_err(DbError::from))
        .unwrap();
    second_step_is_refused(&app, &b, &csrf, &secret).await;
}

#[tokio::test]
async fn a_second_step_finished_after_a_password_reset_signs_nobody_in() {
    let app = spawn_app().await;
    let (uid, secret, b, csrf) = pending_second_step(&app, "reset@example.com").await;
    // The owner resets the password (the attacker had the old one) meanwhile.
    let hash = app
        .hasher
        .hash("a brand new passphrase 77".into())
        .await
        .unwrap();
    let (u, now) = (uid.clone(), app.clock.now());
    app.db
        .run_sync(move |c| users::set_password_hash(c, &u, &hash, now).map_err(DbError::from))
        .unwrap();
    second_step_is_refused(&app, &b, &csrf, &secret).await;
}

#[tokio::test]
async fn a_second_step_finished_after_the_second_factors_changed_signs_nobody_in() {
    let app = spawn_app().await;
    let (uid, secret, b, csrf) = pending_second_step(&app, "factors@example.com").await;
    // A new set of recovery codes replaces the old one meanwhile.
    let (u, now) = (uid.clone(), app.clock.now());
    app.db
        .run_sync(move |c| {
            mfa_rows::replace_recovery_codes(c, &u, &["fresh-code-hash".into()], now)
                .map_err(DbError::from)
        })
        .unwrap();
    second_step_is_refused(&app, &b, &csrf, &secret).await;
}

#[tokio::test]
async fn an_unchanged_account_finishes_its_second_step() {
    let app = spawn_app().await;
    let (_, secret, b, csrf) = pending_second_step(&app, "same@example.com").await;
    let step = app.clock.now() as u64 / 30;
    let p = b
        .post(
            "/login/mfa",
            &[("csrf_token", &csrf), ("code", &hotp(&secret, step + 1, 6))],
        )
        .await;
    assert_redirect(&p, "/account");
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_gate_refuses_a_passkey_removed_or_an_account_disabled_since_the_ceremony() {
    let app = spawn_app().await;
    let uid = app.create_user("gate@example.com", &[]).await;
    let (st, db) = (&app.state, &app.db);
    let admit = |proof_key: Option<&'static str>| {
        let uid = uid.clone();
        async move {
            let who = Entrant {
                user_id: &uid,
                ip: "192.0.2.1",
                user_agent: "test",
            };
            let proof = match proof_key {
                Some(id) => Proof::Passkey { credential_id: id },
                None => Proof::Setup,
            };
            gate::admit(db, &st.sessions, &st.clock, who, proof, &AuditCtx::cli())
                .await
                .unwrap()
        }
    };
    assert!(admit(None).await.is_some(), "an enabled account comes in");
    assert!(
        admit(Some("no-such-credential")).await.is_none(),
        "a passkey that is not (or no longer) the account's"
    );
    let (u, now) = (uid.clone(), app.clock.now());
    app.db
        .run_sync(move |c| directory::set_disabled(c, &u, true, now).map_err(DbError::from))
        .unwrap();
    assert!(admit(None).await.is_none(), "a disabled account stays out");
    // Nothing was written for the refusals: one session, the first.
    assert_eq!(st.sessions.list(&uid).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_step_up_on_a_revoked_session_or_after_a_password_change_raises_nothing() {
    let app = spawn_app().await;
    let uid = app.create_user("step@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("step@example.com").await;
    let (st, db) = (&app.state, &app.db);
    let sid = st.sessions.list(&uid).await.unwrap()[0].sid.clone();
    let (u, s) = (uid.clone(), sid.clone());
    let hash = app
        .db
        .run_sync(move |c| users::find(c, &u).map_err(DbError::from))
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    let raise = |h: Option<String>| {
        let (u, s) = (uid.clone(), s.clone());
        async move {
            gate::raise(db, &st.clock, &u, &s, h.as_deref(), &AuditCtx::cli())
                .await
                .unwrap()
        }
    };
    assert!(raise(Some(hash.clone())).await, "nothing changed");
    assert!(
        !raise(Some(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into()
        ))
        .await,
        "the password changed while it was checked"
    );
    st.sessions.revoke(&uid, &sid).await.unwrap();
    assert!(
        !raise(Some(hash)).await,
        "the session was revoked meanwhile"
    );
    assert!(!raise(None).await);
}

#[tokio::test]
async fn anonymous_passkey_ceremonies_store_nothing_on_the_server_and_are_limited_per_address() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            public_url: Some("http://localhost:8080".into()),
            login_attempts_per_ip_per_minute: Some(10),
            ..Default::default()
        },
    })
    .await;
    let stored_before = stored_states(&app).await;
    // A client that keeps only its CSRF cookie and drops every other one.
    let b = app.browser();
    let csrf = b.get("/login").await.csrf();
    let seed = b
        .cookie("portcullis_csrf")
        .expect("the login page sets the CSRF seed");
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..60 {
        let r = bare
            .post(format!("{}/login/passkey/start", app.base))
            .header("x-csrf-token", &csrf)
            .header("cookie", format!("portcullis_csrf={seed}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => {
                ok += 1;
                let cookies: Vec<_> = r
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect();
                assert!(
                    cookies.iter().all(|c| !c.starts_with("portcullis=")),
                    "an anonymous ceremony started a server-side session: {cookies:?}"
                );
            }
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(ok, 30, "three ceremonies per sign-in attempt a minute");
    assert_eq!(limited, 30);
    assert_eq!(
        stored_states(&app).await,
        stored_before,
        "anonymous ceremonies grew the session store"
    );
}

/// How many session states the store holds (the database table, or this app's keys in
/// Redis).
async fn stored_states(app: &TestApp) -> usize {
    match &app.config.redis_url {
        Some(url) => {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:session:*", app.config.redis_prefix))
                .query_async(&mut c)
                .await
                .unwrap();
            keys.len()
        }
        None => app
            .db
            .run_sync(|c| {
                use diesel::prelude::*;
                portcullis::db::schema::session_state::table
                    .count()
                    .get_result::<i64>(c)
                    .map_err(DbError::from)
            })
            .unwrap() as usize,
    }
}
