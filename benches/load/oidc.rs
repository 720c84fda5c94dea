//! OpenID Connect figures, on the server `measure` started: requests per second of
//! discovery, JWKS, `client_credentials` token issuance, refresh, introspection and
//! userinfo, each next to `GET /healthz` on the same server; and what one signature
//! costs per algorithm (RS256, ES256, EdDSA), measured in-process on one thread.
//! Every rate but refresh is measured with wrk (`load/wrk.rs`), as the anchors were;
//! refresh needs a new token per request, so it runs as rotating chains in reqwest.

use super::*;

use base64::Engine;

/// Node `oidc-provider` as the issue quotes it (wrk, loopback, on the machine it was
/// written on): the targets' fallback when node cannot be measured here
/// (`load/reference.rs`).
pub const NODE_DISCOVERY: f64 = 8_700.0;
pub const NODE_JWKS: f64 = 14_000.0;
pub const NODE_CLIENT_CREDENTIALS: f64 = 5_900.0;
pub const TARGET_DISCOVERY_X_NODE: f64 = 5.0;
pub const TARGET_BEARER_VS_HEALTHZ: f64 = 0.3;

pub struct OidcResults {
    pub discovery: Tally,
    pub jwks: Tally,
    pub client_credentials: Tally,
    pub refresh: Tally,
    /// In turns with `GET /healthz`: their targets are ratios to it.
    pub introspect: wrk::Paired,
    pub userinfo: wrk::Paired,
    /// Signatures per second on one thread, by algorithm.
    pub signing: Vec<(&'static str, f64)>,
    pub access_alg: String,
}

pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// One task of the refresh load: each refresh returns the next token, used next.
async fn refresh_loop(
    client: Client,
    url: String,
    auth: String,
    mut token: String,
    w: Window,
) -> Tally {
    let mut t = Tally::default();
    for _ in 0..MAX_LOOP {
        if Instant::now() >= w.end {
            break;
        }
        let res = client
            .post(&url)
            .header(reqwest::header::AUTHORIZATION, &auth)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
            ])
            .send()
            .await;
        match res {
            Ok(r) if r.status() == StatusCode::OK => match r.json::<serde_json::Value>().await {
                Ok(v) => match v["refresh_token"].as_str() {
                    Some(next) => {
                        token = next.to_string();
                        if w.contains(Instant::now()) {
                            t.ok += 1;
                        }
                    }
                    None => {
                        t.problem(false, format!("no refresh_token in {v}"));
                        break;
                    }
                },
                Err(e) => t.problem(true, e.to_string()),
            },
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                t.problem(false, format!("{status}: {}", snippet(&body)));
                break; // the chain is broken; this task is done
            }
            Err(e) => {
                t.problem(true, e.to_string());
                break;
            }
        }
    }
    t
}

/// A user's tokens through the real flow: authorize with the session cookie (the client
/// skips consent), then the code exchange.
async fn user_tokens(
    server: &Server,
    cookie: &HeaderValue,
    id: &str,
    auth: &str,
) -> Result<(String, String), String> {
    let client = plain_client()?;
    let redirect = "http://127.0.0.1:9/cb";
    let url = format!(
        "{}?response_type=code&client_id={id}&redirect_uri={}&scope=openid%20email",
        server.url("/oauth/authorize"),
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    let res = client
        .get(&url)
        .header(COOKIE, cookie.clone())
        .send()
        .await
        .map_err(|e| format!("authorize: {e}"))?;
    let location = location_header(&res);
    let code = Url::parse(&location)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.to_string())
        })
        .ok_or_else(|| format!("authorize: {} to {location:?}", res.status()))?;
    let tokens: serde_json::Value = client
        .post(server.url("/oauth/token"))
        .header(reqwest::header::AUTHORIZATION, auth)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .map_err(|e| format!("token: {e}"))?
        .json()
        .await
        .map_err(|e| format!("token: {e}"))?;
    match (
        tokens["access_token"].as_str(),
        tokens["refresh_token"].as_str(),
    ) {
        (Some(a), Some(r)) => Ok((a.to_string(), r.to_string())),
        _ => Err(format!("token exchange: {tokens}")),
    }
}

