//! Service accounts: made on `/admin/service-accounts` or from the shell, never signed
//! in to (password, reset), reaching proxied sites with administrator-made tokens as a
//! member of their owner group, and gone with their tokens when deleted.

use base64::Engine;
use portcullis::auth::access::groups::{Editor, GroupError};
use portcullis::auth::audit::AuditCtx;
use portcullis::auth::sign_in::gate::{self, Entrant, Proof};
use portcullis::domain::access::RuleSpec;
use reqwest::StatusCode;

use crate::access::rule;
use crate::helpers::*;

const LIST: &str = "/admin/service-accounts";

/// Sites: ops.example.com for group:staff (ops sits inside staff), admin.example.com
/// for group:admins; nothing else.
async fn sa_app() -> TestApp {
    let rules: Vec<RuleSpec> = vec![
        RuleSpec {
            subject: vec!["group:staff".into()],
            ..rule("staff", "ops.example.com", "one_factor")
        },
        RuleSpec {
            subject: vec!["group:admins".into()],
            ..rule("admins", "admin.example.com", "one_factor")
        },
    ];
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            forward_auth_allowed_domains: Some(vec!["example.com".into()]),
            trusted_proxies: Some(vec!["127.0.0.1".into()]),
            admin_requires_second_factor: Some(false),
            access_rule: Some(rules),
            access_default: Some("deny".into()),
            ..Default::default()
        },
    })
    .await;
    let groups = &app.state.groups;
    let cli = AuditCtx::cli();
    for (name, parent) in [("staff", None), ("ops", Some("staff")), ("admins", None)] {
        groups
            .create(&Editor::Operator, name, "", parent, &cli)
            .await
            .expect("group");
    }
    app
}

/// Forward auth as Caddy or Traefik asks it for `GET url`, with `authorization`, from a
/// client without cookies (a script).
async fn ask(app: &TestApp, authorization: &str, url: &str) -> Page {
    let u = url::Url::parse(url).unwrap();
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/auth/forward", app.base))
        .header("X-Forwarded-Proto", u.scheme())
        .header("X-Forwarded-Host", u.host_str().unwrap())
        .header("X-Forwarded-Uri", u.path())
        .header("X-Forwarded-Method", "GET")
        .header("Authorization", authorization)
        .send()
        .await
        .expect("forward auth");
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("body"),
    }
}

const OPS: &str = "https://ops.example.com/jobs";
const ADMIN_SITE: &str = "https://admin.example.com/";

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

