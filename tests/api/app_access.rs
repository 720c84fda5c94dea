//! Who may use an app: a client's allowed groups (inherited membership counts) and its
//! second-factor requirement, at `/oauth/authorize`, at the token endpoint's user-bound
//! grants, on the admin client page and from the command line.

use portcullis::auth::access::groups::Editor;
use portcullis::auth::audit::AuditCtx;
use reqwest::StatusCode;
use serde_json::Value;

use crate::cli::portcullis;
use crate::helpers::*;
use crate::oidc::{
    CALLBACK, CHALLENGE, authorize, back_channel, client_with, exchange, new_client, oidc_app_with,
    query, token_request,
};

async fn group(app: &TestApp, name: &str, parent: Option<&str>) {
    app.state
        .groups
        .create(&Editor::Operator, name, "", parent, &AuditCtx::cli())
        .await
        .unwrap();
}

async fn set_member(app: &TestApp, name: &str, email: &str, member: bool) {
    app.state
        .groups
        .set_member(&Editor::Operator, name, email, member, &AuditCtx::cli())
        .await
        .unwrap();
}

/// A confidential client for `groups` (empty: everyone), optionally requiring a
/// second factor.
async fn app_client(app: &TestApp, groups: &[&str], two_factor: bool) -> (String, String) {
    let mut c = new_client(false);
    c.allowed_groups = groups.iter().map(|g| g.to_string()).collect();
    c.require_two_factor = two_factor;
    let (id, secret) = client_with(app, c).await;
    (id, secret.unwrap())
}

/// The authorization request's path, with `extra` appended to the query.
fn authorize_path(client_id: &str, extra: &str) -> String {
    format!(
        "/oauth/authorize?response_type=code&scope=openid+email&client_id={client_id}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&nonce=n1&state=s1{extra}",
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    )
}

/// The `access.denied` events, newest first, as (target, details).
async fn denials(app: &TestApp) -> Vec<(Option<String>, Value)> {
    app.audit()
        .await
        .into_iter()
        .filter(|e| e.event == "access.denied")
        .map(|e| (e.target_id, serde_json::from_str(&e.details).unwrap()))
        .collect()
}

