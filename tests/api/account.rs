use crate::helpers::*;
use reqwest::StatusCode;

#[tokio::test]
async fn password_change_needs_the_current_one_and_signs_out_other_devices() {
    let app = spawn_app().await;
    app.create_user("pw@example.com", &[]).await;
    let laptop = app.browser();
    let phone = app.browser();
    laptop.login_ok("pw@example.com").await;
    phone.login_ok("pw@example.com").await;

    let p = laptop
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", "not my password"),
                ("new_password", "a brand new passphrase 99"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(
        p.error()
            .unwrap()
            .contains("current password is not correct")
    );

    let new_pw = "a brand new passphrase 99";
    let p = laptop
        .submit(
            "/account",
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", new_pw)],
        )
        .await;
    assert_redirect(&p, "/account?done=password");
    assert_eq!(
        laptop.get("/account").await.status,
        StatusCode::OK,
        "this device stays signed in"
    );
    assert_eq!(
        phone.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "the other device is signed out"
    );

    let fresh = app.browser();
    assert_eq!(
        fresh.login("pw@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_redirect(&fresh.login("pw@example.com", new_pw).await, "/account");
    let names = app.audit_names().await;
    assert!(names.contains(&"password.changed".to_string()));
}

#[tokio::test]
async fn html_in_any_field_is_escaped() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            require_verified_email: Some(false),
            ..Default::default()
        },
    })
    .await;
    let b = app.browser();
    let evil = "<script>alert(1)</script>";
    let p = b.register("xss@example.com", PASSWORD, evil).await;
    assert_redirect(&p, "/login?registered=1");
    b.login_ok("xss@example.com").await;
    let p = b.get("/account").await;
    assert!(!p.body.contains(evil));
    assert!(p.body.contains("&#60;script&#62;") || p.body.contains("&lt;script&gt;"));
    assert_eq!(p.text_of("#account-name").unwrap(), evil);

    // Reflected into the login form after a failed attempt, still escaped.
    let b2 = app.browser();
    let p = b2
        .login("\"><img src=x onerror=alert(1)>@x.org", "whatever password")
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(!p.body.contains("<img src=x"));
}

/// Keyboard and screen-reader users can jump past the header: every page starts with
/// a skip link to its main content (WCAG 2.4.1), signed in or not; the stylesheet
/// tells browsers both colour schemes are handled, so native controls follow dark mode.
#[tokio::test]
async fn pages_start_with_a_skip_link_to_the_content() {
    let app = spawn_app().await;
    app.create_user("sam@example.com", &[]).await;
    let b = app.browser();
    let first_link = |p: &Page| {
        let doc = scraper::Html::parse_document(&p.body);
        let a = doc
            .select(&scraper::Selector::parse("body a").unwrap())
            .next()
            .expect("a link")
            .value()
            .attr("href")
            .map(str::to_string);
        let main = doc
            .select(&scraper::Selector::parse("main#main").unwrap())
            .count();
        (a, main)
    };
    for path in ["/login", "/register"] {
        let p = b.get(path).await;
        assert_eq!(first_link(&p), (Some("#main".to_string()), 1), "{path}");
        assert!(p.body.contains(">Skip to content</a>"), "{path}");
    }
    b.login_ok("sam@example.com").await;
    let p = b.get("/account").await;
    assert_eq!(first_link(&p), (Some("#main".to_string()), 1));
    let css = b.get("/static/css/portcullis.css").await;
    assert!(css.body.contains("color-scheme: light dark;"));
}
