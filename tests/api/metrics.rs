//! `/metrics`, read with a Prometheus text-format parser; counters move with actions.

use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;

use crate::helpers::*;

async fn scrape(app: &TestApp, token: Option<&str>) -> (StatusCode, Option<Scrape>) {
    let mut req = reqwest::Client::new().get(format!("{}/metrics", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    let parsed = (status == StatusCode::OK).then(|| {
        Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text")
    });
    (status, parsed)
}

/// The value of `name` whose labels include all of `labels` (0 when absent).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn counters_and_gauges_follow_what_happens() {
    let app = spawn_app().await;
    app.create_user("mo@example.com", &[]).await;
    let (_, before) = scrape(&app, None).await;
    let before = before.unwrap();
    let ok_before = value(
        &before,
        "sign_ins_total",
        &[("method", "password"), ("outcome", "success")],
    );
    let bad_before = value(
        &before,
        "sign_ins_total",
        &[("method", "password"), ("outcome", "invalid")],
    );

    let b = app.browser();
    b.login("mo@example.com", "not the password at all").await;
    b.login_ok("mo@example.com").await;
    b.get("/account").await;
    // One client_credentials token.
    let tokens_before = value(
        &before,
        "tokens_issued_total",
        &[("grant", "client_credentials")],
    );
    let (id, secret) = app
        .state
        .oauth
        .create_client(
            portcullis::auth::oauth::authorize::NewClient {
                name: "Metered".into(),
                redirect_uris: vec![],
                post_logout_redirect_uris: vec![],
                public: false,
                scopes: vec!["roles".into()],
                grants: vec!["client_credentials".into()],
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
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(id, secret)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let (status, after) = scrape(&app, None).await;
    assert_eq!(status, StatusCode::OK);
    let after = after.unwrap();
    // Other tests in this process count too: the counters moved by at least ours.
    assert!(
        value(
            &after,
            "sign_ins_total",
            &[("method", "password"), ("outcome", "success")]
        ) >= ok_before + 1.0
    );
    assert!(
        value(
            &after,
            "sign_ins_total",
            &[("method", "password"), ("outcome", "invalid")]
        ) >= bad_before + 1.0
    );
    assert!(
        value(
            &after,
            "http_requests_total",
            &[("route", "/account"), ("status", "200")]
        ) >= 1.0
    );
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "http_request_duration_seconds"
                && matches!(s.value, Value::Histogram(_))),
        "latency histogram"
    );
    assert!(
        value(
            &after,
            "tokens_issued_total",
            &[("grant", "client_credentials")]
        ) >= tokens_before + 1.0
    );
    assert!(value(&after, "sessions_active", &[]) >= 1.0);
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "mail_outbox_depth")
    );
    assert!(
        value(&after, "db_pool_connections", &[("state", "idle")])
            + value(&after, "db_pool_connections", &[("state", "in_use")])
            >= 1.0
    );
}

#[tokio::test]
async fn with_a_token_only_its_holder_may_scrape() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            metrics_token: Some("s3cret-scrape-token".into()),
            ..Default::default()
        },
    })
    .await;
    assert_eq!(scrape(&app, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(scrape(&app, Some("wrong")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        scrape(&app, Some("s3cret-scrape-token")).await.0,
        StatusCode::OK
    );
}

/// Behind a trusted proxy the socket peer is the proxy (loopback here): the client is
/// the one its `X-Forwarded-For` names, and only a loopback client may scrape.
#[tokio::test]
async fn behind_a_trusted_proxy_only_a_local_client_may_scrape() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            trusted_proxies: Some(vec!["127.0.0.1".into()]),
            ..Default::default()
        },
    })
    .await;
    let get = |xff: Option<&'static str>| {
        let mut req = reqwest::Client::new().get(format!("{}/metrics", app.base));
        if let Some(v) = xff {
            req = req.header("x-forwarded-for", v);
        }
        async move { req.send().await.unwrap().status() }
    };
    for remote in [
        "203.0.113.9",
        // A client's own claim to be local, to the left of what the proxy appended.
        "127.0.0.1, 203.0.113.9",
        "::1, 2001:db8::7",
    ] {
        assert_eq!(get(Some(remote)).await, StatusCode::NOT_FOUND, "{remote}");
    }
    // A scraper on this host, directly or through the proxy.
    assert_eq!(get(None).await, StatusCode::OK);
    assert_eq!(get(Some("127.0.0.1")).await, StatusCode::OK);
}

/// With a token, the token decides, wherever the client is.
#[tokio::test]
async fn behind_a_trusted_proxy_the_token_still_decides() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            trusted_proxies: Some(vec!["127.0.0.1".into()]),
            metrics_token: Some("s3cret-scrape-token".into()),
            ..Default::default()
        },
    })
    .await;
    let get = |token: Option<&'static str>| {
        let mut req = reqwest::Client::new()
            .get(format!("{}/metrics", app.base))
            .header("x-forwarded-for", "203.0.113.9");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(get(Some("s3cret-scrape-token")).await, StatusCode::OK);
    assert_eq!(get(Some("wrong")).await, StatusCode::NOT_FOUND);
    assert_eq!(get(None).await, StatusCode::NOT_FOUND);
    assert_eq!(scrape(&app, None).await.0, StatusCode::NOT_FOUND);
}

/// Every rate limit feeds `rate_limit_rejections_total`, under its own label: a
/// registration and a password reset refused per client address (429), and a reset
/// mail dropped silently per address (the same answer), each count.
#[tokio::test]
async fn every_rate_limit_refusal_is_counted_by_its_limit() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            registrations_per_ip_per_hour: Some(1),
            password_resets_per_ip_per_hour: Some(2),
            password_resets_per_address_per_hour: Some(1),
            ..Default::default()
        },
    })
    .await;
    let refusals =
        |s: &Scrape, limit: &str| value(s, "rate_limit_rejections_total", &[("limit", limit)]);
    let before = scrape(&app, None).await.1.unwrap();

    let b = app.browser();
    assert_eq!(
        b.register("counted1@example.com", PASSWORD, "")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        b.register("counted2@example.com", PASSWORD, "")
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let forgot = |email: &'static str| {
        let b = &b;
        async move {
            b.submit("/password/forgot", "/password/forgot", &[("email", email)])
                .await
                .status
        }
    };
    assert_eq!(forgot("someone@example.com").await, StatusCode::OK);
    // Over the address's limit: no mail, and the same answer.
    assert_eq!(forgot("someone@example.com").await, StatusCode::OK);
    // Over the client's limit.
    assert_eq!(
        forgot("someone.else@example.com").await,
        StatusCode::TOO_MANY_REQUESTS
    );

    let after = scrape(&app, None).await.1.unwrap();
    // Other tests in this process count too: ours moved each by at least one.
    for limit in ["register_ip", "reset_ip", "reset_address"] {
        assert!(
            refusals(&after, limit) >= refusals(&before, limit) + 1.0,
            "rate_limit_rejections_total{{limit=\"{limit}\"}} did not count the refusal"
        );
    }
}
