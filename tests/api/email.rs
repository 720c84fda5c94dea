//! Email flows against a real SMTP server on loopback: links are read out of the
//! received messages and followed like a user would.

use std::time::Duration;

use crate::helpers::*;
use crate::smtp_sink::{SmtpSink, extract_link};
use reqwest::StatusCode;

const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn path_of(link: &str) -> String {
    let u = url::Url::parse(link).expect("absolute link");
    format!("{}?{}", u.path(), u.query().unwrap_or(""))
}

pub(crate) fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_string()
}

/// Mail to `to` whose link starts with `prefix`, newest last.
fn links_to(sink: &SmtpSink, to: &str, prefix: &str) -> Vec<String> {
    sink.messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
        .filter_map(|m| extract_link(&m.data, prefix))
        .collect()
}

/// Opens a reset `link` and sets `new_password` with its form.
pub(crate) async fn set_password_from(b: &Browser, link: &str, new_password: &str) -> Page {
    let page = b.get(&path_of(link)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    b.post(
        "/password/reset",
        &[
            ("csrf_token", &page.csrf()),
            ("token", &token_of(link)),
            ("new_password", new_password),
        ],
    )
    .await
}

pub(crate) async fn wait_link(sink: &SmtpSink, to: &str, prefix: &str, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let v = links_to(sink, to, prefix);
        if v.len() >= n {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no mail to {to} with {prefix} (got {:?})",
        sink.messages().iter().map(|m| &m.to).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn registration_sends_a_link_that_only_a_post_consumes() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(Options {
        file: with_smtp(&sink.url()),
    })
    .await;
    let b = app.browser();
    assert_redirect(
        &b.register("Vera@example.com", PASSWORD, "Vera").await,
        "/login?registered=1",
    );

    // Not confirmed yet: sign-in explains and offers a new link.
    let p = b.login("vera@example.com", PASSWORD).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.error().unwrap().contains("Confirm your email address"));
    assert!(p.body.contains("/verify-email/resend"));

    let link = wait_link(&sink, "Vera@example.com", "/verify-email?token=", 1)
        .await
        .remove(0);
    assert!(
        link.starts_with(&app.config.base_url()),
        "absolute link from the public URL: {link}"
    );
    let mail = &sink.messages()[0].data;
    assert!(
        mail.contains("multipart/alternative")
            && mail.contains("text/plain")
            && mail.contains("text/html")
    );

    // GET (what a mail scanner does) twice: the link still works afterwards.
    let path = path_of(&link);
    assert_eq!(b.get(&path).await.status, StatusCode::OK);
    let page = b.get(&path).await;
    assert!(page.body.contains("Confirm email"));
    let p = b
        .post(
            "/verify-email",
            &[("csrf_token", &page.csrf()), ("token", &token_of(&link))],
        )
        .await;
    assert_redirect(&p, "/login?verified=1");
    b.login_ok("vera@example.com").await;
    assert!(
        app.audit_names()
            .await
            .contains(&"user.email_verified".to_string())
    );

    // Used: a clear page, not an error code.
    let again = b.get(&path).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.body.contains("already been used"));
}

#[tokio::test]
async fn a_new_verification_link_voids_the_old_one() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(Options {
        file: with_smtp(&sink.url()),
    })
    .await;
    let b = app.browser();
    b.register("re@example.com", PASSWORD, "").await;
    let first = wait_link(&sink, "re@example.com", "/verify-email?token=", 1)
        .await
        .remove(0);
    let p = b
        .submit(
            "/verify-email/resend",
            "/verify-email/resend",
            &[("email", "re@example.com")],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("If that address has an account waiting"));
    // An unknown address gets the same page and no mail.
    let q = b
        .submit(
            "/verify-email/resend",
            "/verify-email/resend",
            &[("email", "ghost@example.com")],
        )
        .await;
    assert_eq!(q.status, StatusCode::OK);
    let links = wait_link(&sink, "re@example.com", "/verify-email?token=", 2).await;
    assert_eq!(b.get(&path_of(&first)).await.status, StatusCode::GONE);
    let page = b.get(&path_of(&links[1])).await;
    let p = b
        .post(
            "/verify-email",
            &[
                ("csrf_token", &page.csrf()),
                ("token", &token_of(&links[1])),
            ],
        )
        .await;
    assert_redirect(&p, "/login?verified=1");
    assert!(links_to(&sink, "ghost@example.com", "").is_empty());
}

