//! Pushed authorization requests (RFC 9126): the app pushes its request to
//! `/oauth/par` with its client credentials and sends the browser with only
//! `client_id` and the `request_uri` it got back. A relying-party library
//! (openidconnect) builds the request and redeems the code; every refusal is tried as
//! an attacker would.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use portcullis::config::FileConfig;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::oidc::{
    CALLBACK, CHALLENGE, allow, client, client_with, exchange, new_client, oidc_app_with, query,
    second_instance,
};

/// Pushes `params` as `client_id` (with its secret, when it has one: Basic).
async fn push(
    app: &TestApp,
    client_id: &str,
    secret: Option<&str>,
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new().post(format!("{}/oauth/par", app.base));
    let mut form: Vec<(&str, &str)> = params.to_vec();
    match secret {
        Some(s) => r = r.basic_auth(client_id, Some(s)),
        None => form.push(("client_id", client_id)),
    }
    let res = r.form(&form).send().await.unwrap();
    let status = res.status();
    assert_eq!(res.headers()["cache-control"], "no-store");
    (status, res.json().await.unwrap())
}

/// An authorization request's parameters for the test client (PKCE with VERIFIER).
fn request(state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("redirect_uri", CALLBACK.into()),
        ("scope", "openid email".into()),
        ("state", state.into()),
        ("nonce", "n-1".into()),
        ("code_challenge", CHALLENGE.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Pushes the test request and returns its `request_uri`.
async fn pushed(app: &TestApp, id: &str, secret: Option<&str>, state: &str) -> String {
    let (status, body) = push(app, id, secret, &refs(&request(state))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["request_uri"].as_str().unwrap().to_string()
}

fn authorize_path(client_id: &str, request_uri: &str) -> String {
    format!(
        "/oauth/authorize?client_id={client_id}&request_uri={}",
        url::form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
    )
}

/// The signed-in browser follows the pushed request: consent if asked, then the
/// redirect to the app; returns the page that redirected.
async fn follow(b: &Browser, path: &str) -> Page {
    let p = b.get(path).await;
    if p.status == StatusCode::OK && p.body.contains("Allow") {
        return allow(b, &p).await;
    }
    p
}

/// An error page for the user: 400, a message, and no redirect to anyone.
fn assert_error_page(p: &Page) {
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.location().is_none());
    assert!(p.body.contains("expired or was already used"), "{}", p.body);
}

/// A plain (not pushed) authorization request of the test client, with PKCE.
fn plain_request(client_id: &str) -> String {
    format!(
        "/oauth/authorize?response_type=code&scope=openid&client_id={client_id}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    )
}

/// The `next` of a sign-in page's address.
fn next_of(location: &str) -> String {
    query(&format!("http://x{location}"))["next"].clone()
}

async fn stored_requests(app: &TestApp, client_id: &str) -> i64 {
    let id = client_id.to_string();
    app.db
        .run(move |c| {
            portcullis::db::repo::pushed_requests::count_of_client(c, &id)
                .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap()
}

/// The `par.refused` events so far, oldest first: (reason, the link's client_id, actor).
async fn refusals(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    let mut v: Vec<_> = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.event == "par.refused")
        .map(|e| {
            assert_eq!(e.outcome, "failure");
            let d: Value = serde_json::from_str(&e.details).unwrap();
            let text = |k: &str| d[k].as_str().unwrap().to_string();
            (text("reason"), text("client_id"), e.actor_id)
        })
        .collect();
    v.reverse();
    v
}

#[tokio::test]
async fn a_relying_party_signs_a_user_in_through_a_pushed_request() {
    let app = oidc_app_with(FileConfig::default()).await;
    app.create_user("paz@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let doc: Value = http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let par_endpoint = doc["pushed_authorization_request_endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(par_endpoint, format!("{}/oauth/par", app.base));
    assert_eq!(doc["require_pushed_authorization_requests"], false);

    // The library builds the request (state, nonce, PKCE); its parameters are pushed.
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut params: Vec<(String, String)> = auth_url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "client_id")
        .collect();
    params.push(("login_hint".into(), "paz@example.com".into()));
    let res = http
        .post(&par_endpoint)
        .basic_auth(&id, Some(&secret))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    let request_uri = body["request_uri"].as_str().unwrap().to_string();
    let random = request_uri
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .expect("an RFC 9126 request_uri");
    assert_eq!(random.len(), 43, "32 random bytes, base64url");
    assert_eq!(stored_requests(&app, &id).await, 1);
    // Audited with the client and the scope, never with the request_uri: until it is
    // used, it is what a browser redeems.
    let events = app.audit().await;
    let pushes: Vec<_> = events.iter().filter(|e| e.event == "par.pushed").collect();
    assert_eq!(pushes.len(), 1, "{events:?}");
    let details: Value = serde_json::from_str(&pushes[0].details).unwrap();
    assert_eq!(details["client_id"], id.as_str());
    assert!(
        details["scope"].as_str().unwrap().contains("email"),
        "{details}"
    );
    assert_eq!(pushes[0].outcome, "success");
    assert!(!format!("{events:?}").contains(random), "{events:?}");

    // Parameters in the link besides client_id are not the app's: they are ignored.
    let path = format!(
        "{}&redirect_uri=http%3A%2F%2Fevil.example%2Fcb&scope=openid+roles&state=forged",
        authorize_path(&id, &request_uri)
    );
    let b = app.browser();
    let p = b.get(&path).await;
    let login = p.location().unwrap();
    assert!(login.starts_with("/login?next="), "{login}");
    let next = next_of(&login);
    // The pushed login_hint fills the email field.
    let form = b.get(&login).await;
    let email = scraper::Selector::parse("input[name=email]").unwrap();
    assert_eq!(
        form.doc()
            .select(&email)
            .next()
            .and_then(|e| e.value().attr("value")),
        Some("paz@example.com")
    );
    // Signing in takes a while: the request stays with this browser, not in the store.
    app.clock.advance(90);
    let p = b
        .submit(
            &login,
            "/login",
            &[
                ("email", "paz@example.com"),
                ("password", PASSWORD),
                ("next", &next),
            ],
        )
        .await;
    assert_redirect(&p, &next);
    let consent = b.get(&next).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(consent.body.contains("Allow Wiki?"), "{}", consent.body);
    assert!(
        !consent.body.contains("See your roles"),
        "the pushed scopes, not the link's"
    );
    let p = allow(&b, &consent).await;
    let back = p.location().unwrap();
    assert!(back.starts_with(CALLBACK), "{back}");
    let back = query(&back);
    assert_eq!(back["state"], *state.secret());
    assert_eq!(back["iss"], app.base);

    let token = rp
        .exchange_code(AuthorizationCode::new(back["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let claims = token
        .id_token()
        .expect("an ID token")
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("a valid ID token with the pushed nonce");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("paz@example.com"));
    assert!(!token.access_token().secret().is_empty());

    // Used: neither this browser nor another gets anything from it again.
    assert_error_page(&b.get(&authorize_path(&id, &request_uri)).await);
    let other = app.browser();
    other.login_ok("paz@example.com").await;
    assert_error_page(&other.get(&authorize_path(&id, &request_uri)).await);
    assert_eq!(stored_requests(&app, &id).await, 0);
    // Each refusal is audited once, with who tried.
    let used: Vec<_> = refusals(&app).await;
    assert_eq!(used.len(), 2, "{used:?}");
    assert!(
        used.iter()
            .all(|(why, cid, _)| why == "unknown_or_used" && *cid == id)
    );
    assert!(used.iter().all(|(_, _, actor)| actor.is_some()), "{used:?}");
    assert!(!format!("{:?}", app.audit().await).contains(random));
}

#[tokio::test]
async fn a_pushed_request_works_once_within_a_minute_and_for_its_client_only() {
    let app = oidc_app_with(FileConfig::default()).await;
    app.create_user("ren@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    let (other_id, other_secret) = client(&app, false).await;
    let b = app.browser();
    b.login_ok("ren@example.com").await;

    // Unknown, or not one of ours at all.
    assert_error_page(
        &b.get(&authorize_path(
            &id,
            "urn:ietf:params:oauth:request_uri:nothing-pushed-here",
        ))
        .await,
    );
    assert_error_page(
        &b.get(&authorize_path(&id, "https://evil.example/request"))
            .await,
    );
    let why = |v: Vec<(String, String, Option<String>)>| -> Vec<String> {
        v.into_iter().map(|(why, _, _)| why).collect()
    };
    assert_eq!(why(refusals(&app).await), ["unknown_or_used", "malformed"]);

    // Another client's request_uri is refused, and does not burn it.
    let uri = pushed(&app, &id, Some(&secret), "s-1").await;
    assert_error_page(&b.get(&authorize_path(&other_id, &uri)).await);
    assert_error_page(&b.get(&format!("/oauth/authorize?request_uri={uri}")).await);
    let seen = refusals(&app).await;
    assert_eq!(
        seen[2..],
        [
            (
                "client_mismatch".to_string(),
                other_id.clone(),
                seen[2].2.clone()
            ),
            (
                "client_mismatch".to_string(),
                String::new(),
                seen[3].2.clone()
            ),
        ]
    );
    let p = follow(&b, &authorize_path(&id, &uri)).await;
    let back = query(&p.location().unwrap());
    assert_eq!(back["state"], "s-1");
    let (status, t) = exchange(&app, &id, &secret, &back["code"]).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    // The other client's own pushes still work.
    let theirs = pushed(&app, &other_id, other_secret.as_deref(), "s-2").await;
    let p = follow(&b, &authorize_path(&other_id, &theirs)).await;
    assert_eq!(query(&p.location().unwrap())["state"], "s-2");

    // Expired: 60 s.
    let uri = pushed(&app, &id, Some(&secret), "s-3").await;
    app.clock.advance(61);
    assert_error_page(&b.get(&authorize_path(&id, &uri)).await);
    assert_eq!(why(refusals(&app).await).last().unwrap(), "expired");
    let uri = pushed(&app, &id, Some(&secret), "s-4").await;
    app.clock.advance(59);
    let p = follow(&b, &authorize_path(&id, &uri)).await;
    assert_eq!(query(&p.location().unwrap())["state"], "s-4");
}

#[tokio::test]
async fn two_authorizations_racing_for_one_request_uri_exactly_one_proceeds() {
    let app = oidc_app_with(FileConfig::default()).await;
    app.create_user("ada@example.com", &[]).await;
    app.create_user("bob@example.com", &[]).await;
    let mut c = new_client(false);
    c.skip_consent = true;
    let (id, secret) = client_with(&app, c).await;
    let secret = secret.unwrap();
    let (a, b) = (app.browser(), app.browser());
    a.login_ok("ada@example.com").await;
    b.login_ok("bob@example.com").await;
    for round in 0..8 {
        let uri = pushed(&app, &id, Some(&secret), &format!("r{round}")).await;
        let path = authorize_path(&id, &uri);
        let (pa, pb) = tokio::join!(a.get(&path), b.get(&path));
        let codes: Vec<String> = [&pa, &pb]
            .iter()
            .filter_map(|p| p.location())
            .map(|l| query(&l)["code"].clone())
            .collect();
        assert_eq!(
            codes.len(),
            1,
            "round {round}: {} / {}",
            pa.status,
            pb.status
        );
        let loser = if pa.location().is_some() { &pb } else { &pa };
        assert_error_page(loser);
        // The loser's refusal is audited, once.
        assert_eq!(refusals(&app).await.len(), round + 1);
        let (status, t) = exchange(&app, &id, &secret, &codes[0]).await;
        assert_eq!(status, StatusCode::OK, "{t}");
    }
}

#[tokio::test]
async fn the_par_endpoint_refuses_what_the_authorization_endpoint_would() {
    let app = oidc_app_with(FileConfig::default()).await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    let good = request("s");

    // Client authentication as at the token endpoint.
    let (status, body) = push(&app, &id, Some("not-the-secret"), &refs(&good)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = push(&app, &id, None, &refs(&good)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = push(&app, "no-such-client", Some("x"), &refs(&good)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    // The authorization endpoint's checks, answered as JSON; nothing is stored.
    let with = |k: &'static str, v: &str| {
        let mut r: Vec<(&'static str, String)> =
            good.iter().filter(|(n, _)| *n != k).cloned().collect();
        r.push((k, v.to_string()));
        r
    };
    for (params, error) in [
        (
            with("redirect_uri", "http://evil.example/cb"),
            "invalid_request",
        ),
        (
            with("request_uri", "urn:ietf:params:oauth:request_uri:x"),
            "invalid_request",
        ),
        (with("response_type", "token"), "unsupported_response_type"),
        (with("scope", "openid admin"), "invalid_scope"),
        (with("code_challenge_method", "plain"), "invalid_request"),
        (with("prompt", "none login"), "invalid_request"),
        (with("max_age", "soon"), "invalid_request"),
    ] {
        let (status, body) = push(&app, &id, Some(&secret), &refs(&params)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}: {body}");
        assert_eq!(body["error"], error, "{params:?}");
        assert!(body["error_description"].is_string());
    }
    let mut twice = refs(&good);
    twice.push(("scope", "openid"));
    let (status, body) = push(&app, &id, Some(&secret), &twice).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert_eq!(stored_requests(&app, &id).await, 0);

    // A public client names itself, and must use PKCE as at /oauth/authorize.
    let (public_id, _) = client(&app, true).await;
    let (status, body) = push(&app, &public_id, None, &refs(&good)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let no_pkce: Vec<(&'static str, String)> = good
        .iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .cloned()
        .collect();
    let (status, body) = push(&app, &public_id, None, &refs(&no_pkce)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // POST only (RFC 9126 section 2.3).
    let res = reqwest::get(format!("{}/oauth/par", app.base))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_par_endpoint_is_limited_per_client_like_the_token_endpoint() {
    let app = oidc_app_with(FileConfig {
        token_requests_per_client_per_minute: Some(2),
        ..Default::default()
    })
    .await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    pushed(&app, &id, Some(&secret), "a").await;
    pushed(&app, &id, Some(&secret), "b").await;
    let (status, body) = push(&app, &id, Some(&secret), &refs(&request("c"))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "slow_down");
}

#[tokio::test]
async fn a_client_that_requires_par_gets_no_code_from_a_plain_request() {
    let app = oidc_app_with(FileConfig::default()).await;
    app.create_user("kim@example.com", &[]).await;
    let mut c = new_client(false);
    c.require_par = true;
    c.skip_consent = true;
    let (id, secret) = client_with(&app, c).await;
    let secret = secret.unwrap();
    let b = app.browser();
    b.login_ok("kim@example.com").await;
    let plain = format!("{}&state=p1", plain_request(&id));
    let p = b.get(&plain).await;
    let back = query(&p.location().unwrap());
    assert_eq!(back["error"], "invalid_request");
    assert_eq!(back["state"], "p1");
    assert!(!back.contains_key("code"));
    // A plain request to an unregistered address is still only an error page.
    let p = b.get(&plain.replace("app.example", "evil.example")).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.location().is_none());

    let uri = pushed(&app, &id, Some(&secret), "p2").await;
    let p = follow(&b, &authorize_path(&id, &uri)).await;
    let back = query(&p.location().unwrap());
    assert_eq!(back["state"], "p2");
    let (status, t) = exchange(&app, &id, &secret, &back["code"]).await;
    assert_eq!(status, StatusCode::OK, "{t}");
}

#[tokio::test]
async fn the_server_wide_setting_makes_every_client_push() {
    let app = oidc_app_with(FileConfig {
        require_par: Some(true),
        ..Default::default()
    })
    .await;
    app.create_user("lou@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    let doc: Value = reqwest::get(format!("{}/.well-known/openid-configuration", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    let b = app.browser();
    b.login_ok("lou@example.com").await;
    let plain = plain_request(&id);
    let back = query(&b.get(&plain).await.location().unwrap());
    assert_eq!(back["error"], "invalid_request");
    let uri = pushed(&app, &id, Some(&secret), "w1").await;
    let p = follow(&b, &authorize_path(&id, &uri)).await;
    assert_eq!(query(&p.location().unwrap())["state"], "w1");
}

/// `client create --require-par`, then the server refuses that client's plain request.
#[tokio::test]
async fn an_operator_requires_par_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let (ok, out, err) = crate::cli::portcullis(
        dir.path(),
        &db,
        &[
            "client",
            "create",
            "--name",
            "Bank",
            "--redirect-uri",
            CALLBACK,
            "--require-par",
        ],
        None,
    );
    assert!(ok, "{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("client_id="))
        .unwrap()
        .to_string();
    let app = oidc_app_with(FileConfig {
        database_url: Some(db),
        ..Default::default()
    })
    .await;
    app.create_user("max@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("max@example.com").await;
    let plain = plain_request(&id);
    let back = query(&b.get(&plain).await.location().unwrap());
    assert_eq!(back["error"], "invalid_request");
}

/// `prompt=login` in a pushed request: the user signs in again once, then the app gets
/// its code (the held request no longer asks for it).
#[tokio::test]
async fn a_pushed_prompt_login_asks_once() {
    let app = oidc_app_with(FileConfig::default()).await;
    app.create_user("eve@example.com", &[]).await;
    let mut c = new_client(false);
    c.skip_consent = true;
    let (id, secret) = client_with(&app, c).await;
    let secret = secret.unwrap();
    let b = app.browser();
    b.login_ok("eve@example.com").await;
    let mut params = request("pl");
    params.push(("prompt", "login".into()));
    let (status, body) = push(&app, &id, Some(&secret), &refs(&params)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = authorize_path(&id, body["request_uri"].as_str().unwrap());
    let p = b.get(&path).await;
    let reauth = p.location().unwrap();
    assert!(reauth.starts_with("/login/reauth?next="), "{reauth}");
    let next = next_of(&reauth);
    let p = b
        .submit(
            &reauth,
            "/login/reauth",
            &[("password", PASSWORD), ("next", &next)],
        )
        .await;
    assert_redirect(&p, &next);
    let p = b.get(&next).await;
    let back = query(
        &p.location()
            .unwrap_or_else(|| panic!("{}: {}", p.status, p.body)),
    );
    assert_eq!(back["state"], "pl");
    let (status, t) = exchange(&app, &id, &secret, &back["code"]).await;
    assert_eq!(status, StatusCode::OK, "{t}");
}

/// Several instances: a request pushed to one is used through another (PostgreSQL +
/// Redis only; on SQLite there is one instance by design).
#[tokio::test]
async fn a_request_pushed_to_one_instance_is_used_at_another() {
    let app = oidc_app_with(FileConfig::default()).await;
    let Some(other) = second_instance(&app).await else {
        return;
    };
    app.create_user("ivy@example.com", &[]).await;
    let mut c = new_client(false);
    c.skip_consent = true;
    let (id, secret) = client_with(&app, c).await;
    let secret = secret.unwrap();
    let b = other.browser();
    b.login_ok("ivy@example.com").await;
    let uri = pushed(&app, &id, Some(&secret), "m1").await;
    let p = b.get(&authorize_path(&id, &uri)).await;
    assert_eq!(query(&p.location().unwrap())["state"], "m1");
    assert_error_page(&app.browser().get(&authorize_path(&id, &uri)).await);
}

/// The client page's **Require pushed authorization requests (PAR)** box is shown as
/// saved, and saving it makes the client refuse plain requests.
#[tokio::test]
async fn an_administrator_requires_par_on_the_client_page() {
    let app = oidc_app_with(FileConfig {
        admin_requires_second_factor: Some(false),
        ..Default::default()
    })
    .await;
    app.create_user("root@example.com", &["admin"]).await;
    let mut c = new_client(false);
    c.skip_consent = true;
    let (id, _) = client_with(&app, c).await;
    let b = app.browser();
    b.login_ok("root@example.com").await;
    let page_path = format!("/admin/clients/{id}");
    let checked = |p: &Page| {
        let sel = scraper::Selector::parse("input[name=require_par]").unwrap();
        let doc = p.doc();
        let input = doc.select(&sel).next().expect("the PAR box");
        input.value().attr("checked").is_some()
    };
    let page = b.get(&page_path).await;
    assert!(
        page.body
            .contains("Require pushed authorization requests (PAR)")
    );
    assert!(!checked(&page));
    let plain = plain_request(&id);
    assert!(query(&b.get(&plain).await.location().unwrap()).contains_key("code"));

    let csrf = page.csrf();
    let p = b
        .post(
            &page_path,
            &[
                ("csrf_token", &csrf),
                ("name", "Wiki"),
                ("redirect_uris", CALLBACK),
                ("scope", "openid"),
                ("grant", "authorization_code"),
                ("id_token_alg", "RS256"),
                ("skip_consent", "1"),
                ("require_par", "1"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(checked(&b.get(&page_path).await));
    let back = query(&b.get(&plain).await.location().unwrap());
    assert_eq!(back["error"], "invalid_request");
    assert!(!back.contains_key("code"));
}
