//! The OpenID Connect provider driven by a real relying-party library (openidconnect):
//! discovery, authorization code with PKCE, consent, token, ID token checks, userinfo,
//! refresh with rotation, revocation, introspection; plus direct HTTP for every
//! negative case, key rotation and RP-initiated logout.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyAdditionalClaims, IntrospectionUrl,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenIntrospectionResponse, TokenResponse, UserInfoClaims,
};
use portcullis::auth::audit::AuditCtx;
use portcullis::auth::oauth::authorize::NewClient;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

pub(crate) const CALLBACK: &str = "http://app.example/callback";

/// The issuer must be the address the tests reach, so the port is chosen first.
async fn oidc_app() -> TestApp {
    oidc_app_with(Default::default()).await
}

pub(crate) async fn oidc_app_with(file: portcullis::config::FileConfig) -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            listen: Some(format!("127.0.0.1:{port}")),
            public_url: Some(format!("http://127.0.0.1:{port}")),
            ..file
        },
    })
    .await
}

pub(crate) fn new_client(public: bool) -> NewClient {
    NewClient {
        name: "Wiki".into(),
        redirect_uris: vec![CALLBACK.into()],
        post_logout_redirect_uris: vec![LOGGED_OUT.into()],
        public,
        scopes: vec![
            "openid".into(),
            "profile".into(),
            "email".into(),
            "roles".into(),
        ],
        grants: vec![],
        skip_consent: false,
        id_token_alg: "RS256".into(),
        allowed_groups: vec![],
        require_two_factor: false,
        allowed_networks: Vec::new(),
        require_par: false,
        auth_method: None,
        jwks: None,
    }
}

const LOGGED_OUT: &str = "http://app.example/logged-out";

pub(crate) async fn client(app: &TestApp, public: bool) -> (String, Option<String>) {
    client_with(app, new_client(public)).await
}

/// A confidential client that may only use `client_credentials` (scope `roles`), as
/// a back-end service would be registered.
pub async fn service_client(app: &TestApp) -> (String, String) {
    let mut c = new_client(false);
    c.grants = vec!["client_credentials".into()];
    c.scopes = vec!["roles".into()];
    let (id, secret) = client_with(app, c).await;
    (id, secret.expect("a confidential client has a secret"))
}

pub(crate) async fn client_with(app: &TestApp, c: NewClient) -> (String, Option<String>) {
    app.state
        .oauth
        .create_client(c, &AuditCtx::cli())
        .await
        .unwrap()
}

