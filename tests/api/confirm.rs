//! The confirmation step in front of destructive acts: the first POST only asks; the
//! act runs for the page's own "Yes, …" form (`confirm=yes` with the CSRF token), and
//! that form without its token still does nothing.

use reqwest::StatusCode;

use crate::admin::admin_app;
use crate::helpers::*;
use crate::mfa::enrol;

/// The confirmation page's form: where it posts and every field it sends.
fn yes_form(page: &Page) -> (String, Vec<(String, String)>) {
    let doc = page.doc();
    let form = scraper::Selector::parse("#confirm form").unwrap();
    let input = scraper::Selector::parse("input[type=hidden]").unwrap();
    let form = doc.select(&form).next().expect("a confirmation form");
    let action = form.value().attr("action").unwrap().to_string();
    let fields = form
        .select(&input)
        .map(|i| {
            let v = i.value();
            (
                v.attr("name").unwrap().to_string(),
                v.attr("value").unwrap_or_default().to_string(),
            )
        })
        .collect();
    (action, fields)
}

/// Asserts `page` is the confirmation asking `heading`, with a "Cancel" back to `cancel`,
/// and returns its form (for [`press`]). The tests of each page use it too.
pub fn asks(page: &Page, heading: &str, cancel: &str) -> (String, Vec<(String, String)>) {
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.text_of("#confirm h1").as_deref(), Some(heading));
    let sel = scraper::Selector::parse("#confirm a").unwrap();
    let doc = page.doc();
    let link = doc.select(&sel).next().expect("a Cancel link");
    assert_eq!(link.text().collect::<String>(), "Cancel");
    assert_eq!(link.value().attr("href"), Some(cancel));
    yes_form(page)
}

/// What the confirmation page says will happen (its sentence, as text).
pub fn says(page: &Page) -> String {
    page.text_of("#confirm p").unwrap_or_default()
}

/// Posts the confirmation form, or (with `without_token`) the same without its token.
pub async fn press(
    b: &Browser,
    form: &(String, Vec<(String, String)>),
    without_token: bool,
) -> Page {
    let fields: Vec<(&str, &str)> = form
        .1
        .iter()
        .filter(|(k, _)| !(without_token && k == "csrf_token"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post(&form.0, &fields).await
}

#[tokio::test]
async fn disabling_the_authenticator_app_asks_first() {
    let app = spawn_app().await;
    let uid = app.create_user("tia@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("tia@example.com").await;
    enrol(&app, &b).await;
    let on = async || app.state.second_factors.status(&uid).await.unwrap().totp;

    // The page's Disable button only asks; so does any answer but "yes".
    for confirm in [None, Some("no"), Some("YES")] {
        let mut fields = vec![];
        if let Some(c) = confirm {
            fields.push(("confirm", c));
        }
        let p = b
            .submit("/account/totp", "/account/totp/disable", &fields)
            .await;
        let form = asks(&p, "Disable the authenticator app?", "/account/totp");
        assert_eq!(form.0, "/account/totp/disable");
        assert!(p.body.contains("Yes, disable"));
        assert!(on().await, "nothing changed for {confirm:?}");
    }
    assert!(
        !app.audit_names()
            .await
            .contains(&"totp.disabled".to_string())
    );

    let p = b
        .submit("/account/totp", "/account/totp/disable", &[])
        .await;
    let form = asks(&p, "Disable the authenticator app?", "/account/totp");
    // The attacker's replay of the confirmed form, without this session's token.
    let refused = press(&b, &form, true).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(on().await);

    assert_redirect(
        &press(&b, &form, false).await,
        "/account/totp?done=disabled",
    );
    assert!(!on().await);
}

#[tokio::test]
async fn revoking_a_session_asks_first() {
    let app = spawn_app().await;
    app.create_user("ria@example.com", &[]).await;
    let (a, other) = (app.browser(), app.browser());
    a.login_ok("ria@example.com").await;
    other.login_ok("ria@example.com").await;
    let list = a.get("/account/sessions").await;
    let sel = scraper::Selector::parse("input[name=sid]").unwrap();
    let sid = list
        .doc()
        .select(&sel)
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_string();

    let p = a
        .submit(
            "/account/sessions",
            "/account/sessions/revoke",
            &[("sid", &sid)],
        )
        .await;
    let form = asks(&p, "Sign out this device?", "/account/sessions");
    assert!(
        form.1.contains(&("sid".to_string(), sid.clone())),
        "{:?}",
        form.1
    );
    assert_eq!(
        other.get("/account").await.status,
        StatusCode::OK,
        "still signed in"
    );

    assert_eq!(press(&a, &form, true).await.status, StatusCode::FORBIDDEN);
    assert_eq!(other.get("/account").await.status, StatusCode::OK);

    assert_redirect(
        &press(&a, &form, false).await,
        "/account/sessions?done=revoked",
    );
    assert_eq!(other.get("/account").await.status, StatusCode::SEE_OTHER);

    // "Sign out everywhere else" asks too.
    let third = app.browser();
    third.login_ok("ria@example.com").await;
    let p = a
        .submit("/account/sessions", "/account/sessions/revoke-others", &[])
        .await;
    let form = asks(&p, "Sign out everywhere else?", "/account/sessions");
    assert_eq!(third.get("/account").await.status, StatusCode::OK);
    assert_redirect(
        &press(&a, &form, false).await,
        "/account/sessions?done=others",
    );
    assert_eq!(third.get("/account").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_admins_disable_asks_first() {
    let app = admin_app().await;
    app.create_user("admin@example.com", &["admin"]).await;
    let uid = app.create_user("dan@example.com", &[]).await;
    let (b, dan) = (app.browser(), app.browser());
    b.login_ok("admin@example.com").await;
    dan.login_ok("dan@example.com").await;
    let path = format!("/admin/users/{uid}");

    let p = b.submit(&path, &format!("{path}/disable"), &[]).await;
    let form = asks(&p, "Disable this account?", &path);
    assert_eq!(form.0, format!("{path}/disable"));
    assert_eq!(dan.get("/account").await.status, StatusCode::OK, "not yet");
    assert_eq!(
        b.get(&path).await.text_of("#user-status").as_deref(),
        Some("Active")
    );
    assert!(
        !app.audit_names()
            .await
            .contains(&"user.disabled".to_string())
    );

    assert_eq!(press(&b, &form, true).await.status, StatusCode::FORBIDDEN);
    assert_eq!(dan.get("/account").await.status, StatusCode::OK);

    assert_redirect(
        &press(&b, &form, false).await,
        &format!("{path}?done=disable"),
    );
    assert_eq!(dan.get("/account").await.status, StatusCode::SEE_OTHER);
    // Enabling again takes nothing away: no confirmation step.
    let p = b.submit(&path, &format!("{path}/enable"), &[]).await;
    assert_redirect(&p, &format!("{path}?done=enable"));
}
