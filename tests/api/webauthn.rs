//! Security keys and passkeys with real WebAuthn ceremonies: webauthn-authenticator-rs's
//! software authenticator (`SoftPasskey`) signs what the server asks for, through the
//! same JSON endpoints the page's script uses.

use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse,
};

use crate::helpers::*;

impl Browser {
    /// A script's request: JSON body, CSRF token in the header.
    pub async fn post_json(&self, path: &str, csrf: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("x-csrf-token", csrf)
            .json(&body)
            .send()
            .await
            .expect("POST json");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// The origin the browser would report: WebAuthn needs a domain, and the relying party
/// accepts any port on localhost.
fn origin(app: &TestApp) -> Url {
    let port = Url::parse(&app.base).unwrap().port().unwrap();
    Url::parse(&format!("http://localhost:{port}")).unwrap()
}

/// Adds a key through `/account/security-keys`; returns its credential id. A software
/// key cannot be discoverable, so for a passkey the test drops that requirement on the
/// client side (the server does not, and cannot, check residency).
async fn add_key(
    app: &TestApp,
    b: &Browser,
    key: &mut SoftPasskey,
    kind: &str,
    name: &str,
) -> Vec<u8> {
    let csrf = b.get("/account/security-keys").await.csrf();
    let (status, options) = b
        .post_json(
            "/account/security-keys/register/start",
            &csrf,
            json!({"kind": kind, "name": name}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    if kind == "passkey" {
        assert_eq!(
            options["publicKey"]["authenticatorSelection"]["residentKey"], "required",
            "a passkey must be asked to be discoverable"
        );
    }
    let mut ccr: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    if let Some(sel) = ccr.public_key.authenticator_selection.as_mut() {
        sel.require_resident_key = false;
    }
    let cred = key
        .do_registration(origin(app), ccr)
        .expect("authenticator registers");
    let id = cred.raw_id.to_vec();
    let (status, body) = b
        .post_json(
            "/account/security-keys/register/finish",
            &csrf,
            json!({ "credential": cred }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["redirect"], "/account/security-keys?done=added");
    id
}

/// At `/login/mfa`: asks for a challenge, lets `key` sign it (optionally for credential
/// `force_id`, as a tampered client could), and posts the answer.
async fn second_factor(
    app: &TestApp,
    b: &Browser,
    key: &mut SoftPasskey,
    force_id: Option<&[u8]>,
) -> (StatusCode, Value) {
    let page = b.get("/login/mfa").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Use a security key"), "{}", page.body);
    let csrf = page.csrf();
    let (status, options) = b.post_json("/login/webauthn/start", &csrf, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let mut rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    if let Some(id) = force_id {
        rcr.public_key.allow_credentials = vec![AllowCredentials {
            type_: "public-key".into(),
            id: id.to_vec(),
            transports: None,
        }];
    }
    let cred = key
        .do_authentication(origin(app), rcr)
        .expect("authenticator signs");
    b.post_json(
        "/login/webauthn/finish",
        &csrf,
        json!({ "credential": cred }),
    )
    .await
}

async fn stored_counter_set(app: &TestApp, id: &[u8], counter: u64) {
    use base64::Engine;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
    app.db
        .run(move |c| {
            use portcullis::db::repo::webauthn as repo;
            let row = repo::find(c, &id)?.expect("stored credential");
            let mut v: Value = serde_json::from_str(&row.credential).unwrap();
            v["cred"]["counter"] = json!(counter);
            repo::record_use(c, &id, Some(&v.to_string()), 0)?;
            Ok::<_, portcullis::db::DbError>(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_security_key_is_added_listed_and_then_asked_for_after_the_password() {
    let app = spawn_app().await;
    app.create_user("kim@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("kim@example.com").await;
    let mut key = SoftPasskey::new(true);
    add_key(&app, &b, &mut key, "security_key", "Blue key").await;

    let page = b.get("/account/security-keys").await;
    assert_eq!(page.text_of(".key-name").as_deref(), Some("Blue key"));
    assert!(page.body.contains("Security key"));
    assert!(
        app.audit_names()
            .await
            .contains(&"webauthn.added".to_string())
    );
    let mail = app.wait_for_outbox(1).await;
    assert!(
        mail.iter()
            .any(|m| m.contains("a security key named \"Blue key\"")),
        "a notice about the new key: {mail:?}"
    );

    // Now the password alone no longer signs in.
    b.logout().await;
    let p = b.login("kim@example.com", PASSWORD).await;
    assert_redirect(&p, "/login/mfa");
    assert_redirect(&b.get("/account").await, "/login?next=%2Faccount");
    let (status, body) = second_factor(&app, &b, &mut key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["redirect"], "/account");
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    let events = app.audit().await;
    let ok = events
        .iter()
        .find(|e| e.event == "mfa.succeeded")
        .expect("mfa.succeeded");
    assert!(ok.details.contains("hwk"));
    // Last used is recorded.
    let page = b.get("/account/security-keys").await;
    assert!(!page.body.contains(">never<"), "{}", page.body);
}

#[tokio::test]
async fn a_sign_counter_that_goes_backwards_is_refused() {
    let app = spawn_app().await;
    app.create_user("lou@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("lou@example.com").await;
    let mut key = SoftPasskey::new(true);
    let id = add_key(&app, &b, &mut key, "security_key", "Key").await;
    b.logout().await;

    assert_redirect(&b.login("lou@example.com", PASSWORD).await, "/login/mfa");
    assert_eq!(
        second_factor(&app, &b, &mut key, None).await.0,
        StatusCode::OK
    );
    b.logout().await;

    // The server has seen a higher count than this key will now send: a clone.
    stored_counter_set(&app, &id, 1000).await;
    assert_redirect(&b.login("lou@example.com", PASSWORD).await, "/login/mfa");
    let (status, body) = second_factor(&app, &b, &mut key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_redirect(&b.get("/account").await, "/login?next=%2Faccount");
    let failed = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == "mfa.failed");
    assert!(failed.is_some(), "the refused key is audited");
}

#[tokio::test]
async fn a_key_registered_to_another_user_is_refused() {
    let app = spawn_app().await;
    app.create_user("amy@example.com", &[]).await;
    app.create_user("bob@example.com", &[]).await;
    let (a, b) = (app.browser(), app.browser());
    a.login_ok("amy@example.com").await;
    b.login_ok("bob@example.com").await;
    let mut amys = SoftPasskey::new(true);
    let mut bobs = SoftPasskey::new(true);
    let amy_id = add_key(&app, &a, &mut amys, "security_key", "Amy's").await;
    add_key(&app, &b, &mut bobs, "security_key", "Bob's").await;
    b.logout().await;

    // Bob's password, then Amy's key (a valid signature, from the wrong account).
    assert_redirect(&b.login("bob@example.com", PASSWORD).await, "/login/mfa");
    let (status, body) = second_factor(&app, &b, &mut amys, Some(&amy_id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_redirect(&b.get("/account").await, "/login?next=%2Faccount");
    // Bob's own key still works.
    let (status, _) = second_factor(&app, &b, &mut bobs, None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Passwordless: a passkey's assertion names its user through the user handle.
async fn passkey_sign_in(
    app: &TestApp,
    b: &Browser,
    key: &mut SoftPasskey,
    id: &[u8],
    handle: &str,
) -> (StatusCode, Value) {
    let csrf = b.get("/login?next=/account/sessions").await.csrf();
    let (status, options) = b.post_json("/login/passkey/start", &csrf, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let mut rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    assert!(
        rcr.public_key.allow_credentials.is_empty(),
        "discoverable: no list of keys"
    );
    // The software key cannot discover its credentials: tell it which one.
    rcr.public_key.allow_credentials = vec![AllowCredentials {
        type_: "public-key".into(),
        id: id.to_vec(),
        transports: None,
    }];
    let mut cred: PublicKeyCredential = key.do_authentication(origin(app), rcr).expect("signs");
    cred.response.user_handle = Some(uuid::Uuid::parse_str(handle).unwrap().as_bytes().to_vec());
    b.post_json(
        "/login/passkey/finish",
        &csrf,
        json!({ "credential": cred, "next": "/account/sessions" }),
    )
    .await
}

#[tokio::test]
async fn a_passkey_signs_in_without_a_password_and_only_for_its_owner() {
    let app = spawn_app().await;
    let uid = app.create_user("pia@example.com", &[]).await;
    let other = app.create_user("max@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("pia@example.com").await;
    let mut key = SoftPasskey::new(true);
    let id = add_key(&app, &b, &mut key, "passkey", "Phone").await;
    let mut sk = SoftPasskey::new(true);
    let sk_id = add_key(&app, &b, &mut sk, "security_key", "Second factor only").await;
    b.logout().await;

    // Claiming to be someone else with Pia's passkey.
    let fresh = app.browser();
    let (status, _) = passkey_sign_in(&app, &fresh, &mut key, &id, &other).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A security key is a second factor, never a way in on its own.
    let (status, _) = passkey_sign_in(&app, &fresh, &mut sk, &sk_id, &uid).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_redirect(&fresh.get("/account").await, "/login?next=%2Faccount");

    let (status, body) = passkey_sign_in(&app, &fresh, &mut key, &id, &uid).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["redirect"], "/account/sessions");
    let page = fresh.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("pia@example.com"));
}

#[tokio::test]
async fn removing_a_key_needs_a_recent_sign_in_and_sends_a_notice() {
    let app = spawn_app().await;
    app.create_user("rae@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("rae@example.com").await;
    let mut key = SoftPasskey::new(true);
    let id = add_key(&app, &b, &mut key, "security_key", "Old key").await;
    use base64::Engine;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);

    // Renaming is harmless; an empty name is refused.
    let p = b
        .submit(
            "/account/security-keys",
            "/account/security-keys/rename",
            &[("id", &id), ("name", "  ")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    let p = b
        .submit(
            "/account/security-keys",
            "/account/security-keys/rename",
            &[("id", &id), ("name", "Spare key")],
        )
        .await;
    assert_redirect(&p, "/account/security-keys?done=renamed");
    assert!(
        app.audit_names()
            .await
            .contains(&"webauthn.renamed".to_string())
    );

    // Eleven minutes later, removal asks to confirm it is you first.
    app.clock.advance(660);
    let p = b
        .submit(
            "/account/security-keys",
            "/account/security-keys/remove",
            &[("id", &id)],
        )
        .await;
    assert_redirect(&p, "/login/reauth?next=%2Faccount%2Fsecurity%2Dkeys");
    // Adding one too: a stolen session must not plant a key.
    let csrf = b.get("/account/security-keys").await.csrf();
    let (status, body) = b
        .post_json(
            "/account/security-keys/register/start",
            &csrf,
            json!({"kind": "passkey", "name": "Thief"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["redirect"],
        "/login/reauth?next=%2Faccount%2Fsecurity%2Dkeys"
    );

    let p = b
        .submit(
            "/login/reauth?next=%2Faccount%2Fsecurity%2Dkeys",
            "/login/reauth",
            &[("password", PASSWORD), ("next", "/account/security-keys")],
        )
        .await;
    assert_redirect(&p, "/account/security-keys");
    let p = b
        .submit(
            "/account/security-keys",
            "/account/security-keys/remove",
            &[("id", &id), ("confirm", "yes")],
        )
        .await;
    assert_redirect(&p, "/account/security-keys?done=removed");
    assert_eq!(b.get("/account/security-keys").await.count(".key"), 0);
    assert!(
        app.audit_names()
            .await
            .contains(&"webauthn.removed".to_string())
    );
    let mail = app.wait_for_outbox(2).await;
    assert!(
        mail.iter()
            .any(|m| m.contains("removed") && m.contains("Spare key")),
        "{mail:?}"
    );
    // With no factor left, the password alone signs in again.
    b.logout().await;
    assert_redirect(&b.login("rae@example.com", PASSWORD).await, "/account");
}

#[tokio::test]
async fn ceremonies_need_the_csrf_header_and_are_single_use() {
    let app = spawn_app().await;
    app.create_user("uma@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("uma@example.com").await;
    let (status, _) = b
        .post_json(
            "/account/security-keys/register/start",
            "forged",
            json!({"kind": "passkey", "name": "X"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let csrf = b.get("/account/security-keys").await.csrf();
    let (_, options) = b
        .post_json(
            "/account/security-keys/register/start",
            &csrf,
            json!({"kind": "security_key", "name": "Once"}),
        )
        .await;
    let ccr: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let mut key = SoftPasskey::new(true);
    let cred = key.do_registration(origin(&app), ccr).unwrap();
    let body = json!({ "credential": cred });
    let (first, _) = b
        .post_json(
            "/account/security-keys/register/finish",
            &csrf,
            body.clone(),
        )
        .await;
    assert_eq!(first, StatusCode::OK);
    let (second, err) = b
        .post_json("/account/security-keys/register/finish", &csrf, body)
        .await;
    assert_eq!(second, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap().contains("Try again"));
    assert_eq!(b.get("/account/security-keys").await.count(".key"), 1);
}

#[tokio::test]
async fn on_an_ip_address_everything_but_webauthn_works() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            public_url: Some("http://127.0.0.1:8080".into()),
            ..Default::default()
        },
    })
    .await;
    app.create_user("ip@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("ip@example.com").await;
    let csrf = b.get("/account/security-keys").await.csrf();
    let (status, body) = b
        .post_json(
            "/account/security-keys/register/start",
            &csrf,
            json!({"kind": "passkey", "name": "X"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("domain name"));
}

#[tokio::test]
async fn a_security_key_confirms_it_is_you_instead_of_the_password() {
    let app = spawn_app().await;
    app.create_user("kai@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("kai@example.com").await;
    let mut key = SoftPasskey::new(true);
    let id = add_key(&app, &b, &mut key, "security_key", "Mine").await;
    use base64::Engine;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);

    app.clock.advance(660);
    let p = b
        .submit(
            "/account/security-keys",
            "/account/security-keys/remove",
            &[("id", &id)],
        )
        .await;
    assert_redirect(&p, "/login/reauth?next=%2Faccount%2Fsecurity%2Dkeys");
    let page = b.get("/login/reauth?next=%2Faccount%2Fsecurity-keys").await;
    assert!(page.body.contains("Use a security key"));
    let csrf = page.csrf();

    let (status, options) = b
        .post_json("/login/reauth/webauthn/start", &csrf, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let cred = key.do_authentication(origin(&app), rcr).unwrap();
    let (status, body) = b
        .post_json(
            "/login/reauth/webauthn/finish",
            &csrf,
            json!({"credential": cred, "next": "/account/security-keys"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["redirect"], "/account/security-keys");
    assert!(
        app.audit_names()
            .await
            .contains(&"reauth.succeeded".to_string())
    );
    let p = b
        .submit(
            "/account/security-keys",
            "/account/security-keys/remove",
            &[("id", &id), ("confirm", "yes")],
        )
        .await;
    assert_redirect(&p, "/account/security-keys?done=removed");
}

#[tokio::test]
async fn a_passkey_challenge_is_answered_once_even_from_its_own_sealed_cookie() {
    let app = spawn_app().await;
    let uid = app.create_user("once@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("once@example.com").await;
    let mut key = SoftPasskey::new(true);
    let id = add_key(&app, &b, &mut key, "passkey", "Phone").await;
    b.logout().await;

    let fresh = app.browser();
    let csrf = fresh.get("/login").await.csrf();
    let (status, options) = fresh
        .post_json("/login/passkey/start", &csrf, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let sealed = fresh
        .cookie("portcullis_passkey")
        .expect("the ceremony travels in a cookie");
    let sign = |key: &mut SoftPasskey| {
        let mut rcr: RequestChallengeResponse = serde_json::from_value(options.clone()).unwrap();
        rcr.public_key.allow_credentials = vec![AllowCredentials {
            type_: "public-key".into(),
            id: id.clone(),
            transports: None,
        }];
        let mut cred: PublicKeyCredential = key.do_authentication(origin(&app), rcr).unwrap();
        cred.response.user_handle = Some(uuid::Uuid::parse_str(&uid).unwrap().as_bytes().to_vec());
        json!({ "credential": cred })
    };
    let first = sign(&mut key);
    let (status, body) = fresh.post_json("/login/passkey/finish", &csrf, first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        fresh
            .cookie("portcullis_passkey")
            .is_none_or(|v| v.is_empty()),
        "the spent ceremony's cookie is cleared"
    );
    // The same challenge, signed afresh (a valid, newer counter), with the cookie put
    // back: the challenge was used, so it is refused.
    let other = app.browser();
    other.set_cookie("portcullis_csrf", &fresh.cookie("portcullis_csrf").unwrap());
    other.set_cookie("portcullis_passkey", &sealed);
    let again = sign(&mut key);
    let (status, body) = other.post_json("/login/passkey/finish", &csrf, again).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // And a cookie sealed for another browser (another CSRF seed) opens nothing.
    let stranger = app.browser();
    let csrf2 = stranger.get("/login").await.csrf();
    stranger.set_cookie("portcullis_passkey", &sealed);
    let third = sign(&mut key);
    let (status, _) = stranger
        .post_json("/login/passkey/finish", &csrf2, third)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
