//! Access rules at forward auth: who reaches which site, and how proven.

use portcullis::domain::access::RuleSpec;
use reqwest::StatusCode;

use crate::helpers::*;
use crate::mfa::{enrol, hotp};

pub(crate) fn rule(name: &str, domain: &str, policy: &str) -> RuleSpec {
    RuleSpec {
        name: Some(name.into()),
        domain: vec![domain.into()],
        policy: policy.into(),
        ..Default::default()
    }
}

pub(crate) async fn ruled_app(rules: Vec<RuleSpec>, default: &str) -> TestApp {
    spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            forward_auth_allowed_domains: Some(vec!["example.com".into()]),
            trusted_proxies: Some(vec!["127.0.0.1".into()]),
            access_rule: Some(rules),
            access_default: Some(default.into()),
            access_two_factor_max_age_secs: Some(600),
            ..Default::default()
        },
    })
    .await
}

/// What Caddy or Traefik would send for `url`.
fn asked(url: &str) -> Vec<(&'static str, String)> {
    let u = url::Url::parse(url).unwrap();
    let mut uri = u.path().to_string();
    if let Some(q) = u.query() {
        uri = format!("{uri}?{q}");
    }
    vec![
        ("X-Forwarded-Proto", u.scheme().to_string()),
        ("X-Forwarded-Host", u.host_str().unwrap().to_string()),
        ("X-Forwarded-Uri", uri),
        ("X-Forwarded-Method", "GET".to_string()),
    ]
}

pub(crate) async fn forward(b: &Browser, url: &str) -> Page {
    let headers = asked(url);
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.get_with("/auth/forward", &refs).await
}

fn site_rules() -> Vec<RuleSpec> {
    vec![
        RuleSpec {
            path: vec!["/public".into()],
            ..rule("public pages", "app.example.com", "bypass")
        },
        RuleSpec {
            path: vec!["/admin".into()],
            subject: vec!["role:admin".into()],
            ..rule("admins", "app.example.com", "one_factor")
        },
        RuleSpec {
            path: vec!["/admin".into()],
            ..rule("admin area closed", "app.example.com", "deny")
        },
        rule("staff only", "*.internal.example.com", "deny"),
    ]
}

/// A public path needs no sign-in; an admin path is for admins only, whatever way its
/// address is spelled; the rest of the site is for anyone signed in.
#[tokio::test]
async fn rules_decide_by_site_path_and_who_asks() {
    let app = ruled_app(site_rules(), "one_factor").await;
    app.create_user("ann@example.com", &["admin"]).await;
    app.create_user("bo@example.com", &[]).await;
    let anon = app.browser();

    let p = forward(&anon, "https://app.example.com/public/logo.png").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-user"], "", "no one is signed in");
    let p = forward(&anon, "https://app.example.com/notes").await;
    assert_eq!(p.status, StatusCode::FOUND, "sign in first");
    // Who asks decides the admin path: sign in first to find out.
    let p = forward(&anon, "https://app.example.com/admin").await;
    assert_eq!(p.status, StatusCode::FOUND);
    assert!(p.location().unwrap().contains("/login?next="));

    let bo = app.browser();
    bo.login_ok("bo@example.com").await;
    let p = forward(&bo, "https://app.example.com/notes").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-email"], "bo@example.com");
    for spelled in [
        "https://app.example.com/admin",
        "https://app.example.com/admin/users?x=1",
        "https://app.example.com/%61dmin",
        "https://app.example.com//admin",
        "https://app.example.com/public/..%2Fadmin",
        "https://APP.example.com/admin",
    ] {
        let p = forward(&bo, spelled).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{spelled}");
        assert!(
            p.body.contains("does not have access to app.example.com"),
            "{spelled}: {}",
            p.body
        );
        let explained = p.location().expect("the page that explains");
        assert!(
            explained.contains("/auth/forward/denied?rd="),
            "{explained}"
        );
    }
    let p = forward(&bo, "https://app.example.com/administrator").await;
    assert_eq!(p.status, StatusCode::OK, "a segment is a whole segment");
    let p = forward(&bo, "https://db.internal.example.com/").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    let ann = app.browser();
    ann.login_ok("ann@example.com").await;
    let p = forward(&ann, "https://app.example.com/admin/users").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-roles"], "admin");

    // The explanation nginx sends the browser to.
    let p = bo
        .get("/auth/forward/denied?rd=https%3A%2F%2Fapp.example.com%2Fadmin&why=rule")
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(
        p.body.contains("No access to app.example.com"),
        "{}",
        p.body
    );
}

