//! The events that end a user's app grants (auth::oauth::authorize::end_app_grants): a password
//! reset, a password change that asks for it, "sign out everywhere else", an
//! administrator's revoke sessions, disable and delete, and the user deleting their own
//! account. After each, the app's refresh token is refused with invalid_grant, and its
//! access token answers 401 at userinfo and inactive at introspection — at once, on
//! every instance. A password change without the option leaves the app working.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::oidc::{authorize, back_channel, client, exchange, oidc_app_with, second_instance};

const NEW_PASSWORD: &str = "a fresh and long passphrase 77";

struct Setup {
    app: TestApp,
    /// A second instance on the same database and Redis (PostgreSQL + Redis only).
    other: Option<TestApp>,
    user: Browser,
    uid: String,
    id: String,
    secret: String,
}

struct AppTokens {
    access: String,
    refresh: String,
}

async fn setup() -> Setup {
    let app = oidc_app_with(portcullis::config::FileConfig {
        admin_requires_second_factor: Some(false),
        ..Default::default()
    })
    .await;
    let other = second_instance(&app).await;
    app.create_user("admin@example.com", &["admin"]).await;
    let uid = app.create_user("una@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let user = app.browser();
    user.login_ok("una@example.com").await;
    Setup {
        app,
        other,
        user,
        uid,
        id,
        secret: secret.expect("a confidential client has a secret"),
    }
}

impl Setup {
    fn apps(&self) -> Vec<&TestApp> {
        std::iter::once(&self.app)
            .chain(self.other.as_ref())
            .collect()
    }

    /// The app signs the user in (code flow with PKCE) and gets both tokens.
    async fn tokens(&self) -> AppTokens {
        let code = authorize(&self.user, &self.id, "").await["code"].clone();
        let (status, t) = exchange(&self.app, &self.id, &self.secret, &code).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        AppTokens {
            access: t["access_token"].as_str().unwrap().to_string(),
            refresh: t["refresh_token"]
                .as_str()
                .expect("a refresh token")
                .to_string(),
        }
    }

    async fn admin(&self) -> Browser {
        let b = self.app.browser();
        b.login_ok("admin@example.com").await;
        b
    }

    /// Userinfo's status and introspection's `active` for the access token, and
    /// introspection's `active` for the refresh token, on `app`.
    async fn seen_on(&self, app: &TestApp, t: &AppTokens) -> (StatusCode, Value, Value) {
        let userinfo = reqwest::Client::new()
            .get(format!("{}/oauth/userinfo", app.base))
            .bearer_auth(&t.access)
            .send()
            .await
            .unwrap()
            .status();
        let auth = (self.id.as_str(), self.secret.as_str());
        let (_, access) =
            back_channel(app, "/oauth/introspect", auth, &[("token", &t.access)]).await;
        let (_, refresh) =
            back_channel(app, "/oauth/introspect", auth, &[("token", &t.refresh)]).await;
        (
            userinfo,
            access["active"].clone(),
            refresh["active"].clone(),
        )
    }

    /// Working everywhere; asked twice, so each instance has memoised the answer.
    async fn assert_working(&self, t: &AppTokens, what: &str) {
        for app in self.apps() {
            for _ in 0..2 {
                assert_eq!(
                    self.seen_on(app, t).await,
                    (StatusCode::OK, Value::Bool(true), Value::Bool(true)),
                    "{what}: the app still works"
                );
            }
        }
    }

    async fn refresh(&self, t: &AppTokens) -> (StatusCode, Value) {
        crate::oidc::token_request(
            &self.app,
            Some((&self.id, &self.secret)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t.refresh),
            ],
        )
        .await
    }

    async fn assert_ended(&self, t: &AppTokens, what: &str) {
        for app in self.apps() {
            assert_eq!(
                self.seen_on(app, t).await,
                (
                    StatusCode::UNAUTHORIZED,
                    Value::Bool(false),
                    Value::Bool(false)
                ),
                "{what}: userinfo 401, access and refresh token inactive"
            );
        }
        let (status, body) = self.refresh(t).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{what}: refresh refused: {body}"
        );
    }

    /// The audit trail names the event that ended the grants.
    async fn assert_audited(&self, reason: &str) {
        let ended = self.app.audit().await.into_iter().any(|e| {
            let d: Value = serde_json::from_str(&e.details).unwrap_or_default();
            e.event == "token.revoked"
                && e.target_id.as_deref() == Some(self.uid.as_str())
                && d["token_type"] == "app_grants"
                && d["reason"] == reason
                && d["grants_revoked"].as_u64().unwrap_or(0) >= 1
        });
        assert!(ended, "token.revoked for {reason} in the audit log");
    }

    async fn change_password(&self, also_apps: bool) -> Page {
        let mut fields = vec![
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
        ];
        if also_apps {
            fields.push(("sign_out_apps", "1"));
        }
        self.user
            .submit("/account", "/account/password", &fields)
            .await
    }
}

