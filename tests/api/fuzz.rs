//! Bounded fuzzing of what an attacker sends the server: form bodies, query strings and
//! cookies of random bytes (invalid percent-encodings and UTF-8, huge values, repeated
//! keys) to the sign-in, registration, reset, OAuth and forward-auth endpoints. Nothing
//! may answer 5xx, and the server must still answer afterwards. The RNG is seeded, so a
//! failure reproduces; the failing request is printed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::helpers::*;

const SEED: u64 = 0x7072_6f70_7321;
const REQUESTS: usize = 300;

/// A value as an attacker would write it into a form or query.
fn value(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..12) {
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
            (0..n)
                .map(|_| {
                    let c = rng.gen_range(0x20u8..0x7f);
                    c
                })
                .collect()
        }
    }
}

/// `k=v&k=v…` from random keys (often the endpoint's own, often repeated) and values,
/// raw bytes left unencoded half the time.
fn form(rng: &mut StdRng, keys: &[&str], csrf: &str) -> Vec<u8> {
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
            value(rng)
        };
        out.extend_from_slice(&key);
        if rng.gen_bool(0.9) {
            out.push(b'=');
            let v = value(rng);
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
fn query(rng: &mut StdRng, keys: &[&str]) -> String {
    let raw = form(rng, keys, "x");
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

fn cookie(rng: &mut StdRng) -> String {
    let names = ["portcullis", "portcullis_csrf", "portcullis_passkey", "x"];
    (0..rng.gen_range(1..4))
        .map(|_| {
            let v: String = value(rng)
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
    let b = app.browser();
    let csrf = b.get("/login").await.csrf();
    // Random cookies go out from a client without a jar: a refused seed gets a fresh one
    // set, which would otherwise replace the one the CSRF token above is bound to.
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(SEED);
    let posts: [(&str, &[&str]); 7] = [
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
                "scope",
            ],
        ),
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
    for i in 0..REQUESTS {
        let with_cookie = rng.gen_bool(0.3);
        let cookies = cookie(&mut rng);
        let client = if with_cookie { &bare } else { &b.client };
        let key;
        let (desc, req) = if rng.gen_bool(0.6) {
            let (path, keys) = posts[rng.gen_range(0..posts.len())];
            let body = form(&mut rng, keys, &csrf);
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
            let q = query(&mut rng, keys);
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
            "request {i} (seed {SEED:#x}) answered {status}: {desc}"
        );
    }
    // What the endpoints answered (to see the handlers were reached, not only refused).
    eprintln!("{seen:?}");
    let health = b.get("/healthz").await;
    assert!(
        health.status.is_success(),
        "/healthz after fuzzing: {}",
        health.status
    );
}