#[tokio::test]
async fn members_get_a_code_and_everyone_else_is_refused_at_the_redirect_uri() {
    let app = oidc_app_with(Default::default()).await;
    group(&app, "staff", None).await;
    group(&app, "backend", Some("staff")).await;
    app.create_user("amy@example.com", &[]).await;
    app.create_user("cid@example.com", &[]).await;
    let bob = app.create_user("bob@example.com", &[]).await;
    set_member(&app, "staff", "amy@example.com", true).await;
    set_member(&app, "backend", "cid@example.com", true).await;
    let (id, secret) = app_client(&app, &["staff"], false).await;

    // A direct member, and a member of a group inside the allowed one: codes that work.
    for who in ["amy@example.com", "cid@example.com"] {
        let b = app.browser();
        b.login_ok(who).await;
        let q = authorize(&b, &id, "").await;
        let (status, t) = exchange(&app, &id, &secret, &q["code"]).await;
        assert_eq!(status, StatusCode::OK, "{who}: {t}");
    }
    assert!(denials(&app).await.is_empty());

    // Bob is in no allowed group: back at the app with access_denied, a reason he can
    // read, the state, and no consent page on the way.
    let b = app.browser();
    b.login_ok("bob@example.com").await;
    let p = b.get(&authorize_path(&id, "")).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let loc = p.location().unwrap();
    assert!(loc.starts_with(CALLBACK), "{loc}");
    let q = query(&loc);
    assert_eq!(q["error"], "access_denied");
    assert!(
        q["error_description"].contains("no access to this app"),
        "{q:?}"
    );
    assert_eq!(q["state"], "s1");
    assert_eq!(q["iss"], app.base);
    assert!(!q.contains_key("code"));
    let events = denials(&app).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0.as_deref(), Some(bob.as_str()));
    assert_eq!(events[0].1["client_id"], id);
    assert_eq!(events[0].1["reason"], "not_in_allowed_groups");

    // prompt=none is answered the same way (not login_required or consent_required).
    let p = b.get(&authorize_path(&id, "&prompt=none")).await;
    let q = query(&p.location().unwrap());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(denials(&app).await.len(), 2);

    // Posting the consent form directly does not get round it.
    let csrf = b.get("/account").await.csrf();
    let path = authorize_path(&id, "");
    let (_, query_string) = path.split_once('?').unwrap();
    let mut fields: Vec<(String, String)> = url::form_urlencoded::parse(query_string.as_bytes())
        .into_owned()
        .collect();
    fields.push(("csrf_token".into(), csrf));
    fields.push(("decision".into(), "allow".into()));
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let p = b.post("/oauth/authorize", &refs).await;
    assert_eq!(query(&p.location().unwrap())["error"], "access_denied");

    // Once in a group inside an allowed one, Bob is let in.
    set_member(&app, "backend", "bob@example.com", true).await;
    let q = authorize(&b, &id, "").await;
    assert!(q.contains_key("code"), "{q:?}");
    // Taken out again before the app exchanged the code: the code is refused.
    set_member(&app, "backend", "bob@example.com", false).await;
    let (status, body) = exchange(&app, &id, &secret, &q["code"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(denials(&app).await[0].1["via"], "authorization_code");

    // A client without allowed groups is everyone's, and client_credentials has no
    // user to ask about.
    let (open, _) = app_client(&app, &[], false).await;
    let b = app.browser();
    b.login_ok("amy@example.com").await;
    assert!(authorize(&b, &open, "").await.contains_key("code"));
    let mut svc = new_client(false);
    svc.grants = vec!["client_credentials".into()];
    svc.scopes = vec!["roles".into()];
    svc.allowed_groups = vec!["staff".into()];
    let (svc_id, svc_secret) = client_with(&app, svc).await;
    let (status, body) = token_request(
        &app,
        Some((&svc_id, &svc_secret.unwrap())),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn leaving_the_group_ends_the_grant_at_the_next_refresh() {
    let app = oidc_app_with(Default::default()).await;
    group(&app, "staff", None).await;
    let amy = app.create_user("amy@example.com", &[]).await;
    set_member(&app, "staff", "amy@example.com", true).await;
    let (id, secret) = app_client(&app, &["staff"], false).await;
    let b = app.browser();
    b.login_ok("amy@example.com").await;
    let q = authorize(&b, &id, "").await;
    let (status, t) = exchange(&app, &id, &secret, &q["code"]).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let refresh = |token: String| {
        let (app, id, secret) = (&app, id.clone(), secret.clone());
        async move {
            token_request(
                app,
                Some((&id, &secret)),
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };
    // While a member, refreshing works.
    let (status, t) = refresh(t["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let access = t["access_token"].as_str().unwrap().to_string();
    let token = t["refresh_token"].as_str().unwrap().to_string();
    let userinfo = |access: String| {
        let base = app.base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/oauth/userinfo"))
                .bearer_auth(access)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(userinfo(access.clone()).await, StatusCode::OK);
    let introspect = |token: String| {
        let (app, id, secret) = (&app, id.clone(), secret.clone());
        async move {
            let (status, body) = back_channel(
                app,
                "/oauth/introspect",
                (&id, &secret),
                &[("token", &token)],
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["active"].as_bool().unwrap()
        }
    };
    assert!(introspect(access.clone()).await);
    assert!(introspect(token.clone()).await);

    // Out of the group: the tokens stop working at once...
    set_member(&app, "staff", "amy@example.com", false).await;
    assert_eq!(userinfo(access.clone()).await, StatusCode::UNAUTHORIZED);
    assert!(!introspect(access.clone()).await);
    assert!(!introspect(token.clone()).await);
    // ...and the next refresh fails and ends the grant.
    let (status, body) = refresh(token.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let events = denials(&app).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0.as_deref(), Some(amy.as_str()));
    assert_eq!(events[0].1["reason"], "not_in_allowed_groups");
    assert_eq!(events[0].1["via"], "refresh_token");
    // The grant is over: joining again brings neither its access token nor its
    // refresh token back.
    set_member(&app, "staff", "amy@example.com", true).await;
    assert_eq!(userinfo(access).await, StatusCode::UNAUTHORIZED);
    let (status, body) = refresh(token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn an_app_requiring_a_second_factor_steps_a_password_session_up() {
    let app = oidc_app_with(Default::default()).await;
    app.create_user("amy@example.com", &[]).await;
    let bob = app.create_user("bob@example.com", &[]).await;
    let (id, secret) = app_client(&app, &[], true).await;

    // Amy signs in with her password, then adds an authenticator app: her session was
    // proven by the password alone, so she is asked for the second factor.
    let b = app.browser();
    b.login_ok("amy@example.com").await;
    let (totp, _) = crate::mfa::enrol(&app, &b).await;
    let path = authorize_path(&id, "");
    let p = b.get(&format!("{path}&prompt=none")).await;
    assert_eq!(
        query(&p.location().unwrap())["error"],
        "interaction_required"
    );
    let p = b.get(&path).await;
    let reauth = p.location().unwrap();
    assert!(
        reauth.starts_with("/login/reauth?factor=1&next="),
        "{reauth}"
    );
    let page = b.get(&reauth).await;
    app.clock.advance(30); // a fresh step: the enrolment code was used
    let code = crate::mfa::hotp(&totp, app.clock.now() as u64 / 30, 6);
    let p = b
        .post(
            "/login/reauth",
            &[
                ("csrf_token", &page.csrf()),
                ("password", PASSWORD),
                ("code", &code),
                ("next", &path),
            ],
        )
        .await;
    assert_redirect(&p, &path);
    let q = authorize(&b, &id, "").await;
    let (status, t) = exchange(&app, &id, &secret, &q["code"]).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let claims = crate::oidc::jwt_claims(t["id_token"].as_str().unwrap());
    assert_eq!(claims["acr"], "mfa");

    // Bob has no second factor: refused, and told to add one.
    let b = app.browser();
    b.login_ok("bob@example.com").await;
    let p = b.get(&path).await;
    let q = query(&p.location().unwrap());
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].contains("second factor"), "{q:?}");
    let events = denials(&app).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0.as_deref(), Some(bob.as_str()));
    assert_eq!(events[0].1["reason"], "second_factor_required");
}

#[tokio::test]
async fn a_grant_proven_by_password_alone_ends_when_the_app_starts_requiring_more() {
    let app = oidc_app_with(Default::default()).await;
    app.create_user("amy@example.com", &[]).await;
    let (id, secret) = app_client(&app, &[], false).await;
    let b = app.browser();
    b.login_ok("amy@example.com").await;
    let q = authorize(&b, &id, "").await;
    let (_, t) = exchange(&app, &id, &secret, &q["code"]).await;
    let mut c = new_client(false);
    c.require_two_factor = true;
    app.state
        .oauth
        .update_client(&id, c, &AuditCtx::cli())
        .await
        .unwrap();
    let (status, body) = token_request(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(denials(&app).await[0].1["reason"], "second_factor_required");
}

#[tokio::test]
async fn administrators_set_who_may_use_an_app_on_the_client_page() {
    let app = crate::admin::admin_app().await;
    app.create_user("root@example.com", &["admin"]).await;
    group(&app, "staff", None).await;
    group(&app, "ops", None).await;
    let b = app.browser();
    b.login_ok("root@example.com").await;
    let page = b.get("/admin/clients").await;
    assert!(
        page.body
            .contains("<label for=\"allowed_groups\">Allowed groups</label>")
    );
    assert!(page.body.contains("Require a second factor"));
    assert!(
        page.body.contains("<code>ops</code>") && page.body.contains("<code>staff</code>"),
        "the groups that exist are named"
    );
    let csrf = page.csrf();
    let base = |groups: &'static str| {
        vec![
            ("name", "Billing"),
            ("redirect_uris", "https://billing.example/cb"),
            ("scope", "openid"),
            ("grant", "authorization_code"),
            ("id_token_alg", "RS256"),
            ("allowed_groups", groups),
        ]
    };

    // Without the CSRF token nothing is saved.
    let p = b.post("/admin/clients", &base("staff")).await;
    assert!(!p.status.is_success(), "{}", p.status);
    // A group that does not exist is named in the error.
    let mut fields = base("staff, nosuch");
    fields.push(("csrf_token", &csrf));
    let p = b.post("/admin/clients", &fields).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.error().unwrap().contains("nosuch"), "{:?}", p.error());

    let mut fields = base("staff, ops");
    fields.push(("csrf_token", &csrf));
    fields.push(("require_two_factor", "1"));
    let p = b.post("/admin/clients", &fields).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let id = p.text_of("#client-id").unwrap();
    let client = portcullis::auth::oauth::authorize::client(&app.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.allowed_groups(), vec!["ops", "staff"]);
    assert!(client.require_two_factor);
    assert!(
        b.get("/admin/clients")
            .await
            .body
            .contains("<td>ops, staff (second factor)</td>")
    );
    let page = b.get(&format!("/admin/clients/{id}")).await;
    let sel = scraper::Selector::parse("#allowed_groups").unwrap();
    let input = page.doc().select(&sel).next().unwrap().value().clone();
    assert_eq!(input.attr("value"), Some("ops, staff"));
    let sel = scraper::Selector::parse("input[name=require_two_factor]").unwrap();
    assert!(
        page.doc()
            .select(&sel)
            .next()
            .unwrap()
            .value()
            .attr("checked")
            .is_some()
    );

    // Emptied and unticked: everyone again.
    let mut fields = base("");
    fields.push(("csrf_token", &csrf));
    let p = b.post(&format!("/admin/clients/{id}"), &fields).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let client = portcullis::auth::oauth::authorize::client(&app.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert!(client.allowed_groups().is_empty());
    assert!(!client.require_two_factor);
    let updated = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == "client.updated")
        .unwrap();
    let details: Value = serde_json::from_str(&updated.details).unwrap();
    assert_eq!(details["allowed_groups"], serde_json::json!([]));
}

#[tokio::test]
async fn operators_limit_an_app_to_groups_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let (ok, out, _) = portcullis(dir.path(), &db, &["client", "create", "--help"], None);
    assert!(ok);
    assert!(
        out.contains("--allowed-group <GROUP>") && out.contains("--require-two-factor"),
        "{out}"
    );
    let create = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "Wiki",
            "--redirect-uri",
            "https://wiki.example/cb",
        ];
        args.extend_from_slice(extra);
        portcullis(dir.path(), &db, &args, None)
    };
    let (ok, _, err) = create(&["--allowed-group", "staff"]);
    assert!(!ok);
    assert!(err.contains("no group named staff"), "{err}");
    let (ok, _, err) = portcullis(
        dir.path(),
        &db,
        &["group", "create", "--name", "staff"],
        None,
    );
    assert!(ok, "{err}");
    let (ok, out, err) = create(&["--allowed-group", "staff", "--require-two-factor"]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("client_id=")), "{out}");
}

/// An app limited to networks: a browser outside them is sent back with
/// `access_denied` (audited), one inside gets a code; a network that does not parse is
/// refused when the client is saved.
#[tokio::test]
async fn an_app_limited_to_networks_refuses_browsers_outside_them() {
    let app = oidc_app_with(Default::default()).await;
    app.create_user("nia@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("nia@example.com").await;

    // The test's browser is on loopback: outside 10.0.0.0/8.
    let mut c = new_client(false);
    c.allowed_networks = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
    let (office, _) = client_with(&app, c).await;
    let p = b.get(&authorize_path(&office, "")).await;
    let q = query(&p.location().unwrap());
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].contains("certain networks"), "{q:?}");
    assert!(!q.contains_key("code"));
    let events = denials(&app).await;
    assert_eq!(events[0].1["reason"], "network_not_allowed");
    assert_eq!(events[0].1["client_id"], office);

    // Loopback allowed (as a single address): a code that works.
    let mut c = new_client(false);
    c.allowed_networks = vec!["127.0.0.1".into(), "::1".into()];
    let (local, secret) = client_with(&app, c).await;
    let q = authorize(&b, &local, "").await;
    let (status, t) = exchange(&app, &local, &secret.unwrap(), &q["code"]).await;
    assert_eq!(status, StatusCode::OK, "{t}");

    // A typo is refused when saving, naming it.
    let mut c = new_client(false);
    c.allowed_networks = vec!["10.0.0.0/33".into()];
    let err =
        portcullis::auth::oauth::authorize::create_client(&app.db, &app.clock, c, &AuditCtx::cli())
            .await
            .unwrap_err();
    assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
}
