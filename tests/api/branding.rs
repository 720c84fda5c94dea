//! The operator's brand: the name on every page, in mail, in the authenticator app and
//! the passkey prompt; the logo, accent colour and extra stylesheet served at
//! versioned URLs; and settings that would give users a broken or unreadable page
//! refused at start.

use std::process::{Command, Stdio};

use portcullis::config::FileConfig;
use portcullis::startup::Application;
use reqwest::StatusCode;
use serde_json::json;

use crate::email::wait_link;
use crate::helpers::*;
use crate::smtp_sink::{SmtpSink, plain_text, subject};

const NAME: &str = "Acme <Sign-in> & Co";

fn branded(file: FileConfig) -> Options {
    Options {
        file: FileConfig {
            brand_name: Some(NAME.into()),
            ..file
        },
    }
}

/// Writes `body` to `name` in a directory that lives as long as the returned guard.
fn file_with(name: &str, body: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    (dir, path.display().to_string())
}

/// Every `href` of the page's stylesheet links, in order.
fn stylesheets(p: &Page) -> Vec<String> {
    let sel = scraper::Selector::parse("link[rel=stylesheet]").unwrap();
    p.doc()
        .select(&sel)
        .filter_map(|e| e.value().attr("href").map(str::to_string))
        .collect()
}

fn attr(p: &Page, css: &str, name: &str) -> Option<String> {
    let sel = scraper::Selector::parse(css).unwrap();
    p.doc()
        .select(&sel)
        .next()
        .and_then(|e| e.value().attr(name).map(str::to_string))
}

fn header_str<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn pages_show_the_brand_name_and_never_portcullis() {
    let app = spawn_app_with(branded(FileConfig::default())).await;
    let b = app.browser();
    let p = b.get("/login").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.text_of("title").unwrap(), format!("Sign in · {NAME}"));
    assert_eq!(p.text_of("header a.brand").unwrap(), NAME);
    // Escaped as text, never markup.
    assert!(!p.body.contains("<Sign-in>"), "{}", p.body);
    for part in ["title", "header", "main"] {
        let text = p.text_of(part).unwrap();
        assert!(
            !text.to_lowercase().contains("portcullis"),
            "{part}: {text}"
        );
    }

    // Pages rendered away from any handler (an unknown address) too.
    let missing = b.get("/no-such-page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text_of("title").unwrap().ends_with(NAME));
    assert_eq!(missing.text_of("header a.brand").unwrap(), NAME);

    // Without settings, portcullis is its own brand.
    let plain = spawn_app().await;
    let p = plain.browser().get("/login").await;
    assert_eq!(p.text_of("title").unwrap(), "Sign in · portcullis");
    assert_eq!(stylesheets(&p).len(), 1, "no brand stylesheets to load");
    assert_eq!(p.count("header img"), 0);
}

