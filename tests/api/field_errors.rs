//! Errors tied to their fields (WCAG 3.3.1, 3.3.3): on every form where one field is
//! wrong, the title starts with "Error:", a summary at the top links to the field,
//! and the field is marked invalid and described by its message. Every field that
//! chooses a new password explains the policy.

use crate::helpers::*;
use crate::smtp_sink::extract_link;
use reqwest::StatusCode;

/// The page refused `field` with a message containing `says`, the way a screen
/// reader user needs to find it.
fn assert_field_error(p: &Page, field: &str, says: &str) {
    let title = p.text_of("title").unwrap();
    assert!(title.starts_with("Error: "), "title {title:?}");
    let link = p
        .text_of(&format!(".error-summary[role=alert] a[href='#{field}']"))
        .unwrap_or_else(|| panic!("no summary link to #{field}: {}", p.body));
    assert!(link.contains(says), "summary {link:?}");
    let input = format!("#{field}");
    assert_eq!(p.attr_of(&input, "aria-invalid").as_deref(), Some("true"));
    let described = p.attr_of(&input, "aria-describedby").unwrap();
    let message = described
        .split(' ')
        .find_map(|id| p.text_of(&format!("#{id}")).filter(|t| t.contains(says)))
        .unwrap_or_else(|| panic!("#{field} is not described by {says:?}: {described}"));
    assert!(message.contains(says));
    // Only the field in error is marked.
    assert_eq!(p.count("[aria-invalid=true]"), 1, "{}", p.body);
}

/// The new-password field `field` explains the policy with its minimum length.
fn assert_policy_hint(p: &Page, field: &str, min_len: usize) {
    let described = p
        .attr_of(&format!("#{field}"), "aria-describedby")
        .unwrap_or_else(|| panic!("#{field} has no description: {}", p.body));
    let hint = described
        .split(' ')
        .find_map(|id| p.text_of(&format!("#{id}.hint")))
        .unwrap_or_else(|| panic!("#{field} is not described by a hint: {described}"));
    assert!(
        hint.starts_with(&format!("At least {min_len} characters.")),
        "{hint}"
    );
}

#[tokio::test]
async fn register_ties_errors_to_email_and_password() {
    let app = spawn_app().await;
    let min = app.config.password_min_length;
    let b = app.browser();
    assert_policy_hint(&b.get("/register").await, "password", min);
    let fresh = b.get("/register").await;
    assert!(!fresh.text_of("title").unwrap().starts_with("Error"));
    assert_eq!(fresh.count("[aria-invalid]"), 0);
    assert_eq!(fresh.count(".error-summary"), 0);

    let p = b.register("not an address", PASSWORD, "").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_field_error(&p, "email", "valid email");
    // What was typed stays, so it can be corrected.
    assert_eq!(
        p.attr_of("#email", "value").as_deref(),
        Some("not an address")
    );

    let p = b.register("short@example.com", "short", "").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_field_error(&p, "password", &format!("at least {min}"));
    // The hint still describes the field, after the message.
    assert_eq!(
        p.attr_of("#password", "aria-describedby").as_deref(),
        Some("password-error password-hint")
    );
    assert_policy_hint(&p, "password", min);
}

#[tokio::test]
async fn login_ties_a_wrong_password_to_the_form_fields() {
    let app = spawn_app().await;
    app.create_user("someone@example.com", &[]).await;
    let b = app.browser();
    let p = b.login("someone@example.com", "not the password").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert_field_error(&p, "email", "Incorrect email or password.");
}

