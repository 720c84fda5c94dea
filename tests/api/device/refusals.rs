//! What the device flow refuses: clients not registered for the grant, another
//! client's code, guessed user codes (throttled per account and per address), users
//! outside the app's rules, an Allow from a form not ours.

use portcullis::auth::access::groups::Editor;
use portcullis::auth::audit::AuditCtx;
use portcullis::auth::oauth::authorize::DEVICE_GRANT;
use reqwest::StatusCode;

use super::{answer, device_client, enter, error_of, poll, start, started};
use crate::helpers::*;
use crate::oidc::{client_with, new_client, oidc_app_with, token_request};

#[tokio::test]
async fn only_clients_registered_for_the_grant_may_use_it() {
    let app = oidc_app_with(Default::default()).await;
    app.create_user("kim@example.com", &[]).await;
    // An ordinary web app (authorization code, refresh token).
    let (web, web_secret) = client_with(&app, new_client(false)).await;
    let web_secret = web_secret.unwrap();
    let (status, d) = start(&app, (&web, Some(&web_secret)), "openid").await;
    assert_eq!(
        (status, error_of(&d)),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
    let (public_web, _) = client_with(&app, new_client(true)).await;
    let (_, d) = start(&app, (&public_web, None), "openid").await;
    assert_eq!(error_of(&d), "unauthorized_client");
    // A wrong secret, or no client at all.
    let (id, secret) = device_client(&app, false).await;
    let (status, d) = start(&app, (&id, Some("wrong")), "openid").await;
    assert_eq!(
        (status, error_of(&d)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let (status, _) = start(&app, ("nobody", None), "openid").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, d) = start(&app, (&id, secret.as_deref()), "").await;
    assert_eq!(error_of(&d), "invalid_scope", "a scope is required");

    // A device code is good only for the client it was issued to, and only with the
    // grant: another client (even one registered for the grant) gets invalid_grant,
    // one without the grant unauthorized_client.
    let (public_tv, _) = device_client(&app, true).await;
    let (device_code, user_code) = started(&app, &public_tv, "openid").await;
    let b = app.browser();
    b.login_ok("kim@example.com").await;
    let p = enter(&b, &user_code).await;
    answer(&b, &p, "allow").await;
    let (status, t) = token_request(
        &app,
        Some((&id, secret.as_deref().unwrap())),
        &[("grant_type", DEVICE_GRANT), ("device_code", &device_code)],
    )
    .await;
    assert_eq!(
        (status, error_of(&t)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (_, t) = token_request(
        &app,
        Some((&web, &web_secret)),
        &[("grant_type", DEVICE_GRANT), ("device_code", &device_code)],
    )
    .await;
    assert_eq!(error_of(&t), "unauthorized_client");
    let (_, t) = poll(&app, &public_tv, "not-a-device-code").await;
    assert_eq!(error_of(&t), "invalid_grant");
    let (_, t) = token_request(
        &app,
        None,
        &[("grant_type", DEVICE_GRANT), ("client_id", &public_tv)],
    )
    .await;
    assert_eq!(error_of(&t), "invalid_request");
    // None of that spent the code: its own client still gets the tokens.
    let (status, t) = poll(&app, &public_tv, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{t}");
}

#[tokio::test]
async fn wrong_codes_are_refused_and_throttled_per_account_and_per_address() {
    let app = oidc_app_with(portcullis::config::FileConfig {
        login_attempts_per_ip_per_minute: Some(6),
        device_code_entries_per_account_per_hour: Some(3),
        ..Default::default()
    })
    .await;
    app.create_user("eve@example.com", &[]).await;
    app.create_user("mallory@example.com", &[]).await;
    let (id, _) = device_client(&app, true).await;
    let (device_code, user_code) = started(&app, &id, "openid").await;

    // Eve guesses: each wrong code is told so, on the form, with what she typed.
    let eve = app.browser();
    eve.login_ok("eve@example.com").await;
    for guess in ["BCDF-GHJK", "nonsense", "BCDF-GHJL"] {
        let p = enter(&eve, guess).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
        assert!(p.error().unwrap().contains("not valid"), "{:?}", p.error());
        assert!(p.body.contains(&format!("value=\"{guess}\"")));
    }
    // Her account's entries are used up: even the right code is not looked up.
    let p = enter(&eve, &user_code).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS, "{}", p.body);
    assert!(
        p.error().unwrap().contains("Too many codes"),
        "{:?}",
        p.error()
    );
    assert!(p.headers.contains_key("retry-after"));
    assert!(!p.body.contains("Allow"), "no prompt while throttled");
    let p = eve.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(
        p.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the link is counted too"
    );

    // Another account from the same address: the address's budget (6 a minute) runs
    // out after one more entry.
    let mallory = app.browser();
    mallory.login_ok("mallory@example.com").await;
    let p = enter(&mallory, "BCDF-GHJM").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    let p = enter(&mallory, &user_code).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS, "{}", p.body);
    let limited = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.event == "rate_limit.exceeded")
        .count();
    assert!(limited >= 3, "each refusal is audited");
    // Nothing was approved.
    let (_, t) = poll(&app, &id, &device_code).await;
    assert_eq!(error_of(&t), "authorization_pending");
}

#[tokio::test]
async fn approving_follows_the_apps_rules_and_needs_this_sites_form() {
    let app = oidc_app_with(Default::default()).await;
    app.create_user("kim@example.com", &[]).await;
    let lee_id = app.create_user("lee@example.com", &[]).await;
    app.state
        .groups
        .create(&Editor::Operator, "family", "", None, &AuditCtx::cli())
        .await
        .unwrap();
    app.state
        .groups
        .set_member(
            &Editor::Operator,
            "family",
            "kim@example.com",
            true,
            &AuditCtx::cli(),
        )
        .await
        .unwrap();
    let mut c = new_client(true);
    c.redirect_uris = vec![];
    c.grants = vec![DEVICE_GRANT.into()];
    c.allowed_groups = vec!["family".into()];
    let (id, _) = client_with(&app, c).await;
    let (device_code, user_code) = started(&app, &id, "openid").await;

    // Lee is not in the app's group: refused on the page, recorded, and the request
    // ends as a Deny would: the device is told access_denied, not to keep waiting.
    let lee = app.browser();
    lee.login_ok("lee@example.com").await;
    let p = enter(&lee, &user_code).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(
        p.error().unwrap().contains("no access to this app"),
        "{:?}",
        p.error()
    );
    let events = app.audit().await;
    let denied = events.iter().find(|e| e.event == "access.denied").unwrap();
    assert!(
        denied.details.contains("\"via\":\"device\""),
        "{}",
        denied.details
    );
    let ended = events.iter().find(|e| e.event == "device.denied").unwrap();
    assert_eq!(ended.outcome, "denied");
    assert_eq!(ended.target_id.as_deref(), Some(lee_id.as_str()));
    assert!(
        ended
            .details
            .contains("\"reason\":\"not_in_allowed_groups\"")
            && ended.details.contains(&id),
        "{}",
        ended.details
    );
    let (status, t) = poll(&app, &id, &device_code).await;
    assert_eq!(
        (status, error_of(&t)),
        (StatusCode::BAD_REQUEST, "access_denied")
    );
    // Ended: the code leads nowhere any more, even for someone the app admits.
    let kim = app.browser();
    kim.login_ok("kim@example.com").await;
    let p = enter(&kim, &user_code).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    app.clock.advance(10);
    let (_, t) = poll(&app, &id, &device_code).await;
    assert_eq!(error_of(&t), "access_denied");

    // Kim is in the group: but an Allow that did not come from this site's form is
    // refused.
    let (device_code, user_code) = started(&app, &id, "openid").await;
    let p = kim
        .post(
            "/device",
            &[
                ("user_code", &user_code),
                ("decision", "allow"),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    app.clock.advance(10);
    let (_, t) = poll(&app, &id, &device_code).await;
    assert_eq!(error_of(&t), "authorization_pending");
    let p = enter(&kim, &user_code).await;
    assert_eq!(answer(&kim, &p, "allow").await.status, StatusCode::OK);
    app.clock.advance(10);
    let (status, _) = poll(&app, &id, &device_code).await;
    assert_eq!(status, StatusCode::OK);

    // An app requiring a second factor: an account without one is told to add one.
    let mut c = new_client(true);
    c.redirect_uris = vec![];
    c.grants = vec![DEVICE_GRANT.into()];
    c.require_two_factor = true;
    let (strict, _) = client_with(&app, c).await;
    let (strict_code, user_code) = started(&app, &strict, "openid").await;
    let p = enter(&kim, &user_code).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(
        p.error().unwrap().contains("second factor"),
        "{:?}",
        p.error()
    );
    // That one Kim can fix herself, while the device waits: the request stays open.
    let (_, t) = poll(&app, &strict, &strict_code).await;
    assert_eq!(error_of(&t), "authorization_pending");

    // The link from a device, followed signed out, comes back after signing in.
    let b = app.browser();
    let back = format!("/device?user_code={user_code}");
    let p = b.get(&back).await;
    let login = p.location().unwrap();
    let next = url::Url::parse(&format!("http://x{login}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned());
    assert_eq!(next.as_deref(), Some(back.as_str()), "{login}");
    let p = b
        .submit(
            &login,
            "/login",
            &[
                ("email", "kim@example.com"),
                ("password", PASSWORD),
                ("next", &back),
            ],
        )
        .await;
    assert_redirect(&p, &back);
}

#[tokio::test]
async fn an_app_requiring_a_second_factor_steps_a_password_session_up_first() {
    let app = oidc_app_with(Default::default()).await;
    app.create_user("amy@example.com", &[]).await;
    let mut c = new_client(true);
    c.redirect_uris = vec![];
    c.grants = vec![DEVICE_GRANT.into()];
    c.require_two_factor = true;
    let (id, _) = client_with(&app, c).await;
    let (device_code, user_code) = started(&app, &id, "openid").await;

    // Amy signed in with her password, then added an authenticator app: the code is
    // not answered until she proves the second factor, and then she comes back to it.
    let b = app.browser();
    b.login_ok("amy@example.com").await;
    let (totp, _) = crate::mfa::enrol(&app, &b).await;
    let p = enter(&b, &user_code).await;
    let reauth = p.location().unwrap_or_else(|| panic!("{}", p.body));
    assert!(
        reauth.starts_with("/login/reauth?factor=1&next="),
        "{reauth}"
    );
    let back = format!("/device?user_code={user_code}");
    let page = b.get(&reauth).await;
    app.clock.advance(30); // a fresh step: the enrolment code was used
    let code = crate::mfa::hotp(&totp, app.clock.now() as u64 / 30, 6);
    let p = b
        .post(
            "/login/reauth",
            &[
                ("csrf_token", &page.csrf()),
                ("password", PASSWORD),
                ("code", &code),
                ("next", &back),
            ],
        )
        .await;
    assert_redirect(&p, &back);
    let p = b.get(&back).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(answer(&b, &p, "allow").await.status, StatusCode::OK);
    let (status, t) = poll(&app, &id, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let claims = crate::oidc::jwt_claims(t["id_token"].as_str().unwrap());
    assert_eq!(claims["acr"], "mfa");
}

#[tokio::test]
async fn a_browser_outside_the_apps_networks_ends_the_request() {
    let app = oidc_app_with(Default::default()).await;
    app.create_user("nia@example.com", &[]).await;
    let mut c = new_client(true);
    c.redirect_uris = vec![];
    c.grants = vec![DEVICE_GRANT.into()];
    // The test's browser is on loopback: outside.
    c.allowed_networks = vec!["10.0.0.0/8".into()];
    let (id, _) = client_with(&app, c).await;
    let (device_code, user_code) = started(&app, &id, "openid").await;
    let b = app.browser();
    b.login_ok("nia@example.com").await;
    let p = b.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(
        p.error().unwrap().contains("certain networks"),
        "{:?}",
        p.error()
    );
    let (status, t) = poll(&app, &id, &device_code).await;
    assert_eq!(
        (status, error_of(&t)),
        (StatusCode::BAD_REQUEST, "access_denied")
    );
    // One refusal, one ended request; entering the code again finds nothing to end.
    let p = enter(&b, &user_code).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    let names = app.audit_names().await;
    let count = |n: &str| names.iter().filter(|e| *e == n).count();
    assert_eq!((count("access.denied"), count("device.denied")), (1, 1));
    let events = app.audit().await;
    let ended = events.iter().find(|e| e.event == "device.denied").unwrap();
    assert!(
        ended.details.contains("\"reason\":\"network_not_allowed\""),
        "{}",
        ended.details
    );
}
