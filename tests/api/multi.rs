//! Two instances sharing one database and one Redis behave as one: sessions, revocation
//! and rate limits. Sharing across instances is what Redis is for, so these tests run in
//! the suite's Redis pass (`TEST_REDIS_URL` set); `cargo test` alone needs no Redis.

use reqwest::StatusCode;

use crate::helpers::*;

/// Instance A, then B on A's database, Redis and key prefix; `None` outside the Redis
/// pass.
async fn pair(file: portcullis::config::FileConfig) -> Option<(TestApp, TestApp)> {
    let redis = redis_url()?;
    let prefix = format!("m{}", uuid::Uuid::new_v4().simple());
    let mut fa = file.clone();
    fa.redis_url = Some(redis.clone());
    fa.redis_prefix = Some(prefix.clone());
    let a = spawn_app_with(Options { file: fa }).await;
    let mut fb = file;
    fb.redis_url = Some(redis);
    fb.redis_prefix = Some(prefix);
    fb.database_url = Some(a.config.database_url.clone());
    // Instances share the master key (cookies are signed with a key derived from it).
    fb.secret_key_file = Some(a.config.secret_key_file.display().to_string());
    let b = spawn_app_with(Options { file: fb }).await;
    Some((a, b))
}

#[tokio::test]
async fn a_session_from_one_instance_works_and_dies_on_the_other() {
    let Some((a, b)) = pair(Default::default()).await else {
        return;
    };
    a.create_user("nia@example.com", &[]).await;
    let on_a = a.browser();
    on_a.login_ok("nia@example.com").await;
    // The same cookies, sent to B.
    let on_b = b.browser();
    on_a.clone_cookies_into(&on_b);
    let page = on_b.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("nia@example.com"));
    // Sign out on B: A refuses the session at its next request.
    on_b.logout().await;
    assert_redirect(&on_a.get("/account").await, "/login?next=%2Faccount");
}

