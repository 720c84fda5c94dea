//! Second factors: TOTP (checked against RFC 6238 with an HMAC-SHA1 written here, not
//! totp-rs), recovery codes, the second sign-in step, and step-up.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;

use crate::helpers::*;

/// RFC 4226 HOTP / RFC 6238 TOTP, independent of the server's implementation.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret).unwrap();
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = ((h[off] as u32 & 0x7f) << 24)
        | ((h[off + 1] as u32) << 16)
        | ((h[off + 2] as u32) << 8)
        | h[off + 3] as u32;
    format!(
        "{:0width$}",
        bin % 10u32.pow(digits),
        width = digits as usize
    )
}

fn base32_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b' ' && *c != b'=') {
        let v = A
            .iter()
            .position(|x| *x == c.to_ascii_uppercase())
            .expect("base32") as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            out.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    out
}

#[test]
fn rfc6238_vectors_and_an_independent_hmac_agree_with_the_server() {
    let secret = b"12345678901234567890";
    // RFC 6238 appendix B (SHA-1, 8 digits), and their last 6 digits as apps show them.
    for (t, eight) in [
        (59u64, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ] {
        assert_eq!(
            hotp(secret, t / 30, 8),
            eight,
            "our reference HOTP at T={t}"
        );
        let six = &eight[2..];
        assert_eq!(
            portcullis::domain::totp::code_at(secret, t / 30).unwrap(),
            six,
            "server code at T={t}"
        );
        assert_eq!(
            portcullis::domain::totp::matching_step(secret, six, t),
            Some(t / 30)
        );
    }
    let random = portcullis::domain::totp::new_secret();
    for step in [0u64, 1, 56_666_666, 99_999_999] {
        assert_eq!(
            portcullis::domain::totp::code_at(&random, step).unwrap(),
            hotp(&random, step, 6)
        );
    }
}

/// Signs in, turns the authenticator app on and returns its secret and recovery codes.
pub async fn enrol(app: &TestApp, b: &Browser) -> (Vec<u8>, Vec<String>) {
    let page = b.get("/account/totp").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<svg"), "QR code inline");
    assert_eq!(
        page.text_of("label[for=code]").unwrap(),
        "Authentication code"
    );
    let key = page.text_of("#manual-key").unwrap();
    let secret = base32_decode(&key);
    let step = app.clock.now() as u64 / 30;
    let p = b
        .post(
            "/account/totp",
            &[
                ("csrf_token", &page.csrf()),
                ("code", &hotp(&secret, step, 6)),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let sel = scraper::Selector::parse("#recovery-codes code").unwrap();
    let codes: Vec<String> = p.doc().select(&sel).map(|e| e.text().collect()).collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn password_step(b: &Browser, email: &str) -> Page {
    let p = b.login(email, PASSWORD).await;
    assert_redirect(&p, "/login/mfa");
    b.get("/login/mfa").await
}

#[tokio::test]
async fn totp_enrolment_then_sign_in_needs_a_fresh_code() {
    let app = spawn_app().await;
    let uid = app.create_user("two@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("two@example.com").await;
    let (secret, _) = enrol(&app, &b).await;
    let names = app.audit_names().await;
    assert!(names.contains(&"totp.enabled".to_string()));
    assert!(names.contains(&"recovery_codes.generated".to_string()));

    // The secret is encrypted at rest.
    let id = uid.clone();
    let stored = app
        .db
        .run(move |c| {
            portcullis::db::repo::mfa::totp_secret(c, &id).map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.contains(&portcullis::domain::totp::to_base32(&secret)));

    let fresh = app.browser();
    let page = password_step(&fresh, "two@example.com").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        fresh.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "not signed in after the password alone"
    );

    let step = app.clock.now() as u64 / 30;
    // The code used to enable the app is spent: a replay is refused.
    let enable_step_code = hotp(&secret, step, 6);
    let p = fresh
        .post(
            "/login/mfa",
            &[("csrf_token", &page.csrf()), ("code", &enable_step_code)],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.error().unwrap().contains("did not work"));
    let wrong = fresh
        .post(
            "/login/mfa",
            &[("csrf_token", &page.csrf()), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let next_code = hotp(&secret, step + 1, 6);
    let ok = fresh
        .post(
            "/login/mfa",
            &[("csrf_token", &page.csrf()), ("code", &next_code)],
        )
        .await;
    assert_redirect(&ok, "/account");
    assert_eq!(fresh.get("/account").await.status, StatusCode::OK);
    // And once more with the same code, from another browser: refused.
    let other = app.browser();
    let page = password_step(&other, "two@example.com").await;
    let p = other
        .post(
            "/login/mfa",
            &[("csrf_token", &page.csrf()), ("code", &next_code)],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    let names = app.audit_names().await;
    assert!(names.contains(&"mfa.succeeded".to_string()));
    assert!(names.contains(&"mfa.failed".to_string()));
}

#[tokio::test]
async fn recovery_codes_work_once_each() {
    let app = spawn_app().await;
    app.create_user("rec@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("rec@example.com").await;
    let (_, codes) = enrol(&app, &b).await;

    let c1 = app.browser();
    let page = password_step(&c1, "rec@example.com").await;
    let p = c1
        .post(
            "/login/mfa",
            &[
                ("csrf_token", &page.csrf()),
                ("code", &codes[0].to_uppercase()),
            ],
        )
        .await;
    assert_redirect(&p, "/account");
    assert!(
        app.audit_names()
            .await
            .contains(&"recovery_code.used".to_string())
    );
    // The owner is told, with how many are left. (Enrolment sent one notice already.)
    let mail = app.wait_for_outbox(2).await;
    assert!(
        mail.iter()
            .any(|m| m.contains("A recovery code was just used") && m.contains("9 unused")),
        "{mail:?}"
    );

    let c2 = app.browser();
    let page = password_step(&c2, "rec@example.com").await;
    let p = c2
        .post(
            "/login/mfa",
            &[("csrf_token", &page.csrf()), ("code", &codes[0])],
        )
        .await;
    assert_eq!(
        p.status,
        StatusCode::UNAUTHORIZED,
        "a used recovery code is refused"
    );
    let p = c2
        .post(
            "/login/mfa",
            &[("csrf_token", &page.csrf()), ("code", &codes[1])],
        )
        .await;
    assert_redirect(&p, "/account");
}

#[tokio::test]
async fn sensitive_changes_ask_to_confirm_it_is_you() {
    let app = spawn_app().await;
    app.create_user("step@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("step@example.com").await;
    let (secret, _) = enrol(&app, &b).await;

    // Eleven minutes later, disabling the app needs a fresh confirmation.
    app.clock.advance(660);
    let token = b.get("/account/totp").await.csrf();
    let p = b
        .post("/account/totp/disable", &[("csrf_token", &token)])
        .await;
    assert_redirect(&p, "/login/reauth?next=%2Faccount%2Ftotp");
    let page = b.get("/login/reauth?next=%2Faccount%2Ftotp").await;
    assert_eq!(page.text_of("label[for=password]").unwrap(), "Password");
    let step = app.clock.now() as u64 / 30;
    let bad = b
        .post(
            "/login/reauth",
            &[
                ("csrf_token", &page.csrf()),
                ("password", "wrong password here"),
                ("code", &hotp(&secret, step, 6)),
                ("next", "/account/totp"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let page = b.get("/login/reauth?next=%2Faccount%2Ftotp").await;
    let ok = b
        .post(
            "/login/reauth",
            &[
                ("csrf_token", &page.csrf()),
                ("password", PASSWORD),
                ("code", &hotp(&secret, step, 6)),
                ("next", "/account/totp"),
            ],
        )
        .await;
    assert_redirect(&ok, "/account/totp");
    let token = b.get("/account/totp").await.csrf();
    let p = b
        .post(
            "/account/totp/disable",
            &[("csrf_token", &token), ("confirm", "yes")],
        )
        .await;
    assert_redirect(&p, "/account/totp?done=disabled");
    assert!(
        app.audit_names()
            .await
            .contains(&"totp.disabled".to_string())
    );
    // Without a second factor, the password alone signs in again.
    app.browser().login_ok("step@example.com").await;
}

#[tokio::test]
async fn guessing_codes_is_throttled_per_account() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            login_failures_before_backoff: Some(3),
            ..Default::default()
        },
    })
    .await;
    app.create_user("guess@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("guess@example.com").await;
    enrol(&app, &b).await;
    let g = app.browser();
    let page = password_step(&g, "guess@example.com").await;
    let token = page.csrf();
    assert_eq!(
        g.post("/login/mfa", &[("csrf_token", &token), ("code", "111111")])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        g.post("/login/mfa", &[("csrf_token", &token), ("code", "222222")])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let p = g
        .post("/login/mfa", &[("csrf_token", &token), ("code", "333333")])
        .await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    let lockout = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == "rate_limit.exceeded")
        .expect("the lock-out is audited");
    assert!(
        lockout.details.contains("mfa_account"),
        "{}",
        lockout.details
    );
    // The lock-out holds for a new pending sign-in too (it is per account).
    let h = app.browser();
    let page = password_step(&h, "guess@example.com").await;
    let p = h
        .post(
            "/login/mfa",
            &[("csrf_token", &page.csrf()), ("code", "444444")],
        )
        .await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
}