/// A user refused again and again (a proxy asks on every request) leaves one audit
/// event per minute, saying how many were folded into it.
#[tokio::test]
async fn denials_are_audited_without_flooding_the_log() {
    let app = ruled_app(site_rules(), "one_factor").await;
    let bo_id = app.create_user("bo@example.com", &[]).await;
    let bo = app.browser();
    bo.login_ok("bo@example.com").await;
    for _ in 0..5 {
        let p = forward(&bo, "https://app.example.com/admin").await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
    }
    let denied = |events: Vec<portcullis::db::repo::audit::AuditEvent>| {
        events
            .into_iter()
            .filter(|e| e.event == "access.denied")
            .collect::<Vec<_>>()
    };
    let events = denied(app.audit().await);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].target_id.as_deref(), Some(bo_id.as_str()));
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["host"], "app.example.com");
    assert_eq!(details["rule"], "admin area closed");

    app.clock.advance(61);
    let p = forward(&bo, "https://app.example.com/admin").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let events = denied(app.audit().await);
    assert_eq!(events.len(), 2);
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["earlier_denials_folded_in"], 4);
}

/// A two-factor site: a session proven by the password alone confirms the second
/// factor on our pages and comes back; an account without one is told to add one;
/// the proof lasts `access_two_factor_max_age_secs`.
#[tokio::test]
async fn a_two_factor_site_steps_up_and_comes_back() {
    let app = ruled_app(
        vec![rule("vault", "vault.example.com", "two_factor")],
        "one_factor",
    )
    .await;
    app.create_user("cy@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("cy@example.com").await;
    let site = "https://vault.example.com/secrets?id=7";

    // No second factor on the account: refused, with what to do.
    let p = forward(&b, site).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.body.contains("asks for a second factor"), "{}", p.body);

    let (secret, _) = enrol(&app, &b).await;
    // The password session does not count as two factors: confirm it.
    let p = forward(&b, site).await;
    assert_eq!(p.status, StatusCode::FOUND);
    let location = p.location().unwrap();
    assert!(
        location.starts_with("http://localhost:8080/login/reauth?factor=1&next="),
        "{location}"
    );
    let next = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "next")
        .unwrap()
        .1
        .into_owned();
    let page = b.get(&location.replace("http://localhost:8080", "")).await;
    assert_eq!(page.status, StatusCode::OK);
    app.clock.advance(30);
    let step = app.clock.now() as u64 / 30;
    let p = b
        .post(
            "/login/reauth",
            &[
                ("csrf_token", &page.csrf()),
                ("password", PASSWORD),
                ("code", &hotp(&secret, step, 6)),
                ("next", &next),
            ],
        )
        .await;
    assert_redirect(&p, &next);
    assert_redirect(&b.get(&next).await, site);
    let p = forward(&b, site).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);

    // Past the configured age, confirm again.
    app.clock.advance(601);
    let p = forward(&b, site).await;
    assert_eq!(p.status, StatusCode::FOUND);
}

