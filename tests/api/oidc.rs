//! The OpenID Connect provider driven by a real relying-party library (openidconnect):
//! discovery, authorization code with PKCE, consent, token, ID token checks, userinfo.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyAdditionalClaims, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use portcullis::auth::audit::AuditCtx;
use portcullis::auth::oidc::{NewClient, create_client};
use reqwest::StatusCode;

use crate::helpers::*;

const CALLBACK: &str = "http://app.example/callback";

/// The issuer must be the address the tests reach, so the port is chosen first.
async fn oidc_app() -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            listen: Some(format!("127.0.0.1:{port}")),
            public_url: Some(format!("http://127.0.0.1:{port}")),
            ..Default::default()
        },
    })
    .await
}

async fn client(app: &TestApp, public: bool) -> (String, Option<String>) {
    create_client(
        &app.state.db,
        &app.clock,
        NewClient {
            name: "Wiki".into(),
            redirect_uris: vec![CALLBACK.into()],
            post_logout_redirect_uris: vec![],
            public,
            scopes: vec![
                "openid".into(),
                "profile".into(),
                "email".into(),
                "roles".into(),
            ],
            grants: vec![],
            skip_consent: false,
        },
        &AuditCtx::cli(),
    )
    .await
    .unwrap()
    .unwrap()
}

fn query(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
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
    let doc = page.doc();
    let sel =
        scraper::Selector::parse("form[action='/oauth/authorize'] input[type=hidden]").unwrap();
    let mut fields: Vec<(String, String)> = doc
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
    let p = b.post("/oauth/authorize", &refs).await;
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
    let info: UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim> = rp
        .user_info(token.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some("ola@example.com"));

    // The code works once; a wrong secret is not a client.
    let post = |secret: String| {
        http.post(format!("{}/oauth/token", app.base))
            .basic_auth(&id, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", CALLBACK),
            ])
            .send()
    };
    assert_eq!(
        post("wrong".into()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let again = post(secret.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let err: serde_json::Value = again.json().await.unwrap();
    assert_eq!(err["error"], "invalid_grant");
    let names = app.audit_names().await;
    assert!(names.contains(&"consent.granted".to_string()));
    assert!(names.contains(&"token.issued".to_string()));

    // Consent is remembered: the next request comes straight back with a code.
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
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(query(&p.location().unwrap()).contains_key("code"));
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
