//! RFC 8628, the device authorization grant: a device (a TV, a command-line tool)
//! starts at `/oauth/device_authorization`, its user enters the code at `/device`
//! and allows or denies, and the device's polls at the token endpoint get each of the
//! RFC's answers, then tokens exactly once. The refusals (clients without the grant,
//! guessed codes, the app's rules) are in `refusals`.

mod refusals;

use portcullis::auth::oauth::authorize::DEVICE_GRANT;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::oidc::{client_with, jwt_claims, new_client, oidc_app_with, token_request};

/// A client that opted in to the device grant (and refresh tokens).
pub(super) async fn device_client(app: &TestApp, public: bool) -> (String, Option<String>) {
    let mut c = new_client(public);
    c.name = "Living Room TV".into();
    c.redirect_uris = vec![];
    c.grants = vec![DEVICE_GRANT.into(), "refresh_token".into()];
    client_with(app, c).await
}

/// POST /oauth/device_authorization as a public client (`client_id` in the form) or a
/// confidential one (HTTP Basic).
pub(super) async fn start(
    app: &TestApp,
    (id, secret): (&str, Option<&str>),
    scope: &str,
) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new().post(format!("{}/oauth/device_authorization", app.base));
    let mut form = vec![("scope", scope)];
    match secret {
        Some(s) => r = r.basic_auth(id, Some(s)),
        None => form.push(("client_id", id)),
    }
    let res = r.form(&form).send().await.unwrap();
    let status = res.status();
    if status == StatusCode::OK {
        assert_eq!(res.headers()["cache-control"], "no-store");
    }
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A started request's device code and user code.
pub(super) async fn started(app: &TestApp, id: &str, scope: &str) -> (String, String) {
    let (status, d) = start(app, (id, None), scope).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    (
        d["device_code"].as_str().unwrap().to_string(),
        d["user_code"].as_str().unwrap().to_string(),
    )
}

/// One poll of a public client at the token endpoint.
pub(super) async fn poll(app: &TestApp, id: &str, device_code: &str) -> (StatusCode, Value) {
    token_request(
        app,
        None,
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
            ("client_id", id),
        ],
    )
    .await
}

/// Enters `code` on the `/device` form (**Continue**).
pub(super) async fn enter(b: &Browser, code: &str) -> Page {
    b.submit("/device", "/device", &[("user_code", code)]).await
}

/// Answers the request shown on `page` with `decision` (`allow` or `deny`).
pub(super) async fn answer(b: &Browser, page: &Page, decision: &str) -> Page {
    let sel = scraper::Selector::parse("form[action='/device'] input[type=hidden]").unwrap();
    let mut fields: Vec<(String, String)> = page
        .doc()
        .select(&sel)
        .map(|e| {
            let v = e.value();
            (
                v.attr("name").unwrap().to_string(),
                v.attr("value").unwrap_or_default().to_string(),
            )
        })
        .collect();
    fields.push(("decision".into(), decision.into()));
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post("/device", &refs).await
}