/// With rules set, a request whose site the proxy did not name cannot be judged:
/// refused, never waved through.
#[tokio::test]
async fn with_rules_an_unnamed_site_is_refused() {
    let app = ruled_app(site_rules(), "one_factor").await;
    app.create_user("di@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("di@example.com").await;
    let p = b.get("/auth/forward").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
}

/// `access_default = "deny"`: a site no rule names is closed, even to a session.
#[tokio::test]
async fn the_default_decides_where_no_rule_matches() {
    let app = ruled_app(vec![rule("open", "open.example.com", "one_factor")], "deny").await;
    app.create_user("ed@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("ed@example.com").await;
    assert_eq!(
        forward(&b, "https://open.example.com/").await.status,
        StatusCode::OK
    );
    assert_eq!(
        forward(&b, "https://other.example.com/").await.status,
        StatusCode::FORBIDDEN
    );
}

/// `portcullis policy check` prints what forward auth decides, and the rule.
#[tokio::test]
async fn policy_check_prints_the_decision_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        r#"
access_default = "one_factor"

[[access_rule]]
name = "public pages"
domain = "app.example.com"
path = "/public"
policy = "bypass"

[[access_rule]]
name = "admins"
domain = "app.example.com"
path = "/admin"
subject = ["role:admin"]
policy = "two_factor"

[[access_rule]]
name = "admin area closed"
domain = "app.example.com"
path = "/admin"
policy = "deny"
"#,
    )
    .unwrap();
    let cfg = config.display().to_string();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["--config", cfg.as_str()];
        all.extend_from_slice(args);
        crate::cli::portcullis(dir.path(), &db, &all, stdin)
    };
    let (ok, _, err) = run(&["migrate"], None);
    assert!(ok, "{err}");
    for (email, role) in [("fe@example.com", "admin"), ("gu@example.com", "")] {
        let mut args = vec!["user", "create", "--email", email, "--verified"];
        if !role.is_empty() {
            args.extend(["--role", role]);
        }
        let (ok, _, err) = run(&args, Some(&format!("{PASSWORD}\n")));
        assert!(ok, "{err}");
    }
    let check = |email: &str, url: &str| {
        let (ok, out, err) = run(&["policy", "check", "--email", email, "--url", url], None);
        assert!(ok, "{err}");
        out
    };
    let out = check("fe@example.com", "https://app.example.com/admin/x");
    assert!(out.contains("decision=two_factor\nrule=admins\n"), "{out}");
    assert!(out.contains("why=rule 2 of 3 matches"), "{out}");
    let out = check("gu@example.com", "https://app.example.com/admin/x");
    assert!(
        out.contains("decision=deny\nrule=admin area closed"),
        "{out}"
    );
    let out = check("gu@example.com", "https://app.example.com/public/a");
    assert!(out.contains("decision=allow\nrule=public pages"), "{out}");
    let out = check("gu@example.com", "https://app.example.com/notes");
    assert!(out.contains("decision=one_factor\nrule=default"), "{out}");

    let (ok, _, err) = run(
        &[
            "policy",
            "check",
            "--email",
            "nobody@example.com",
            "--url",
            "https://app.example.com/",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("No active account"), "{err}");
}

/// A rule that does not check stops the start, naming the rule and the field.
#[tokio::test]
async fn a_bad_rule_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        "[[access_rule]]\nname = \"api\"\ndomain = \"app.example.com\"\npath_regex = \"(\"\npolicy = \"deny\"\n",
    )
    .unwrap();
    let (ok, _, err) = crate::cli::portcullis(
        dir.path(),
        &db,
        &["--config", &config.display().to_string(), "migrate"],
        None,
    );
    assert!(!ok);
    assert!(err.contains("access rule \"api\": path_regex"), "{err}");
}

