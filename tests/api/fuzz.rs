//! Bounded fuzzing of what an attacker sends the server: form bodies, query strings and
//! cookies of random bytes (invalid percent-encodings and UTF-8, huge values, repeated
//! keys) to the sign-in, registration, reset, OAuth and forward-auth endpoints. Nothing
//! may answer 5xx, and the server must still answer afterwards. The RNG is seeded, so a
//! failure reproduces; the failing request is printed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::helpers::*;

const CALLBACK: &str = "http://app.example/callback";
/// The default run; `FUZZ_SEED` and `FUZZ_REQUESTS` explore further (a failure prints
/// the seed that reproduces it).
const SEED: u64 = 0x7072_6f70_7321;
const REQUESTS: usize = 500;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A value as an attacker would write it into a form or query.
fn value(rng: &mut StdRng, known: &[String]) -> Vec<u8> {
    match rng.gen_range(0..14) {
        // The app's real identifiers (client id and secret, redirect URI, grant names).
        12 | 13 => known[rng.gen_range(0..known.len())].clone().into_bytes(),
        // Plausible values, so the handlers get past their first check.
        9 => ["someone@example.com", "Someone@Example.COM ", "a@b"][rng.gen_range(0..3)].into(),
        10 => PASSWORD.into(),
        11 => format!("{:06}", rng.gen_range(0..1_000_000)).into_bytes(),
        0 => Vec::new(),
        1 => (0..rng.gen_range(1..40))
            .map(|_| rng.r#gen::<u8>())
            .collect(),
        // Percent-encodings that are malformed or decode to invalid UTF-8.
        2 => [
            "%", "%Z", "%ZZ", "%C3%28", "%FF%FE", "%E2%82", "%00", "%%41",
        ][rng.gen_range(0..8)]
        .as_bytes()
        .to_vec(),
        // Huge.
        3 => vec![b'A' + rng.gen_range(0..26); rng.gen_range(1_000..40_000)],
        4 => "https://evil.example/x".into(),
        5 => "//evil.example".into(),
        6 => "/\\evil.example".into(),
        7 => "ünïcødé\u{202e}\u{2028}".into(),
        _ => {
            let n = rng.gen_range(0..30);
            (0..n).map(|_| rng.gen_range(0x20u8..0x7f)).collect()
        }
    }
}

/// `k=v&k=v…` from random keys (often the endpoint's own, often repeated) and values,
/// raw bytes left unencoded half the time.
fn form(rng: &mut StdRng, keys: &[&str], csrf: &str, known: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    if rng.gen_bool(0.7) {
        out.extend_from_slice(format!("csrf_token={csrf}").as_bytes());
    }
    // Half the time every field the endpoint reads is there, so the handler runs
    // rather than the form's parser refusing a missing one.
    let all: Vec<Vec<u8>> = if rng.gen_bool(0.5) {
        keys.iter().map(|k| k.as_bytes().to_vec()).collect()
    } else {
        Vec::new()
    };
    let extra = if all.is_empty() {
        rng.gen_range(0..6)
    } else {
        rng.gen_range(0..2)
    };
    for i in 0..all.len() + extra {
        if !out.is_empty() {
            out.push(b'&');
        }
        let key: Vec<u8> = if i < all.len() {
            all[i].clone()
        } else if rng.gen_bool(0.8) {
            keys[rng.gen_range(0..keys.len())].as_bytes().to_vec()
        } else {
            value(rng, known)
        };
        out.extend_from_slice(&key);
        if rng.gen_bool(0.9) {
            out.push(b'=');
            let v = value(rng, known);
            if rng.gen_bool(0.5) {
                out.extend_from_slice(&v);
            } else {
                out.extend_from_slice(
                    percent_encoding::percent_encode(&v, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                        .as_bytes(),
                );
            }
        }
    }
    out
}

/// A query string: valid URL characters only (the client refuses others), with
/// malformed escapes left in.
fn query(rng: &mut StdRng, keys: &[&str], known: &[String]) -> String {
    let raw = form(rng, keys, "x", known);
    percent_encoding::percent_encode(&raw, QUERY).to_string()
}

/// Escape what may not appear in a request line; keep `%`, `&`, `=` so escapes stay
/// malformed and keys repeat.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'[')
    .add(b']');

/// A valid authorization request with one or two of its values replaced, so the
/// checks after the client's and redirect URI's get the random input.
fn valid_authorize_mutated(rng: &mut StdRng, client_id: &str, known: &[String]) -> String {
    let mut pairs: Vec<(String, Vec<u8>)> = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CALLBACK),
        ("scope", "openid profile"),
        ("state", "xyz"),
        ("nonce", "n-0S6_WzA2Mj"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    for _ in 0..rng.gen_range(1..3) {
        let i = rng.gen_range(0..pairs.len());
        if i < 3 && rng.gen_bool(0.7) {
            continue; // mostly keep the client and its redirect URI valid
        }
        pairs[i].1 = value(rng, known);
    }
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn cookie(rng: &mut StdRng, known: &[String]) -> String {
    let names = ["portcullis", "portcullis_csrf", "portcullis_passkey", "x"];
    (0..rng.gen_range(1..4))
        .map(|_| {
            let v: String = value(rng, known)
                .into_iter()
                .filter(|b| (0x21..0x7f).contains(b) && *b != b';')
                .map(char::from)
                .take(4096)
                .collect();
            format!("{}={v}", names[rng.gen_range(0..names.len())])
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn random_forms_queries_and_cookies_never_get_a_server_error() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            login_attempts_per_ip_per_minute: Some(100_000),
            registrations_per_ip_per_hour: Some(100_000),
            password_resets_per_ip_per_hour: Some(100_000),
            ..Default::default()
        },
    })
    .await;
    // Three visitors: anonymous, signed in (so /oauth/authorize reaches consent), and
    // one halfway through signing in (so /login/mfa reaches the code check).
    let anon = app.browser();
    let anon_csrf = anon.get("/login").await.csrf();
    app.create_user("fuzz@example.com", &[]).await;
    let signed = app.browser();
    signed.login_ok("fuzz@example.com").await;
    let signed_csrf = signed.get("/account").await.csrf();
    app.create_user("fuzz-mfa@example.com", &[]).await;
    let enrolling = app.browser();
    enrolling.login_ok("fuzz-mfa@example.com").await;
    crate::mfa::enrol(&app, &enrolling).await;
    let pending = app.browser();
    let p = pending.login("fuzz-mfa@example.com", PASSWORD).await;
    assert_redirect(&p, "/login/mfa");
    let pending_csrf = pending.get("/login/mfa").await.csrf();
    let visitors = [
        (&anon, anon_csrf),
        (&signed, signed_csrf),
        (&pending, pending_csrf),
    ];
    let (client_id, secret) = app
        .state
        .oauth
        .create_client(
            portcullis::auth::oauth::authorize::NewClient {
                name: "Fuzzed".into(),
                redirect_uris: vec![CALLBACK.into()],
                post_logout_redirect_uris: vec![CALLBACK.into()],
                public: false,
                scopes: vec!["openid".into(), "profile".into(), "email".into()],
                grants: vec![],
                skip_consent: false,
                id_token_alg: "RS256".into(),
                allowed_groups: vec![],
                require_two_factor: false,
                allowed_networks: Vec::new(),
                require_par: false,
                auth_method: None,
                jwks: None,
            },
            &portcullis::auth::audit::AuditCtx::cli(),
        )
        .await
        .unwrap();
    let known: Vec<String> = [
        client_id.as_str(),
        secret.as_deref().unwrap_or(""),
        CALLBACK,
        "code",
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "openid profile email",
        "S256",
        "access_token",
        "none",
        "login",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Random cookies go out from a client without a jar: a refused seed gets a fresh one
    // set, which would otherwise replace the one the CSRF token above is bound to.
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let seed = env_or("FUZZ_SEED", SEED);
    let mut rng = StdRng::seed_from_u64(seed);
    let posts: [(&str, &[&str]); 10] = [
        ("/login", &["email", "password", "next"]),
        ("/register", &["email", "password", "display_name"]),
        ("/password/forgot", &["email"]),
        ("/login/mfa", &["code"]),
        (
            "/oauth/token",
            &[
                "grant_type",
                "code",
                "redirect_uri",
                "client_id",
                "client_secret",
                "code_verifier",
                "refresh_token",
                "device_code",
                "scope",
            ],
        ),
        (
            "/oauth/par",
            &[
                "client_id",
                "client_secret",
                "response_type",
                "redirect_uri",
                "scope",
                "code_challenge",
                "code_challenge_method",
                "max_age",
                "request_uri",
            ],
        ),
        (
            "/oauth/device_authorization",
            &["client_id", "client_secret", "scope"],
        ),
        ("/device", &["user_code", "decision"]),
        (
            "/oauth/introspect",
            &["token", "token_type_hint", "client_id", "client_secret"],
        ),
        (
            "/oauth/revoke",
            &["token", "token_type_hint", "client_id", "client_secret"],
        ),
    ];
    let gets: [(&str, &[&str]); 4] = [
        (
            "/oauth/authorize",
            &[
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method",
                "prompt",
                "max_age",
                "request_uri",
            ],
        ),
        ("/auth/forward", &["rd"]),
        ("/login", &["next"]),
        (
            "/oauth/logout",
            &["id_token_hint", "post_logout_redirect_uri", "state"],
        ),
    ];
    let mut seen = std::collections::BTreeMap::<(String, u16), usize>::new();
    for i in 0..env_or("FUZZ_REQUESTS", REQUESTS) {
        let with_cookie = rng.gen_bool(0.3);
        let cookies = cookie(&mut rng, &known);
        let (visitor, csrf) = &visitors[rng.gen_range(0..visitors.len())];
        let client = if with_cookie { &bare } else { &visitor.client };
        let key;
        let (desc, req) = if rng.gen_bool(0.6) {
            let (path, keys) = posts[rng.gen_range(0..posts.len())];
            let body = form(&mut rng, keys, csrf, &known);
            key = format!("POST {path}");
            let desc = format!(
                "POST {path} body {:?}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            let req = client
                .post(format!("{}{path}", app.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            (desc, req)
        } else {
            let (path, keys) = gets[rng.gen_range(0..gets.len())];
            key = format!("GET {path}");
            let q = if path == "/oauth/authorize" && rng.gen_bool(0.5) {
                valid_authorize_mutated(&mut rng, &client_id, &known)
            } else {
                query(&mut rng, keys, &known)
            };
            let url = format!("{}{path}?{q}", app.base);
            let desc = format!("GET {}", &url[..url.len().min(400)]);
            (desc, client.get(url))
        };
        let (desc, req) = if with_cookie {
            (
                format!("{desc} cookie {cookies:?}"),
                req.header("cookie", cookies),
            )
        } else {
            (desc, req)
        };
        let status = match req.send().await {
            Ok(r) => r.status(),
            // The client refused to send it (an invalid URL or header): nothing to test.
            Err(e) if e.is_builder() => continue,
            Err(e) => panic!("request {i} ({desc}) got no answer: {e}"),
        };
        *seen.entry((key, status.as_u16())).or_default() += 1;
        assert!(
            !status.is_server_error(),
            "request {i} (FUZZ_SEED={seed}) answered {status}: {desc}"
        );
    }
    // Then a sweep: every field of every endpoint, otherwise plausible, given a NUL
    // (which PostgreSQL refuses to store or compare) or a lone invalid escape.
    let plausible = |k: &str, n: usize| -> String {
        match k {
            // A new address each time, so registration gets as far as storing.
            "email" => format!("sweep{n}@example.com"),
            "password" => "a long enough passphrase 9".into(),
            "display_name" => "Sweep".into(),
            "code" => "123456".into(),
            "grant_type" => "authorization_code".into(),
            "client_id" => client_id.clone(),
            "client_secret" => secret.clone().unwrap_or_default(),
            "redirect_uri" | "post_logout_redirect_uri" => CALLBACK.into(),
            "response_type" => "code".into(),
            "scope" => "openid".into(),
            "code_challenge_method" => "S256".into(),
            "rd" => "https://app.example.com/".into(),
            "next" => "/account".into(),
            _ => "x".into(),
        }
    };
    let mut n = 0;
    for (path, keys) in posts.iter().chain(gets.iter()) {
        let get = gets.iter().any(|(p, _)| p == path);
        for poisoned in keys.iter() {
            for bad in ["%00", "%C0%80", "%FF", "%"] {
                for (visitor, csrf) in &visitors {
                    let mut fields = vec![format!("csrf_token={csrf}")];
                    for k in keys.iter() {
                        let v = percent_encoding::utf8_percent_encode(
                            &plausible(k, n),
                            percent_encoding::NON_ALPHANUMERIC,
                        )
                        .to_string();
                        let v = if k == poisoned {
                            format!("{v}{bad}")
                        } else {
                            v
                        };
                        fields.push(format!("{k}={v}"));
                    }
                    let body = fields.join("&");
                    let req = if get {
                        visitor.client.get(format!("{}{path}?{body}", app.base))
                    } else {
                        visitor
                            .client
                            .post(format!("{}{path}", app.base))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(body.clone())
                    };
                    let status = req.send().await.expect("an answer").status();
                    n += 1;
                    assert!(
                        !status.is_server_error(),
                        "{} {path} with {poisoned} poisoned answered {status}: {body}",
                        if get { "GET" } else { "POST" }
                    );
                }
            }
        }
    }
    eprintln!("{n} poisoned requests");
    // What the endpoints answered (to see the handlers were reached, not only refused).
    eprintln!("{seen:?}");
    let health = anon.get("/healthz").await;
    assert!(
        health.status.is_success(),
        "/healthz after fuzzing: {}",
        health.status
    );
}
