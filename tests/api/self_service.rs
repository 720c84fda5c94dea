//! `/account/data` and `/account/delete`: a user downloads what the service holds about
//! them (their things only, never a secret) and deletes their own account. Both need a
//! recent sign-in and CSRF; deleting also needs the password or a second-factor code
//! typed again, counted with the account's password guesses, so a stolen session alone
//! can do neither. The last administrator cannot delete themself.

use portcullis::auth::access::tokens::NewToken;
use portcullis::auth::audit::AuditCtx;
use portcullis::config::FileConfig;
use portcullis::db::repo::users;
use reqwest::StatusCode;

use crate::helpers::*;
use crate::mfa::{enrol, hotp};

const FREE: u32 = 3;

async fn self_service_app() -> TestApp {
    spawn_app_with(Options {
        file: FileConfig {
            forward_auth_allowed_domains: Some(vec!["example.com".into()]),
            trusted_proxies: Some(vec!["127.0.0.1".into()]),
            login_failures_before_backoff: Some(FREE),
            ..Default::default()
        },
    })
    .await
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

/// What forward auth answers a script presenting `secret`.
async fn bearer_status(app: &TestApp, secret: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{}/auth/forward", app.base))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "app.example.com")
        .header("X-Forwarded-Uri", "/")
        .header("X-Forwarded-Method", "GET")
        .header("Authorization", format!("Bearer {secret}"))
        .send()
        .await
        .expect("forward auth")
        .status()
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

async fn delete(b: &Browser, proof: &str) -> Page {
    b.submit("/account/delete", "/account/delete", &[("proof", proof)])
        .await
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
    assert!(page.body.contains("href=\"/account/delete\""));
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

#[tokio::test]
async fn deleting_asks_for_the_password_and_ends_everything_at_once() {
    let app = self_service_app().await;
    let sam = app.create_user("sam@example.com", &[]).await;
    let laptop = app.browser();
    let phone = app.browser();
    laptop.login_ok("sam@example.com").await;
    phone.login_ok("sam@example.com").await;
    let script = token(&app, &sam, "Nightly sync").await;
    assert_eq!(bearer_status(&app, &script).await, StatusCode::OK);

    let page = laptop.get("/account/delete").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.text_of("label[for=proof]").unwrap(),
        "Password or second factor"
    );
    assert_eq!(
        page.text_of("form[action=\"/account/delete\"] button")
            .unwrap(),
        "Delete my account"
    );

    // Without the site's token: refused before anything is checked.
    let p = laptop
        .post(
            "/account/delete",
            &[("csrf_token", "forged"), ("proof", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // The wrong password: said so, and the account stays as it was.
    let p = delete(&laptop, "not my password at all").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.error().unwrap().contains("did not match"), "{}", p.body);
    // Nothing typed: asked for it.
    let p = delete(&laptop, "").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.error().unwrap().contains("Enter your password"));
    assert!(stored_user(&app, &sam).await.is_some());
    assert_eq!(laptop.get("/account").await.status, StatusCode::OK);
    assert_eq!(phone.get("/account").await.status, StatusCode::OK);
    assert_eq!(bearer_status(&app, &script).await, StatusCode::OK);
    let failed = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == "user.deleted")
        .expect("the refusal is audited");
    assert_eq!(failed.outcome, "failure");

    // The right password: gone, and told so.
    let p = delete(&laptop, PASSWORD).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("Your account was deleted"));
    assert!(!p.body.contains("sam@example.com"), "shown signed out");
    assert!(stored_user(&app, &sam).await.is_none());
    // Every session ended at once, this one and the other device's; the token too.
    for b in [&laptop, &phone] {
        let p = b.get("/account").await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        assert!(p.location().unwrap().starts_with("/login"));
    }
    assert_ne!(bearer_status(&app, &script).await, StatusCode::OK);
    let p = app.browser().login("sam@example.com", PASSWORD).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);

    let deleted = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == "user.deleted" && e.outcome == "success")
        .expect("the deletion is audited");
    assert_eq!(deleted.actor_id.as_deref(), Some(sam.as_str()));
    assert_eq!(deleted.target_id.as_deref(), Some(sam.as_str()));
}

#[tokio::test]
async fn a_stolen_session_without_the_password_cannot_delete_the_account() {
    let app = self_service_app().await;
    let vic = app.create_user("vic@example.com", &[]).await;
    let owner = app.browser();
    owner.login_ok("vic@example.com").await;
    let thief = app.browser();
    owner.clone_cookies_into(&thief);
    assert_eq!(thief.get("/account/delete").await.status, StatusCode::OK);

    for i in 0..FREE {
        let p = delete(&thief, &format!("a wrong guess number {i}")).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The account's password guesses are used up: the next ones are not even checked,
    // the right password included, as at the sign-in form.
    let p = delete(&thief, "yet another wrong guess").await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(p.headers.get("retry-after").is_some());
    let p = delete(&thief, PASSWORD).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    let p = app.browser().login("vic@example.com", PASSWORD).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS, "the same throttle");

    assert!(stored_user(&app, &vic).await.is_some());
    assert_eq!(owner.get("/account").await.status, StatusCode::OK);

    // A session signed in long ago is sent to confirm it is you before the form.
    app.clock.advance(app.config.step_up_window_secs + 60);
    let p = thief.get("/account/delete").await;
    assert_redirect(&p, "/login/reauth?next=%2Faccount%2Fdelete");
}

#[tokio::test]
async fn the_last_administrator_cannot_delete_themself() {
    let app = self_service_app().await;
    let boss = app.create_user("boss@example.com", &["admin"]).await;
    let b = app.browser();
    b.login_ok("boss@example.com").await;
    let p = delete(&b, PASSWORD).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(
        p.error().unwrap().contains("last administrator"),
        "{}",
        p.body
    );
    assert!(stored_user(&app, &boss).await.is_some());
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    let refused = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == "user.deleted")
        .expect("the refusal is audited");
    assert_eq!(refused.outcome, "denied");

    // With another administrator, the first may go.
    app.create_user("deputy@example.com", &["admin"]).await;
    let p = delete(&b, PASSWORD).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(stored_user(&app, &boss).await.is_none());
}

#[tokio::test]
async fn a_second_factor_code_proves_it_too() {
    let app = self_service_app().await;
    let tia = app.create_user("tia@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("tia@example.com").await;
    let (secret, _) = enrol(&app, &b).await;
    // A wrong code is refused like a wrong password.
    let now = hotp(&secret, app.clock.now() as u64 / 30, 6);
    let wrong = if now == "000000" { "111111" } else { "000000" };
    let p = delete(&b, wrong).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(stored_user(&app, &tia).await.is_some());
    // The enrolment used this step's code: the next one.
    app.clock.advance(30);
    let code = hotp(&secret, app.clock.now() as u64 / 30, 6);
    let p = delete(&b, &code).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(stored_user(&app, &tia).await.is_none());
}