#[tokio::test]
async fn failed_sign_ins_spread_over_instances_share_one_limit() {
    let Some((a, b)) = pair(portcullis::config::FileConfig {
        login_attempts_per_ip_per_minute: Some(6),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let (ba, bb) = (a.browser(), b.browser());
    let mut statuses = Vec::new();
    for i in 0..8 {
        let browser = if i % 2 == 0 { &ba } else { &bb };
        let p = browser
            .login(&format!("x{i}@example.com"), "wrong password, clearly")
            .await;
        statuses.push(p.status);
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // 6 allowed in all, not 6 per instance.
    assert_eq!(limited, 2, "{statuses:?}");
}

#[tokio::test]
async fn two_instances_racing_on_their_setup_links_make_one_administrator() {
    let Some((a, b)) = pair(Default::default()).await else {
        return;
    };
    let links: Vec<(TestApp, String)> = [a, b]
        .into_iter()
        .map(|app| {
            let link = app.setup_link.clone().expect("no admin yet: a setup link");
            let path = link
                .strip_prefix(app.config.base_url().as_str())
                .unwrap()
                .to_string();
            (app, path)
        })
        .collect();
    let mut tasks = Vec::new();
    for (i, (app, path)) in links.iter().enumerate() {
        let browser = app.browser();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let page = browser.get(&path).await;
            let token = path.split("token=").nth(1).unwrap().to_string();
            browser
                .post(
                    "/setup",
                    &[
                        ("csrf_token", page.csrf().as_str()),
                        ("token", token.as_str()),
                        ("email", format!("root{i}@example.com").as_str()),
                        ("password", PASSWORD),
                    ],
                )
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::SEE_OTHER)
            .count(),
        1,
        "one winner: {statuses:?}"
    );
    let admins = links[0]
        .0
        .db
        .run(|c| {
            portcullis::db::repo::roles::holders_count(c, "admin")
                .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
    assert_eq!(admins, 1);
}

#[tokio::test]
async fn two_instances_deliver_each_queued_mail_exactly_once() {
    // Mail queues up while SMTP is down, so when it returns both instances' workers
    // find the same backlog due at once.
    let mut sink = crate::smtp_sink::SmtpSink::start();
    let smtp = sink.url();
    sink.stop();
    let Some((a, b)) = pair(portcullis::config::FileConfig {
        password_resets_per_ip_per_hour: Some(1000),
        ..with_smtp(&smtp)
    })
    .await
    else {
        return;
    };
    let users: Vec<String> = (0..12).map(|i| format!("queued{i}@example.com")).collect();
    for u in &users {
        a.create_user(u, &[]).await;
    }
    for (i, u) in users.iter().enumerate() {
        let on = if i % 2 == 0 { &a } else { &b };
        let p = on
            .browser()
            .submit(
                "/password/forgot",
                "/password/forgot",
                &[("email", u.as_str())],
            )
            .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    sink.restart();
    sink.wait_for(users.len(), std::time::Duration::from_secs(30))
        .await;
    // Time for a second delivery, if a lease let one happen.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mails = sink.messages();
    for u in &users {
        let n = mails
            .iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(u)))
            .count();
        assert_eq!(n, 1, "{u} got {n} messages");
    }
    assert_eq!(mails.len(), users.len());
}

#[tokio::test]
async fn a_client_secret_rotated_on_one_instance_is_refused_at_once_on_the_other() {
    let Some((a, b)) = pair(Default::default()).await else {
        return;
    };
    let (id, old) = crate::oidc::service_client(&a).await;
    let grant = [("grant_type", "client_credentials")];
    // Twice on B: the second request is answered from B's cache of the client.
    for _ in 0..2 {
        let (status, t) = crate::oidc::token_request(&b, Some((&id, &old)), &grant).await;
        assert_eq!(status, StatusCode::OK, "{t}");
    }
    let new = a
        .state
        .oauth
        .rotate_secret(&id, &portcullis::auth::audit::AuditCtx::cli())
        .await
        .expect("a confidential client has a secret to rotate");
    let (status, t) = crate::oidc::token_request(&b, Some((&id, &old)), &grant).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old secret, at once: {t}"
    );
    for _ in 0..2 {
        let (status, t) = crate::oidc::token_request(&b, Some((&id, &new)), &grant).await;
        assert_eq!(status, StatusCode::OK, "{t}");
    }
}

/// Active holders of `admin` (enabled accounts), read from the shared database.
async fn active_admins(app: &TestApp) -> i64 {
    app.db
        .run(|c| {
            use diesel::prelude::*;
            use portcullis::db::schema::{user_roles, users};
            user_roles::table
                .inner_join(users::table)
                .filter(user_roles::role.eq("admin"))
                .filter(users::disabled.eq(false))
                .count()
                .get_result::<i64>(c)
                .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn two_admins_removing_each_other_at_once_on_two_instances_leave_one() {
    let Some((a, b)) = pair(portcullis::config::FileConfig {
        admin_requires_second_factor: Some(false),
        // Forty sign-ins from one address.
        login_attempts_per_ip_per_minute: Some(1000),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    const ROUNDS: usize = 20;
    // Each admin fires this many writes at the other at once (2 × 8 in flight a round).
    const EACH: usize = 8;
    for round in 0..ROUNDS {
        let x_email = format!("x{round}@example.com");
        let y_email = format!("y{round}@example.com");
        let x = a.create_user(&x_email, &["admin"]).await;
        let y = a.create_user(&y_email, &["admin"]).await;
        // Only this round's pair holds admin, so each is the other's "another admin".
        let (keep_x, keep_y) = (x.clone(), y.clone());
        a.db.run(move |c| {
            use diesel::prelude::*;
            use portcullis::db::schema::user_roles;
            diesel::delete(
                user_roles::table
                    .filter(user_roles::role.eq("admin"))
                    .filter(user_roles::user_id.ne_all(vec![keep_x, keep_y])),
            )
            .execute(c)
            .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
        assert_eq!(active_admins(&a).await, 2);
        let on_a = a.browser();
        on_a.login_ok(&x_email).await;
        let on_b = b.browser();
        on_b.login_ok(&y_email).await;
        let token_a = on_a.get("/account").await.csrf();
        let token_b = on_b.get("/account").await.csrf();
        // Odd rounds disable, even rounds demote; some of each in every round.
        let mut tasks = Vec::new();
        for i in 0..EACH {
            let action = if (i + round) % 2 == 0 {
                "remove-role"
            } else {
                "disable"
            };
            for (browser, token, target) in [(&on_a, &token_a, &y), (&on_b, &token_b, &x)] {
                let client = browser.client.clone();
                let url = format!("{}/admin/users/{target}/{action}", browser.base);
                let token = token.clone();
                tasks.push(tokio::spawn(async move {
                    client
                        .post(url)
                        .form(&[
                            ("csrf_token", token.as_str()),
                            ("role", "admin"),
                            ("confirm", "yes"),
                        ])
                        .send()
                        .await
                        .expect("POST")
                        .status()
                }));
            }
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert!(
            statuses.iter().all(|s| !s.is_server_error()),
            "round {round}: {statuses:?}"
        );
        assert!(
            active_admins(&a).await >= 1,
            "round {round}: no active administrator left ({statuses:?})"
        );
    }
}

/// Forward auth keeps users in memory per cache generation, which on the signed-in
/// path it reads in the same Redis round trip as the session: a group change or a
/// disable made on one instance decides the other's very next answer.
#[tokio::test]
async fn forward_auth_on_one_instance_follows_the_others_changes_at_once() {
    use portcullis::auth::access::groups::Editor;
    use portcullis::auth::audit::AuditCtx;
    let Some((a, b)) = pair(portcullis::config::FileConfig {
        forward_auth_allowed_domains: Some(vec!["example.com".into()]),
        trusted_proxies: Some(vec!["127.0.0.1".into()]),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let gus = a.create_user("gus@example.com", &[]).await;
    let cli = AuditCtx::cli();
    a.state
        .groups
        .create(&Editor::Operator, "ops", "", None, &cli)
        .await
        .unwrap();
    let on_b = b.browser();
    on_b.login_ok("gus@example.com").await;
    const SITE: &str = "https://app.example.com/";
    // B answers, and keeps Gus in memory.
    for _ in 0..2 {
        let p = crate::access::forward(&on_b, SITE).await;
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(p.headers["remote-groups"], "");
    }
    a.state
        .groups
        .set_member(&Editor::Operator, "ops", "gus@example.com", true, &cli)
        .await
        .unwrap();
    let p = crate::access::forward(&on_b, SITE).await;
    assert_eq!(p.headers["remote-groups"], "ops", "B's next answer");
    // Disabled on A: B's next answer sends the browser to sign in.
    a.state
        .admin
        .set_disabled(
            &portcullis::auth::accounts::admin::Actor::Operator,
            &gus,
            true,
            &cli,
        )
        .await
        .unwrap();
    let p = crate::access::forward(&on_b, SITE).await;
    assert_ne!(
        p.status,
        StatusCode::OK,
        "a disabled user is refused at once"
    );
    assert!(p.headers.get("remote-user").is_none());
}
