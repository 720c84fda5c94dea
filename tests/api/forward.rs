//! `/auth/forward` as a reverse proxy calls it.

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;

use crate::helpers::*;

async fn forward_app() -> TestApp {
    spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            forward_auth_allowed_domains: Some(vec!["example.com".into()]),
            ..Default::default()
        },
    })
    .await
}

#[tokio::test]
async fn a_session_gets_the_user_in_headers_and_nothing_else_passes() {
    let app = forward_app().await;
    let uid = app.create_user("fay@example.com", &["admin"]).await;
    // Remote-Groups lists groups (inherited ones too), Remote-Roles the roles.
    let groups = &app.state.groups;
    let (op, cli) = (
        portcullis::auth::access::groups::Editor::Operator,
        portcullis::auth::audit::AuditCtx::cli(),
    );
    groups.create(&op, "staff", "", None, &cli).await.unwrap();
    groups
        .create(&op, "design", "", Some("staff"), &cli)
        .await
        .unwrap();
    groups
        .set_member(&op, "design", "fay@example.com", true, &cli)
        .await
        .unwrap();
    let b = app.browser();

    // No session: 401, or a trip through the login page for an allowed return address.
    assert_eq!(
        b.get("/auth/forward").await.status,
        StatusCode::UNAUTHORIZED
    );
    for bad in [
        "https://evil.com/",
        "https://example.com.evil.com/",
        "javascript:alert(1)",
    ] {
        let p = b.get(&format!("/auth/forward?rd={}", urlencode(bad))).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    let rd = "https://app.example.com/dashboard?tab=1";
    let p = b.get(&format!("/auth/forward?rd={}", urlencode(rd))).await;
    assert_eq!(p.status, StatusCode::FOUND);
    let login = p.location().unwrap();
    assert!(
        login.starts_with("http://localhost:8080/login?next=%2Fauth%2Fforward%2Freturn"),
        "{login}"
    );

    // Signing in with that `next` comes back through /auth/forward/return to the app.
    let next = "/auth/forward/return?rd=https%3A%2F%2Fapp.example.com%2Fdashboard%3Ftab%3D1";
    let p = b
        .submit(
            "/login",
            "/login",
            &[
                ("email", "fay@example.com"),
                ("password", PASSWORD),
                ("next", next),
            ],
        )
        .await;
    assert_redirect(&p, next);
    assert_redirect(&b.get(next).await, rd);
    assert_redirect(
        &b.get("/auth/forward/return?rd=https%3A%2F%2Fevil.com%2F")
            .await,
        "/account",
    );

    let p = b.get("/auth/forward").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-user"], uid.as_str());
    assert_eq!(p.headers["remote-email"], "fay@example.com");
    assert_eq!(p.headers["remote-name"], "Test User");
    assert_eq!(p.headers["remote-groups"], "design,staff");
    assert_eq!(p.headers["remote-roles"], "admin");

    // Signed out: refused at once.
    b.logout().await;
    assert_eq!(
        b.get("/auth/forward").await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The public URL is http://localhost:8080: another port or scheme on that host, or a
/// listed domain on a port it did not name, is not where we send anyone.
#[tokio::test]
async fn a_return_address_off_our_origin_is_refused() {
    let app = forward_app().await;
    app.create_user("gil@example.com", &[]).await;
    let b = app.browser();
    let bad = [
        "http://localhost:1/x",
        "https://localhost:8080/x",
        "http://localhost/x",
        "http://localhost:8080@evil.com/",
        "https://app.example.com:8443/",
    ];
    for rd in bad {
        let p = b.get(&format!("/auth/forward?rd={}", urlencode(rd))).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{rd}");
        assert_eq!(p.location(), None, "{rd}");
    }
    let p = b
        .get(&format!(
            "/auth/forward?rd={}",
            urlencode("http://localhost:8080/x")
        ))
        .await;
    assert_eq!(p.status, StatusCode::FOUND);

    b.login_ok("gil@example.com").await;
    for rd in bad {
        let p = b
            .get(&format!("/auth/forward/return?rd={}", urlencode(rd)))
            .await;
        assert_redirect(&p, "/account");
    }
    assert_redirect(
        &b.get(&format!(
            "/auth/forward/return?rd={}",
            urlencode("http://localhost:8080/x")
        ))
        .await,
        "http://localhost:8080/x",
    );
}

async fn proxied_app(trusted: bool) -> TestApp {
    spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            forward_auth_allowed_domains: Some(vec!["example.com".into()]),
            trusted_proxies: Some(if trusted {
                vec!["127.0.0.1".into()]
            } else {
                vec![]
            }),
            ..Default::default()
        },
    })
    .await
}