#[tokio::test]
async fn password_reset_explains_the_policy_and_ties_a_weak_password_to_its_field() {
    let app = spawn_app().await;
    let min = app.config.password_min_length;
    app.create_user("forgetful@example.com", &[]).await;
    let b = app.browser();
    b.submit(
        "/password/forgot",
        "/password/forgot",
        &[("email", "forgetful@example.com")],
    )
    .await;
    let link = app
        .wait_for_outbox(1)
        .await
        .iter()
        .find_map(|m| extract_link(m, "/password/reset?token="))
        .expect("a reset link");
    let token = link.split("token=").nth(1).unwrap().to_string();
    let page = b.get(&format!("/password/reset?token={token}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_policy_hint(&page, "new_password", min);

    let p = b
        .post(
            "/password/reset",
            &[
                ("csrf_token", &page.csrf()),
                ("token", &token),
                ("new_password", "short"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_field_error(&p, "new_password", &format!("at least {min}"));
    assert_policy_hint(&p, "new_password", min);
}

#[tokio::test]
async fn the_account_forms_tie_errors_to_their_own_fields() {
    let app = spawn_app().await;
    let min = app.config.password_min_length;
    app.create_user("me@example.com", &[]).await;
    app.create_user("taken@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("me@example.com").await;
    assert_policy_hint(&b.get("/account").await, "new_password", min);

    let p = b
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
    assert_field_error(&p, "current_password", "current password is not correct");

    let p = b
        .submit(
            "/account",
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", "short")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_field_error(&p, "new_password", &format!("at least {min}"));
    assert_policy_hint(&p, "new_password", min);

    let p = b
        .submit(
            "/account",
            "/account/email",
            &[("current_password", PASSWORD), ("new_email", "nope")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_field_error(&p, "new_email", "valid email");

    let p = b
        .submit(
            "/account",
            "/account/email",
            &[
                ("current_password", "not my password"),
                ("new_email", "fresh@example.com"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_field_error(
        &p,
        "email_current_password",
        "current password is not correct",
    );
}

#[tokio::test]
async fn setup_explains_the_policy_and_ties_a_weak_password_to_its_field() {
    let app = spawn_app().await;
    let min = app.config.password_min_length;
    let link = app.setup_link.clone().expect("a setup link");
    let path = link
        .strip_prefix(app.config.base_url().as_str())
        .unwrap()
        .to_string();
    let token = path.split("token=").nth(1).unwrap().to_string();
    let b = app.browser();
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_policy_hint(&page, "password", min);

    let p = b
        .post(
            "/setup",
            &[
                ("csrf_token", &page.csrf()),
                ("token", &token),
                ("email", "root@example.com"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_field_error(&p, "password", &format!("at least {min}"));
    assert_policy_hint(&p, "password", min);
}

#[tokio::test]
async fn a_refusal_no_field_can_fix_still_titles_and_summarises_the_page() {
    let app = spawn_app().await;
    app.create_user("locked@example.com", &[]).await;
    let b = app.browser();
    let mut last = b.login("locked@example.com", "wrong guess").await;
    for _ in 0..30 {
        if last.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        last = b.login("locked@example.com", "wrong guess").await;
    }
    assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(last.text_of("title").unwrap().starts_with("Error: "));
    assert!(last.error().unwrap().contains("Too many sign-in attempts"));
    assert_eq!(last.count("[aria-invalid]"), 0);
}

#[tokio::test]
async fn reauth_ties_a_wrong_password_to_its_field() {
    let app = spawn_app().await;
    app.create_user("me@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("me@example.com").await;
    let fresh = b.get("/login/reauth?next=/account").await;
    assert!(!fresh.text_of("title").unwrap().starts_with("Error"));
    assert_eq!(fresh.count("[aria-invalid]"), 0);

    let p = b
        .submit(
            "/login/reauth?next=/account",
            "/login/reauth",
            &[("password", "not my password"), ("next", "/account")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert_field_error(&p, "password", "That did not match.");
}

#[tokio::test]
async fn the_second_step_ties_a_wrong_code_to_its_field() {
    let app = spawn_app().await;
    app.create_user("twofactor@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("twofactor@example.com").await;
    crate::mfa::enrol(&app, &b).await;
    b.logout().await;

    let p = b.login("twofactor@example.com", PASSWORD).await;
    assert_redirect(&p, "/login/mfa");
    let fresh = b.get("/login/mfa").await;
    assert_eq!(fresh.count("[aria-invalid]"), 0);
    let p = b
        .submit("/login/mfa", "/login/mfa", &[("code", "not a code")])
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert_field_error(&p, "code", "That code did not work.");
}

#[tokio::test]
async fn totp_enrolment_ties_a_wrong_code_to_its_field() {
    let app = spawn_app().await;
    app.create_user("me@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("me@example.com").await;
    let fresh = b.get("/account/totp").await;
    assert_eq!(fresh.count("[aria-invalid]"), 0);

    let p = b
        .submit("/account/totp", "/account/totp", &[("code", "not a code")])
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_field_error(&p, "code", "That code did not work.");
}

#[tokio::test]
async fn account_deletion_ties_a_wrong_proof_to_its_field_and_keeps_the_hint() {
    let app = spawn_app().await;
    app.create_user("me@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("me@example.com").await;
    let fresh = b.get("/account/delete").await;
    assert_eq!(fresh.count("[aria-invalid]"), 0);
    assert_eq!(
        fresh.attr_of("#proof", "aria-describedby").as_deref(),
        Some("proof-hint")
    );

    let p = b
        .submit(
            "/account/delete",
            "/account/delete",
            &[("proof", "not my password")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert_field_error(&p, "proof", "That did not match.");
    // The hint still describes the field, after the message.
    assert_eq!(
        p.attr_of("#proof", "aria-describedby").as_deref(),
        Some("proof-error proof-hint")
    );
}

#[tokio::test]
async fn the_device_page_ties_an_unknown_code_to_its_field() {
    let app = spawn_app().await;
    app.create_user("me@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("me@example.com").await;
    let fresh = b.get("/device").await;
    assert_eq!(fresh.count("[aria-invalid]"), 0);

    let p = b
        .submit("/device", "/device", &[("user_code", "BCDF-GHJK")])
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_field_error(&p, "user_code", "That code is not valid");
    // What was typed stays, so it can be corrected.
    assert_eq!(
        p.attr_of("#user_code", "value").as_deref(),
        Some("BCDF-GHJK")
    );
}
