//! Personal access tokens: made on `/account/tokens` or from the shell, used by scripts
//! at forward auth (Bearer, or Basic with the account's email), ended by revoking, by
//! expiry and by every change of the account that ends its app grants. Written as an
//! attacker would try them: the account password in Basic, another user's email or
//! token id, guesses, a revoked or expired token, a two_factor site.

use base64::Engine;
use diesel::prelude::*;
use portcullis::auth::access::tokens::NewToken;
use portcullis::auth::audit::AuditCtx;
use portcullis::domain::access::RuleSpec;
use reqwest::StatusCode;

use crate::confirm::{asks, press, says};
use crate::helpers::*;

const NEW_PASSWORD: &str = "a fresh and long passphrase 77";

async fn token_app(extra: impl FnOnce(&mut portcullis::config::FileConfig)) -> TestApp {
    let mut file = portcullis::config::FileConfig {
        forward_auth_allowed_domains: Some(vec!["example.com".into()]),
        trusted_proxies: Some(vec!["127.0.0.1".into()]),
        admin_requires_second_factor: Some(false),
        ..Default::default()
    };
    extra(&mut file);
    spawn_app_with(Options { file }).await
}

/// A token for `uid`, made through the service.
async fn make(app: &TestApp, uid: &str, scopes: &[&str], days: Option<u32>) -> String {
    app.state
        .personal_tokens
        .create(
            uid,
            NewToken {
                name: "script".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                expires_in_days: days,
            },
            &AuditCtx::cli(),
        )
        .await
        .expect("token made")
        .1
}

fn basic(user: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

/// Forward auth as Caddy or Traefik asks it for `method url`, with `authorization`,
/// from a client without cookies (a script).
async fn ask(app: &TestApp, authorization: Option<&str>, method: &str, url: &str) -> Page {
    let u = url::Url::parse(url).unwrap();
    let mut req = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/auth/forward", app.base))
        .header("X-Forwarded-Proto", u.scheme())
        .header("X-Forwarded-Host", u.host_str().unwrap())
        .header("X-Forwarded-Uri", u.path())
        .header("X-Forwarded-Method", method);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.expect("forward auth");
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("body"),
    }
}

const SITE: &str = "https://app.example.com/notes";

async fn bearer_status(app: &TestApp, secret: &str) -> StatusCode {
    ask(app, Some(&format!("Bearer {secret}")), "GET", SITE)
        .await
        .status
}

fn assert_invalid_token(p: &Page, what: &str) {
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{what}: {}", p.body);
    let challenges: Vec<&str> = p
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        challenges.contains(&"Bearer realm=\"portcullis\", error=\"invalid_token\""),
        "{what}: {challenges:?}"
    );
    assert!(
        challenges.contains(&"Basic realm=\"portcullis\""),
        "{what}: {challenges:?}"
    );
    assert!(
        p.headers.get("location").is_none(),
        "{what}: no sign-in page"
    );
    assert!(p.headers.get("remote-user").is_none(), "{what}");
}

async fn token_ended_audited(app: &TestApp, reason: &str) {
    let found = app.audit().await.into_iter().any(|e| {
        e.event == "personal_token.revoked"
            && serde_json::from_str::<serde_json::Value>(&e.details).unwrap()["reason"] == reason
    });
    assert!(
        found,
        "personal_token.revoked for {reason} in the audit log"
    );
}