/// Signatures per second of each algorithm over a typical access token's claims, with
/// the server's own signing code.
fn signing_rates() -> Result<Vec<(&'static str, f64)>, String> {
    use portcullis::auth::oauth::jws::{SignKey, generate};
    let claims = serde_json::json!({
        "iss": "https://id.example.com", "sub": "0b8e1f0c-5f2d-4c1e-9a57-3f8f0d1c2b3a",
        "aud": "client-id-123456789012", "client_id": "client-id-123456789012",
        "scope": "openid email", "jti": "x".repeat(43), "iat": 1_800_000_000, "exp": 1_800_000_600,
    });
    let serde_json::Value::Object(map) = claims else {
        return Err("claims".into());
    };
    let mut out = Vec::new();
    for alg in ["RS256", "ES256", "EdDSA"] {
        let signer = SignKey::from_der(alg, &generate(alg)?.0)?;
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(1) && n < MAX_LOOP {
            signer.sign("k", "at+jwt", &map)?;
            n += 1;
        }
        out.push((alg, n as f64 / start.elapsed().as_secs_f64()));
    }
    Ok(out)
}

pub async fn measure(
    server: &Server,
    bin: &Path,
    cookie: &HeaderValue,
    label: &str,
) -> Result<OidcResults, String> {
    let mut cli = Command::new(bin);
    cli.args([
        "client",
        "create",
        "--name",
        "bench",
        "--redirect-uri",
        "http://127.0.0.1:9/cb",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--grant",
        "client_credentials",
        "--scope",
        "openid",
        "--scope",
        "email",
        "--scope",
        "roles",
        "--skip-consent",
    ])
    .env_clear()
    .envs(server.env.iter().map(|(k, v)| (k, v)));
    let out = run_cmd(&mut cli, None, Duration::from_secs(60))?;
    let field = |name: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
            .ok_or_else(|| format!("client create: no {name}: {}{}", out.stdout, out.stderr))
    };
    let (id, secret) = (field("client_id")?, field("client_secret")?);
    let auth = basic(&id, &secret);
    let client = plain_client()?;

    if !wrk::available() {
        return Err("wrk is not installed (apt-get install wrk)".into());
    }
    eprintln!("[{label}] wrk: GET discovery and JWKS, {HTTP_CONCURRENCY} connections");
    let discovery = wrk::rate(
        &server.url("/.well-known/openid-configuration"),
        wrk::Request::get(),
    )
    .await?;
    let jwks = wrk::rate(&server.url("/oauth/jwks"), wrk::Request::get()).await?;

    eprintln!("[{label}] wrk: client_credentials tokens, {HTTP_CONCURRENCY} connections");
    let client_credentials = wrk::rate(
        &server.url("/oauth/token"),
        wrk::Request::post_form("grant_type=client_credentials".into())
            .header("Authorization", auth.clone()),
    )
    .await?;

    let mut users = Vec::new();
    for _ in 0..HTTP_CONCURRENCY {
        users.push(user_tokens(server, cookie, &id, &auth).await?);
    }
    let access = users[0].0.clone();
    let alg = access
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h["alg"].as_str().map(str::to_string))
        .unwrap_or_default();

    eprintln!(
        "[{label}] wrk: introspection and userinfo, each in turns with GET /healthz, {HTTP_CONCURRENCY} connections"
    );
    let introspect = wrk::beside_healthz(
        &server.url("/healthz"),
        &server.url("/oauth/introspect"),
        wrk::Request::post_form(format!("token={access}")).header("Authorization", auth.clone()),
    )
    .await?;
    let userinfo = wrk::beside_healthz(
        &server.url("/healthz"),
        &server.url("/oauth/userinfo"),
        wrk::Request::get().header("Authorization", format!("Bearer {access}")),
    )
    .await?;

    eprintln!("[{label}] refresh (rotating), {HTTP_CONCURRENCY} concurrent chains");
    let w = Window::new(WARMUP, MEASURE);
    let tasks = users
        .into_iter()
        .map(|(_, refresh)| {
            tokio::spawn(refresh_loop(
                client.clone(),
                server.url("/oauth/token"),
                auth.clone(),
                refresh,
                w,
            ))
        })
        .collect();
    let refresh = join_tallies(tasks, w).await?;

    let signing = tokio::task::spawn_blocking(signing_rates)
        .await
        .map_err(|e| format!("signing: {e}"))??;
    Ok(OidcResults {
        discovery,
        jwks,
        client_credentials,
        refresh,
        introspect,
        userinfo,
        signing,
        access_alg: alg,
    })
}

/// The node figures a run compares with: measured in this run, or the issue's.
pub struct NodeAnchor {
    discovery: f64,
    jwks: f64,
    client_credentials: f64,
    source: String,
}

impl NodeAnchor {
    pub fn from(measured: &Result<reference::NodeRates, String>) -> Self {
        match measured {
            Ok(n) => Self {
                discovery: n.discovery,
                jwks: n.jwks,
                client_credentials: n.client_credentials,
                source: "measured in this run".into(),
            },
            Err(e) => Self {
                discovery: NODE_DISCOVERY,
                jwks: NODE_JWKS,
                client_credentials: NODE_CLIENT_CREDENTIALS,
                source: format!("the issue's figure; not measured here: {}", snippet(e)),
            },
        }
    }
}