#[tokio::test]
async fn a_password_reset_ends_app_grants() {
    let s = setup().await;
    let t = s.tokens().await;
    s.assert_working(&t, "before").await;

    let b = s.app.browser();
    b.submit(
        "/password/forgot",
        "/password/forgot",
        &[("email", "una@example.com")],
    )
    .await;
    let mails = s.app.wait_for_outbox(1).await;
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

    s.assert_ended(&t, "password reset").await;
    s.assert_audited("password.reset").await;
}

#[tokio::test]
async fn an_admins_revoke_sessions_ends_app_grants() {
    let s = setup().await;
    let t = s.tokens().await;
    s.assert_working(&t, "before").await;

    let admin = s.admin().await;
    let path = format!("/admin/users/{}", s.uid);
    let p = admin
        .submit(
            &path,
            &format!("{path}/revoke-sessions"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);

    s.assert_ended(&t, "admin revoke sessions").await;
    s.assert_audited("admin.sessions_revoked").await;
}

#[tokio::test]
async fn an_admins_disable_ends_app_grants_for_good() {
    let s = setup().await;
    let t = s.tokens().await;
    s.assert_working(&t, "before").await;

    let admin = s.admin().await;
    let path = format!("/admin/users/{}", s.uid);
    let p = admin
        .submit(&path, &format!("{path}/disable"), &[("confirm", "yes")])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    s.assert_ended(&t, "admin disable").await;
    s.assert_audited("user.disabled").await;

    // Enabling the account again does not bring the app's tokens back.
    let p = admin.submit(&path, &format!("{path}/enable"), &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    s.assert_ended(&t, "enabled again").await;
}

#[tokio::test]
async fn an_admins_delete_ends_app_grants() {
    let s = setup().await;
    let t = s.tokens().await;
    s.assert_working(&t, "before").await;

    let admin = s.admin().await;
    let path = format!("/admin/users/{}", s.uid);
    let p = admin
        .submit(
            &path,
            &format!("{path}/delete"),
            &[("confirm", "una@example.com")],
        )
        .await;
    assert_redirect(&p, "/admin/users?deleted=1");
    s.assert_ended(&t, "admin delete").await;
    s.assert_audited("user.deleted").await;
}

#[tokio::test]
async fn deleting_ones_own_account_ends_app_grants_and_the_download_listed_them() {
    let s = setup().await;
    let t = s.tokens().await;
    s.assert_working(&t, "before").await;

    // The app the user let in is in their data, by name, without its tokens.
    let p = s.user.submit("/account/data", "/account/data", &[]).await;
    assert_eq!(p.status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&p.body).unwrap();
    assert_eq!(doc["apps"][0]["client_id"], s.id.as_str());
    assert_eq!(doc["app_grants"][0]["client_id"], s.id.as_str());
    assert!(!p.body.contains(&t.access) && !p.body.contains(&t.refresh));

    let p = s
        .user
        .submit("/account/delete", "/account/delete", &[("proof", PASSWORD)])
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    s.assert_ended(&t, "own delete").await;
    s.assert_audited("user.deleted").await;
}

#[tokio::test]
async fn a_password_change_with_the_option_ends_app_grants() {
    let s = setup().await;
    let t = s.tokens().await;
    s.assert_working(&t, "before").await;

    let page = s.user.get("/account").await;
    assert_eq!(
        page.text_of("label.check").as_deref(),
        Some("Also sign out of apps")
    );
    let p = s.change_password(true).await;
    assert_redirect(&p, "/account?done=password-apps");
    s.assert_ended(&t, "password change with apps").await;
    s.assert_audited("password.changed").await;

    // The consent stays: this browser, still signed in, lets the app in again without
    // a consent page.
    let path = format!(
        "/oauth/authorize?response_type=code&scope=openid%20email&client_id={}&redirect_uri={}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        s.id,
        url::form_urlencoded::byte_serialize(b"http://app.example/callback").collect::<String>()
    );
    let p = s.user.get(&path).await;
    assert_eq!(
        p.status,
        StatusCode::SEE_OTHER,
        "no consent page: {}",
        p.body
    );
    let code = authorize(&s.user, &s.id, "").await["code"].clone();
    let (status, body) = exchange(&s.app, &s.id, &s.secret, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_password_change_without_the_option_keeps_the_app_working() {
    let s = setup().await;
    let t = s.tokens().await;
    s.assert_working(&t, "before").await;

    let p = s.change_password(false).await;
    assert_redirect(&p, "/account?done=password");
    s.assert_working(&t, "password change without apps").await;
    let (status, body) = s.refresh(&t).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn sign_out_everywhere_else_ends_app_grants() {
    let s = setup().await;
    let t = s.tokens().await;
    s.assert_working(&t, "before").await;

    // One browser session, but an app signed in: the button is there.
    let page = s.user.get("/account/sessions").await;
    assert!(
        page.body.contains("Sign out everywhere else"),
        "{}",
        page.body
    );
    let p = s
        .user
        .submit(
            "/account/sessions",
            "/account/sessions/revoke-others",
            &[("confirm", "yes")],
        )
        .await;
    assert_redirect(&p, "/account/sessions?done=others");
    s.assert_ended(&t, "sign out everywhere else").await;
    s.assert_audited("session.revoked").await;
    // This browser stays signed in.
    assert_eq!(s.user.get("/account").await.status, StatusCode::OK);
}

/// Codes handed out before the event and exchanged while it runs must not start a
/// grant that outlives it: 30 exchanges in flight around an admin's revoke.
#[tokio::test]
async fn no_code_exchanged_during_a_revoke_outlives_it() {
    let s = setup().await;
    let mut codes = Vec::new();
    for _ in 0..30 {
        codes.push(authorize(&s.user, &s.id, "").await["code"].clone());
    }
    let admin = s.admin().await;
    let path = format!("/admin/users/{}", s.uid);
    let token = admin.get(&path).await.csrf();
    let action = format!("{path}/revoke-sessions");
    let mut tasks = Vec::new();
    // Staggered, so that some exchanges land before the revoke, some during it and
    // some after.
    for (i, code) in codes.into_iter().enumerate() {
        let (base, id, secret) = (s.app.base.clone(), s.id.clone(), s.secret.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(10 * i as u64)).await;
            let res = reqwest::Client::new()
                .post(format!("{base}/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", "http://app.example/callback"),
                    (
                        "code_verifier",
                        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                    ),
                ])
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let p = admin
        .post(&action, &[("csrf_token", &token), ("confirm", "yes")])
        .await;
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    for (status, body) in results {
        if status != StatusCode::OK {
            assert_eq!(body["error"], "invalid_grant", "{body}");
            continue;
        }
        let t = AppTokens {
            access: body["access_token"].as_str().unwrap().to_string(),
            refresh: body["refresh_token"].as_str().unwrap().to_string(),
        };
        s.assert_ended(&t, "exchanged during the revoke").await;
    }
}
