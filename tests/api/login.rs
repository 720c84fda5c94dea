use crate::helpers::*;
use portcullis::config::FileConfig;
use reqwest::StatusCode;

#[tokio::test]
async fn unknown_email_and_wrong_password_get_one_answer() {
    let app = spawn_app().await;
    app.create_user("known@example.com", &[]).await;
    let b = app.browser();
    let wrong = b
        .login("known@example.com", "not the right one at all")
        .await;
    let unknown = b
        .login("nobody@example.com", "not the right one at all")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error(), unknown.error());
    assert_eq!(wrong.error().unwrap(), "Incorrect email or password.");
    let names = app.audit_names().await;
    assert_eq!(names.iter().filter(|n| *n == "login.failed").count(), 2);
}

#[tokio::test]
async fn login_returns_only_to_same_origin_paths() {
    let app = spawn_app().await;
    app.create_user("nav@example.com", &[]).await;
    for (next, expected) in [
        ("/account/sessions", "/account/sessions"),
        ("//evil.example/x", "/account"),
        ("/\\evil.example", "/account"),
        ("https://evil.example/", "/account"),
        ("/%2F%2Fevil.example", "/account"),
        ("javascript:alert(1)", "/account"),
    ] {
        let b = app.browser();
        let page = b.get(&format!("/login?next={}", urlencode(next))).await;
        let token = page.csrf();
        let p = b
            .post(
                "/login",
                &[
                    ("csrf_token", &token),
                    ("email", "nav@example.com"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_redirect(&p, expected);
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in_and_back() {
    let app = spawn_app().await;
    app.create_user("back@example.com", &[]).await;
    let b = app.browser();
    let p = b.get("/account/sessions").await;
    assert_redirect(&p, "/login?next=%2Faccount%2Fsessions");
    let page = b.get("/login?next=%2Faccount%2Fsessions").await;
    let token = page.csrf();
    let next = page
        .doc()
        .select(&scraper::Selector::parse("input[name=next]").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_string();
    let p = b
        .post(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", "back@example.com"),
                ("password", PASSWORD),
                ("next", &next),
            ],
        )
        .await;
    assert_redirect(&p, "/account/sessions");
}

#[tokio::test]
async fn throttled_account_refuses_even_the_right_password() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            login_failures_before_backoff: Some(3),
            ..Default::default()
        },
    })
    .await;
    app.create_user("target@example.com", &[]).await;
    let b = app.browser();
    for _ in 0..3 {
        assert_eq!(
            b.login("target@example.com", "wrong guess number one")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let p = b.login("target@example.com", PASSWORD).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = p.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert!(p.error().unwrap().contains("Too many sign-in attempts"));
    assert!(
        app.audit_names()
            .await
            .contains(&"rate_limit.exceeded".to_string())
    );
    // After the back-off the right password works again.
    app.clock.advance(31);
    b.login_ok("target@example.com").await;
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_ip() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            login_attempts_per_ip_per_minute: Some(4),
            ..Default::default()
        },
    })
    .await;
    let b = app.browser();
    for i in 0..4 {
        let p = b
            .login(&format!("spray{i}@example.com"), "some password guess")
            .await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    }
    let p = b.login("spray9@example.com", "some password guess").await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(p.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn logout_ends_the_session_for_good() {
    let app = spawn_app().await;
    app.create_user("out@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("out@example.com").await;
    let thief = app.browser();
    b.clone_cookies_into(&thief);
    assert_eq!(
        thief.get("/account").await.status,
        StatusCode::OK,
        "copied cookie works before logout"
    );
    let p = b.logout().await;
    assert_redirect(&p, "/login?signed_out=1");
    assert_eq!(b.get("/account").await.status, StatusCode::SEE_OTHER);
    // The old cookie, replayed, is refused.
    assert_eq!(thief.get("/account").await.status, StatusCode::SEE_OTHER);
    assert!(app.audit_names().await.contains(&"logout".to_string()));
}

#[tokio::test]
async fn a_changed_argon2_setting_rehashes_on_sign_in() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            argon2_memory_kib: Some(8192),
            argon2_iterations: Some(1),
            ..Default::default()
        },
    })
    .await;
    // Created with the default parameters (m=19456,t=2), signed in under new ones.
    let hasher =
        portcullis::startup::hasher(&portcullis::config::Config::load_from(None, &[]).unwrap())
            .unwrap();
    let hash = hasher.hash(PASSWORD.into()).await.unwrap();
    let uid = app.create_user("rehash@example.com", &[]).await;
    let (h2, id) = (hash.clone(), uid.clone());
    app.db
        .run(move |c| {
            portcullis::db::repo::users::set_password_hash(c, &id, &h2, 0)
                .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
    app.browser().login_ok("rehash@example.com").await;
    let id = uid.clone();
    let user = app
        .db
        .run(move |c| {
            portcullis::db::repo::users::find(c, &id).map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap()
        .unwrap();
    let stored = user.password_hash.unwrap();
    assert_ne!(stored, hash);
    assert!(stored.contains("m=8192,t=1,p=1"), "{stored}");
}

#[tokio::test]
async fn a_disable_or_password_change_during_the_hash_wins_over_the_sign_in() {
    use diesel::prelude::*;
    use portcullis::auth::sign_in::gate;
    use portcullis::db::DbError;
    use portcullis::db::repo::{directory, sessions as session_rows, users};
    let app = spawn_app().await;
    let uid = app.create_user("racing@example.com", &[]).await;
    // Both forms of the check: the read (a sign-in that opens no session yet, second
    // factor next) and the guarded insert of the session's row; they must agree, and the
    // row goes in exactly when the sign-in goes on.
    let check = |verified: String| {
        let uid = uid.clone();
        let sessions = app.state.sessions.clone();
        app.db
            .run_sync(move |c| {
                let read = users::still_signs_in_with(c, &uid, &verified)?;
                let who = gate::Entrant {
                    user_id: &uid,
                    ip: "192.0.2.1",
                    user_agent: "test",
                };
                let admitted =
                    gate::admit_password_in(c, &sessions, &who, "k".repeat(43), &verified)?;
                let inserted = admitted.is_some();
                let stored = match &admitted {
                    Some((sid, _)) => session_rows::find(c, sid)?,
                    None => None,
                };
                assert_eq!(read, inserted, "the read and the guarded insert disagree");
                assert_eq!(stored.is_some(), inserted, "a row went in iff it said so");
                if let Some(stored) = stored {
                    assert_eq!(stored.user_id, uid);
                    assert_eq!(stored.key_hash, Some("k".repeat(43)));
                    assert!(stored.expires_at > stored.created_at);
                    assert_eq!(stored.user_agent, "test");
                }
                Ok::<_, DbError>(inserted)
            })
            .unwrap()
    };
    let hash = app
        .db
        .run_sync(|c| users::find(c, &uid).map_err(DbError::from))
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(
        check(hash.clone()),
        "unchanged account: the sign-in goes on"
    );
    assert!(
        !check("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into()),
        "the password changed since the hash was read"
    );
    // On PostgreSQL the guarded insert locks the user's row to the end of the sign-in's
    // transaction: a password change or disable started meanwhile waits for it (and then
    // sees, and ends, the new session) instead of slipping past it.
    let (db, u, h) = (app.db.clone(), uid.clone(), hash.clone());
    let sessions = app.state.sessions.clone();
    app.db
        .run_sync(move |c| {
            if !matches!(c, portcullis::db::AnyConnection::Postgresql(_)) {
                return Ok(());
            }
            c.transaction(|c| {
                let who = gate::Entrant {
                    user_id: &u,
                    ip: "192.0.2.1",
                    user_agent: "test",
                };
                assert!(gate::admit_password_in(c, &sessions, &who, "k".repeat(43), &h)?.is_some());
                // The same statement took the audit chain's lock: `login.succeeded`
                // follows it, and no other event may come between.
                let appended = db.run_sync(|other| {
                    other
                        .transaction(|other| {
                            diesel::sql_query("SET LOCAL lock_timeout = '200ms'").execute(other)?;
                            portcullis::auth::audit::record(
                                other,
                                &portcullis::auth::audit::AuditCtx::cli(),
                                0,
                                portcullis::domain::audit::AuditAction::LoginFailed,
                                portcullis::domain::audit::Outcome::Failure,
                                None,
                                serde_json::json!({}),
                            )
                        })
                        .map_err(DbError::from)
                });
                assert!(
                    appended.is_err(),
                    "an event was appended while a sign-in held the chain: {appended:?}"
                );
                let blocked = db.run_sync(|other| {
                    other
                        .transaction(|other| {
                            diesel::sql_query("SET LOCAL lock_timeout = '200ms'").execute(other)?;
                            directory::set_disabled(other, &u, true, 0)
                        })
                        .map_err(DbError::from)
                });
                assert!(
                    blocked.is_err(),
                    "a disable ran while a sign-in held the account's row: {blocked:?}"
                );
                Ok::<_, diesel::result::Error>(())
            })
            .map_err(DbError::from)
        })
        .unwrap();
    let u = uid.clone();
    app.db
        .run_sync(move |c| directory::set_disabled(c, &u, true, 0).map_err(DbError::from))
        .unwrap();
    assert!(!check(hash), "disabled since the hash was read");
}

#[tokio::test]
async fn a_sign_in_carries_every_role_of_the_account_and_none_for_an_account_without() {
    let app = spawn_app().await;
    app.create_user("two@example.com", &["user", "admin"]).await;
    app.create_user("none@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("two@example.com").await;
    let page = b.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.text_of("dl dt:nth-of-type(3)").as_deref(),
        Some("Roles")
    );
    assert_eq!(
        page.text_of("dl dd:nth-of-type(3)").as_deref(),
        Some("admin, user"),
        "both roles, sorted"
    );
    let c = app.browser();
    c.login_ok("none@example.com").await;
    let page = c.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.text_of("#account-email").as_deref(),
        Some("none@example.com")
    );
    assert!(!page.body.contains("<dt>Roles</dt>"), "no roles, no row");
}
