use crate::helpers::*;
use portcullis::config::FileConfig;
use reqwest::StatusCode;

#[tokio::test]
async fn register_then_sign_in_and_see_the_account() {
    let app = spawn_app().await;
    let b = app.browser();
    let p = b
        .register("Alice@Example.com", PASSWORD, "Alice Liddell")
        .await;
    assert_redirect(&p, "/login?registered=1");
    let p = b.get("/login?registered=1").await;
    // Signing in needs the address confirmed first (the default): the page says so,
    // rather than that the account is ready.
    let notice = p.text_of("[role=status]").unwrap();
    assert!(
        notice.contains("Open the link we emailed you to confirm your address"),
        "{notice}"
    );
    assert!(!notice.contains("ready"), "{notice}");

    // Without SMTP the verification mail lands in the outbox folder; follow its link.
    let mails = app.wait_for_outbox(1).await;
    assert_eq!(mails.len(), 1);
    let link =
        crate::smtp_sink::extract_link(&mails[0], "/verify-email?token=").expect("link in mail");
    let token = link.split("token=").nth(1).unwrap();
    let page = b.get(&format!("/verify-email?token={token}")).await;
    b.post(
        "/verify-email",
        &[("csrf_token", &page.csrf()), ("token", token)],
    )
    .await;

    // Case-insensitive: the address is found however it is typed.
    let p = b.login("alice@EXAMPLE.com", PASSWORD).await;
    assert_redirect(&p, "/account");
    let p = b.get("/account").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.text_of("#account-email").unwrap(), "Alice@Example.com");
    assert_eq!(p.text_of("#account-name").unwrap(), "Alice Liddell");
    let names = app.audit_names().await;
    assert!(names.contains(&"user.registered".to_string()));
    assert!(names.contains(&"login.succeeded".to_string()));
}

#[tokio::test]
async fn registering_a_taken_address_answers_the_same_and_mails_the_owner() {
    let app = spawn_app().await;
    app.create_user("owner@example.com", &[]).await;
    let b = app.browser();
    let fresh = b.register("newcomer@example.com", PASSWORD, "").await;
    let taken = b
        .register("OWNER@example.com", "another strong passphrase 7", "")
        .await;
    assert_eq!(fresh.status, taken.status);
    assert_eq!(fresh.location(), taken.location());
    let mails = app.wait_for_outbox(2).await;
    assert_eq!(
        mails.len(),
        2,
        "a verification link for the newcomer, a notice for the owner"
    );
    let to_owner: Vec<_> = mails
        .iter()
        .filter(|m| m.contains("To: owner@example.com"))
        .collect();
    assert_eq!(to_owner.len(), 1);
    assert!(to_owner[0].contains("Someone tried to create an account"));
    // The attacker's password does not open the owner's account.
    let p = b
        .login("owner@example.com", "another strong passphrase 7")
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn weak_or_malformed_input_is_refused_next_to_the_form() {
    let app = spawn_app().await;
    let b = app.browser();
    let p = b.register("bob@example.com", "password123", "").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(
        p.error().unwrap().contains("too easy to guess"),
        "{:?}",
        p.error()
    );
    assert_eq!(p.text_of("label[for=email]").unwrap(), "Email");
    let p = b.register("bob@example.com", "short", "").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.error().unwrap().contains("at least 10"));
    let p = b.register("not-an-email", PASSWORD, "").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.error().unwrap().contains("valid email"));
    let p = b.register("bob@example.com", &"x".repeat(300), "").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    // Nothing was created along the way.
    assert!(
        !app.audit_names()
            .await
            .contains(&"user.registered".to_string())
    );
}

#[tokio::test]
async fn registration_can_be_closed() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            registration_enabled: Some(false),
            ..Default::default()
        },
    })
    .await;
    let b = app.browser();
    let p = b.get("/register").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.error().unwrap().contains("closed"));
    let token = b.get("/login").await.csrf();
    let p = b
        .post(
            "/register",
            &[
                ("csrf_token", &token),
                ("email", "x@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(app.audit_names().await.is_empty());
}

#[tokio::test]
async fn registration_can_be_limited_to_domains() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            registration_allowed_domains: Some(vec!["corp.example".into()]),
            ..Default::default()
        },
    })
    .await;
    let b = app.browser();
    let p = b.register("eve@elsewhere.example", PASSWORD, "").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.error().unwrap().contains("corp.example"));
    let p = b.register("ann@Corp.Example", PASSWORD, "").await;
    assert_redirect(&p, "/login?registered=1");
}

#[tokio::test]
async fn registration_is_rate_limited_per_ip() {
    let app = spawn_app_with(Options {
        file: FileConfig {
            registrations_per_ip_per_hour: Some(2),
            ..Default::default()
        },
    })
    .await;
    let b = app.browser();
    assert_eq!(
        b.register("r1@example.com", PASSWORD, "").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        b.register("r2@example.com", PASSWORD, "").await.status,
        StatusCode::SEE_OTHER
    );
    let p = b.register("r3@example.com", PASSWORD, "").await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(p.headers.get("retry-after").is_some());
    assert!(p.body.contains("Too many attempts"));
}