fn basic(user: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

async fn event(app: &TestApp, name: &str) -> Option<portcullis::db::repo::audit::AuditEvent> {
    app.audit().await.into_iter().find(|e| e.event == name)
}

/// An administrator makes a service account and a token on the pages; the token reaches
/// a site whose rule names the owner group's parent, with the account's headers, and
/// not one for another group. Revoking ends that token; deleting the account ends the
/// others at the next request, and only then can its group go.
#[tokio::test]
async fn made_on_the_page_its_token_reaches_its_groups_sites_until_deleted() {
    let app = sa_app().await;
    let admin_id = app.create_user("ann@example.com", &["admin"]).await;
    let b = app.browser();
    b.login_ok("ann@example.com").await;

    let home = b.get("/admin").await;
    assert!(home.body.contains("href=\"/admin/service-accounts\""));
    let page = b.get(LIST).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<label for=\"name\">Name</label>"));
    assert!(
        page.body
            .contains("<label for=\"group\">Owner group</label>")
    );
    assert_eq!(
        page.text_of("form[action='/admin/service-accounts'] button")
            .as_deref(),
        Some("Create service account")
    );

    // Without the CSRF token nothing is made.
    let p = b.post(LIST, &[("name", "forged"), ("group", "ops")]).await;
    assert!(p.status.is_client_error(), "{}", p.status);
    // A bad name and an unknown group are refused next to the form.
    let p = b
        .submit(LIST, LIST, &[("name", "Not Valid"), ("group", "ops")])
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.error().is_some());
    let p = b
        .submit(LIST, LIST, &[("name", "backup"), ("group", "nope")])
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    let p = b
        .submit(LIST, LIST, &[("name", "backup"), ("group", "ops")])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let at = p.location().expect("to the account's page");
    let detail = at.split('?').next().unwrap().to_string();
    let id = detail.rsplit('/').next().unwrap().to_string();
    let created = event(&app, "service_account.created")
        .await
        .expect("audited");
    assert_eq!(created.actor_id.as_deref(), Some(admin_id.as_str()));

    // The same name again is refused.
    let p = b
        .submit(LIST, LIST, &[("name", "backup"), ("group", "admins")])
        .await;
    assert_eq!(p.status, StatusCode::CONFLICT);

    let p = b.get(&detail).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(
        p.text_of("#service-account-email").as_deref(),
        Some("backup@service.invalid")
    );
    assert_eq!(
        p.text_of(&format!("form[action='{detail}/tokens'] button"))
            .as_deref(),
        Some("Create token")
    );

    let make = |name: &'static str| {
        let (b, detail) = (&b, detail.clone());
        async move {
            let p = b
                .submit(
                    &detail,
                    &format!("{detail}/tokens"),
                    &[
                        ("name", name),
                        ("scope", "forward"),
                        ("expires_in_days", "30"),
                    ],
                )
                .await;
            assert_eq!(p.status, StatusCode::OK, "{}", p.body);
            assert_eq!(p.headers["cache-control"], "no-store");
            p.text_of("#new-token").expect("the secret, shown once")
        }
    };
    let first = make("nightly").await;
    assert!(first.starts_with("pcp_"), "{first}");
    let made = event(&app, "personal_token.created")
        .await
        .expect("audited");
    assert_eq!(made.actor_id.as_deref(), Some(admin_id.as_str()));
    assert_eq!(made.target_id.as_deref(), Some(id.as_str()));

    // It reaches the site of its group's parent, as itself.
    for authorization in [bearer(&first), basic("backup@service.invalid", &first)] {
        let p = ask(&app, &authorization, OPS).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert_eq!(p.headers["remote-user"], id.as_str());
        assert_eq!(p.headers["remote-email"], "backup@service.invalid");
        assert_eq!(p.headers["remote-groups"], "ops,staff");
    }
    // Not a site for another group.
    let p = ask(&app, &bearer(&first), ADMIN_SITE).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);

    let list = b.get(LIST).await;
    assert_eq!(
        list.text_of("#service-account-backup .service-account-group")
            .as_deref(),
        Some("ops")
    );
    assert_eq!(
        list.text_of("#service-account-backup .service-account-tokens")
            .as_deref(),
        Some("1")
    );
    let p = b.get(&detail).await;
    assert!(!p.body.contains(&first), "shown only once");
    assert_eq!(
        p.text_of("tr.token .token-name").as_deref(),
        Some("nightly")
    );

    // Revoke: that token stops.
    let token_id = p
        .doc()
        .select(&scraper::Selector::parse("tr.token input[name='id']").unwrap())
        .next()
        .and_then(|e| e.value().attr("value").map(str::to_string))
        .expect("the token's id");
    // Revoke only asks, naming the token and its account; the token still works.
    let p = b
        .submit(
            &detail,
            &format!("{detail}/tokens/revoke"),
            &[("id", &token_id)],
        )
        .await;
    let form = crate::confirm::asks(&p, "Revoke this token?", &detail);
    let says = crate::confirm::says(&p);
    assert!(
        says.contains("\"nightly\"") && says.contains("service account backup"),
        "{says}"
    );
    assert!(p.body.contains("Yes, revoke"));
    assert_eq!(
        ask(&app, &bearer(&first), OPS).await.status,
        StatusCode::OK,
        "not yet"
    );
    // A made-up token id is not found rather than asked about.
    let p = b
        .submit(
            &detail,
            &format!("{detail}/tokens/revoke"),
            &[("id", "nosuch")],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    let p = crate::confirm::press(&b, &form, false).await;
    assert_redirect(&p, &format!("{detail}?done=revoked"));
    assert_eq!(
        ask(&app, &bearer(&first), OPS).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Its owner group cannot go while it owns the account.
    let refused = app
        .state
        .groups
        .delete(&Editor::Operator, "ops", &AuditCtx::cli())
        .await;
    assert!(
        matches!(refused, Err(GroupError::OwnsServiceAccounts(..))),
        "{refused:?}"
    );
    let p = b
        .submit(
            "/admin/groups",
            "/admin/groups/ops/delete",
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    assert!(
        p.error().unwrap_or_default().contains("backup"),
        "{}",
        p.body
    );

    // Delete: the live token ends at the next request.
    let second = make("hourly").await;
    assert_eq!(
        ask(&app, &bearer(&second), OPS).await.status,
        StatusCode::OK
    );
    let p = b
        .submit(&detail, &format!("{detail}/delete"), &[("confirm", "yes")])
        .await;
    assert_redirect(&p, &format!("{LIST}?done=deleted"));
    assert_eq!(
        ask(&app, &bearer(&second), OPS).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(b.get(&detail).await.status, StatusCode::NOT_FOUND);
    let deleted = event(&app, "service_account.deleted")
        .await
        .expect("audited");
    assert_eq!(deleted.actor_id.as_deref(), Some(admin_id.as_str()));
    let ended = app.audit().await.into_iter().any(|e| {
        e.event == "personal_token.revoked" && e.details.contains("service_account.deleted")
    });
    assert!(ended, "its tokens' end is audited");
    app.state
        .groups
        .delete(&Editor::Operator, "ops", &AuditCtx::cli())
        .await
        .expect("the group goes once it owns nothing");
}

/// The operator's shell: create, a token by its address, delete.
#[tokio::test]
async fn made_and_deleted_from_the_shell() {
    let app = sa_app().await;
    let db = app.config.database_url.clone();
    let dir = app.data_dir.path();
    let run = |args: &[&str]| crate::cli::portcullis(dir, &db, args, None);

    let (ok, out, err) = run(&[
        "service-account",
        "create",
        "--name",
        "ci",
        "--group",
        "ops",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "email=ci@service.invalid");
    let (ok, _, err) = run(&[
        "service-account",
        "create",
        "--name",
        "ci",
        "--group",
        "ops",
    ]);
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
    let (ok, _, err) = run(&[
        "service-account",
        "create",
        "--name",
        "x",
        "--group",
        "nope",
    ]);
    assert!(!ok);
    assert!(err.contains("no group named nope"), "{err}");

    let (ok, out, err) = run(&[
        "token",
        "create",
        "--email",
        "ci@service.invalid",
        "--name",
        "deploy",
    ]);
    assert!(ok, "{err}");
    let secret = out.trim().strip_prefix("token=").expect(&out).to_string();
    let p = ask(&app, &bearer(&secret), OPS).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.headers["remote-email"], "ci@service.invalid");
    assert_eq!(p.headers["remote-groups"], "ops,staff");

    let (ok, _, err) = run(&["service-account", "delete", "--name", "ci"]);
    assert!(ok, "{err}");
    // Another process ended it: without Redis to tell the server, its memo of the
    // token lasts at most `PRINCIPAL_MAX_AGE` (as for `user disable`).
    wait_until("the deleted account's token is refused", async || {
        ask(&app, &bearer(&secret), OPS).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    let (ok, _, err) = run(&["service-account", "delete", "--name", "ci"]);
    assert!(!ok);
    assert!(err.contains("no such service account"), "{err}");
    let names = app.audit_names().await;
    assert!(names.contains(&"service_account.created".to_string()));
    assert!(names.contains(&"service_account.deleted".to_string()));
}

/// No page signs a service account in: a password (even the empty one it does not
/// have) is refused, as is any other proof at the gate; a reset mails nothing; its
/// address (any under `.invalid`) cannot be registered; nothing is mailed to it.
#[tokio::test]
async fn it_cannot_sign_in_reset_or_be_mailed() {
    let app = sa_app().await;
    let id = app
        .state
        .service_accounts
        .create("robot", "ops", &AuditCtx::cli())
        .await
        .expect("made");
    let email = "robot@service.invalid";

    // The one gate into a session refuses it whatever was proven (a passkey, the
    // second step and the setup link all end there).
    let who = Entrant {
        user_id: &id,
        ip: "192.0.2.1",
        user_agent: "test",
    };
    let st = &app.state;
    let admitted = gate::admit(
        &app.db,
        &st.sessions,
        &st.clock,
        who,
        Proof::Setup,
        &AuditCtx::cli(),
    )
    .await
    .unwrap();
    assert!(admitted.is_none(), "no session for a service account");

    let b = app.browser();
    for password in [PASSWORD, ""] {
        let p = b.login(email, password).await;
        assert!(p.status.is_client_error(), "{}: {}", p.status, p.body);
        assert!(p.location().is_none(), "not signed in");
    }
    assert!(b.get("/account").await.location().is_some(), "no session");
    assert!(
        app.audit().await.iter().any(|e| e.event == "login.failed"),
        "the attempt is audited"
    );

    let p = b
        .submit("/password/forgot", "/password/forgot", &[("email", email)])
        .await;
    assert!(
        p.status.is_success() || p.status.is_redirection(),
        "{}",
        p.status
    );
    let reset = event(&app, "password.reset_requested")
        .await
        .expect("audited");
    assert_eq!(reset.outcome, "failure");
    assert!(
        reset.details.contains("service account"),
        "{}",
        reset.details
    );

    // Nobody registers an address under .invalid (so nobody takes a service account's).
    for address in [email, "someone@service.invalid"] {
        let p = b
            .register(address, "another long passphrase 123", "Robot")
            .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
        assert!(
            p.error()
                .unwrap_or_default()
                .contains("cannot receive mail"),
            "{}",
            p.body
        );
    }
    assert!(
        app.wait_for_outbox(1).await.is_empty(),
        "nothing is mailed to a service account"
    );
}

/// Every service-account route is refused to a signed-in user without `users.write`.
#[tokio::test]
async fn without_users_write_every_route_is_forbidden() {
    let app = sa_app().await;
    let id = app
        .state
        .service_accounts
        .create("robot", "ops", &AuditCtx::cli())
        .await
        .expect("made");
    app.create_user("bo@example.com", &["user"]).await;
    let b = app.browser();
    b.login_ok("bo@example.com").await;
    let detail = format!("{LIST}/{id}");
    for path in [LIST.to_string(), detail.clone()] {
        assert_eq!(b.get(&path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    for (action, fields) in [
        (
            LIST.to_string(),
            vec![("name", "evil"), ("group", "admins")],
        ),
        (
            format!("{detail}/tokens"),
            vec![("name", "evil"), ("scope", "forward")],
        ),
        (format!("{detail}/tokens/revoke"), vec![("id", "x")]),
        (format!("{detail}/delete"), vec![]),
    ] {
        let p = b.submit("/account", &action, &fields).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(app.state.service_accounts.list().await.unwrap().len(), 1);
    assert!(
        app.state
            .service_accounts
            .tokens(&id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Client credentials: an OAuth client bound to the account, made on its page (secret
/// shown once) or from the shell. Its access tokens name the account, introspection
/// tells who it is and its groups, it may not be turned into an app users sign in
/// to, and it stops working at once when deleted or when the account goes.
#[tokio::test]
async fn client_credentials_act_as_the_account_until_it_goes() {
    use crate::oidc::{back_channel, service_client, token_request};
    let app = sa_app().await;
    app.create_user("ann@example.com", &["admin"]).await;
    let b = app.browser();
    b.login_ok("ann@example.com").await;
    let id = app
        .state
        .service_accounts
        .create("reporter", "ops", &AuditCtx::cli())
        .await
        .expect("made");
    let detail = format!("{LIST}/{id}");
    let page = b.get(&detail).await;
    assert!(page.body.contains("id=\"no-clients\""), "{}", page.body);
    // Without the CSRF token nothing is made.
    let p = b.post(&format!("{detail}/clients"), &[]).await;
    assert!(p.status.is_client_error(), "{}", p.status);

    let p = b.submit(&detail, &format!("{detail}/clients"), &[]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.headers["cache-control"], "no-store");
    let client_id = p.text_of("#new-client-id").expect("the client id");
    let secret = p.text_of("#new-client-secret").expect("the secret, once");
    let made = event(&app, "client.created").await.expect("audited");
    assert_eq!(made.target_id.as_deref(), Some(id.as_str()));
    let again = b.get(&detail).await;
    assert!(!again.body.contains(&secret), "the secret is shown once");
    assert!(again.body.contains(&client_id));

    let (rs_id, rs_secret) = service_client(&app).await;
    let get_token = async |client_id: &str, secret: &str| {
        token_request(
            &app,
            Some((client_id, secret)),
            &[("grant_type", "client_credentials"), ("scope", "groups")],
        )
        .await
    };
    let introspect = async |token: &str| {
        back_channel(
            &app,
            "/oauth/introspect",
            (&rs_id, &rs_secret),
            &[("token", token)],
        )
        .await
        .1
    };
    let (status, body) = get_token(&client_id, &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let seen = introspect(&token).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["sub"], id.as_str());
    assert_eq!(seen["client_id"], client_id.as_str());
    assert_eq!(seen["username"], "reporter@service.invalid");
    assert_eq!(seen["groups"], serde_json::json!(["ops", "staff"]));
    // Only client_credentials: it cannot be made an app that users sign in to.
    let mut as_app = crate::oidc::new_client(false);
    as_app.grants = vec!["authorization_code".into()];
    assert!(
        app.state
            .oauth
            .update_client(&client_id, as_app, &AuditCtx::cli())
            .await
            .is_err()
    );

    // Deleted on the page, after a confirmation naming the client: its token and its
    // secret stop working at once, and not before.
    let p = b
        .submit(
            &detail,
            &format!("{detail}/clients/delete"),
            &[("client_id", &client_id)],
        )
        .await;
    let form = crate::confirm::asks(&p, "Delete this client?", &detail);
    let says = crate::confirm::says(&p);
    assert!(
        says.contains(&client_id) && says.contains("service account reporter"),
        "{says}"
    );
    assert!(p.body.contains("Yes, delete"));
    assert_eq!(introspect(&token).await["active"], true, "not yet");
    let p = crate::confirm::press(&b, &form, false).await;
    assert_redirect(&p, &format!("{detail}?done=client-deleted"));
    assert_eq!(introspect(&token).await["active"], false);
    let (status, _) = get_token(&client_id, &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Another account's client id is not this account's to delete.
    for confirm in ["", "yes"] {
        let p = b
            .submit(
                &detail,
                &format!("{detail}/clients/delete"),
                &[("client_id", &rs_id), ("confirm", confirm)],
            )
            .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND);
    }

    // From the shell; then the account goes, and the client with it.
    let db = app.config.database_url.clone();
    let (ok, out, err) = crate::cli::portcullis(
        app.data_dir.path(),
        &db,
        &["service-account", "add-client", "--name", "reporter"],
        None,
    );
    assert!(ok, "{err}");
    let line = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {out}"))
            .to_string()
    };
    let (client_id, secret) = (line("client_id="), line("client_secret="));
    let (status, body) = get_token(&client_id, &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(introspect(&token).await["active"], true);
    let p = b
        .submit(&detail, &format!("{detail}/delete"), &[("confirm", "yes")])
        .await;
    assert_redirect(&p, &format!("{LIST}?done=deleted"));
    assert_eq!(introspect(&token).await["active"], false);
    let (status, _) = get_token(&client_id, &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