impl Browser {
    /// GET with extra request headers (what a proxy adds).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut req = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("GET");
        Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.expect("body"),
        }
    }
}

/// The `rd` inside a sign-in address we answered with.
fn return_address(login: &str) -> String {
    let url = url::Url::parse(login).unwrap();
    let next = url
        .query_pairs()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let next = url::Url::parse(&format!("http://x{next}")).unwrap();
    assert_eq!(next.path(), "/auth/forward/return");
    next.query_pairs()
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

const DEEP: &str = "https://app.example.com/search?q=alpha&page=2";

/// nginx names the request in `X-Original-URL` and cannot follow a redirect from an
/// auth subrequest: it gets 401 with the sign-in page in `Location`, the whole
/// original address (every query parameter) inside it.
#[tokio::test]
async fn nginx_gets_401_with_the_sign_in_address_for_the_whole_original_url() {
    let app = proxied_app(true).await;
    app.create_user("hal@example.com", &[]).await;
    let b = app.browser();
    let p = b
        .get_with(
            "/auth/forward",
            &[("X-Original-URL", DEEP), ("X-Original-Method", "GET")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    let login = p.location().expect("a sign-in address");
    assert!(
        login.starts_with("http://localhost:8080/login?next="),
        "{login}"
    );
    assert_eq!(return_address(&login), DEEP);

    // An address outside the allowed domains: a plain 401, nowhere to go.
    let p = b
        .get_with("/auth/forward", &[("X-Original-URL", "https://evil.com/")])
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert_eq!(p.location(), None);

    // Signed in: the user, whatever the proxy says about the request.
    b.login_ok("hal@example.com").await;
    let p = b
        .get_with("/auth/forward", &[("X-Original-URL", DEEP)])
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-email"], "hal@example.com");
}

/// Traefik and Caddy send the parts in `X-Forwarded-*` and pass our answer to the
/// browser: a redirect, 302 after a GET and 303 after anything else.
#[tokio::test]
async fn traefik_and_caddy_get_a_redirect_built_from_the_forwarded_headers() {
    let app = proxied_app(true).await;
    let b = app.browser();
    let parts = |method: &'static str| {
        [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.com"),
            ("X-Forwarded-Uri", "/search?q=alpha&page=2"),
            ("X-Forwarded-Method", method),
        ]
    };
    let p = b.get_with("/auth/forward", &parts("GET")).await;
    assert_eq!(p.status, StatusCode::FOUND);
    assert_eq!(return_address(&p.location().unwrap()), DEEP);
    let p = b.get_with("/auth/forward", &parts("POST")).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(return_address(&p.location().unwrap()), DEEP);

    let mut evil = parts("GET");
    evil[1] = ("X-Forwarded-Host", "evil.com");
    let p = b.get_with("/auth/forward", &evil).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert_eq!(p.location(), None);
}

/// From a peer that is not a trusted proxy, headers naming the request are ignored:
/// otherwise anyone could have us redirect to an address of their choosing.
#[tokio::test]
async fn an_untrusted_peer_cannot_name_the_original_request() {
    let app = proxied_app(false).await;
    let b = app.browser();
    for headers in [
        vec![("X-Original-URL", DEEP)],
        vec![
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.com"),
            ("X-Forwarded-Uri", "/"),
        ],
    ] {
        let p = b.get_with("/auth/forward", &headers).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        assert_eq!(p.location(), None);
    }
}

/// The sign-in pages of a forward-auth return may send their forms on to the app's
/// origin (browsers apply `form-action` to the redirects after a form), and only
/// those pages, and only that origin.
#[tokio::test]
async fn only_a_sign_in_returning_to_an_allowed_app_may_lead_there() {
    let app = forward_app().await;
    let b = app.browser();
    let csp = |p: &Page| {
        p.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let next = |rd: &str| urlencode(&format!("/auth/forward/return?rd={}", urlencode(rd)));
    let p = b.get(&format!("/login?next={}", next(DEEP))).await;
    assert!(
        csp(&p).contains("form-action 'self' https://app.example.com;"),
        "{}",
        csp(&p)
    );
    for page in [
        "/login".to_string(),
        format!("/login?next={}", next("https://evil.com/")),
    ] {
        let p = b.get(&page).await;
        assert!(
            csp(&p).contains("form-action 'self';"),
            "{page}: {}",
            csp(&p)
        );
    }
}

/// With `cookie_domains`, the session cookie is written for the parent domain of the
/// host the browser asked for, so `app.example.test` sees a sign-in made at
/// `auth.example.test`; a host under no configured domain keeps a host-only cookie.
#[tokio::test]
async fn the_session_cookie_covers_the_configured_parent_domain() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            public_url: Some("http://auth.example.test:8080".into()),
            cookie_domains: Some(vec!["example.test".into()]),
            trusted_proxies: Some(vec!["127.0.0.1".into()]),
            ..Default::default()
        },
    })
    .await;
    app.create_user("ida@example.com", &[]).await;
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookies = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    let pair = |c: &str| c.split(';').next().unwrap().to_string();

    let sign_in = |host: &'static str| {
        let raw = raw.clone();
        let base = app.base.clone();
        async move {
            let r = raw
                .get(format!("{base}/login"))
                .header("Host", host)
                .send()
                .await
                .unwrap();
            let seed = cookies(&r)
                .into_iter()
                .find(|c| c.starts_with("portcullis_csrf="))
                .unwrap();
            let page = Page {
                status: r.status(),
                headers: r.headers().clone(),
                body: r.text().await.unwrap(),
            };
            raw.post(format!("{base}/login"))
                .header("Host", host)
                .header("Cookie", pair(&seed))
                .form(&[
                    ("csrf_token", page.csrf().as_str()),
                    ("email", "ida@example.com"),
                    ("password", PASSWORD),
                ])
                .send()
                .await
                .unwrap()
        }
    };

    let r = sign_in("auth.example.test:8080").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("portcullis="))
        .expect("a session cookie");
    assert!(
        session.to_ascii_lowercase().contains("domain=example.test"),
        "{session}"
    );
    // The app's host presents it; forward auth knows the user.
    let p = app
        .browser()
        .get_with(
            "/auth/forward",
            &[
                ("Cookie", pair(&session).as_str()),
                ("X-Forwarded-Proto", "http"),
                ("X-Forwarded-Host", "app.example.test"),
                ("X-Forwarded-Uri", "/"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-email"], "ida@example.com");

    // Under no configured domain: host-only, as before.
    let r = sign_in("other.org").await;
    let session = cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("portcullis="))
        .expect("a session cookie");
    assert!(
        !session.to_ascii_lowercase().contains("domain="),
        "{session}"
    );
}

/// A browser's favicon request for a protected app is sent to the sign-in page too,
/// racing the page the user sees. Only a page the browser shows may mint the CSRF
/// seed, or the side fetch would replace it and the user's sign-in form be refused.
#[tokio::test]
async fn only_a_shown_page_mints_the_csrf_seed() {
    let app = forward_app().await;
    let seeds = |p: &Page| {
        p.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter(|v| v.to_str().unwrap().starts_with("portcullis_csrf="))
            .count()
    };
    let side = app
        .browser()
        .get_with("/login", &[("Sec-Fetch-Dest", "image")])
        .await;
    assert_eq!(side.status, StatusCode::OK);
    assert_eq!(seeds(&side), 0, "a favicon fetch mints no seed");
    let shown = app
        .browser()
        .get_with("/login", &[("Sec-Fetch-Dest", "document")])
        .await;
    assert_eq!(seeds(&shown), 1, "the page itself does");
    assert_eq!(
        seeds(&app.browser().get("/login").await),
        1,
        "as does a client that does not say"
    );
}
