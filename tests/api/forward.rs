//! `/auth/forward` as a reverse proxy calls it.

use reqwest::StatusCode;

use crate::helpers::*;

async fn forward_app() -> TestApp {
    spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            forward_auth_allowed_domains: Some(vec!["example.com".into()]),
            ..Default::default()
        },
    })
    .await
}

#[tokio::test]
async fn a_session_gets_the_user_in_headers_and_nothing_else_passes() {
    let app = forward_app().await;
    let uid = app.create_user("fay@example.com", &["admin"]).await;
    let b = app.browser();

    // No session: 401, or a trip through the login page for an allowed return address.
    assert_eq!(
        b.get("/auth/forward").await.status,
        StatusCode::UNAUTHORIZED
    );
    for bad in [
        "https://evil.com/",
        "https://example.com.evil.com/",
        "javascript:alert(1)",
    ] {
        let p = b.get(&format!("/auth/forward?rd={}", urlencode(bad))).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    let rd = "https://app.example.com/dashboard?tab=1";
    let p = b.get(&format!("/auth/forward?rd={}", urlencode(rd))).await;
    assert_eq!(p.status, StatusCode::FOUND);
    let login = p.location().unwrap();
    assert!(
        login.starts_with("http://localhost:8080/login?next=%2Fauth%2Fforward%2Freturn"),
        "{login}"
    );

    // Signing in with that `next` comes back through /auth/forward/return to the app.
    let next = "/auth/forward/return?rd=https%3A%2F%2Fapp.example.com%2Fdashboard%3Ftab%3D1";
    let p = b
        .submit(
            "/login",
            "/login",
            &[
                ("email", "fay@example.com"),
                ("password", PASSWORD),
                ("next", next),
            ],
        )
        .await;
    assert_redirect(&p, next);
    assert_redirect(&b.get(next).await, rd);
    assert_redirect(
        &b.get("/auth/forward/return?rd=https%3A%2F%2Fevil.com%2F")
            .await,
        "/account",
    );

    let p = b.get("/auth/forward").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-user"], uid.as_str());
    assert_eq!(p.headers["remote-email"], "fay@example.com");
    assert_eq!(p.headers["remote-name"], "Test User");
    assert_eq!(p.headers["remote-groups"], "admin");

    // Signed out: refused at once.
    b.logout().await;
    assert_eq!(
        b.get("/auth/forward").await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The public URL is http://localhost:8080: another port or scheme on that host, or a
/// listed domain on a port it did not name, is not where we send anyone.
#[tokio::test]
async fn a_return_address_off_our_origin_is_refused() {
    let app = forward_app().await;
    app.create_user("gil@example.com", &[]).await;
    let b = app.browser();
    let bad = [
        "http://localhost:1/x",
        "https://localhost:8080/x",
        "http://localhost/x",
        "http://localhost:8080@evil.com/",
        "https://app.example.com:8443/",
    ];
    for rd in bad {
        let p = b.get(&format!("/auth/forward?rd={}", urlencode(rd))).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{rd}");
        assert_eq!(p.location(), None, "{rd}");
    }
    let p = b
        .get(&format!(
            "/auth/forward?rd={}",
            urlencode("http://localhost:8080/x")
        ))
        .await;
    assert_eq!(p.status, StatusCode::FOUND);

    b.login_ok("gil@example.com").await;
    for rd in bad {
        let p = b
            .get(&format!("/auth/forward/return?rd={}", urlencode(rd)))
            .await;
        assert_redirect(&p, "/account");
    }
    assert_redirect(
        &b.get(&format!(
            "/auth/forward/return?rd={}",
            urlencode("http://localhost:8080/x")
        ))
        .await,
        "http://localhost:8080/x",
    );
}