/// Report rows: each rate with its ratio to /healthz and, where the issue sets one,
/// the target from node oidc-provider's figure.
pub fn rows(o: &OidcResults, healthz: f64, node: &NodeAnchor) -> Vec<Row> {
    let ratio = |r: f64| if healthz > 0.0 { r / healthz } else { 0.0 };
    let mut rows = Vec::new();
    for (name, tally, node_rate) in [
        ("GET discovery", &o.discovery, node.discovery),
        ("GET JWKS", &o.jwks, node.jwks),
    ] {
        let r = tally.rate();
        let target = TARGET_DISCOVERY_X_NODE * node_rate;
        rows.push(Row {
            figure: format!("{name} req/s"),
            measured: format!(
                "{} ({:.2}× healthz, {:.1}× node)",
                rate(r),
                ratio(r),
                r / node_rate
            ),
            target: format!("≥ {}", rate(target)),
            pass: r >= target,
            readme: format!(
                "{name}: {} req/s, {:.2}× GET /healthz, {:.1}× node oidc-provider's {} ({}) — target ≥ 5× node",
                rate(r), ratio(r), r / node_rate, rate(node_rate), node.source
            ),
        });
    }
    let r = o.client_credentials.rate();
    rows.push(Row {
        figure: format!("client_credentials tokens/s ({})", o.access_alg),
        measured: format!(
            "{} ({:.2}× healthz, {:.2}× node)",
            rate(r),
            ratio(r),
            r / node.client_credentials
        ),
        target: format!("≥ {}", rate(node.client_credentials)),
        pass: r >= node.client_credentials,
        readme: format!(
            "client_credentials: {} tokens/s ({} access tokens, each audited), {:.2}× GET /healthz, {:.2}× node oidc-provider's {} ({}) — target ≥ node",
            rate(r), o.access_alg, ratio(r), r / node.client_credentials, rate(node.client_credentials), node.source
        ),
    });
    let r = o.refresh.rate();
    rows.push(Row {
        figure: "refresh (rotating) tokens/s".into(),
        measured: format!("{} ({:.2}× healthz)", rate(r), ratio(r)),
        target: "—".into(),
        pass: o.refresh.ok > 0,
        readme: format!(
            "refresh with rotation: {} tokens/s, {:.2}× GET /healthz (no target)",
            rate(r),
            ratio(r)
        ),
    });
    for (name, p) in [("introspection", &o.introspect), ("userinfo", &o.userinfo)] {
        let (r, h) = (p.endpoint.rate(), p.healthz.rate());
        rows.push(Row {
            figure: format!("{name} ÷ healthz"),
            measured: format!(
                "{:.2} ({} / {} req/s; {})",
                p.ratio(),
                rate(r),
                rate(h),
                p.spread()
            ),
            target: format!("≥ {TARGET_BEARER_VS_HEALTHZ}"),
            pass: p.ratio() >= TARGET_BEARER_VS_HEALTHZ,
            readme: format!(
                "{name}: {} req/s, {:.2}× GET /healthz ({} req/s in the turns beside it; {}) — target ≥ {TARGET_BEARER_VS_HEALTHZ}",
                rate(r),
                p.ratio(),
                rate(h),
                p.spread()
            ),
        });
    }
    let sigs: Vec<String> = o
        .signing
        .iter()
        .map(|(a, r)| format!("{a} {}", rate(*r)))
        .collect();
    rows.push(Row {
        figure: "signatures/s, one thread".into(),
        measured: sigs.join(", "),
        target: "—".into(),
        pass: true,
        readme: format!(
            "JWT signatures per second on one thread: {}",
            sigs.join(", ")
        ),
    });
    rows
}

/// Problems seen during the OIDC loads, for the details section.
pub fn problems(o: &OidcResults) -> Vec<String> {
    [
        ("discovery", &o.discovery),
        ("jwks", &o.jwks),
        ("client_credentials", &o.client_credentials),
        ("refresh", &o.refresh),
        ("introspection", &o.introspect.endpoint),
        ("introspection's /healthz", &o.introspect.healthz),
        ("userinfo", &o.userinfo.endpoint),
        ("userinfo's /healthz", &o.userinfo.healthz),
    ]
    .iter()
    .filter_map(|(n, t)| t.problems().map(|p| format!("{n}: {p}")))
    .collect()
}