#[tokio::test]
async fn forgot_password_answers_the_same_and_resets_once() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(Options {
        file: with_smtp(&sink.url()),
    })
    .await;
    app.create_user("forgetful@example.com", &[]).await;
    let signed_in = app.browser();
    signed_in.login_ok("forgetful@example.com").await;

    let b = app.browser();
    let known = b
        .submit(
            "/password/forgot",
            "/password/forgot",
            &[("email", "forgetful@example.com")],
        )
        .await;
    let unknown = b
        .submit(
            "/password/forgot",
            "/password/forgot",
            &[("email", "nobody@example.com")],
        )
        .await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(
        known.text_of("[role=status]"),
        unknown.text_of("[role=status]")
    );
    let link = wait_link(&sink, "forgetful@example.com", "/password/reset?token=", 1)
        .await
        .remove(0);
    assert!(links_to(&sink, "nobody@example.com", "").is_empty());

    let page = b.get(&path_of(&link)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.text_of("label[for=new_password]").unwrap(),
        "New password"
    );
    let weak = b
        .post(
            "/password/reset",
            &[
                ("csrf_token", &page.csrf()),
                ("token", &token_of(&link)),
                ("new_password", "password1234"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    let new_pw = "a fresh and long passphrase 77";
    let ok = set_password_from(&b, &link, new_pw).await;
    assert_redirect(&ok, "/login?reset=1");

    // Every session ended; not signed in by the reset itself.
    assert_eq!(
        signed_in.get("/account").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get("/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        b.login("forgetful@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_redirect(&b.login("forgetful@example.com", new_pw).await, "/account");
    // The owner is told.
    let notices: Vec<_> = sink
        .wait_for(2, WAIT)
        .await
        .into_iter()
        .filter(|m| m.data.contains("Your password was changed"))
        .collect();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].data.contains("If this was not you"));
    // Used once.
    assert_eq!(b.get(&path_of(&link)).await.status, StatusCode::GONE);
    let names = app.audit_names().await;
    assert!(names.contains(&"password.reset_requested".to_string()));
    assert!(names.contains(&"password.reset".to_string()));
}

#[tokio::test]
async fn only_the_newest_reset_link_works_and_links_expire() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(Options {
        file: with_smtp(&sink.url()),
    })
    .await;
    app.create_user("twice@example.com", &[]).await;
    let b = app.browser();
    let ask = async || {
        b.submit(
            "/password/forgot",
            "/password/forgot",
            &[("email", "twice@example.com")],
        )
        .await;
    };
    // The first mail is in before the second is asked for: mails sent in the same
    // second may arrive in either order, and which link is older must be known.
    ask().await;
    let first = wait_link(&sink, "twice@example.com", "/password/reset?token=", 1).await;
    ask().await;
    let links = wait_link(&sink, "twice@example.com", "/password/reset?token=", 2).await;
    let newest = links
        .iter()
        .find(|l| **l != first[0])
        .expect("a second link");
    let links = [first[0].clone(), newest.clone()];
    let old = b.get(&path_of(&links[0])).await;
    assert_eq!(old.status, StatusCode::GONE);
    assert_eq!(b.get(&path_of(&links[1])).await.status, StatusCode::OK);

    // Time moves on (injected, not slept): 30 minutes and one second later it has expired.
    app.clock.advance(app.config.password_reset_ttl_secs + 1);
    let p = b.get(&path_of(&links[1])).await;
    assert_eq!(p.status, StatusCode::GONE);
    assert!(p.body.contains("expired"));
    let token = b.get("/password/forgot").await.csrf();
    let p = b
        .post(
            "/password/reset",
            &[
                ("csrf_token", &token),
                ("token", &token_of(&links[1])),
                ("new_password", "a fresh and long passphrase 77"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::GONE);
    app.browser().login_ok("twice@example.com").await;
}

#[tokio::test]
async fn tokens_are_bound_to_their_purpose_and_user() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(Options {
        file: with_smtp(&sink.url()),
    })
    .await;
    let b = app.browser();
    b.register("purpose@example.com", PASSWORD, "").await;
    b.register("other@example.com", PASSWORD, "").await;
    let verify = wait_link(&sink, "purpose@example.com", "/verify-email?token=", 1)
        .await
        .remove(0);
    // A verification token is not a reset token.
    let p = b
        .get(&format!("/password/reset?token={}", token_of(&verify)))
        .await;
    assert_eq!(p.status, StatusCode::GONE);
    // Confirming it from another user's browser verifies its owner only.
    let other = app.browser();
    let page = other.get(&path_of(&verify)).await;
    assert!(page.body.contains("purpose@example.com"));
    other
        .post(
            "/verify-email",
            &[("csrf_token", &page.csrf()), ("token", &token_of(&verify))],
        )
        .await;
    app.browser().login_ok("purpose@example.com").await;
    assert_eq!(
        app.browser()
            .login("other@example.com", PASSWORD)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn email_change_waits_for_the_new_address_to_confirm() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(Options {
        file: with_smtp(&sink.url()),
    })
    .await;
    app.create_user("old@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("old@example.com").await;
    let wrong = b
        .submit(
            "/account",
            "/account/email",
            &[
                ("new_email", "new@example.com"),
                ("current_password", "not it at all"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let p = b
        .submit(
            "/account",
            "/account/email",
            &[
                ("new_email", "New@example.com"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_redirect(&p, "/account?done=email");

    let link = wait_link(&sink, "New@example.com", "/verify-email?token=", 1)
        .await
        .remove(0);
    let notice = sink.wait_for(2, WAIT).await;
    assert!(
        notice
            .iter()
            .any(|m| m.to.iter().any(|t| t == "old@example.com")
                && m.data.contains("change of your email address"))
    );
    // Nothing changed yet.
    assert_redirect(
        &app.browser().login("old@example.com", PASSWORD).await,
        "/account",
    );

    let page = b.get(&path_of(&link)).await;
    assert!(page.body.contains("New@example.com"));
    let p = b
        .post(
            "/verify-email",
            &[("csrf_token", &page.csrf()), ("token", &token_of(&link))],
        )
        .await;
    assert_redirect(&p, "/account?done=email-changed");
    assert_eq!(
        b.get("/account").await.text_of("#account-email").unwrap(),
        "New@example.com"
    );
    assert_eq!(
        app.browser()
            .login("old@example.com", PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    app.browser().login_ok("new@example.com").await;
    let changed = sink.wait_for(3, WAIT).await;
    assert!(changed.iter().any(
        |m| m.to.iter().any(|t| t == "old@example.com") && m.data.contains("was changed from")
    ));
    let names = app.audit_names().await;
    assert!(names.contains(&"email.change_requested".to_string()));
    assert!(names.contains(&"email.changed".to_string()));
}

#[tokio::test]
async fn mail_survives_an_smtp_outage_and_a_restart_and_goes_out_once() {
    let mut sink = SmtpSink::start();
    let smtp = sink.url();
    sink.stop();
    let first = spawn_app_with(Options {
        file: with_smtp(&smtp),
    })
    .await;
    first.create_user("outage@example.com", &[]).await;
    let b = first.browser();
    let p = b
        .submit(
            "/password/forgot",
            "/password/forgot",
            &[("email", "outage@example.com")],
        )
        .await;
    assert_eq!(
        p.status,
        StatusCode::OK,
        "the request does not wait for SMTP"
    );
    // Let the worker fail at least once, then stop this instance.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        first
            .audit_names()
            .await
            .contains(&"mail.failed".to_string())
    );
    first.handle.stop().await;

    // A new instance on the same database, and SMTP comes back.
    let mut file = with_smtp(&smtp);
    file.database_url = Some(first.config.database_url.clone());
    let second = spawn_app_with(Options { file }).await;
    sink.restart();
    let links = wait_link(&sink, "outage@example.com", "/password/reset?token=", 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        links_to(&sink, "outage@example.com", "/password/reset?token=").len(),
        1,
        "delivered exactly once"
    );
    let page = second.browser().get(&path_of(&links[0])).await;
    assert_eq!(page.status, StatusCode::OK);
}
