//! Which app a sign-in is for: the sign-in pages name the app (from its registered
//! record, never from the link) and its domain; the consent page names the account
//! and lets the user switch to another one without losing the request.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::oidc::{client_with, new_client, oidc_app_with, query};

const WIKI_CALLBACK: &str = "https://wiki.example.com/callback";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn wiki(app: &TestApp) -> String {
    let mut c = new_client(true);
    c.name = "Team Wiki".into();
    c.redirect_uris = vec![WIKI_CALLBACK.into()];
    client_with(app, c).await.0
}

fn authorize(client_id: &str, redirect_uri: &str) -> String {
    format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20email&state=st&code_challenge={CHALLENGE}&code_challenge_method=S256",
        enc(client_id),
        enc(redirect_uri)
    )
}

/// The sign-in page an authorization request sends a visitor to.
async fn sign_in_page(b: &Browser, request: &str) -> Page {
    let p = b.get(request).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let login = p.location().unwrap();
    assert!(login.starts_with("/login?next="), "{login}");
    let page = b.get(&login).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page
}

/// Sends the consent page's "Use another account" form as the page has it.
async fn use_another_account(b: &Browser, consent: &Page) -> Page {
    let sel = scraper::Selector::parse("form.account-switch input[type=hidden]").unwrap();
    let fields: Vec<(String, String)> = consent
        .doc()
        .select(&sel)
        .map(|e| {
            let v = e.value();
            (
                v.attr("name").unwrap().into(),
                v.attr("value").unwrap_or_default().into(),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post("/logout", &refs).await
}

/// Signs in as `email` from the sign-in page `login`, continuing at `next`.
async fn sign_in_from(b: &Browser, login: &Page, email: &str, next: &str) -> Page {
    let token = login.csrf();
    b.post(
        "/login",
        &[
            ("csrf_token", token.as_str()),
            ("email", email),
            ("password", PASSWORD),
            ("next", next),
        ],
    )
    .await
}

#[tokio::test]
async fn the_sign_in_page_names_the_app_and_its_domain() {
    let app = oidc_app_with(Default::default()).await;
    let id = wiki(&app).await;
    let b = app.browser();
    let page = sign_in_page(&b, &authorize(&id, WIKI_CALLBACK)).await;
    assert_eq!(
        page.text_of("#app-context").as_deref(),
        Some("Sign in to continue to Team Wiki (wiki.example.com)")
    );
}

/// The name comes from the client's record: a link naming an unknown client, or a
/// registered one with a redirect URI it never registered, cannot put its own words
/// or domain on our sign-in page, and the page still works.
#[tokio::test]
async fn a_forged_next_names_no_app_and_no_foreign_domain() {
    let app = oidc_app_with(Default::default()).await;
    let id = wiki(&app).await;
    let b = app.browser();
    let forged = "/oauth/authorize?client_id=no-such-client&client_name=Evil%20Corp&redirect_uri=https%3A%2F%2Fevil.example%2Fcb";
    let p = b.get(&format!("/login?next={}", enc(forged))).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.count("#app-context"), 0, "{}", p.body);
    let shown = p.text_of("section.card").unwrap();
    assert!(
        !shown.contains("Evil") && !shown.contains("evil.example"),
        "{shown}"
    );

    let unregistered = authorize(&id, "https://evil.example/cb");
    let p = b.get(&format!("/login?next={}", enc(&unregistered))).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(
        p.text_of("#app-context").as_deref(),
        Some("Sign in to continue to Team Wiki")
    );
    assert!(!p.text_of("section.card").unwrap().contains("evil.example"));
}

/// A sign-in for an app behind forward auth names the app's host, when forward auth
/// may send the browser there.
#[tokio::test]
async fn a_forward_auth_sign_in_names_the_host_it_returns_to() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            forward_auth_allowed_domains: Some(vec!["example.com".into()]),
            ..Default::default()
        },
    })
    .await;
    let b = app.browser();
    let next = |rd: &str| enc(&format!("/auth/forward/return?rd={}", enc(rd)));
    let p = b
        .get(&format!(
            "/login?next={}",
            next("https://app.example.com/dashboard")
        ))
        .await;
    assert_eq!(
        p.text_of("#app-context").as_deref(),
        Some("Sign in to continue to app.example.com")
    );
    let p = b
        .get(&format!("/login?next={}", next("https://evil.com/")))
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.count("#app-context"), 0, "{}", p.body);
    assert!(!p.text_of("section.card").unwrap().contains("evil.com"));
}