/// `/admin/policies` lists the rules in order and tries a request against them for a
/// given account, as forward auth would answer it; only for those who may see users.
#[tokio::test]
async fn the_admin_page_lists_the_rules_and_tests_a_request() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            forward_auth_allowed_domains: Some(vec!["example.com".into()]),
            access_rule: Some(site_rules()),
            access_default: Some("deny".into()),
            admin_requires_second_factor: Some(false),
            ..Default::default()
        },
    })
    .await;
    app.create_user("root@example.com", &["admin"]).await;
    app.create_user("bob@example.com", &[]).await;

    // Bob, without the permission, sees nothing of it.
    let bob = app.browser();
    bob.login_ok("bob@example.com").await;
    assert_eq!(
        bob.get("/admin/policies?url=https%3A%2F%2Fapp.example.com%2F")
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let root = app.browser();
    root.login_ok("root@example.com").await;
    let page = root.get("/admin/policies").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.count("tr.rule"), site_rules().len());
    assert!(page.body.contains("public pages"), "{}", page.body);
    assert!(page.text_of("#default-policy").unwrap().contains("deny"));

    // Would Bob reach the admin area? No, and the page names the rule.
    let q = "/admin/policies?email=bob%40example.com&url=https%3A%2F%2Fapp.example.com%2Fadmin%2Fusers&method=GET&ip=";
    let page = root.get(q).await;
    assert_eq!(page.status, StatusCode::OK);
    let result = page.text_of("#policy-result").expect("a result");
    assert!(result.contains("deny"), "{result}");
    assert!(result.contains("admin area closed"), "{result}");
    // The form comes back filled in.
    assert!(page.body.contains("value=\"bob@example.com\""));

    // A visitor who is not signed in, on the public pages: allowed.
    let page = root
        .get("/admin/policies?email=&url=https%3A%2F%2Fapp.example.com%2Fpublic%2Fx&method=GET&ip=")
        .await;
    let result = page.text_of("#policy-result").expect("a result");
    assert!(result.contains("allow"), "{result}");
    assert!(result.contains("public pages"), "{result}");

    // Bad input: a clear message and a 4xx, never a 500.
    for (q, says) in [
        ("email=&url=not+a+url&method=GET&ip=", "not a URL"),
        (
            "email=nobody%40example.com&url=https%3A%2F%2Fapp.example.com%2F&method=GET&ip=",
            "No active account",
        ),
        (
            "email=&url=https%3A%2F%2Fapp.example.com%2F&method=GET&ip=300.1.1.1",
            "not an IP address",
        ),
        (
            "email=&url=https%3A%2F%2Fapp.example.com%2F&method=G%20T&ip=",
            "not an HTTP method",
        ),
    ] {
        let page = root.get(&format!("/admin/policies?{q}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert!(
            page.text_of("#form-error").unwrap().contains(says),
            "{q}: {}",
            page.body
        );
    }
}

