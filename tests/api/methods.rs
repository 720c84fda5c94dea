//! HTTP methods: `HEAD` answers as `GET` without a body, a wrong method on a known path
//! gets 405 with `Allow`, an unknown path stays 404.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

#[tokio::test]
async fn head_answers_as_get_without_a_body() {
    let app = spawn_app().await;
    let client = app.browser().client;
    for path in [
        "/healthz",
        "/login",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        // Signed out: the same redirect to sign in.
        "/account",
        "/static/css/portcullis.css",
        "/favicon.ico",
    ] {
        let url = format!("{}{path}", app.base);
        let get = client.get(&url).send().await.unwrap();
        let head = client.head(&url).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        for h in [
            "content-type",
            "location",
            "cache-control",
            "x-frame-options",
        ] {
            assert_eq!(head.headers().get(h), get.headers().get(h), "{path}: {h}");
        }
        let head_len = head.headers().get("content-length").cloned();
        let body = get.bytes().await.unwrap();
        if let Some(len) = head_len {
            assert_eq!(len.to_str().unwrap(), body.len().to_string(), "{path}");
        }
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_allow_and_an_unknown_path_404() {
    let app = spawn_app().await;
    let client = app.browser().client;
    let allow = |r: &reqwest::Response| {
        let mut v: Vec<String> = r
            .headers()
            .get_all("allow")
            .iter()
            .flat_map(|h| h.to_str().unwrap().split(','))
            .map(|m| m.trim().to_string())
            .collect();
        v.sort();
        v
    };
    for (method, path, allowed) in [
        (Method::POST, "/healthz", vec!["GET", "HEAD"]),
        (Method::DELETE, "/login", vec!["GET", "HEAD", "POST"]),
        (Method::PUT, "/oauth/token", vec!["OPTIONS", "POST"]),
        (Method::GET, "/logout", vec!["POST"]),
        (Method::HEAD, "/logout", vec!["POST"]),
    ] {
        let r = client
            .request(method.clone(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(allow(&r), allowed, "{method} {path}");
    }
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::HEAD, "/nope"),
        (Method::POST, "/nope"),
        (Method::GET, "/static/nope.css"),
        (Method::GET, "/admin/users/a/b/c"),
    ] {
        let r = client
            .request(method.clone(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
}

/// Browsers ask for `/favicon.ico` by themselves: they get the icon (SVG), cached, not
/// an HTML error page; pages name the same icon.
#[tokio::test]
async fn the_favicon_is_an_icon() {
    let app = spawn_app().await;
    let b = app.browser();
    let res = b
        .client
        .get(format!("{}/favicon.ico", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert_eq!(res.headers()["cache-control"], "public, max-age=86400");
    assert!(res.text().await.unwrap().starts_with("<svg"));
    let login = b.get("/login").await;
    assert!(
        login
            .body
            .contains(r#"<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">"#)
    );
}

/// Pages ask for the stylesheet and script by a versioned URL (a hash of the file), so
/// an upgrade's new styles reach browsers at once; that URL may be cached for good, the
/// plain one for an hour.
#[tokio::test]
async fn static_files_are_asked_for_by_version() {
    let app = spawn_app().await;
    let b = app.browser();
    let login = b.get("/login").await;
    let css = format!(
        "/static/css/portcullis.css?v={}",
        portcullis::web::routes::CSS_VERSION
    );
    let js = format!(
        "/static/js/webauthn.js?v={}",
        portcullis::web::routes::JS_VERSION
    );
    assert!(
        login.body.contains(&format!("href=\"{css}\"")),
        "{}",
        login.body
    );
    assert!(
        login.body.contains(&format!("src=\"{js}\"")),
        "{}",
        login.body
    );
    for (path, cache) in [
        (css.as_str(), "public, max-age=31536000, immutable"),
        (js.as_str(), "public, max-age=31536000, immutable"),
        ("/static/css/portcullis.css", "public, max-age=3600"),
    ] {
        let res = b
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["cache-control"], cache, "{path}");
    }
    assert_ne!(
        portcullis::web::routes::CSS_VERSION,
        portcullis::web::routes::JS_VERSION
    );
}