pub(super) fn error_of(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_device_gets_tokens_once_its_user_allows_it() {
    let app = oidc_app_with(Default::default()).await;
    let uid = app.create_user("kim@example.com", &[]).await;
    let (id, _) = device_client(&app, true).await;

    // Discovery names the endpoint and the grant.
    let meta: Value = reqwest::get(format!("{}/.well-known/openid-configuration", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["device_authorization_endpoint"],
        format!("{}/oauth/device_authorization", app.base)
    );
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from(DEVICE_GRANT))
    );

    let (status, d) = start(&app, (&id, None), "openid email offline_access").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a scope the client may not have"
    );
    assert_eq!(error_of(&d), "invalid_scope");
    let (status, d) = start(&app, (&id, None), "openid email").await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let user_code = d["user_code"].as_str().unwrap().to_string();
    let device_code = d["device_code"].as_str().unwrap().to_string();
    let letters = "BCDFGHJKLMNPQRSTVWXZ";
    assert_eq!(user_code.len(), 9, "{user_code}");
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| letters.contains(c)),
        "{user_code}"
    );
    assert!(device_code.len() >= 43, "32 random bytes");
    assert_eq!(d["verification_uri"], format!("{}/device", app.base));
    assert_eq!(
        d["verification_uri_complete"],
        format!("{}/device?user_code={user_code}", app.base)
    );
    assert_eq!(d["expires_in"], 600);
    assert_eq!(d["interval"], 5);
    // Audited with the client and the scope; the refused start before it was not a
    // start. Neither code is in the log: one is the device's credential, the other
    // links an account to it.
    let events = app.audit().await;
    let starts: Vec<_> = events
        .iter()
        .filter(|e| e.event == "device.authorization_started")
        .collect();
    assert_eq!(starts.len(), 1, "{events:?}");
    let e = starts[0];
    assert_eq!(e.outcome, "success");
    let details: Value = serde_json::from_str(&e.details).unwrap();
    assert_eq!(details["client_id"], id.as_str());
    assert_eq!(details["scope"], "openid email");
    for code in [&device_code, &user_code, &user_code.replace('-', "")] {
        assert!(!format!("{e:?}").contains(code.as_str()), "{e:?}");
    }

    // The user has not answered: pending; polled again at once: slow down.
    let (status, t) = poll(&app, &id, &device_code).await;
    assert_eq!(
        (status, error_of(&t)),
        (StatusCode::BAD_REQUEST, "authorization_pending")
    );
    let (status, t) = poll(&app, &id, &device_code).await;
    assert_eq!(
        (status, error_of(&t)),
        (StatusCode::BAD_REQUEST, "slow_down")
    );
    // The interval is now 10 s: after 5 s, still too soon; after 10 more, pending.
    app.clock.advance(5);
    let (_, t) = poll(&app, &id, &device_code).await;
    assert_eq!(error_of(&t), "slow_down");
    app.clock.advance(15);
    let (_, t) = poll(&app, &id, &device_code).await;
    assert_eq!(error_of(&t), "authorization_pending");

    // The user must sign in first, and comes back to the code.
    let b = app.browser();
    let p = b.get("/device").await;
    assert_redirect(&p, "/login?next=%2Fdevice");
    b.login_ok("kim@example.com").await;
    let p = b.get("/device").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.text_of("label[for=user_code]").as_deref(), Some("Code"));
    assert!(p.body.contains(">Continue</button>"), "{}", p.body);
    // Typed in lower case, without the dash.
    let p = enter(&b, &user_code.to_lowercase().replace('-', "")).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(
        p.body.contains("Allow Living Room TV on your device?"),
        "{}",
        p.body
    );
    assert!(
        p.body
            .contains("Signed in as <strong>kim@example.com</strong>"),
        "{}",
        p.body
    );
    assert!(p.body.contains(&user_code), "the code is shown to compare");
    assert!(p.body.contains("See your email address"), "{}", p.body);
    assert_eq!(p.headers["cache-control"], "no-store");
    let done = answer(&b, &p, "allow").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Device connected"), "{}", done.body);

    // The next poll gets the tokens, issued like a code grant's.
    app.clock.advance(10);
    let (status, t) = poll(&app, &id, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "openid email");
    let claims = jwt_claims(t["id_token"].as_str().expect("an ID token for openid"));
    assert_eq!(claims["sub"], uid);
    assert_eq!(claims["aud"], id);
    assert_eq!(claims["email"], "kim@example.com");
    assert!(claims["auth_time"].is_i64());
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    let refresh = t["refresh_token"].as_str().expect("a refresh token");
    let info = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.base))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), StatusCode::OK);

    // The device code works once.
    app.clock.advance(10);
    let (status, again) = poll(&app, &id, &device_code).await;
    assert_eq!(
        (status, error_of(&again)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // The refresh token works like any other.
    let (status, r) = token_request(
        &app,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");

    let names = app.audit_names().await;
    for e in ["device.approved", "consent.granted", "token.issued"] {
        assert!(names.contains(&e.to_string()), "{e} in {names:?}");
    }
    let issued = app.audit().await;
    let issued = issued.iter().find(|e| e.event == "token.issued").unwrap();
    assert!(issued.details.contains(DEVICE_GRANT) || issued.details.contains("refresh_token"));
    // The app is listed among the user's apps, revocable there.
    let apps = b.get("/account/apps").await;
    assert!(apps.body.contains("Living Room TV"), "{}", apps.body);
    // The code is spent on the page too.
    let p = enter(&b, &user_code).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deny_tells_the_device_access_denied_and_a_code_expires() {
    let app = oidc_app_with(Default::default()).await;
    let uid = app.create_user("kim@example.com", &[]).await;
    let (id, _) = device_client(&app, true).await;
    let (device_code, user_code) = started(&app, &id, "openid").await;
    let b = app.browser();
    b.login_ok("kim@example.com").await;
    // The link a device shows goes straight to the question.
    let p = b.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains(">Deny</button>"), "{}", p.body);
    let done = answer(&b, &p, "deny").await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("Access denied"), "{}", done.body);
    let (status, t) = poll(&app, &id, &device_code).await;
    assert_eq!(
        (status, error_of(&t)),
        (StatusCode::BAD_REQUEST, "access_denied")
    );
    let denied = app.audit().await;
    let denied = denied.iter().find(|e| e.event == "device.denied").unwrap();
    assert_eq!(denied.target_id.as_deref(), Some(uid.as_str()));
    assert!(
        !app.audit_names()
            .await
            .contains(&"consent.granted".to_string())
    );
    // Answered once: allowing afterwards changes nothing.
    let again = answer(&b, &p, "allow").await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    let (_, t) = poll(&app, &id, &device_code).await;
    assert_eq!(error_of(&t), "access_denied");

    // A request nobody answers expires: the device is told, the code is refused.
    let (device_code, user_code) = started(&app, &id, "openid").await;
    app.clock.advance(601);
    let (status, t) = poll(&app, &id, &device_code).await;
    assert_eq!(
        (status, error_of(&t)),
        (StatusCode::BAD_REQUEST, "expired_token")
    );
    let p = enter(&b, &user_code).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(
        p.error().unwrap().contains("not valid, has expired"),
        "{:?}",
        p.error()
    );
}

#[tokio::test]
async fn concurrent_polls_after_the_approval_get_tokens_exactly_once() {
    let app = oidc_app_with(Default::default()).await;
    app.create_user("kim@example.com", &[]).await;
    let (id, secret) = device_client(&app, false).await;
    let secret = secret.unwrap();
    let (status, d) = start(&app, (&id, Some(&secret)), "openid profile").await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let device_code = d["device_code"].as_str().unwrap().to_string();
    let b = app.browser();
    b.login_ok("kim@example.com").await;
    let p = enter(&b, d["user_code"].as_str().unwrap()).await;
    answer(&b, &p, "allow").await;

    // Eight polls at once (a device retrying, or a copy of its code): each its own
    // connection, started together.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (base, id, secret, dc) = (
            app.base.clone(),
            id.clone(),
            secret.clone(),
            device_code.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = reqwest::Client::new()
                .post(format!("{base}/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", DEVICE_GRANT), ("device_code", dc.as_str())])
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let won: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    assert!(won[0].1["access_token"].is_string());
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*status, error_of(body)),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
    }
    let issued = app
        .audit_names()
        .await
        .iter()
        .filter(|e| *e == "token.issued")
        .count();
    assert_eq!(issued, 1);
}