#[tokio::test]
async fn the_authenticator_app_and_the_passkey_prompt_name_the_brand() {
    let app = spawn_app_with(branded(FileConfig::default())).await;
    app.create_user("tara@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("tara@example.com").await;

    let p = b.get("/account/totp").await;
    assert_eq!(p.status, StatusCode::OK);
    let link = attr(&p, "#otpauth-link", "href").expect("otpauth link");
    let url = url::Url::parse(&link).unwrap();
    assert_eq!(url.scheme(), "otpauth");
    // Percent-encoded in the label and the parameter alike.
    assert_eq!(
        url.path(),
        "/Acme%20%3CSign-in%3E%20%26%20Co:tara%40example.com",
        "{link}"
    );
    let issuer = url
        .query_pairs()
        .find(|(k, _)| k == "issuer")
        .map(|(_, v)| v.into_owned());
    assert_eq!(issuer.as_deref(), Some(NAME), "{link}");

    let csrf = b.get("/account/security-keys").await.csrf();
    let (status, options) = b
        .post_json(
            "/account/security-keys/register/start",
            &csrf,
            json!({"kind": "passkey", "name": "Laptop"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    assert_eq!(options["publicKey"]["rp"]["name"], NAME);
}

#[tokio::test]
async fn the_registration_mail_carries_the_brand() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(branded(FileConfig {
        brand_accent_color: Some("#123456".into()),
        ..with_smtp(&sink.url())
    }))
    .await;
    let b = app.browser();
    assert_redirect(
        &b.register("wren@example.com", PASSWORD, "Wren").await,
        "/login?registered=1",
    );
    wait_link(&sink, "wren@example.com", "/verify-email?token=", 1).await;
    let mail = &sink.messages()[0].data;
    assert_eq!(
        subject(mail).as_deref(),
        Some(format!("Confirm your email address · {NAME}").as_str())
    );
    let text = plain_text(mail);
    assert!(text.contains(NAME), "{text}");
    assert!(!text.to_lowercase().contains("portcullis"), "{text}");
}

#[tokio::test]
async fn an_svg_logo_is_shown_and_served_unable_to_run_script() {
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script><rect width="10" height="10" style="fill:red"/></svg>"#;
    let (_dir, path) = file_with("logo.svg", svg);
    let app = spawn_app_with(branded(FileConfig {
        brand_logo: Some(path),
        ..Default::default()
    }))
    .await;
    let b = app.browser();
    for page in ["/login", "/register", "/no-such-page"] {
        let p = b.get(page).await;
        let src = attr(&p, "header a.brand img", "src").expect("logo in the header");
        assert!(
            src.starts_with("/static/brand/logo.svg?v="),
            "{page}: {src}"
        );
        assert_eq!(attr(&p, "header a.brand img", "alt").as_deref(), Some(NAME));
    }
    let src = attr(&b.get("/login").await, "header img", "src").unwrap();
    let r = b
        .client
        .get(format!("{}{src}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_str(&r, "content-type"), "image/svg+xml");
    assert_eq!(
        header_str(&r, "content-security-policy"),
        "default-src 'none'; style-src 'unsafe-inline'"
    );
    assert_eq!(header_str(&r, "x-content-type-options"), "nosniff");
    assert!(header_str(&r, "cache-control").contains("immutable"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), svg);

    // Only the logo there is.
    let other = b.get("/static/brand/logo.png").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let other = b.get("/static/brand/accent.css").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_png_logo_is_served_as_png() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let (_dir, path) = file_with("logo.png", png);
    let app = spawn_app_with(branded(FileConfig {
        brand_logo: Some(path),
        ..Default::default()
    }))
    .await;
    let b = app.browser();
    let src = attr(&b.get("/login").await, "header img", "src").unwrap();
    assert!(src.starts_with("/static/brand/logo.png?v="), "{src}");
    let r = b
        .client
        .get(format!("{}{src}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_str(&r, "content-type"), "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), png);
}

#[tokio::test]
async fn the_accent_and_the_custom_stylesheet_follow_the_built_in_one() {
    let css = "header.top { border-bottom: 4px solid #123456; }\n";
    let (_dir, path) = file_with("site.css", css.as_bytes());
    let app = spawn_app_with(branded(FileConfig {
        brand_accent_color: Some("#123456".into()),
        custom_css: Some(path),
        ..Default::default()
    }))
    .await;
    let b = app.browser();
    let p = b.get("/login").await;
    let links = stylesheets(&p);
    assert_eq!(links.len(), 3, "{links:?}");
    assert!(links[0].starts_with("/static/css/portcullis.css?v="));
    assert!(links[1].starts_with("/static/brand/accent.css?v="));
    assert!(links[2].starts_with("/static/brand/custom.css?v="));
    // No inline style: the page's policy forbids it.
    assert_eq!(p.count("style, [style]"), 0);

    let get = |href: String| {
        let client = b.client.clone();
        let url = format!("{}{href}", app.base);
        async move { client.get(url).send().await.unwrap() }
    };
    let accent = get(links[1].clone()).await;
    assert_eq!(accent.status(), StatusCode::OK);
    assert_eq!(
        header_str(&accent, "content-type"),
        "text/css; charset=utf-8"
    );
    assert!(header_str(&accent, "cache-control").contains("immutable"));
    let body = accent.text().await.unwrap();
    assert!(body.contains("--accent: #123456;"), "{body}");

    let custom = get(links[2].clone()).await;
    assert_eq!(custom.status(), StatusCode::OK);
    assert_eq!(
        header_str(&custom, "content-type"),
        "text/css; charset=utf-8"
    );
    assert_eq!(custom.text().await.unwrap(), css);
}

/// `portcullis serve` with one more setting; its exit status and error output.
fn serve_with(name: &str, value: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORTCULLIS_DATA_DIR", dir.path())
        .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
        .env(name, value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_low_contrast_accent_stops_the_start_naming_its_ratio() {
    let (ok, err) = serve_with("PORTCULLIS_BRAND_ACCENT_COLOR", "#ffff00");
    assert!(!ok);
    assert!(
        err.contains("brand_accent_color") && err.contains("1.07:1") && err.contains("4.5:1"),
        "{err}"
    );
    let (ok, err) = serve_with("PORTCULLIS_BRAND_ACCENT_COLOR", "blue-ish");
    assert!(!ok);
    assert!(err.contains("expected #rgb or #rrggbb"), "{err}");
}

#[tokio::test]
async fn an_unusable_brand_name_stops_the_start() {
    let long = "x".repeat(65);
    for (name, why) in [
        ("", "empty"),
        (long.as_str(), "65 characters"),
        ("Acme\u{7}", "control character"),
        ("Acme: ID", "':'"),
    ] {
        let e = FileConfig {
            brand_name: Some(name.into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("brand_name") && e.contains(why), "{name:?}: {e}");
    }
    let (ok, err) = serve_with("PORTCULLIS_BRAND_NAME", &long);
    assert!(!ok);
    assert!(err.contains("brand_name"), "{err}");
}

/// The error `Application::build` gives for these settings.
async fn start_error(file: FileConfig) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = FileConfig {
        data_dir: Some(dir.path().display().to_string()),
        listen: Some("127.0.0.1:0".into()),
        ..file
    }
    .validate()
    .expect("valid config");
    match Application::build(config).await {
        Ok(_) => panic!("the application started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn logos_and_stylesheets_that_cannot_be_served_stop_the_start() {
    let (_gif, gif) = file_with("logo.gif", b"GIF89a\x01\0\x01\0");
    let e = start_error(FileConfig {
        brand_logo: Some(gif),
        ..Default::default()
    })
    .await;
    assert!(
        e.contains("brand_logo") && e.contains("neither a PNG nor an SVG"),
        "{e}"
    );

    let (_big, big) = file_with("logo.png", &vec![0x89; 600 * 1024]);
    let e = start_error(FileConfig {
        brand_logo: Some(big),
        ..Default::default()
    })
    .await;
    assert!(e.contains("brand_logo") && e.contains("512 KiB"), "{e}");

    let (_named, misnamed) = file_with("logo.png", b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
    let e = start_error(FileConfig {
        brand_logo: Some(misnamed),
        ..Default::default()
    })
    .await;
    assert!(e.contains("not named .svg"), "{e}");

    let e = start_error(FileConfig {
        custom_css: Some("/no/such/file.css".into()),
        ..Default::default()
    })
    .await;
    assert!(
        e.contains("custom_css") && e.contains("/no/such/file.css"),
        "{e}"
    );
}