/// Rules added on `/admin/policies` follow the configured ones and apply from the next
/// request, on every instance; deleting one lifts it. Both are audited; a rule that
/// does not check is refused with the reason; only `policies.write` may do it.
#[tokio::test]
async fn rules_added_on_the_admin_page_apply_at_once_and_can_be_deleted() {
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            forward_auth_allowed_domains: Some(vec!["example.com".into()]),
            trusted_proxies: Some(vec!["127.0.0.1".into()]),
            access_rule: Some(site_rules()),
            admin_requires_second_factor: Some(false),
            ..Default::default()
        },
    })
    .await;
    app.create_user("root@example.com", &["admin"]).await;
    app.create_user("cat@example.com", &[]).await;
    let cat = app.browser();
    cat.login_ok("cat@example.com").await;
    let secret = "https://app.example.com/secret/plans";
    assert_eq!(forward(&cat, secret).await.status, StatusCode::OK);

    let root = app.browser();
    root.login_ok("root@example.com").await;
    let rule_form = |policy: &'static str, subject: &'static str| {
        vec![
            ("name", "secret plans"),
            ("domain", "app.example.com"),
            ("path", "/secret"),
            ("path_regex", ""),
            ("method", ""),
            ("network", ""),
            ("subject", subject),
            ("policy", policy),
        ]
    };
    // A rule that does not check: refused, saying why, and nothing stored.
    let p = root
        .submit(
            "/admin/policies",
            "/admin/policies",
            &rule_form("bypass", "user:cat@example.com"),
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        p.text_of("#add-error").unwrap().contains("secret plans"),
        "{}",
        p.body
    );
    assert!(
        p.body.contains("value=\"/secret\""),
        "the form comes back filled in"
    );

    let p = root
        .submit("/admin/policies", "/admin/policies", &rule_form("deny", ""))
        .await;
    assert_redirect(&p, "/admin/policies?done=added");
    assert_eq!(
        forward(&cat, secret).await.status,
        StatusCode::FORBIDDEN,
        "refused from the next request"
    );
    let events = app.audit().await;
    let created = events
        .iter()
        .find(|e| e.event == "access_rule.created")
        .expect("audited");
    assert!(
        created.details.contains("secret plans"),
        "{}",
        created.details
    );
    // Another instance on the same storage (with Redis, as behind a load balancer)
    // refuses too.
    if app.config.redis_url.is_some() {
        let other = spawn_app_with(Options {
            file: portcullis::config::FileConfig {
                database_url: Some(app.config.database_url.clone()),
                redis_url: app.config.redis_url.clone(),
                redis_prefix: Some(app.config.redis_prefix.clone()),
                public_url: Some(app.config.public_url.to_string()),
                secret_key_file: Some(app.config.secret_key_file.display().to_string()),
                forward_auth_allowed_domains: Some(vec!["example.com".into()]),
                trusted_proxies: Some(vec!["127.0.0.1".into()]),
                access_rule: Some(site_rules()),
                ..Default::default()
            },
        })
        .await;
        let b = other.browser();
        b.login_ok("cat@example.com").await;
        assert_eq!(forward(&b, secret).await.status, StatusCode::FORBIDDEN);
    }

    // The page lists it after the configured ones, with Delete.
    let page = root.get("/admin/policies").await;
    assert_eq!(page.count("tr.rule"), site_rules().len() + 1);
    let id = page
        .body
        .split("/admin/policies/")
        .nth(1)
        .and_then(|s| s.split("/delete").next())
        .expect("a delete form")
        .to_string();

    // Someone who may see users but not change rules sees them, and can neither add
    // nor delete.
    crate::admin::role_with(&app, "viewer", &["users.read"]).await;
    app.create_user("viewer@example.com", &["viewer"]).await;
    let viewer = app.browser();
    viewer.login_ok("viewer@example.com").await;
    let page = viewer.get("/admin/policies").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Add rule") && !page.body.contains("/delete"));
    let p = viewer
        .submit(
            "/admin/policies",
            "/admin/policies",
            &rule_form("bypass", ""),
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = viewer
        .submit(
            "/admin/policies",
            &format!("/admin/policies/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(forward(&cat, secret).await.status, StatusCode::FORBIDDEN);

    // Delete only asks, naming the rule; it goes on refusing meanwhile.
    let p = root
        .submit(
            "/admin/policies",
            &format!("/admin/policies/{id}/delete"),
            &[],
        )
        .await;
    let form = crate::confirm::asks(&p, "Delete this access rule?", "/admin/policies");
    let says = crate::confirm::says(&p);
    assert!(
        says.starts_with(
            "The rule \"secret plans\" (domain app.example.com; path under /secret; policy deny)"
        ),
        "{says}"
    );
    assert!(p.body.contains("Yes, delete"));
    assert_eq!(forward(&cat, secret).await.status, StatusCode::FORBIDDEN);
    assert!(
        !app.audit_names()
            .await
            .contains(&"access_rule.deleted".to_string())
    );
    let p = crate::confirm::press(&root, &form, false).await;
    assert_redirect(&p, "/admin/policies?done=deleted");
    assert_eq!(forward(&cat, secret).await.status, StatusCode::OK);
    assert!(
        app.audit_names()
            .await
            .contains(&"access_rule.deleted".to_string())
    );
    // Deleting it again, asked or confirmed: gone.
    for confirm in ["", "yes"] {
        let p = root
            .submit(
                "/admin/policies",
                &format!("/admin/policies/{id}/delete"),
                &[("confirm", confirm)],
            )
            .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND);
    }
}
