use crate::helpers::*;
use reqwest::StatusCode;

#[tokio::test]
async fn the_setup_link_creates_one_administrator_once() {
    let app = spawn_app().await;
    let link = app
        .setup_link
        .clone()
        .expect("a setup link without an admin");
    let path = link
        .strip_prefix(app.config.base_url().as_str())
        .unwrap()
        .to_string();
    let token = path.split("token=").nth(1).unwrap().to_string();
    let b = app.browser();
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Create the first administrator"));

    let p = b
        .post(
            "/setup",
            &[
                ("csrf_token", &page.csrf()),
                ("token", &token),
                ("email", "root@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_redirect(&p, "/account");
    let acct = b.get("/account").await;
    assert!(acct.body.contains("admin"));

    // Used once: the link is dead now, for anyone.
    let again = app.browser();
    let page = again.get(&path).await;
    assert_eq!(page.status, StatusCode::GONE);
    let token_for_form = again.get("/login").await.csrf();
    let p = again
        .post(
            "/setup",
            &[
                ("csrf_token", &token_for_form),
                ("token", &token),
                ("email", "second@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::GONE);
    assert_eq!(
        again.login("second@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_expired_setup_link_is_refused() {
    let app = spawn_app().await;
    let link = app.setup_link.clone().unwrap();
    let path = link
        .strip_prefix(app.config.base_url().as_str())
        .unwrap()
        .to_string();
    app.clock.advance(app.config.setup_link_ttl_secs + 1);
    let p = app.browser().get(&path).await;
    assert_eq!(p.status, StatusCode::GONE);
    assert!(p.body.contains("used or has expired"));
}