/// The consent page says who is signed in; "Use another account" ends that session
/// and comes back to signing in for the same request, which then continues as the
/// other account.
#[tokio::test]
async fn the_consent_page_names_the_account_and_switches_to_another() {
    let app = oidc_app_with(Default::default()).await;
    let id = wiki(&app).await;
    app.create_user("alice@example.com", &[]).await;
    app.create_user("bob@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("alice@example.com").await;
    let request = authorize(&id, WIKI_CALLBACK);
    let consent = b.get(&request).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    let who = consent.text_of(".account-switch p").unwrap();
    assert!(who.starts_with("Signed in as alice@example.com"), "{who}");
    assert!(who.contains("Not you? Use another account"), "{who}");
    assert!(
        consent
            .body
            .contains("<strong>Team Wiki</strong> (wiki.example.com) asks to:"),
        "{}",
        consent.body
    );

    // Without the page's CSRF token nothing happens.
    let forged = b.post("/logout", &[("next", request.as_str())]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert_eq!(b.get("/account").await.status, StatusCode::OK);

    let out = use_another_account(&b, &consent).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    let back = out.location().unwrap();
    assert!(back.starts_with("/login?signed_out=1&next="), "{back}");
    assert_eq!(query(&format!("http://x{back}"))["next"], request);
    // Alice's session is over.
    assert_eq!(b.get("/account").await.status, StatusCode::SEE_OTHER);
    assert!(app.audit_names().await.contains(&"logout".to_string()));

    let login = b.get(&back).await;
    assert_eq!(
        login.text_of("#app-context").as_deref(),
        Some("Sign in to continue to Team Wiki (wiki.example.com)")
    );
    let p = sign_in_from(&b, &login, "bob@example.com", &request).await;
    assert_redirect(&p, &request);
    let consent = b.get(&request).await;
    let who = consent.text_of(".account-switch p").unwrap();
    assert!(who.starts_with("Signed in as bob@example.com"), "{who}");
}

/// "Use another account" only ever comes back to a path of ours.
#[tokio::test]
async fn signing_out_never_returns_off_site() {
    let app = spawn_app().await;
    app.create_user("carol@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("carol@example.com").await;
    let csrf = b.get("/account").await.csrf();
    let p = b
        .post(
            "/logout",
            &[("csrf_token", csrf.as_str()), ("next", "//evil.com/x")],
        )
        .await;
    assert_redirect(&p, "/login?signed_out=1");
}

/// A pushed request carries only `client_id` and `request_uri` in the link: the
/// redirect URI shown is the pushed (registered) one, whatever the link adds; and
/// "Use another account" keeps the request for the next account.
#[tokio::test]
async fn a_pushed_request_is_named_and_survives_switching_accounts() {
    let app = oidc_app_with(Default::default()).await;
    let mut c = new_client(false);
    c.name = "Team Wiki".into();
    c.redirect_uris = vec![WIKI_CALLBACK.into(), "https://other.example.org/cb".into()];
    let (id, secret) = client_with(&app, c).await;
    app.create_user("alice@example.com", &[]).await;
    app.create_user("bob@example.com", &[]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/par", app.base))
        .basic_auth(&id, secret)
        .form(&[
            ("response_type", "code"),
            ("redirect_uri", WIKI_CALLBACK),
            ("scope", "openid email"),
            ("state", "st"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: serde_json::Value = res.json().await.unwrap();
    let request = format!(
        "/oauth/authorize?client_id={id}&request_uri={}&redirect_uri={}",
        enc(body["request_uri"].as_str().unwrap()),
        enc("https://evil.example/cb")
    );
    let b = app.browser();
    let login = sign_in_page(&b, &request).await;
    assert_eq!(
        login.text_of("#app-context").as_deref(),
        Some("Sign in to continue to Team Wiki (wiki.example.com)")
    );
    let p = sign_in_from(&b, &login, "alice@example.com", &request).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let consent = b.get(&request).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(consent.body.contains("(wiki.example.com) asks to:"));
    let out = use_another_account(&b, &consent).await;
    let login = b.get(&out.location().unwrap()).await;
    assert_eq!(
        login.text_of("#app-context").as_deref(),
        Some("Sign in to continue to Team Wiki (wiki.example.com)")
    );
    let p = sign_in_from(&b, &login, "bob@example.com", &request).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let consent = b.get(&request).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    let who = consent.text_of(".account-switch p").unwrap();
    assert!(who.starts_with("Signed in as bob@example.com"), "{who}");
}
