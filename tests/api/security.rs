use crate::helpers::*;
use portcullis::config::FileConfig;
use reqwest::StatusCode;

#[tokio::test]
async fn forged_posts_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    app.create_user("csrf@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("csrf@example.com").await;
    let new = [
        ("current_password", PASSWORD),
        ("new_password", "attacker chosen passphrase 1"),
    ];

    // No token.
    let p = b.post("/account/password", &new).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // A token from another browser (the attacker's own session).
    let attacker = app.browser();
    let foreign = attacker.get("/login").await.csrf();
    let mut f = vec![("csrf_token", foreign.as_str())];
    f.extend_from_slice(&new);
    assert_eq!(
        b.post("/account/password", &f).await.status,
        StatusCode::FORBIDDEN
    );
    // The right token, but sent from another site.
    let token = b.get("/account").await.csrf();
    let mut f = vec![("csrf_token", token.as_str())];
    f.extend_from_slice(&new);
    let cross = b
        .client
        .post(format!("{}/account/password", app.base))
        .header("Origin", "https://evil.example")
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let cross = b
        .client
        .post(format!("{}/account/password", app.base))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // Logout is a form too: a forged one does not sign the user out.
    assert_eq!(
        b.post("/logout", &[("csrf_token", "nope")]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(b.get("/account").await.status, StatusCode::OK);

    // Nothing changed: the old password still works.
    assert!(
        !app.audit_names()
            .await
            .contains(&"password.changed".to_string())
    );
    app.browser().login_ok("csrf@example.com").await;
}

#[tokio::test]
async fn pages_carry_strict_security_headers_and_cookie_flags() {
    let app = spawn_app().await;
    let b = app.browser();
    let p = b.get("/login").await;
    let h = &p.headers;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.get("referrer-policy").is_some());
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS over plain http"
    );
    assert!(h.get("x-request-id").is_some());
    let set = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(set.iter().any(|c| c.starts_with("portcullis_csrf=")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Lax")));

    app.create_user("hdr@example.com", &[]).await;
    let p = b.login("hdr@example.com", PASSWORD).await;
    let session = p
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("portcullis="))
        .expect("session cookie at sign-in");
    assert!(session.contains("HttpOnly"));
    assert!(session.contains("SameSite=Lax"));
    assert!(session.contains("Path=/"));
}

#[tokio::test]
async fn over_https_cookies_are_secure_and_host_prefixed() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            public_url: Some("https://auth.example".into()),
            ..Default::default()
        },
    })
    .await;
    let b = app.browser();
    let p = b.get("/login").await;
    assert!(p.headers.get("strict-transport-security").is_some());
    let set: Vec<String> = p
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let csrf = set
        .iter()
        .find(|c| c.starts_with("__Host-portcullis-csrf="))
        .expect("host-prefixed csrf cookie");
    assert!(csrf.contains("Secure"));
    // Sign in (the test client talks http; it sends Secure cookies back to 127.0.0.1 only
    // over https, so check the Set-Cookie of the sign-in response itself).
    app.create_user("tls@example.com", &[]).await;
    let token = p.csrf();
    let seed = csrf.split(';').next().unwrap().to_string();
    let resp = b
        .client
        .post(format!("{}/login", app.base))
        .header("Cookie", seed)
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "tls@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("__Host-portcullis="))
        .expect("__Host- session cookie");
    assert!(
        session.contains("Secure") && session.contains("HttpOnly") && session.contains("Path=/")
    );
    assert!(!session.to_lowercase().contains("domain="));
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_never_a_500() {
    let app = spawn_app().await;
    let b = app.browser();
    let token = b.get("/login").await.csrf();

    // 2 MB body.
    let big = "a".repeat(2 * 1024 * 1024);
    let r = b
        .client
        .post(format!("{}/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&email={big}&password=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.unwrap().contains("too large"));

    // Missing fields.
    let p = b.post("/login", &[("csrf_token", &token)]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("could not be read"));
    assert!(p.body.contains("Request id"));

    // Invalid UTF-8.
    let r = b
        .client
        .post(format!("{}/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&email=%FF%FE&password=%C3%28").into_bytes())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(r.text().await.unwrap().contains("role=\"alert\""));

    // Wrong content type.
    let r = b
        .client
        .post(format!("{}/login", app.base))
        .json(&serde_json::json!({"email": "x"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // SQL in a field is just text.
    let p = b.login("' OR 1=1 --@example.com", "' OR '1'='1").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);

    // Unknown page: a readable 404 with the request id.
    let p = b.get("/no/such/page").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.contains("Page not found") && p.body.contains("Request id"));

    // A bad query string.
    let p = b.get("/setup?token=%FF").await;
    assert!(p.status.is_client_error());
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let b = app.browser();
    let p = b.get("/healthz").await;
    assert_eq!(p.status, StatusCode::OK);
    let p = b.get("/readyz").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("database: ok"));
    if redis_url().is_some() {
        assert!(p.body.contains("redis: ok"));
    }
}
