//! `private_key_jwt` client authentication (RFC 7523 section 2.2): a client registered
//! from the shell with its public keys gets tokens with JWTs signed by its private
//! key, and every assertion an attacker could forge, replay or redirect is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis::auth::oauth::jws::{SignKey, generate};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::operator::{shell, value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client key: its signer and its public JWK (with `kid`).
struct Key {
    der: Vec<u8>,
    signer: SignKey,
    jwk: Value,
}

fn key(alg: &str, kid: &str) -> Key {
    let (der, mut jwk) = generate(alg).unwrap();
    jwk.insert("kid".into(), kid.into());
    jwk.insert("use".into(), "sig".into());
    let signer = SignKey::from_der(alg, &der).unwrap();
    Key {
        der,
        signer,
        jwk: Value::Object(jwk),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims a well-behaved client sends.
fn claims(app: &TestApp, client_id: &str) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "iss": client_id, "sub": client_id,
        "aud": format!("{}/oauth/token", app.config.base_url().trim_end_matches('/')),
        "exp": now() + 60, "iat": now(),
        "jti": uuid::Uuid::new_v4().to_string(),
    }) else {
        unreachable!()
    };
    m
}

/// Registers a client_credentials client with these public keys, from the shell.
fn register(app: &TestApp, keys: &[&Key]) -> String {
    let path = app.data_dir.path().join("client-jwks.json");
    let jwks = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    std::fs::write(&path, jwks.to_string()).unwrap();
    let (ok, out, err) = shell(
        app,
        &[
            "client",
            "create",
            "--name",
            "Batch",
            "--grant",
            "client_credentials",
            "--scope",
            "roles",
            "--token-endpoint-auth-method",
            "private_key_jwt",
            "--jwks-file",
            path.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(!out.contains("client_secret="), "no secret: {out}");
    value(&out, "client_id")
}

/// A client_credentials request with this assertion (and `extra` fields).
async fn token(app: &TestApp, assertion: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("scope", "roles"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    crate::oidc::token_request(app, None, &form).await
}

fn sign(k: &Key, claims: &Map<String, Value>) -> String {
    k.signer
        .sign(k.jwk["kid"].as_str().unwrap(), "JWT", claims)
        .unwrap()
}

/// A JWS with any header, signed by `f` over its signing input.
fn raw(header: Value, claims: &Map<String, Value>, f: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(Value::Object(claims.clone()).to_string())
    );
    let sig = f(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

#[tokio::test]
async fn a_signed_assertion_gets_a_token_once() {
    let app = spawn_app().await;
    let k = key("ES256", "k1");
    let id = register(&app, &[&k]);
    let jwt = sign(&k, &claims(&app, &id));
    let (status, body) = token(&app, &jwt, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string());
    // With the form's client_id too.
    let (status, body) = token(&app, &sign(&k, &claims(&app, &id)), &[("client_id", &id)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The same assertion again: a replay, refused and audited with the client and a
    // SHA-256 of the jti (not the jti, nor the assertion).
    let (status, body) = token(&app, &jwt, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let replays = events_named(&app, "client_assertion.replayed").await;
    assert_eq!(replays.len(), 1);
    let (outcome, details) = &replays[0];
    assert_eq!(outcome, "denied");
    let jti = claims_of(&jwt)["jti"].as_str().unwrap().to_string();
    assert_eq!(details["client_id"], id.as_str());
    assert_eq!(details["jti_sha256"], sha256_hex(&jti));
    assert!(!details.to_string().contains(&jti), "{details}");
    assert!(
        events_named(&app, "client.authentication_failed")
            .await
            .is_empty(),
        "a replay is not a bad signature"
    );

    // Introspection and revocation take assertions too (and refuse a replayed one).
    let access = body_token(&app, &k, &id).await;
    let at = |path: &str, jwt: String| {
        let form = [
            ("token", access.clone()),
            ("client_assertion_type", ASSERTION_TYPE.to_string()),
            ("client_assertion", jwt),
        ];
        let url = format!("{}{path}", app.base);
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .form(&form)
                .send()
                .await
                .unwrap();
            (
                res.status(),
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let once = sign(&k, &claims(&app, &id));
    let (status, seen) = at("/oauth/introspect", once.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["active"], true, "{seen}");
    let (status, _) = at("/oauth/introspect", once).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        events_named(&app, "client_assertion.replayed").await.len(),
        2,
        "at introspection too"
    );
    let (status, _) = at("/oauth/revoke", sign(&k, &claims(&app, &id))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, seen) = at("/oauth/introspect", sign(&k, &claims(&app, &id))).await;
    assert_eq!(seen["active"], false, "revoked: {seen}");
}

/// The events named `name`, newest first: (outcome, details).
async fn events_named(app: &TestApp, name: &str) -> Vec<(String, Value)> {
    app.audit()
        .await
        .into_iter()
        .filter(|e| e.event == name)
        .map(|e| (e.outcome, serde_json::from_str(&e.details).unwrap()))
        .collect()
}

/// A JWT's claims, unverified.
fn claims_of(jwt: &str) -> Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

async fn body_token(app: &TestApp, k: &Key, id: &str) -> String {
    let (status, body) = token(app, &sign(k, &claims(app, id)), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_allowed_algorithm_works_and_the_issuer_is_an_audience() {
    let app = spawn_app().await;
    let (rsa, ed) = (key("RS256", "rsa"), key("EdDSA", "ed"));
    let id = register(&app, &[&rsa, &ed]);
    for k in [&rsa, &ed] {
        let mut c = claims(&app, &id);
        c.insert(
            "aud".into(),
            json!([app.config.base_url().trim_end_matches('/')]),
        );
        let (status, body) = token(&app, &sign(k, &c), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // PS256 with the RSA key (signed here with ring directly: we never sign PS256).
    let pss = ring::signature::RsaKeyPair::from_pkcs8(&rsa.der).unwrap();
    let jwt = raw(
        json!({"alg": "PS256", "kid": "rsa"}),
        &claims(&app, &id),
        |m| {
            let mut out = vec![0; pss.public().modulus_len()];
            let rng = ring::rand::SystemRandom::new();
            pss.sign(&ring::signature::RSA_PSS_SHA256, &rng, m, &mut out)
                .unwrap();
            out
        },
    );
    let (status, body) = token(&app, &jwt, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn forged_redirected_or_stale_assertions_are_refused() {
    let app = spawn_app().await;
    let k = key("ES256", "k1");
    let id = register(&app, &[&k]);
    let other = register(&app, &[&key("ES256", "k2")]);
    let base = app.config.base_url().trim_end_matches('/').to_string();
    let with = |name: &str, v: Value| {
        let mut c = claims(&app, &id);
        c.insert(name.into(), v);
        c
    };
    let without = |name: &str| {
        let mut c = claims(&app, &id);
        c.remove(name);
        c
    };
    let refused = [
        (
            "aud of another server",
            sign(
                &k,
                &with("aud", json!("https://elsewhere.example/oauth/token")),
            ),
        ),
        (
            "aud of another endpoint here",
            sign(&k, &with("aud", json!(format!("{base}/oauth/userinfo")))),
        ),
        ("no aud", sign(&k, &without("aud"))),
        ("expired", sign(&k, &with("exp", json!(now() - 300)))),
        ("no exp", sign(&k, &without("exp"))),
        (
            "exp a day ahead",
            sign(&k, &with("exp", json!(now() + 86_400))),
        ),
        (
            "iat in the future",
            sign(&k, &with("iat", json!(now() + 3_600))),
        ),
        (
            "nbf in the future",
            sign(&k, &with("nbf", json!(now() + 3_600))),
        ),
        ("no jti", sign(&k, &without("jti"))),
        (
            "iss not the client",
            sign(&k, &with("iss", json!(other.clone()))),
        ),
        (
            "sub not the client",
            sign(&k, &with("sub", json!(other.clone()))),
        ),
        // Signed by a key the client never registered, under its kid.
        (
            "a stranger's key",
            sign(
                &Key {
                    jwk: k.jwk.clone(),
                    ..key("ES256", "k1")
                },
                &claims(&app, &id),
            ),
        ),
        // The right key, for the other client's id.
        ("another client's id", {
            let mut c = claims(&app, &other);
            c.insert("aud".into(), json!(base.clone()));
            sign(&k, &c)
        }),
        (
            "alg none",
            raw(
                json!({"alg": "none", "kid": "k1"}),
                &claims(&app, &id),
                |_| vec![],
            ),
        ),
        // HS256 keyed with the public key (the classic confusion attack).
        ("HS256 with the public key", {
            let secret = k.jwk.to_string();
            raw(
                json!({"alg": "HS256", "kid": "k1"}),
                &claims(&app, &id),
                |m| {
                    let hk = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
                    ring::hmac::sign(&hk, m).as_ref().to_vec()
                },
            )
        }),
        (
            "an unknown kid",
            sign(&key("ES256", "k9"), &claims(&app, &id)),
        ),
        ("not a JWT", "not.a.jwt".to_string()),
    ];
    // Every refusal of a registered client's assertion is audited, each once; "not a
    // JWT" names no client (an unknown one is not recorded: anyone can make those up).
    let audited = refused.len() - 1;
    for (why, jwt) in refused {
        let (status, body) = token(&app, &jwt, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert_eq!(body["error"], "invalid_client", "{why}");
    }
    // The form naming another client than the assertion.
    let (status, _) = token(
        &app,
        &sign(&k, &claims(&app, &id)),
        &[("client_id", &other)],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let failed = events_named(&app, "client.authentication_failed").await;
    assert_eq!(failed.len(), audited + 1, "{failed:?}");
    for (outcome, details) in &failed {
        assert_eq!(outcome, "failure");
        assert_eq!(details["method"], "private_key_jwt");
        assert!(details["reason"].is_string(), "{details}");
    }
    let reason_for = |client: &str| -> Vec<String> {
        failed
            .iter()
            .filter(|(_, d)| d["client_id"] == client)
            .map(|(_, d)| d["reason"].as_str().unwrap().to_string())
            .collect()
    };
    let ours = reason_for(&id);
    for reason in [
        "a bad signature",
        "no single key matches the kid",
        "expired",
    ] {
        assert!(ours.iter().any(|r| r == reason), "{reason} in {ours:?}");
    }
    // Assertions naming the other client are refused as the other client's.
    assert_eq!(reason_for(&other).len(), 3, "{failed:?}");
    assert!(
        events_named(&app, "client_assertion.replayed")
            .await
            .is_empty()
    );
    // A good one still works after all that.
    let (status, body) = token(&app, &sign(&k, &claims(&app, &id)), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_key_client_cannot_use_a_secret_nor_a_secret_client_an_assertion() {
    let app = spawn_app().await;
    let k = key("ES256", "k1");
    let id = register(&app, &[&k]);
    let grant = [("grant_type", "client_credentials"), ("scope", "roles")];
    // No secret was issued; anything presented as one, or nothing, is refused.
    for secret in ["", "guess"] {
        let (status, _) = crate::oidc::token_request(&app, Some((&id, secret)), &grant).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let mut named = grant.to_vec();
    named.push(("client_id", &id));
    let (status, _) = crate::oidc::token_request(&app, None, &named).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "naming itself is not enough"
    );
    // A secret and an assertion at once.
    let jwt = sign(&k, &claims(&app, &id));
    let (status, body) = token(&app, &jwt, &[("client_secret", "x")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A client with a secret cannot switch to an assertion.
    let (ok, out, err) = shell(
        &app,
        &[
            "client",
            "create",
            "--name",
            "S",
            "--grant",
            "client_credentials",
            "--scope",
            "roles",
        ],
    );
    assert!(ok, "{err}");
    let secret_client = value(&out, "client_id");
    let (status, _) = token(&app, &sign(&k, &claims(&app, &secret_client)), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn registration_refuses_unusable_or_private_keys_and_discovery_lists_the_method() {
    let app = spawn_app().await;
    let k = key("ES256", "k1");
    let mut leaked = k.jwk.clone();
    leaked["d"] = json!("AAAA");
    for jwks in [
        "not json".to_string(),
        json!({"keys": []}).to_string(),
        json!({"keys": [leaked]}).to_string(),
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string(),
    ] {
        let (ok, out, err) = shell(
            &app,
            &[
                "client",
                "create",
                "--name",
                "Bad",
                "--grant",
                "client_credentials",
                "--token-endpoint-auth-method",
                "private_key_jwt",
                "--jwks",
                &jwks,
            ],
        );
        assert!(!ok, "{jwks} accepted: {out}");
        assert!(!err.is_empty());
    }
    // private_key_jwt without keys.
    let (ok, _, _) = shell(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Bad",
            "--grant",
            "client_credentials",
            "--token-endpoint-auth-method",
            "private_key_jwt",
        ],
    );
    assert!(!ok);

    let doc: Value = reqwest::get(format!("{}/.well-known/openid-configuration", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let methods = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&json!("private_key_jwt")));
    let algs = doc["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&json!(alg)), "{alg}");
    }
    assert!(!algs.contains(&json!("HS256")) && !algs.contains(&json!("none")));
}
