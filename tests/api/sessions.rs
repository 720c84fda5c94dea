use crate::helpers::*;
use portcullis::config::FileConfig;
use reqwest::StatusCode;

#[tokio::test]
async fn sessions_page_lists_devices_and_signs_out_the_others() {
    let app = spawn_app().await;
    app.create_user("multi@example.com", &[]).await;
    let a = app.browser();
    let b = app.browser();
    a.login_ok("multi@example.com").await;
    b.login_ok("multi@example.com").await;
    let p = a.get("/account/sessions").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.count("table.sessions tbody tr"), 2);
    assert_eq!(p.count("tr.current"), 1);
    assert!(p.body.contains("127.0.0.1"));

    let p = a
        .submit(
            "/account/sessions",
            "/account/sessions/revoke-others",
            &[("confirm", "yes")],
        )
        .await;
    assert_redirect(&p, "/account/sessions?done=others");
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "B is refused at once"
    );
    let p = a.get("/account/sessions").await;
    assert_eq!(p.count("table.sessions tbody tr"), 1);
    assert!(
        app.audit_names()
            .await
            .contains(&"session.revoked".to_string())
    );
}

#[tokio::test]
async fn revoking_one_session_and_not_someone_elses() {
    let app = spawn_app().await;
    app.create_user("one@example.com", &[]).await;
    app.create_user("two@example.com", &[]).await;
    let a = app.browser();
    let b = app.browser();
    let other = app.browser();
    a.login_ok("one@example.com").await;
    b.login_ok("one@example.com").await;
    other.login_ok("two@example.com").await;

    let page = other.get("/account/sessions").await;
    let other_sid = page
        .doc()
        .select(&scraper::Selector::parse("table.sessions tr.current").unwrap())
        .next()
        .is_some();
    assert!(other_sid);
    // A's listing shows B's sid in the revoke form.
    let p = a.get("/account/sessions").await;
    let sel = scraper::Selector::parse("input[name=sid]").unwrap();
    let b_sid = p
        .doc()
        .select(&sel)
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_string();
    let token = p.csrf();

    // Someone else cannot revoke it: not found, and B stays signed in.
    let ot = other.get("/account/sessions").await.csrf();
    let r = other
        .post(
            "/account/sessions/revoke",
            &[("csrf_token", &ot), ("sid", &b_sid), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get("/account").await.status, StatusCode::OK);

    let r = a
        .post(
            "/account/sessions/revoke",
            &[("csrf_token", &token), ("sid", &b_sid), ("confirm", "yes")],
        )
        .await;
    assert_redirect(&r, "/account/sessions?done=revoked");
    assert_eq!(b.get("/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(a.get("/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn session_id_is_renewed_at_sign_in() {
    let app = spawn_app().await;
    app.create_user("fix@example.com", &[]).await;
    let attacker = app.browser();
    attacker.login_ok("fix@example.com").await;
    let planted = attacker.cookie("portcullis").expect("session cookie");
    attacker.logout().await;

    // The victim's browser carries a session id chosen by the attacker.
    let victim = app.browser();
    victim.set_cookie("portcullis", &planted);
    victim.login_ok("fix@example.com").await;
    let after = victim.cookie("portcullis").expect("session cookie");
    assert_ne!(after, planted, "a new session id is issued at sign-in");
    let spy = app.browser();
    spy.set_cookie("portcullis", &planted);
    assert_eq!(
        spy.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "the planted id grants nothing"
    );
}

#[tokio::test]
async fn sessions_end_after_the_absolute_lifetime() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            session_lifetime_secs: Some(600),
            ..Default::default()
        },
    })
    .await;
    app.create_user("life@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("life@example.com").await;
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    app.clock.advance(601);
    assert_eq!(b.get("/account").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            session_idle_timeout_secs: Some(2),
            ..Default::default()
        },
    })
    .await;
    app.create_user("idle@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("idle@example.com").await;
    // Activity keeps it alive...
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        assert_eq!(b.get("/account").await.status, StatusCode::OK);
    }
    // ...and silence ends it (Redis TTLs run on real time, so this waits for real).
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    assert_eq!(b.get("/account").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_password_sign_in_registers_its_session_tied_to_the_stored_state_and_never_stores_the_key()
 {
    let app = spawn_app().await;
    let uid = app.create_user("keyed@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("keyed@example.com").await;
    let sessions = &app.state.sessions;
    let rows = sessions.list(&uid).await.unwrap();
    assert_eq!(rows.len(), 1);
    let kh = rows[0]
        .key_hash
        .clone()
        .expect("the row is tied to a store key");
    let state = sessions
        .state
        .load(&kh, sessions.idle_secs)
        .await
        .unwrap()
        .expect("the state is stored under that key");
    assert!(state.contains_key("auth"), "signed in: {state:?}");
    assert!(
        !state.contains_key(portcullis::web::session::NEW_KEY)
            && !state.keys().any(|k| k.contains("key")),
        "no session key in the stored state: {state:?}"
    );
    // And the tie is what revocation uses: revoking the row ends that browser's session.
    assert!(sessions.revoke(&uid, &rows[0].sid).await.unwrap());
    assert_eq!(b.get("/account").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_sign_in_revoked_before_its_state_is_stored_does_not_come_back_signed_in() {
    use actix_session::storage::SessionStore;
    use portcullis::db::DbError;
    use portcullis::domain::tokens;
    use portcullis::web::session::{NEW_KEY, SignedIn};
    let app = spawn_app().await;
    let uid = app.create_user("late@example.com", &[]).await;
    let sessions = app.state.sessions.clone();
    let store = portcullis::web::session_store::Store::new(sessions.clone());
    let ttl = actix_web::cookie::time::Duration::seconds(60);
    // What a password sign-in does: its registry row goes in tied to the key it chose,
    // then the response stores the signed-in state under that key.
    let hash = {
        let uid = uid.clone();
        app.db
            .run_sync(move |c| portcullis::db::repo::users::find(c, &uid).map_err(DbError::from))
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap()
    };
    let registered = |key: &str| {
        let (u, kh, h, sessions) = (
            uid.clone(),
            tokens::hash(key),
            hash.clone(),
            sessions.clone(),
        );
        let sid = app
            .db
            .run_sync(move |c| {
                let who = portcullis::auth::sign_in::gate::Entrant {
                    user_id: &u,
                    ip: "192.0.2.1",
                    user_agent: "test",
                };
                portcullis::auth::sign_in::gate::admit_password_in(c, &sessions, &who, kh, &h)
                    .map_err(DbError::from)
            })
            .unwrap()
            .expect("admitted")
            .0;
        let who = SignedIn {
            uid: uid.clone(),
            sid,
            auth_at: 0,
            amr: vec!["pwd".into()],
            email: "late@example.com".into(),
            name: None,
            roles: Vec::new(),
        };
        std::collections::HashMap::from([
            ("auth".to_string(), serde_json::to_string(&who).unwrap()),
            (NEW_KEY.to_string(), serde_json::to_string(key).unwrap()),
        ])
    };
    let stored = |key: String| {
        let sessions = sessions.clone();
        async move { sessions.state.load(&tokens::hash(&key), 60).await.unwrap() }
    };
    // Undisturbed, the state is stored signed in.
    let key = tokens::generate();
    let state = registered(&key);
    store.save(state, &ttl).await.unwrap();
    let state = stored(key).await.expect("stored");
    assert!(state.contains_key("auth"), "{state:?}");
    // "Sign out everywhere" between the row and the state: the state, arriving after the
    // revocation, must not bring the session back.
    assert_eq!(sessions.revoke_all(&uid, None).await.unwrap(), 1);
    let key = tokens::generate();
    let state = registered(&key);
    assert_eq!(sessions.revoke_all(&uid, None).await.unwrap(), 1);
    store.save(state, &ttl).await.unwrap();
    let late = stored(key).await;
    assert!(
        late.as_ref().is_none_or(|s| !s.contains_key("auth")),
        "a revoked sign-in was stored signed in: {late:?}"
    );
}

#[tokio::test]
async fn revoking_through_the_service_audits_it_and_only_the_owners_sessions() {
    use portcullis::auth::audit::AuditCtx;
    let app = spawn_app().await;
    let uid = app.create_user("svc@example.com", &[]).await;
    let other = app.create_user("svc-other@example.com", &[]).await;
    let (a, b) = (app.browser(), app.browser());
    a.login_ok("svc@example.com").await;
    b.login_ok("svc@example.com").await;
    let sessions = &app.state.sessions;
    let rows = sessions.overview(&uid).await.unwrap().sessions;
    assert_eq!(rows.len(), 2);
    let ctx = AuditCtx::cli();
    assert!(
        !sessions
            .revoke_own(&other, &rows[0].sid, &ctx)
            .await
            .unwrap(),
        "another user's session is not found"
    );
    let revoked = |names: Vec<String>| names.iter().filter(|n| *n == "session.revoked").count();
    assert_eq!(revoked(app.audit_names().await), 0);
    assert!(sessions.revoke_own(&uid, &rows[0].sid, &ctx).await.unwrap());
    assert_eq!(
        revoked(app.audit_names().await),
        1,
        "audited with the revocation"
    );
    assert_eq!(
        sessions
            .revoke_others(&uid, &rows[0].sid, &ctx)
            .await
            .unwrap(),
        1
    );
    assert_eq!(revoked(app.audit_names().await), 2);
    assert!(sessions.overview(&uid).await.unwrap().sessions.is_empty());
}

/// Another process on the same database (the command line disabling a user, which
/// deletes the user's sessions) cannot reach this server's memory: on SQLite a
/// cached session is checked against the database again within two seconds, so the
/// deleted session stops working then. (With Redis the state lives in Redis, and the
/// command line deletes it there: nothing is cached.)
#[tokio::test]
async fn a_session_deleted_by_another_process_stops_working() {
    let app = spawn_app().await;
    if app.config.redis_url.is_some() {
        return;
    }
    let uid = app.create_user("far@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("far@example.com").await;
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    crate::admin::sql(
        &app,
        format!("DELETE FROM sessions WHERE user_id = '{uid}'"),
    )
    .await;
    crate::admin::sql(&app, "DELETE FROM session_state".into()).await;
    app.clock.advance(3);
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "the deleted session is refused"
    );
}
