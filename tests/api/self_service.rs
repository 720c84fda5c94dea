//! `/account/data`: a user downloads what the service holds about them (their things
//! only, never a secret), after a recent sign-in and from a form of this site.

use portcullis::auth::access::tokens::NewToken;
use portcullis::auth::audit::AuditCtx;
use portcullis::db::repo::users;
use reqwest::StatusCode;

use crate::helpers::*;
use crate::mfa::enrol;

async fn self_service_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// A personal access token for `uid` named `name`, made through the service.
async fn token(app: &TestApp, uid: &str, name: &str) -> String {
    app.state
        .personal_tokens
        .create(
            uid,
            NewToken {
                name: name.into(),
                scopes: vec!["forward".into()],
                expires_in_days: None,
            },
            &AuditCtx::cli(),
        )
        .await
        .expect("token made")
        .1
}

async fn stored_user(app: &TestApp, uid: &str) -> Option<users::User> {
    let uid = uid.to_string();
    app.db
        .run(move |c| users::find(c, &uid).map_err(portcullis::db::DbError::from))
        .await
        .expect("user read")
}

async fn download(b: &Browser) -> Page {
    b.submit("/account/data", "/account/data", &[]).await
}

#[tokio::test]
async fn the_download_holds_the_users_things_and_no_secret_nor_another_user() {
    let app = self_service_app().await;
    let ann = app.create_user("ann@example.com", &[]).await;
    let bob = app.create_user("bob@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("ann@example.com").await;
    let (_, codes) = enrol(&app, &b).await;
    let ann_token = token(&app, &ann, "Backup script").await;
    let other = app.browser();
    other.login_ok("bob@example.com").await;
    let bob_token = token(&app, &bob, "Bobs deploy job").await;

    let page = b.get("/account").await;
    assert!(page.body.contains("href=\"/account/data\""));
    let page = b.get("/account/data").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.text_of("form[action=\"/account/data\"] button")
            .unwrap(),
        "Download my data"
    );

    let p = download(&b).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let header = |name: &str| {
        p.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("content-type").starts_with("application/json"));
    assert!(header("content-disposition").starts_with("attachment"));
    assert_eq!(header("cache-control"), "no-store");
    let doc: serde_json::Value = serde_json::from_str(&p.body).expect("JSON");

    assert_eq!(doc["profile"]["id"], ann.as_str());
    assert_eq!(doc["profile"]["email"], "ann@example.com");
    assert_eq!(doc["profile"]["display_name"], "Test User");
    assert_eq!(doc["profile"]["email_verified"], true);
    assert!(doc["profile"]["created_at"].is_string());
    assert!(doc["roles"].is_array());
    assert!(doc["groups"]["effective"].is_array());
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "ann's one device, not bob's");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert!(sessions[0]["last_seen_at"].is_string());
    let factors = &doc["second_factors"];
    assert_eq!(factors["totp"]["enabled"], true);
    assert!(factors["totp"]["enabled_at"].is_string());
    assert_eq!(factors["recovery_codes_remaining"], 10);
    let tokens = doc["personal_access_tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["name"], "Backup script");
    assert_eq!(tokens[0]["scopes"], serde_json::json!(["forward"]));
    let events: Vec<&str> = doc["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for e in [
        "user.created",
        "login.succeeded",
        "totp.enabled",
        "account.data_exported",
    ] {
        assert!(events.contains(&e), "{e} in {events:?}");
    }
    for e in doc["audit_events"].as_array().unwrap() {
        let mine = [&e["actor_id"], &e["target_id"]]
            .iter()
            .any(|v| v.as_str() == Some(ann.as_str()));
        assert!(mine, "an event of someone else: {e}");
    }

    // Nothing of bob's, and no secret of ann's: not the password hash, the session
    // key, the authenticator secret, a recovery code or the token.
    let body = p.body.as_str();
    for theirs in [
        bob.as_str(),
        "bob@example.com",
        "Bobs deploy job",
        &bob_token,
    ] {
        assert!(!body.contains(theirs), "bob's {theirs} in the download");
    }
    let hash = stored_user(&app, &ann)
        .await
        .unwrap()
        .password_hash
        .unwrap();
    let cookie = b
        .cookie(app.config.session_cookie_name())
        .expect("the session cookie");
    let uid = ann.clone();
    let (sealed_totp, sessions) = app
        .db
        .run(move |c| {
            let sealed = portcullis::db::repo::mfa::totp_secret(c, &uid)?;
            let rows = portcullis::db::repo::sessions::list_all_for_user(c, &uid, None)?;
            Ok::<_, portcullis::db::DbError>((sealed, rows))
        })
        .await
        .unwrap();
    let mut secrets = vec![hash, ann_token, cookie, sealed_totp.expect("a TOTP secret")];
    secrets.extend(codes);
    for r in sessions {
        secrets.push(r.sid);
        secrets.extend(r.key_hash);
    }
    for s in &secrets {
        assert!(!body.contains(s.as_str()), "a secret in the download: {s}");
    }
    for key in ["hash", "secret", "sid", "key", "credential"] {
        assert!(
            !body.contains(&format!("{key}\":")),
            "a field named …{key} in the download"
        );
    }
    assert!(!body.contains("$argon2"));

    let exported = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == "account.data_exported")
        .expect("the download is audited");
    assert_eq!(exported.actor_id.as_deref(), Some(ann.as_str()));
    assert_eq!(exported.target_id.as_deref(), Some(ann.as_str()));
}

#[tokio::test]
async fn the_download_needs_csrf_and_a_recent_sign_in() {
    let app = self_service_app().await;
    app.create_user("cat@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("cat@example.com").await;
    // Another site's form: no token of ours.
    let p = b.post("/account/data", &[("csrf_token", "forged")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(!p.body.contains("\"profile\""));
    // Signed in too long ago: confirm first, then come back to the page.
    let token = b.get("/account/data").await.csrf();
    app.clock.advance(app.config.step_up_window_secs + 60);
    let p = b.post("/account/data", &[("csrf_token", &token)]).await;
    assert_redirect(&p, "/login/reauth?next=%2Faccount%2Fdata");
    let p = b
        .submit(
            "/login/reauth",
            "/login/reauth",
            &[("password", PASSWORD), ("next", "/account/data")],
        )
        .await;
    assert_redirect(&p, "/account/data");
    assert_eq!(download(&b).await.status, StatusCode::OK);
    // Signed out, the page sends you to sign in.
    let anon = app.browser();
    let p = anon.get("/account/data").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let names = app.audit_names().await;
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "account.data_exported")
            .count(),
        1
    );
}