pub(crate) fn query(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Sends the consent page's form back with **Allow**.
pub(crate) async fn allow(b: &Browser, page: &Page) -> Page {
    let sel =
        scraper::Selector::parse("form[action='/oauth/authorize'] input[type=hidden]").unwrap();
    let mut fields: Vec<(String, String)> = page
        .doc()
        .select(&sel)
        .map(|e| {
            (
                e.value().attr("name").unwrap().to_string(),
                e.value().attr("value").unwrap_or_default().to_string(),
            )
        })
        .collect();
    fields.push(("decision".into(), "allow".into()));
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post("/oauth/authorize", &refs).await
}

/// Follows the authorization URL as the signed-in user, allowing on the consent page.
async fn approve(
    b: &Browser,
    app: &TestApp,
    auth_url: &url::Url,
) -> std::collections::HashMap<String, String> {
    let path = auth_url
        .as_str()
        .strip_prefix(&app.base)
        .unwrap()
        .to_string();
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Allow Wiki?"), "{}", page.body);
    let p = allow(b, &page).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let loc = p.location().unwrap();
    assert!(loc.starts_with(CALLBACK), "{loc}");
    query(&loc)
}

#[tokio::test]
async fn a_relying_party_signs_a_user_in_with_code_and_pkce() {
    let app = oidc_app().await;
    let uid = app.create_user("ola@example.com", &["admin"]).await;
    let (id, secret) = client(&app, false).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery");
    let secret = secret.expect("a confidential client has a secret");
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
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("roles".into()))
        .set_pkce_challenge(challenge)
        .url();

    // Not signed in: the hosted login, which comes back to the request.
    let b = app.browser();
    let path = auth_url
        .as_str()
        .strip_prefix(&app.base)
        .unwrap()
        .to_string();
    let p = b.get(&path).await;
    assert!(
        p.location()
            .unwrap()
            .starts_with("/login?next=%2Foauth%2Fauthorize")
    );
    b.login_ok("ola@example.com").await;
    let back = approve(&b, &app, &auth_url).await;
    assert_eq!(back["state"], *state.secret());
    assert_eq!(back["iss"], app.base);
    let code = back["code"].clone();

    let token = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let id_token = token.id_token().expect("an ID token");
    let claims = id_token
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("valid ID token");
    assert_eq!(claims.subject().as_str(), uid);
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ola@example.com"));
    assert!(claims.auth_time().is_some());
    assert_eq!(
        *id_token.signing_alg().unwrap(),
        openidconnect::core::CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256
    );
    assert_eq!(
        token.access_token().secret().split('.').count(),
        3,
        "the access token is a JWT"
    );
    let userinfo = |t: openidconnect::AccessToken| {
        let rp = &rp;
        let http = &http;
        async move {
            let r: Result<UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim>, _> =
                rp.user_info(t, None).unwrap().request_async(http).await;
            r.ok()
        }
    };
    let info = userinfo(token.access_token().clone())
        .await
        .expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some("ola@example.com"));

    // Refresh: a new access token and a new refresh token; the old one is spent.
    let rt1 = token.refresh_token().expect("a refresh token").clone();
    let refreshed = rp
        .exchange_refresh_token(&rt1)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    let rt2 = refreshed
        .refresh_token()
        .expect("a rotated refresh token")
        .clone();
    assert_ne!(rt1.secret(), rt2.secret());
    assert!(userinfo(refreshed.access_token().clone()).await.is_some());
    // The spent token again: refused, and the whole family with it.
    let replay = rp
        .exchange_refresh_token(&rt1)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(replay.is_err(), "a used refresh token works once");
    let after = rp
        .exchange_refresh_token(&rt2)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(after.is_err(), "reuse revokes the newest refresh token too");
    assert!(
        userinfo(refreshed.access_token().clone()).await.is_none(),
        "and the access tokens of the family"
    );
    assert!(
        app.audit_names()
            .await
            .contains(&"refresh_token.reused".to_string())
    );

    // A wrong secret is not a client.
    let post = |secret: String, code: String| {
        http.post(format!("{}/oauth/token", app.base))
            .basic_auth(&id, Some(secret))
            .form(&[
                ("grant_type", "authorization_code".to_string()),
                ("code", code),
                ("redirect_uri", CALLBACK.to_string()),
            ])
            .send()
    };
    let r = post("wrong".into(), code.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"], "invalid_client");
    let names = app.audit_names().await;
    assert!(names.contains(&"consent.granted".to_string()));
    assert!(names.contains(&"token.issued".to_string()));

    // Consent is remembered: the next request comes straight back with a code.
    let fresh_code = || async {
        let (auth_url, _, _) = rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .url();
        let p = b
            .get(auth_url.as_str().strip_prefix(&app.base).unwrap())
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        query(&p.location().unwrap())["code"].clone()
    };
    let code2 = fresh_code().await;
    let second = rp
        .exchange_code(AuthorizationCode::new(code2.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("second sign-in");
    assert!(userinfo(second.access_token().clone()).await.is_some());
    // The same code again: invalid_grant, and what the first use issued is revoked.
    let again = post(secret.clone(), code2).await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let err: Value = again.json().await.unwrap();
    assert_eq!(err["error"], "invalid_grant");
    assert!(userinfo(second.access_token().clone()).await.is_none());
    let refresh_after_reuse = rp
        .exchange_refresh_token(second.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await;
    assert!(refresh_after_reuse.is_err());

    // Introspection (RFC 7662) through the library; revocation (RFC 7009) by hand, as
    // the library refuses a revocation endpoint that is not https.
    let rp2 = rp.clone().set_introspection_url(
        IntrospectionUrl::new(format!("{}/oauth/introspect", app.base)).unwrap(),
    );
    let third = rp2
        .exchange_code(AuthorizationCode::new(fresh_code().await))
        .unwrap()
        .request_async(&http)
        .await
        .expect("third sign-in");
    let seen = rp2
        .introspect(third.access_token())
        .request_async(&http)
        .await
        .expect("introspection");
    assert!(seen.active());
    assert_eq!(seen.sub(), Some(uid.as_str()));
    let revoked = http
        .post(format!("{}/oauth/revoke", app.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", third.refresh_token().unwrap().secret().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let seen = rp2
        .introspect(third.access_token())
        .request_async(&http)
        .await
        .expect("introspection");
    assert!(!seen.active(), "revoking the refresh token ends its grant");
    assert!(
        app.audit_names()
            .await
            .contains(&"token.revoked".to_string())
    );
}

#[tokio::test]
async fn bad_requests_are_refused_and_never_redirected_to_strangers() {
    let app = oidc_app().await;
    app.create_user("pat@example.com", &[]).await;
    let (id, _) = client(&app, true).await;
    let b = app.browser();
    b.login_ok("pat@example.com").await;
    let base = "/oauth/authorize?response_type=code&scope=openid";

    // Unknown client or unregistered redirect: an error page, no redirect.
    let p = b
        .get(&format!(
            "{base}&client_id=nope&redirect_uri=http%3A%2F%2Fapp.example%2Fcallback"
        ))
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.location().is_none());
    let p = b
        .get(&format!(
            "{base}&client_id={id}&redirect_uri=http%3A%2F%2Fevil.example%2Fcallback"
        ))
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.location().is_none());

    // A public client without PKCE, or with `plain`: an error back to the client.
    let cb = "http%3A%2F%2Fapp.example%2Fcallback";
    let p = b
        .get(&format!("{base}&client_id={id}&redirect_uri={cb}&state=s1"))
        .await;
    let q = query(&p.location().unwrap());
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "s1");
    let p = b
        .get(&format!(
            "{base}&client_id={id}&redirect_uri={cb}&code_challenge=abc&code_challenge_method=plain"
        ))
        .await;
    assert_eq!(query(&p.location().unwrap())["error"], "invalid_request");
    let p = b
        .get(&format!(
            "/oauth/authorize?response_type=token&scope=openid&client_id={id}&redirect_uri={cb}"
        ))
        .await;
    assert_eq!(
        query(&p.location().unwrap())["error"],
        "unsupported_response_type"
    );

    // prompt=none without a session: login_required, no login page.
    let anon = app.browser();
    let p = anon
        .get(&format!("{base}&client_id={id}&redirect_uri={cb}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&prompt=none"))
        .await;
    assert_eq!(query(&p.location().unwrap())["error"], "login_required");

    // Userinfo without a valid token.
    let r = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.base))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Runs the authorization request as the signed-in browser, allowing on the consent
/// page if it shows; returns the redirect's query.
pub(crate) async fn authorize(
    b: &Browser,
    client_id: &str,
    extra: &str,
) -> std::collections::HashMap<String, String> {
    authorize_scope(b, client_id, "openid email", extra).await
}

pub(crate) async fn authorize_scope(
    b: &Browser,
    client_id: &str,
    scope: &str,
    extra: &str,
) -> std::collections::HashMap<String, String> {
    let path = format!(
        "/oauth/authorize?response_type=code&scope={}&client_id={client_id}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&nonce=n1{extra}",
        url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let p = b.get(&path).await;
    let loc = if p.status == StatusCode::OK {
        allow(b, &p).await.location().unwrap()
    } else {
        p.location()
            .unwrap_or_else(|| panic!("{}: {}", p.status, p.body))
    };
    assert!(loc.starts_with(CALLBACK), "{loc}");
    query(&loc)
}

pub async fn token_request(
    app: &TestApp,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new().post(format!("{}/oauth/token", app.base));
    if let Some((id, secret)) = auth {
        r = r.basic_auth(id, Some(secret));
    }
    let res = r.form(form).send().await.unwrap();
    let status = res.status();
    assert_eq!(
        res.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Exchanges a code from `authorize` (PKCE with VERIFIER) as a confidential client.
pub(crate) async fn exchange(
    app: &TestApp,
    id: &str,
    secret: &str,
    code: &str,
) -> (StatusCode, Value) {
    token_request(
        app,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

pub(crate) async fn back_channel(
    app: &TestApp,
    path: &str,
    auth: (&str, &str),
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .basic_auth(auth.0, Some(auth.1))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_token_endpoint_refuses_what_it_must() {
    let app = oidc_app().await;
    app.create_user("kim@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    let (public_id, _) = client(&app, true).await;
    let b = app.browser();
    b.login_ok("kim@example.com").await;
    let exchange = |code: String, verifier: &'static str| {
        let (id, secret, app) = (id.clone(), secret.clone(), &app);
        async move {
            token_request(
                app,
                Some((&id, &secret)),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", CALLBACK),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };

    // PKCE mismatch: refused, and the code is not burnt by a wrong attempt.
    let code = authorize(&b, &id, "").await["code"].clone();
    let (status, body) =
        exchange(code.clone(), "a-different-verifier-a-different-verifier-x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = exchange(code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "the real client can still use it");

    // An expired code (60 s).
    let code = authorize(&b, &id, "").await["code"].clone();
    app.clock.advance(61);
    let (status, body) = exchange(code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // A good one, for what follows.
    let code = authorize(&b, &id, "").await["code"].clone();
    let (status, tokens) = exchange(code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    // A refresh may narrow the scope, never widen it.
    let (status, body) = token_request(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "openid roles"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );

    // Another client cannot use this client's refresh token.
    let (status, body) = token_request(
        &app,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &public_id),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Unknown grant types, and client_credentials for a client not allowed it.
    let (status, body) =
        token_request(&app, Some((&id, &secret)), &[("grant_type", "password")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, body) = token_request(
        &app,
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );

    // Two authentication methods at once.
    let (status, body) = token_request(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // Introspection is for confidential clients; a public one is refused.
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/introspect", app.base))
        .form(&[
            ("token", access.as_str()),
            ("client_id", public_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &secret),
        &[("token", &access)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], id.as_str());
    let (_, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &secret),
        &[("token", &refresh)],
    )
    .await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["token_type"], "refresh_token");

    // Revoking the access token alone: inactive, refresh token still fine.
    let (status, _) = back_channel(
        &app,
        "/oauth/revoke",
        (&id, &secret),
        &[("token", &access), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &secret),
        &[("token", &access)],
    )
    .await;
    assert_eq!(seen, serde_json::json!({"active": false}));
    let (_, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &secret),
        &[("token", &refresh)],
    )
    .await;
    assert_eq!(seen["active"], true);
    // Garbage is "inactive", never an error.
    let (status, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &secret),
        &[("token", "x.y.z")],
    )
    .await;
    assert_eq!(
        (status, seen["active"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let r = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a revoked token opens nothing"
    );
}

#[tokio::test]
async fn client_credentials_issue_audited_tokens_for_the_client_itself() {
    let app = oidc_app().await;
    let mut c = new_client(false);
    c.grants = vec!["client_credentials".into()];
    c.redirect_uris = vec![];
    c.scopes = vec!["openid".into(), "roles".into()];
    let (id, secret) = client_with(&app, c).await;
    let secret = secret.unwrap();
    let (status, t) = token_request(
        &app,
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(
        t["scope"], "roles",
        "user scopes mean nothing without a user"
    );
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none());
    let access = t["access_token"].as_str().unwrap();
    let (_, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &secret),
        &[("token", access)],
    )
    .await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["sub"], id.as_str());
    let (status, t) = token_request(
        &app,
        Some((&id, &secret)),
        &[("grant_type", "client_credentials"), ("scope", "email")],
    )
    .await;
    assert_eq!(
        (status, t["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    // No user behind it: userinfo refuses it.
    let r = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.base))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let issued = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.event == "token.issued")
        .count();
    assert_eq!(issued, 1, "every issued token is audited");
    // Concurrent requests are audited in shared transactions: still one event each,
    // and still one valid chain.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (base, id, secret) = (app.base.clone(), id.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let issued = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.event == "token.issued")
        .count();
    assert_eq!(issued, 41);
    let verdict = app
        .db
        .run(|c| portcullis::auth::audit::verify_chain(c).map_err(portcullis::db::DbError::from))
        .await
        .unwrap();
    assert!(
        matches!(
            verdict,
            portcullis::auth::audit::ChainVerdict::Intact { .. }
        ),
        "{verdict:?}"
    );
    // Deleting the client ends its tokens.
    assert!(
        app.state
            .oauth
            .delete_client(&id, &AuditCtx::cli(),)
            .await
            .unwrap()
    );
    let generation = app.state.oauth.generation().await;
    let seen = app
        .state
        .oauth
        .introspect(generation, &id, access)
        .await
        .unwrap();
    assert_eq!(seen["active"], false);
    // Public clients cannot be given client_credentials at all.
    let mut c = new_client(true);
    c.grants = vec!["client_credentials".into()];
    assert!(
        app.state
            .oauth
            .create_client(c, &AuditCtx::cli())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn signing_keys_rotate_and_what_they_signed_still_verifies() {
    let app = oidc_app_with(portcullis::config::FileConfig {
        signing_key_rotation_days: Some(1),
        access_token_ttl_secs: Some(3 * 86_400),
        ..Default::default()
    })
    .await;
    let (id, secret) = service_client(&app).await;
    let kid_of = |t: &str| -> String {
        let header = t.split('.').next().unwrap();
        let json: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap(),
        )
        .unwrap();
        json["kid"].as_str().unwrap().to_string()
    };
    // The published kids of the access tokens' algorithm (ES256 by default).
    let jwks_kids = || async {
        let j: Value = reqwest::get(format!("{}/oauth/jwks", app.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        j["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == "ES256")
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let issue = || async {
        let (_, t) = token_request(
            &app,
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        t["access_token"].as_str().unwrap().to_string()
    };
    let active = |t: String| {
        let (id, secret, app) = (id.clone(), secret.clone(), &app);
        async move {
            back_channel(app, "/oauth/introspect", (&id, &secret), &[("token", &t)])
                .await
                .1["active"]
                == true
        }
    };
    let old = issue().await;
    let old_kid = kid_of(&old);
    assert_eq!(jwks_kids().await, vec![old_kid.clone()]);

    // A quarter of the period before the rotation, the successor is published but does
    // not sign yet: relying parties that cache the JWKS hold it before they see it.
    app.clock.advance(18 * 3_600 + 1);
    let still = issue().await;
    assert_eq!(
        kid_of(&still),
        old_kid,
        "the current key signs until its period ends"
    );
    let kids = jwks_kids().await;
    assert_eq!(kids.len(), 2, "the next key is published ahead: {kids:?}");
    let next_kid = kids.iter().find(|k| **k != old_kid).unwrap().clone();

    app.clock.advance(6 * 3_600);
    let new = issue().await;
    let new_kid = kid_of(&new);
    assert_ne!(old_kid, new_kid, "a key past its period is replaced");
    assert_eq!(new_kid, next_kid, "by the key published ahead of it");
    let kids = jwks_kids().await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    assert_eq!(
        kids.len(),
        2,
        "no further key appears at the switch: {kids:?}"
    );
    assert!(
        active(old.clone()).await,
        "tokens signed before the rotation still verify"
    );
    assert!(active(new.clone()).await);

    // Once everything the old key signed has expired, it is gone.
    app.clock.advance(3 * 86_400 + 120);
    let kids = jwks_kids().await;
    assert!(!kids.contains(&old_kid), "{kids:?}");
    assert!(!active(old).await);
}

#[tokio::test]
async fn id_tokens_in_es256_and_eddsa_verify_with_a_real_client() {
    use openidconnect::core::CoreJwsSigningAlgorithm as Alg;
    let app = oidc_app().await;
    app.create_user("lee@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("lee@example.com").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .unwrap();
    for (alg, expected) in [("ES256", Alg::EcdsaP256Sha256), ("EdDSA", Alg::EdDsa)] {
        let mut c = new_client(false);
        c.id_token_alg = alg.into();
        let (id, secret) = client_with(&app, c).await;
        let rp = CoreClient::from_provider_metadata(
            meta.clone(),
            ClientId::new(id.clone()),
            Some(ClientSecret::new(secret.unwrap())),
        )
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
        let code = authorize(&b, &id, "").await["code"].clone();
        let token = rp
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(openidconnect::PkceCodeVerifier::new(VERIFIER.into()))
            .request_async(&http)
            .await
            .expect("token");
        let id_token = token.id_token().unwrap();
        assert_eq!(*id_token.signing_alg().unwrap(), expected);
        let verifier = rp
            .id_token_verifier()
            .set_allowed_algs(vec![expected.clone()]);
        let claims = id_token
            .claims(&verifier, &Nonce::new("n1".into()))
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        // at_hash checked with the algorithm's hash.
        let at_hash = claims.access_token_hash().expect("at_hash");
        let computed = openidconnect::AccessTokenHash::from_token(
            token.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(*at_hash, computed, "{alg}");
    }
}

#[tokio::test]
async fn an_app_can_end_the_portcullis_session_but_only_return_where_it_registered() {
    let app = oidc_app().await;
    app.create_user("max@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    let b = app.browser();
    b.login_ok("max@example.com").await;
    let code = authorize(&b, &id, "").await["code"].clone();
    let (_, tokens) = exchange(&app, &id, &secret, &code).await;
    let hint = tokens["id_token"].as_str().unwrap().to_string();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();

    // A return address the app did not register: refused, no redirect, still signed in.
    let p = b
        .get(&format!(
            "/oauth/logout?id_token_hint={}&post_logout_redirect_uri={}&state=s",
            enc(&hint),
            enc("http://evil.example/")
        ))
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.location().is_none());
    assert_eq!(b.get("/account").await.status, StatusCode::OK);

    // Without a hint (anyone could link it): the user confirms first.
    let p = b.get("/oauth/logout").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Sign out?"), "{}", p.body);
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    // An app may POST the request from its own origin: the same rules, no 403.
    let res = b
        .client
        .post(format!("{}/oauth/logout", app.base))
        .header("Origin", "http://app.example")
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("client_id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Sign out?"));
    assert_eq!(b.get("/account").await.status, StatusCode::OK);

    // With this session's ID token: signed out at once, back to the app with state.
    let p = b
        .get(&format!(
            "/oauth/logout?id_token_hint={}&post_logout_redirect_uri={}&state=s-42",
            enc(&hint),
            enc(LOGGED_OUT)
        ))
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location().unwrap(), format!("{LOGGED_OUT}?state=s-42"));
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "the session ended"
    );
    assert!(app.audit_names().await.contains(&"logout".to_string()));
}

#[tokio::test]
async fn prompt_login_asks_again_and_login_hint_fills_the_form() {
    let app = oidc_app().await;
    app.create_user("ida@example.com", &[]).await;
    let (id, _) = client(&app, true).await;
    let anon = app.browser();
    let path = format!(
        "/oauth/authorize?response_type=code&scope=openid&client_id={id}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&login_hint=ida%40example.com",
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let p = anon.get(&path).await;
    let login = anon.get(&p.location().unwrap()).await;
    assert_eq!(
        login
            .doc()
            .select(&scraper::Selector::parse("input[name=email]").unwrap())
            .next()
            .and_then(|e| e.value().attr("value").map(str::to_string)),
        Some("ida@example.com".to_string())
    );

    let b = app.browser();
    b.login_ok("ida@example.com").await;
    authorize(&b, &id, "").await; // consent once
    let p = b.get(&format!("{path}&prompt=login")).await;
    let loc = p.location().unwrap();
    assert!(loc.starts_with("/login/reauth?next="), "{loc}");
    assert!(
        !loc.contains("prompt"),
        "signing in again satisfies prompt=login: {loc}"
    );
    // prompt=none with a session too old for max_age: login_required, not a page.
    app.clock.advance(120);
    let p = b.get(&format!("{path}&prompt=none&max_age=60")).await;
    assert_eq!(query(&p.location().unwrap())["error"], "login_required");
}

#[tokio::test]
async fn a_user_sees_their_apps_and_revoking_one_ends_its_tokens() {
    let app = oidc_app().await;
    app.create_user("eva@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    let b = app.browser();
    b.login_ok("eva@example.com").await;
    assert!(
        b.get("/account/apps")
            .await
            .body
            .contains("You have not let any app")
    );
    let code = authorize(&b, &id, "").await["code"].clone();
    let (_, tokens) = exchange(&app, &id, &secret, &code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let access = tokens["access_token"].as_str().unwrap().to_string();

    // A first-party app (no consent page) is listed too, so it can be revoked.
    let mut first = new_client(false);
    first.name = "Intranet".into();
    first.skip_consent = true;
    let (first_id, _) = client_with(&app, first).await;
    authorize(&b, &first_id, "").await;
    assert!(b.get("/account/apps").await.body.contains("Intranet"));
    // A script's post, confirmed up front, goes straight through.
    let p = b
        .submit(
            "/account/apps",
            "/account/apps/revoke",
            &[("client_id", &first_id), ("confirm", "yes")],
        )
        .await;
    assert_redirect(&p, "/account/apps?done=revoked");

    let page = b.get("/account/apps").await;
    assert_eq!(page.count("tr.app"), 1);
    assert!(page.body.contains("Wiki") && page.body.contains("See your email address"));
    // The page's Revoke access only asks, naming the app; nothing ends yet.
    let p = b
        .submit(
            "/account/apps",
            "/account/apps/revoke",
            &[("client_id", &id)],
        )
        .await;
    let form = crate::confirm::asks(&p, "Revoke this app's access?", "/account/apps");
    assert!(
        crate::confirm::says(&p).starts_with("Wiki "),
        "{}",
        crate::confirm::says(&p)
    );
    assert!(p.body.contains("Yes, revoke access"));
    assert_eq!(b.get("/account/apps").await.count("tr.app"), 1);
    let (_, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &secret),
        &[("token", &access)],
    )
    .await;
    assert_eq!(seen["active"], true, "not yet");
    let p = crate::confirm::press(&b, &form, false).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/account/apps").await.count("tr.app"), 0);
    // An app the user never let in has nothing to revoke.
    let p = b
        .submit(
            "/account/apps",
            "/account/apps/revoke",
            &[("client_id", &id)],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    let (status, body) = token_request(
        &app,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (_, seen) = back_channel(
        &app,
        "/oauth/introspect",
        (&id, &secret),
        &[("token", &access)],
    )
    .await;
    assert_eq!(seen["active"], false);
    assert!(
        app.audit_names()
            .await
            .contains(&"consent.revoked".to_string())
    );
    // The app must ask again.
    let path = format!(
        "/oauth/authorize?response_type=code&scope=openid%20email&client_id={id}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    assert!(b.get(&path).await.body.contains("Allow Wiki?"));
}

#[tokio::test]
async fn an_app_may_post_its_authorization_request() {
    let app = oidc_app().await;
    app.create_user("oli@example.com", &[]).await;
    let (id, _) = client(&app, true).await;
    let b = app.browser();
    b.login_ok("oli@example.com").await;
    authorize(&b, &id, "").await; // consent once
    let res = b
        .client
        .post(format!("{}/oauth/authorize", app.base))
        .header("Origin", "http://app.example")
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("redirect_uri", CALLBACK),
            ("scope", "openid email"),
            ("state", "posted-1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let next = res.headers()["location"].to_str().unwrap().to_string();
    assert!(next.starts_with("/oauth/authorize?"), "{next}");
    let p = b.get(&next).await;
    let back = query(&p.location().unwrap());
    assert_eq!(back["state"], "posted-1");
    assert!(back.contains_key("code"));

    // A forged consent (a decision without our form's token) is still refused.
    let res = b
        .client
        .post(format!("{}/oauth/authorize", app.base))
        .header("Origin", "http://evil.example")
        .form(&[
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("redirect_uri", CALLBACK),
            ("scope", "openid roles"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// Introspection and userinfo keep what they read in memory (auth::oauth::cache); every
/// revocation must still take effect at the very next call — on this instance, and with
/// Redis on another instance sharing the database.
/// A second instance behind the same load balancer (PostgreSQL + Redis only: alone on
/// SQLite is one instance by design).
pub(crate) async fn second_instance(app: &TestApp) -> Option<TestApp> {
    app.config.redis_url.as_ref()?;
    Some(
        spawn_app_with(Options {
            file: portcullis::config::FileConfig {
                database_url: Some(app.config.database_url.clone()),
                redis_url: app.config.redis_url.clone(),
                redis_prefix: Some(app.config.redis_prefix.clone()),
                // One issuer and one master key, as behind a load balancer.
                public_url: Some(app.config.public_url.to_string()),
                secret_key_file: Some(app.config.secret_key_file.display().to_string()),
                ..Default::default()
            },
        })
        .await,
    )
}

#[tokio::test]
async fn revocations_reach_tokens_already_checked_at_once() {
    let app = oidc_app_with(portcullis::config::FileConfig {
        admin_requires_second_factor: Some(false),
        ..Default::default()
    })
    .await;
    let other = second_instance(&app).await;
    let apps: Vec<&TestApp> = std::iter::once(&app).chain(other.as_ref()).collect();
    app.create_user("admin@example.com", &["admin"]).await;
    let uid = app.create_user("ron@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    let user = app.browser();
    user.login_ok("ron@example.com").await;
    let admin = app.browser();
    admin.login_ok("admin@example.com").await;

    let fresh_token = async || {
        let code = authorize(&user, &id, "").await["code"].clone();
        let (status, t) = exchange(&app, &id, &secret, &code).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        t["access_token"].as_str().unwrap().to_string()
    };
    // Active on every instance, asked twice so the answer is memoised.
    let active_everywhere = async |token: &str| -> Vec<bool> {
        let mut seen = Vec::new();
        for a in &apps {
            for _ in 0..2 {
                let (_, v) =
                    back_channel(a, "/oauth/introspect", (&id, &secret), &[("token", token)]).await;
                let userinfo = reqwest::Client::new()
                    .get(format!("{}/oauth/userinfo", a.base))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(
                    v["active"] == true,
                    userinfo == StatusCode::OK,
                    "introspection and userinfo agree"
                );
                seen.push(v["active"] == true);
            }
        }
        seen
    };
    let all = |v: Vec<bool>, want: bool| v.iter().all(|x| *x == want);

    // 1. The app revokes the access token.
    let t = fresh_token().await;
    assert!(all(active_everywhere(&t).await, true));
    let (status, _) = back_channel(&app, "/oauth/revoke", (&id, &secret), &[("token", &t)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(all(active_everywhere(&t).await, false), "revoked token");

    // 2. An administrator disables the user; enabling does not bring the token back.
    let t = fresh_token().await;
    assert!(all(active_everywhere(&t).await, true));
    let path = format!("/admin/users/{uid}");
    let p = admin
        .submit(&path, &format!("{path}/disable"), &[("confirm", "yes")])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(all(active_everywhere(&t).await, false), "disabled user");
    let p = admin.submit(&path, &format!("{path}/enable"), &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    // Disabling ended the app grants: enabling does not bring them back.
    assert!(all(active_everywhere(&t).await, false), "enabled again");

    // 3. The user withdraws the app's access.
    user.login_ok("ron@example.com").await;
    let t = fresh_token().await;
    assert!(all(active_everywhere(&t).await, true));
    let p = user
        .submit(
            "/account/apps",
            "/account/apps/revoke",
            &[("client_id", &id), ("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(all(active_everywhere(&t).await, false), "consent withdrawn");

    // 4. The administrator rotates the client's secret: the old one stops working.
    let p = admin
        .submit(
            &format!("/admin/clients/{id}"),
            &format!("/admin/clients/{id}/rotate-secret"),
            &[("confirm", "yes")],
        )
        .await;
    assert!(
        p.status.is_success() || p.status.is_redirection(),
        "{}",
        p.body
    );
    for a in &apps {
        let (status, _) =
            back_channel(a, "/oauth/introspect", (&id, &secret), &[("token", "x")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "old secret refused");
    }
}

#[tokio::test]
async fn userinfo_shows_profile_changes_at_once() {
    let app = oidc_app_with(portcullis::config::FileConfig {
        admin_requires_second_factor: Some(false),
        ..Default::default()
    })
    .await;
    let other = second_instance(&app).await;
    let apps: Vec<&TestApp> = std::iter::once(&app).chain(other.as_ref()).collect();
    app.create_user("admin@example.com", &["admin"]).await;
    let uid = app.create_user("ron@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let user = app.browser();
    user.login_ok("ron@example.com").await;
    let admin = app.browser();
    admin.login_ok("admin@example.com").await;
    let code = authorize_scope(&user, &id, "openid email profile roles", "").await["code"].clone();
    let (status, t) = exchange(&app, &id, &secret.unwrap(), &code).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let token = t["access_token"].as_str().unwrap().to_string();

    // What every instance answers, asked twice so the answer is memoised; they agree.
    let userinfo = async || -> Value {
        let mut seen: Vec<Value> = Vec::new();
        for a in &apps {
            for _ in 0..2 {
                let r = reqwest::Client::new()
                    .get(format!("{}/oauth/userinfo", a.base))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                seen.push(r.json().await.unwrap());
            }
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
        seen.remove(0)
    };
    let first = userinfo().await;
    assert_eq!(first["email"], "ron@example.com");
    assert_eq!(first["name"], "Test User");
    assert_eq!(first["roles"], json!([]));

    // An administrator creates a role and assigns it; then removes it.
    let p = admin
        .submit(
            "/admin/roles",
            "/admin/roles",
            &[("name", "editors"), ("permission", "users.read")],
        )
        .await;
    assert_redirect(&p, "/admin/roles?done=created");
    let path = format!("/admin/users/{uid}");
    let assign = async || {
        let p = admin
            .submit(
                &path,
                &format!("{path}/assign-role"),
                &[("role", "editors")],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    };
    assign().await;
    assert_eq!(userinfo().await["roles"], json!(["editors"]), "assigned");
    let p = admin
        .submit(
            &path,
            &format!("{path}/remove-role"),
            &[("role", "editors"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(userinfo().await["roles"], json!([]), "removed");

    // Deleting a role takes it from its holders.
    assign().await;
    assert_eq!(userinfo().await["roles"], json!(["editors"]));
    let p = admin
        .submit(
            "/admin/roles",
            "/admin/roles/editors/delete",
            &[("confirm", "yes")],
        )
        .await;
    assert_redirect(&p, "/admin/roles?done=deleted");
    assert_eq!(userinfo().await["roles"], json!([]), "role deleted");

    // The operator's shell: with Redis it publishes the change to every instance.
    if app.config.redis_url.is_some() {
        let env = [
            ("REDIS_URL", app.config.redis_url.clone().unwrap()),
            ("PORTCULLIS_REDIS_PREFIX", app.config.redis_prefix.clone()),
        ];
        let (ok, _, err) = crate::cli::portcullis_with(
            app.data_dir.path(),
            &app.config.database_url,
            &env,
            &[
                "user",
                "set-role",
                "--email",
                "ron@example.com",
                "--role",
                "admin",
            ],
            None,
        );
        assert!(ok, "{err}");
        assert_eq!(
            userinfo().await["roles"],
            json!(["admin"]),
            "set by the CLI"
        );
    }

    // The user changes their address and confirms it from the link mailed to it.
    let p = user
        .submit(
            "/account",
            "/account/email",
            &[
                ("new_email", "ronald@example.com"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_redirect(&p, "/account?done=email");
    let mut link = None;
    wait_until("the confirmation mail", async || {
        link = app
            .outbox()
            .iter()
            .filter(|m| m.contains("ronald@example.com"))
            .find_map(|m| crate::smtp_sink::extract_link(m, "/verify-email?token="));
        link.is_some()
    })
    .await;
    let link = url::Url::parse(&link.unwrap()).unwrap();
    let page = user
        .get(&format!("{}?{}", link.path(), link.query().unwrap()))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let token_param = link.query().unwrap().split_once("token=").unwrap().1;
    let p = user
        .post(
            "/verify-email",
            &[("csrf_token", &page.csrf()), ("token", token_param)],
        )
        .await;
    assert!(
        p.status.is_redirection() || p.status.is_success(),
        "{}",
        p.body
    );
    let after = userinfo().await;
    assert_eq!(after["email"], "ronald@example.com", "email changed");
    assert_eq!(after["email_verified"], true);
}

/// The payload of a JWT we were just given over a trusted channel (other tests check
/// signatures against the JWKS with a real relying party).
pub(crate) fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn acr_values_mfa_steps_a_password_session_up_with_the_second_factor() {
    let app = oidc_app().await;
    app.create_user("amy@example.com", &[]).await;
    app.create_user("bob@example.com", &[]).await;
    let (id, secret) = client(&app, false).await;
    let secret = secret.unwrap();
    let acr_of = |tokens: &Value| jwt_claims(tokens["id_token"].as_str().unwrap());

    // Amy signs in with her password, then adds an authenticator app: her session was
    // proven by the password alone.
    let b = app.browser();
    b.login_ok("amy@example.com").await;
    let (totp, _) = crate::mfa::enrol(&app, &b).await;
    let first = authorize(&b, &id, "").await;
    let (_, t) = exchange(&app, &id, &secret, &first["code"]).await;
    assert_eq!(acr_of(&t)["acr"], "pwd");

    // The app asks for a second factor: silently it cannot have one...
    let path = format!(
        "/oauth/authorize?response_type=code&scope=openid+email&client_id={id}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&nonce=n1&acr_values=mfa",
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let p = b.get(&format!("{path}&prompt=none")).await;
    assert_eq!(
        query(&p.location().unwrap())["error"],
        "interaction_required"
    );
    // ...interactively she is asked for it (the password alone is not enough)...
    let p = b.get(&path).await;
    let reauth = p.location().unwrap();
    assert!(
        reauth.starts_with("/login/reauth?factor=1&next="),
        "{reauth}"
    );
    let page = b.get(&reauth).await;
    assert!(
        page.body.contains("asks for your second factor"),
        "{}",
        page.body
    );
    let next = path.as_str();
    let p = b
        .post(
            "/login/reauth",
            &[
                ("csrf_token", &page.csrf()),
                ("password", crate::helpers::PASSWORD),
                ("code", "000000"),
                ("next", next),
            ],
        )
        .await;
    assert_eq!(
        p.status,
        StatusCode::UNAUTHORIZED,
        "a wrong code is refused"
    );
    let page = b.get(&reauth).await;
    app.clock.advance(30); // a fresh step: the enrolment code was used
    let code = crate::mfa::hotp(&totp, app.clock.now() as u64 / 30, 6);
    let p = b
        .post(
            "/login/reauth",
            &[
                ("csrf_token", &page.csrf()),
                ("password", crate::helpers::PASSWORD),
                ("code", &code),
                ("next", next),
            ],
        )
        .await;
    assert_redirect(&p, next);
    // ...and then comes back to the app with a code whose ID token says so.
    let back = b.get(next).await;
    let q = query(&back.location().unwrap());
    let (_, t) = exchange(&app, &id, &secret, &q["code"]).await;
    let claims = acr_of(&t);
    assert_eq!(claims["acr"], "mfa");
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(amr.contains(&"otp") && amr.contains(&"mfa"), "{amr:?}");

    // Bob has no second factor to give: he is not stopped, and the app is told `pwd`.
    let b = app.browser();
    b.login_ok("bob@example.com").await;
    let q = authorize(&b, &id, "&acr_values=mfa").await;
    let (_, t) = exchange(&app, &id, &secret, &q["code"]).await;
    assert_eq!(acr_of(&t)["acr"], "pwd");
}

#[tokio::test]
async fn the_token_endpoint_is_limited_per_client_but_introspection_is_not() {
    let app = oidc_app_with(portcullis::config::FileConfig {
        token_requests_per_client_per_minute: Some(3),
        ..Default::default()
    })
    .await;
    let (id, secret) = service_client(&app).await;
    let mut tokens = Vec::new();
    for i in 0..3 {
        if i == 1 {
            // The client's record is memoised now; credentials it does not accept
            // spend nothing of the client's budget (only the caller's address's).
            for _ in 0..5 {
                let (status, t) = token_request(
                    &app,
                    Some((&id, "not-the-secret")),
                    &[("grant_type", "client_credentials")],
                )
                .await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{t}");
            }
        }
        let (status, t) = token_request(
            &app,
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{t}");
        tokens.push(t["access_token"].as_str().unwrap().to_string());
    }
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "slow_down");

    // A resource server introspects for every request it serves: the same client,
    // over its token budget, is still answered.
    for _ in 0..10 {
        let (status, seen) = back_channel(
            &app,
            "/oauth/introspect",
            (&id, &secret),
            &[("token", &tokens[0])],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(seen["active"], true);
    }
}

/// RFC 8414: OAuth-only clients find the same metadata at
/// `/.well-known/oauth-authorization-server`, with the issuer identical to ours and
/// the fields the RFC requires.
#[tokio::test]
async fn authorization_server_metadata_is_served_as_rfc_8414_asks() {
    let app = oidc_app().await;
    let get = async |path: &str| {
        let res = reqwest::get(format!("{}{path}", app.base)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        res.json::<Value>().await.unwrap()
    };
    let oauth = get("/.well-known/oauth-authorization-server").await;
    let oidc = get("/.well-known/openid-configuration").await;
    assert_eq!(oauth, oidc, "one document");
    assert_eq!(oauth["issuer"], app.base.trim_end_matches('/'));
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let url = oauth[field].as_str().unwrap_or_else(|| panic!("{field}"));
        assert!(
            url.starts_with(app.base.trim_end_matches('/')),
            "{field}: {url}"
        );
    }
    assert_eq!(
        oauth["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        oauth["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        oauth["authorization_response_iss_parameter_supported"],
        true
    );
}