/// The page makes a token and shows it once; the token then reaches a proxied site as
/// its owner, both as Bearer and as Basic with the owner's email.
#[tokio::test]
async fn a_token_from_the_page_reaches_a_proxied_site_as_its_owner() {
    let app = token_app(|_| {}).await;
    let uid = app.create_user("ann@example.com", &["user"]).await;
    let b = app.browser();
    b.login_ok("ann@example.com").await;

    let page = b.get("/account/tokens").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("href=\"/account/tokens\""),
        "linked from the nav"
    );
    assert!(page.body.contains("<label for=\"token-name\">Name</label>"));
    assert_eq!(
        page.text_of("form[action='/account/tokens'] button")
            .as_deref(),
        Some("Create token")
    );

    // Without the CSRF token nothing is made.
    let p = b
        .post(
            "/account/tokens",
            &[("name", "forged"), ("scope", "forward")],
        )
        .await;
    assert!(p.status.is_client_error(), "{}", p.status);

    let p = b
        .submit(
            "/account/tokens",
            "/account/tokens",
            &[
                ("name", "Backup script"),
                ("scope", "forward"),
                ("expires_in_days", "30"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.headers["cache-control"], "no-store");
    let secret = p.text_of("#new-token").expect("the secret, shown once");
    assert!(secret.starts_with("pcp_"), "{secret}");
    assert_eq!(
        p.text_of("tr.token .token-name").as_deref(),
        Some("Backup script")
    );
    let again = b.get("/account/tokens").await;
    assert!(!again.body.contains(&secret), "shown only once");
    assert!(again.body.contains("forward"));
    assert!(again.body.contains("never"), "not used yet");
    assert!(
        app.audit_names()
            .await
            .contains(&"personal_token.created".to_string())
    );
    assert!(
        !app.audit()
            .await
            .iter()
            .any(|e| e.details.contains(&secret)),
        "the secret is not in the audit log"
    );

    // A bad name is refused on the page, with the form kept.
    let p = b
        .submit(
            "/account/tokens",
            "/account/tokens",
            &[("name", "  "), ("scope", "forward")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.error().is_some());

    for authorization in [
        format!("Bearer {secret}"),
        basic("Ann@Example.com", &secret),
    ] {
        let p = ask(&app, Some(&authorization), "GET", SITE).await;
        assert_eq!(p.status, StatusCode::OK, "{authorization}: {}", p.body);
        assert_eq!(p.headers["remote-user"], uid.as_str());
        assert_eq!(p.headers["remote-email"], "ann@example.com");
        assert_eq!(p.headers["remote-name"], "Test User");
        assert_eq!(p.headers["remote-groups"], "", "no groups");
        assert_eq!(p.headers["remote-roles"], "user");
    }
    // Without the proxy's headers too (nothing to match rules against, none set).
    let p = b
        .client
        .get(format!("{}/auth/forward", app.base))
        .header("Authorization", format!("Bearer {secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(p.status(), StatusCode::OK);

    let listed = b.get("/account/tokens").await;
    assert!(
        !listed.text_of("tr.token").unwrap().contains("never"),
        "last used is recorded: {}",
        listed.body
    );
}

/// Basic takes a token as the password, never the account's password; and the token
/// must be that very account's.
#[tokio::test]
async fn basic_refuses_the_account_password_and_another_accounts_token() {
    let app = token_app(|_| {}).await;
    app.create_user("ann@example.com", &[]).await;
    let bo = app.create_user("bo@example.com", &[]).await;
    let bos = make(&app, &bo, &[], None).await;

    let p = ask(&app, Some(&basic("ann@example.com", PASSWORD)), "GET", SITE).await;
    assert_invalid_token(&p, "the account password");
    let p = ask(&app, Some(&basic("ann@example.com", &bos)), "GET", SITE).await;
    assert_invalid_token(&p, "bo's token under ann's email");
    let p = ask(&app, Some(&basic("bo@example.com", &bos)), "GET", SITE).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-email"], "bo@example.com");

    for other in [
        "Bearer pcp_notatoken".to_string(),
        format!("Bearer {}", bos.replace("pcp_", "pcx_")),
        "Digest username=\"bo\"".to_string(),
        "Basic !!!".to_string(),
        format!("Bearer {PASSWORD}"),
    ] {
        let p = ask(&app, Some(&other), "GET", SITE).await;
        assert_invalid_token(&p, &other);
    }
    // A request carrying a token is judged by it, not by a session that comes along.
    let b = app.browser();
    b.login_ok("ann@example.com").await;
    let p = b
        .client
        .get(format!("{}/auth/forward", app.base))
        .header("Authorization", "Bearer pcp_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(p.status(), StatusCode::UNAUTHORIZED);
}

/// Revoked and expired tokens are refused; revoking is for the owner only (someone
/// else's id is not found, and their token keeps working).
#[tokio::test]
async fn revoked_and_expired_tokens_are_refused_and_only_the_owner_revokes() {
    let app = token_app(|_| {}).await;
    let ann = app.create_user("ann@example.com", &[]).await;
    let bo = app.create_user("bo@example.com", &[]).await;
    let anns = make(&app, &ann, &["forward"], Some(30)).await;
    let bos = make(&app, &bo, &["forward"], None).await;
    let bo_id = app.state.personal_tokens.list(&bo).await.unwrap()[0]
        .id
        .clone();

    let attacker = app.browser();
    attacker.login_ok("ann@example.com").await;
    let p = attacker
        .submit(
            "/account/tokens",
            "/account/tokens/revoke",
            &[("id", &bo_id)],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    assert_eq!(
        bearer_status(&app, &bos).await,
        StatusCode::OK,
        "bo's token lives"
    );

    let owner = app.browser();
    owner.login_ok("bo@example.com").await;
    // The page's Revoke only asks, naming the token; the token keeps working.
    let p = owner
        .submit(
            "/account/tokens",
            "/account/tokens/revoke",
            &[("id", &bo_id)],
        )
        .await;
    let form = asks(&p, "Revoke this token?", "/account/tokens");
    assert!(says(&p).contains("\"script\""), "{}", says(&p));
    assert!(p.body.contains("Yes, revoke"));
    assert!(form.1.contains(&("id".to_string(), bo_id.clone())));
    assert_eq!(bearer_status(&app, &bos).await, StatusCode::OK, "not yet");
    assert_eq!(owner.get("/account/tokens").await.count("tr.token"), 1);
    // The confirmed form without this session's CSRF token does nothing either.
    assert_eq!(
        press(&owner, &form, true).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(bearer_status(&app, &bos).await, StatusCode::OK);
    assert!(
        !app.audit_names()
            .await
            .contains(&"personal_token.revoked".to_string())
    );
    assert_redirect(
        &press(&owner, &form, false).await,
        "/account/tokens?done=revoked",
    );
    assert_invalid_token(
        &ask(&app, Some(&format!("Bearer {bos}")), "GET", SITE).await,
        "revoked",
    );
    assert_eq!(owner.get("/account/tokens").await.count("tr.token"), 0);
    token_ended_audited(&app, "revoked").await;
    // Twice is not found either, asked or confirmed.
    let p = owner
        .submit(
            "/account/tokens",
            "/account/tokens/revoke",
            &[("id", &bo_id)],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    let p = owner
        .submit(
            "/account/tokens",
            "/account/tokens/revoke",
            &[("id", &bo_id), ("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    assert_eq!(bearer_status(&app, &anns).await, StatusCode::OK);
    app.db
        .run(|c| {
            use portcullis::db::schema::personal_tokens::dsl::*;
            diesel::update(personal_tokens)
                .set(expires_at.eq(Some(1_i64)))
                .execute(c)
                .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
    // Written behind the service's back (time does not pass here): forget the memo of
    // the token as it was, as every change through the service does.
    app.state.oauth.cache.invalidate().await;
    assert_invalid_token(
        &ask(&app, Some(&format!("Bearer {anns}")), "GET", SITE).await,
        "expired",
    );
}

/// A token that checks out is memoised; revoking it is still seen at the very next
/// request, the memo warm from the requests just before. (The other ends of a token
/// are tried the same way, used just before, in the tests around this one.)
#[tokio::test]
async fn a_revoked_token_is_refused_at_the_next_request_though_memoised() {
    let app = token_app(|_| {}).await;
    let uid = app.create_user("cy@example.com", &[]).await;
    let secret = make(&app, &uid, &["forward"], None).await;
    let id = app.state.personal_tokens.list(&uid).await.unwrap()[0]
        .id
        .clone();
    for _ in 0..3 {
        assert_eq!(bearer_status(&app, &secret).await, StatusCode::OK);
    }
    assert!(
        app.state
            .personal_tokens
            .revoke(&uid, &id, &AuditCtx::cli())
            .await
            .unwrap()
    );
    assert_invalid_token(
        &ask(&app, Some(&format!("Bearer {secret}")), "GET", SITE).await,
        "revoked while memoised",
    );
    assert_invalid_token(
        &ask(&app, Some(&basic("cy@example.com", &secret)), "GET", SITE).await,
        "revoked while memoised, as Basic",
    );
}

/// A token ends with the account changes that end app grants, and at any password
/// change; enabling the account again does not bring it back.
#[tokio::test]
async fn tokens_end_at_disable_password_change_and_sign_out_everywhere() {
    let app = token_app(|_| {}).await;
    app.create_user("admin@example.com", &["admin"]).await;
    let uid = app.create_user("una@example.com", &[]).await;
    let admin = app.browser();
    admin.login_ok("admin@example.com").await;
    let path = format!("/admin/users/{uid}");

    // Disabled: refused even before the hook ran (the account is checked), and for good.
    let t = make(&app, &uid, &[], None).await;
    assert_eq!(bearer_status(&app, &t).await, StatusCode::OK);
    let p = admin
        .submit(&path, &format!("{path}/disable"), &[("confirm", "yes")])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(bearer_status(&app, &t).await, StatusCode::UNAUTHORIZED);
    let p = admin.submit(&path, &format!("{path}/enable"), &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(
        bearer_status(&app, &t).await,
        StatusCode::UNAUTHORIZED,
        "not back"
    );
    token_ended_audited(&app, "user.disabled").await;

    // A password change, even without "also sign out of apps".
    let user = app.browser();
    user.login_ok("una@example.com").await;
    let t = make(&app, &uid, &[], None).await;
    assert_eq!(bearer_status(&app, &t).await, StatusCode::OK);
    let p = user
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(bearer_status(&app, &t).await, StatusCode::UNAUTHORIZED);
    token_ended_audited(&app, "password.changed").await;

    // Sign out everywhere else.
    let t = make(&app, &uid, &[], None).await;
    assert_eq!(bearer_status(&app, &t).await, StatusCode::OK);
    let p = user
        .submit(
            "/account/sessions",
            "/account/sessions/revoke-others",
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(bearer_status(&app, &t).await, StatusCode::UNAUTHORIZED);
    token_ended_audited(&app, "session.revoked").await;

    // An administrator's revoke sessions.
    let t = make(&app, &uid, &[], None).await;
    assert_eq!(bearer_status(&app, &t).await, StatusCode::OK);
    let p = admin
        .submit(
            &path,
            &format!("{path}/revoke-sessions"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(bearer_status(&app, &t).await, StatusCode::UNAUTHORIZED);
    token_ended_audited(&app, "admin.sessions_revoked").await;

    // Deleted.
    let t = make(&app, &uid, &[], None).await;
    assert_eq!(bearer_status(&app, &t).await, StatusCode::OK);
    let p = admin
        .submit(
            &path,
            &format!("{path}/delete"),
            &[("confirm", "una@example.com")],
        )
        .await;
    assert_redirect(&p, "/admin/users?deleted=1");
    assert_eq!(bearer_status(&app, &t).await, StatusCode::UNAUTHORIZED);
}

/// Guesses are counted per client address: past the limit a failing token (the
/// account password in Basic too) gets 429 instead of 401, until the window passes.
#[tokio::test]
async fn guessing_tokens_is_throttled() {
    let app = token_app(|f| f.personal_token_requests_per_minute = Some(3)).await;
    let uid = app.create_user("ann@example.com", &[]).await;
    let good = make(&app, &uid, &[], None).await;
    // Using a good token is not counted.
    for _ in 0..5 {
        assert_eq!(bearer_status(&app, &good).await, StatusCode::OK);
    }
    for i in 0..3 {
        let guess = format!("Bearer pcp_{}", "A".repeat(42) + &i.to_string());
        let p = ask(&app, Some(&guess), "GET", SITE).await;
        assert_invalid_token(&p, "a guess within the limit");
    }
    let p = ask(&app, Some(&basic("ann@example.com", PASSWORD)), "GET", SITE).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(p.headers.contains_key("retry-after"));
    assert!(p.headers.get("remote-user").is_none());
}

/// Each token has a budget of its own, across instances: past it that token gets 429
/// with Retry-After (nginx, which takes only 401 and 403 from a subrequest, a 403
/// with Retry-After that its documented configuration turns into the 429), while
/// another token of the same account goes on working.
#[tokio::test]
async fn each_token_is_rate_limited() {
    let app = token_app(|f| f.personal_token_uses_per_minute = Some(3)).await;
    let uid = app.create_user("ann@example.com", &[]).await;
    let busy = make(&app, &uid, &[], None).await;
    let other = make(&app, &uid, &[], None).await;
    for _ in 0..3 {
        assert_eq!(bearer_status(&app, &busy).await, StatusCode::OK);
    }
    let p = ask(&app, Some(&format!("Bearer {busy}")), "GET", SITE).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS, "{}", p.body);
    let wait: u64 = p.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(p.headers.get("remote-user").is_none());
    // Basic names the same token: the same budget.
    let p = ask(&app, Some(&basic("ann@example.com", &busy)), "GET", SITE).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    // As nginx asks: 403 with Retry-After, no Location to send a browser to.
    let resp = reqwest::Client::new()
        .get(format!("{}/auth/forward", app.base))
        .header("X-Original-URL", SITE)
        .header("X-Original-Method", "GET")
        .header("Authorization", format!("Bearer {busy}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(resp.headers().get("location").is_none());
    assert_eq!(bearer_status(&app, &other).await, StatusCode::OK);
    // Counted in Redis when there is one: a second instance sees the same budget.
    if let Some(redis) = app.config.redis_url.clone() {
        let second = token_app(|f| {
            f.personal_token_uses_per_minute = Some(3);
            f.database_url = Some(app.config.database_url.clone());
            f.redis_url = Some(redis);
            f.redis_prefix = Some(app.config.redis_prefix.clone());
            f.secret_key_file = Some(app.config.secret_key_file.display().to_string());
        })
        .await;
        let p = ask(&second, Some(&format!("Bearer {busy}")), "GET", SITE).await;
        assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    }
}

/// A token proves one factor: a two_factor site refuses it, whatever the account has.
/// A read-only token may not write.
#[tokio::test]
async fn a_two_factor_rule_denies_a_token_and_scopes_limit_methods() {
    let app = token_app(|f| {
        f.access_rule = Some(vec![RuleSpec {
            name: Some("vault".into()),
            domain: vec!["vault.example.com".into()],
            policy: "two_factor".into(),
            ..Default::default()
        }]);
    })
    .await;
    let uid = app.create_user("ann@example.com", &[]).await;
    let full = make(&app, &uid, &["forward"], None).await;
    let read = make(&app, &uid, &["forward:read"], None).await;

    let p = ask(
        &app,
        Some(&format!("Bearer {full}")),
        "GET",
        "https://vault.example.com/",
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(p.headers.get("remote-user").is_none());
    assert!(p.body.contains("access token"), "{}", p.body);
    assert!(
        app.audit_names()
            .await
            .contains(&"access.denied".to_string())
    );

    let p = ask(&app, Some(&format!("Bearer {read}")), "GET", SITE).await;
    assert_eq!(p.status, StatusCode::OK);
    let p = ask(&app, Some(&format!("Bearer {read}")), "POST", SITE).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(
        p.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_scope\""),
        "{:?}",
        p.headers
    );
    let p = ask(&app, Some(&format!("Bearer {full}")), "POST", SITE).await;
    assert_eq!(p.status, StatusCode::OK);
}

/// `portcullis token create` prints the secret once, as `token=…`, for an active
/// account only.
#[tokio::test]
async fn the_shell_makes_a_token() {
    let app = token_app(|_| {}).await;
    app.create_user("ann@example.com", &[]).await;
    let db = app.config.database_url.clone();
    let dir = app.data_dir.path();
    let (ok, out, err) = crate::cli::portcullis(
        dir,
        &db,
        &[
            "token",
            "create",
            "--email",
            "ann@example.com",
            "--name",
            "ci",
            "--scope",
            "forward:read",
            "--expires-in-days",
            "7",
        ],
        None,
    );
    assert!(ok, "{err}");
    let secret = out
        .trim()
        .strip_prefix("token=")
        .expect("token=…")
        .to_string();
    assert_eq!(bearer_status(&app, &secret).await, StatusCode::OK);

    let (ok, _, err) = crate::cli::portcullis(
        dir,
        &db,
        &[
            "token",
            "create",
            "--email",
            "nobody@example.com",
            "--name",
            "x",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("no active account"), "{err}");
    let (ok, _, err) = crate::cli::portcullis(
        dir,
        &db,
        &[
            "token",
            "create",
            "--email",
            "ann@example.com",
            "--name",
            "x",
            "--scope",
            "admin",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("Unknown scope"), "{err}");
    let (ok, out, _) = crate::cli::portcullis(dir, &db, &["token", "create", "--help"], None);
    assert!(ok);
    for flag in ["--email", "--name", "--scope", "--expires-in-days"] {
        assert!(out.contains(flag), "{flag} in --help: {out}");
    }
}

/// A password reset from the emailed link ends the account's tokens.
#[tokio::test]
async fn a_password_reset_ends_tokens() {
    let app = token_app(|_| {}).await;
    let uid = app.create_user("una@example.com", &[]).await;
    let t = make(&app, &uid, &[], None).await;
    assert_eq!(bearer_status(&app, &t).await, StatusCode::OK);

    let b = app.browser();
    b.submit(
        "/password/forgot",
        "/password/forgot",
        &[("email", "una@example.com")],
    )
    .await;
    let mails = app.wait_for_outbox(1).await;
    let link = mails
        .iter()
        .find_map(|m| crate::smtp_sink::extract_link(m, "/password/reset?token="))
        .expect("a reset link in the outbox");
    let token = link.split("token=").nth(1).unwrap().to_string();
    let page = b.get(&format!("/password/reset?token={token}")).await;
    let p = b
        .post(
            "/password/reset",
            &[
                ("csrf_token", &page.csrf()),
                ("token", &token),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_redirect(&p, "/login?reset=1");
    assert_eq!(bearer_status(&app, &t).await, StatusCode::UNAUTHORIZED);
    token_ended_audited(&app, "password.reset").await;
}

/// An API behind portcullis asks about a personal access token at introspection, as it
/// would about an app's access token: active with its owner while it lives, inactive
/// once revoked; only registered clients may ask.
#[tokio::test]
async fn introspection_tells_an_api_whose_token_it_is() {
    use crate::oidc::{back_channel, client};
    let app = token_app(|_| {}).await;
    let uid = app.create_user("api-user@example.com", &[]).await;
    let secret = make(&app, &uid, &["forward"], Some(30)).await;
    let (id, client_secret) = client(&app, false).await;
    let client_secret = client_secret.unwrap();

    let (status, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &client_secret),
        &[("token", &secret)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["sub"], uid.as_str());
    assert_eq!(seen["username"], "api-user@example.com");
    assert_eq!(seen["scope"], "forward");

    // Without the client's credentials: no answer about the token at all.
    let (status, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, "wrong secret"),
        &[("token", &secret)],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{seen}");

    let token_id = app.state.personal_tokens.list(&uid).await.unwrap()[0]
        .id
        .clone();
    assert!(
        app.state
            .personal_tokens
            .revoke(&uid, &token_id, &AuditCtx::cli())
            .await
            .unwrap()
    );
    let (_, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &client_secret),
        &[("token", &secret)],
    )
    .await;
    assert_eq!(seen, serde_json::json!({"active": false}));
}
