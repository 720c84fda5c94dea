//! The operator's shell against a running server: `setup-link`, `user list`,
//! `user disable|enable|reset-password`, `client list|delete|rotate-secret`. What the
//! command does must show on the server at once, as the admin page's action would.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::email::{set_password_from, token_of, wait_link};
use crate::helpers::*;
use crate::oidc::{authorize, back_channel, exchange, oidc_app_with, service_client};
use crate::smtp_sink::SmtpSink;

/// Runs the binary on the app's database with the app's public URL, and its Redis
/// (same key prefix) when it has one, as the operator of that server would.
pub(crate) fn shell(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let mut env = vec![("PORTCULLIS_PUBLIC_URL", app.config.base_url())];
    if let Some(redis) = &app.config.redis_url {
        env.push(("REDIS_URL", redis.clone()));
        env.push(("PORTCULLIS_REDIS_PREFIX", app.config.redis_prefix.clone()));
    }
    let (dir, db) = (app.data_dir.path(), &app.config.database_url);
    crate::cli::portcullis_with(dir, db, &env, args, None)
}

/// Makes a service account NAME@service.invalid (and its owner group) from the shell.
fn service_account(app: &TestApp, name: &str) {
    let group = format!("{name}-owners");
    assert!(shell(app, &["group", "create", "--name", &group]).0);
    let made = shell(
        app,
        &[
            "service-account",
            "create",
            "--name",
            name,
            "--group",
            &group,
        ],
    );
    assert!(made.0, "{}", made.2);
}

/// `key=value` from a command's output.
pub(crate) fn value(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {out}"))
        .to_string()
}

#[tokio::test]
async fn setup_link_replaces_the_earlier_link_until_an_administrator_exists() {
    let app = spawn_app().await;
    let first = app.setup_link.clone().expect("no administrator yet");
    let (ok, out, err) = shell(&app, &["setup-link"]);
    assert!(ok, "{err}");
    let link = out.trim().to_string();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        link.starts_with(&format!("{}/setup?token=", app.config.base_url())),
        "{link}"
    );
    let path = |l: &str| l.strip_prefix(&app.config.base_url()).unwrap().to_string();
    let b = app.browser();
    // The link the server printed at start no longer works; the new one does.
    let old = b.get(&path(&first)).await;
    assert_eq!(old.status, StatusCode::GONE, "{}", old.body);
    let page = b.get(&path(&link)).await;
    assert_eq!(page.status, StatusCode::OK);
    let issued = app.audit().await;
    let issued = issued
        .iter()
        .find(|e| e.event == "setup.link_issued")
        .expect("audited");
    assert!(
        issued.details.contains("\"earlier_voided\":1"),
        "{issued:?}"
    );

    let p = b
        .post(
            "/setup",
            &[
                ("csrf_token", &page.csrf()),
                ("token", &token_of(&link)),
                ("email", "root@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_redirect(&p, "/account");

    // An administrator exists: no link, a clear error, a failing exit.
    let (ok, out, err) = shell(&app, &["setup-link"]);
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("an administrator exists already"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn user_list_shows_every_account_with_roles_and_status() {
    let app = spawn_app().await;
    let ann = app.create_user("ann@example.com", &["admin"]).await;
    let bob = app.create_user("bob@example.com", &[]).await;
    assert!(shell(&app, &["user", "disable", "--email", "bob@example.com"]).0);
    let b = app.browser();
    b.register("cid@example.com", PASSWORD, "").await;
    service_account(&app, "ci");

    let (ok, out, err) = shell(&app, &["user", "list", "--json"]);
    assert!(ok, "{err}");
    let users: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let by_email = |e: &str| {
        users
            .iter()
            .find(|u| u["email"] == e)
            .unwrap_or_else(|| panic!("{e} in {out}"))
            .clone()
    };
    assert_eq!(users.len(), 4, "{out}");
    let a = by_email("ann@example.com");
    assert_eq!(a["id"], ann.as_str());
    assert_eq!(a["roles"], serde_json::json!(["admin"]));
    assert_eq!(a["status"], "active");
    assert_eq!(a["name"], "Test User");
    assert_eq!(a["kind"], "person");
    let bo = by_email("bob@example.com");
    assert_eq!(
        (bo["id"].as_str(), &bo["status"]),
        (Some(bob.as_str()), &Value::from("disabled"))
    );
    assert_eq!(bo["roles"], serde_json::json!([]));
    let c = by_email("cid@example.com");
    assert_eq!(
        (&c["status"], &c["name"]),
        (&Value::from("unverified"), &Value::Null)
    );
    let ci = by_email("ci@service.invalid");
    assert_eq!(
        (&ci["kind"], &ci["status"]),
        (&Value::from("service"), &Value::from("active"))
    );

    // Text: the same accounts, one tab-separated line each, in the same order.
    let (ok, text, _) = shell(&app, &["user", "list"]);
    assert!(ok);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let ann_line = lines.iter().find(|l| l[1] == "ann@example.com").unwrap();
    assert_eq!(
        ann_line,
        &vec![
            ann.as_str(),
            "ann@example.com",
            "Test User",
            "admin",
            "active",
            "person"
        ]
    );
    let cid_line = lines.iter().find(|l| l[1] == "cid@example.com").unwrap();
    assert_eq!(&cid_line[2..], ["-", "-", "unverified", "person"]);
}

#[tokio::test]
async fn user_disable_from_the_shell_ends_sessions_and_app_grants_at_once() {
    let app = oidc_app_with(Default::default()).await;
    app.create_user("root@example.com", &["admin"]).await;
    app.create_user("eve@example.com", &[]).await;
    let (client_id, secret) = crate::oidc::client(&app, false).await;
    let secret = secret.unwrap();
    let (rs_id, rs_secret) = service_client(&app).await;
    let b = app.browser();
    b.login_ok("eve@example.com").await;
    let code = authorize(&b, &client_id, "").await["code"].clone();
    let (status, tokens) = exchange(&app, &client_id, &secret, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let introspect = async |t: &str| {
        back_channel(
            &app,
            "/oauth/introspect",
            (&rs_id, &rs_secret),
            &[("token", t)],
        )
        .await
        .1["active"]
            .clone()
    };
    // Read once, so the server holds it in memory.
    assert_eq!(introspect(&access).await, true);

    let (ok, out, err) = shell(&app, &["user", "disable", "--email", "EVE@example.com"]);
    assert!(ok, "{err}");
    assert!(out.contains("disabled"), "{out}");
    // The app's token is dead at once, on SQLite too (the server's memo is dropped).
    assert_eq!(introspect(&access).await, false);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = crate::oidc::token_request(
        &app,
        Some((&client_id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // And her session, at its very next request.
    assert_eq!(b.get("/account").await.status, StatusCode::SEE_OTHER);
    let refused = b.login("eve@example.com", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let names = app.audit_names().await;
    assert!(names.contains(&"user.disabled".to_string()));
    assert!(names.contains(&"session.revoked".to_string()));

    // The last administrator stays enabled; an unknown address is an error.
    let (ok, _, err) = shell(&app, &["user", "disable", "--email", "root@example.com"]);
    assert!(!ok && err.contains("last administrator"), "{err}");
    let (ok, _, err) = shell(&app, &["user", "disable", "--email", "nobody@example.com"]);
    assert!(!ok && err.contains("No account"), "{err}");

    // Enabled again: she signs in anew; what ended stays ended.
    let (ok, _, err) = shell(&app, &["user", "enable", "--email", "eve@example.com"]);
    assert!(ok, "{err}");
    assert!(
        app.audit_names()
            .await
            .contains(&"user.enabled".to_string())
    );
    app.browser().login_ok("eve@example.com").await;
    assert_eq!(introspect(&access).await, false);
}

#[tokio::test]
async fn reset_password_from_the_shell_mails_a_working_link() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(Options {
        file: with_smtp(&sink.url()),
    })
    .await;
    let uid = app.create_user("lou@example.com", &[]).await;
    let (ok, out, err) = shell(
        &app,
        &["user", "reset-password", "--email", "Lou@example.com"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("lou@example.com") || out.contains("Lou@example.com"),
        "{out}"
    );
    // The server's mail worker delivers what the shell queued.
    let link = wait_link(&sink, "lou@example.com", "/password/reset?token=", 1)
        .await
        .remove(0);
    assert!(link.starts_with(&app.config.base_url()), "{link}");
    let b = app.browser();
    let new_pw = "a fresh and long passphrase 77";
    let done = set_password_from(&b, &link, new_pw).await;
    assert_redirect(&done, "/login?reset=1");
    assert_redirect(&b.login("lou@example.com", new_pw).await, "/account");
    let requested = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == "password.reset_requested")
        .expect("audited");
    assert_eq!(requested.target_id.as_deref(), Some(uid.as_str()));
    assert_eq!(requested.outcome, "success");

    // Unknown, disabled and service accounts: a clear error, nothing mailed.
    let (ok, _, err) = shell(
        &app,
        &["user", "reset-password", "--email", "nobody@example.com"],
    );
    assert!(!ok && err.contains("No account"), "{err}");
    assert!(shell(&app, &["user", "disable", "--email", "lou@example.com"]).0);
    let (ok, _, err) = shell(
        &app,
        &["user", "reset-password", "--email", "lou@example.com"],
    );
    assert!(!ok && err.contains("disabled"), "{err}");
    service_account(&app, "ci");
    let (ok, _, err) = shell(
        &app,
        &["user", "reset-password", "--email", "ci@service.invalid"],
    );
    assert!(!ok && err.contains("service account"), "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sink.messages().len(),
        2,
        "the reset and its 'password changed' notice only"
    );
}

#[tokio::test]
async fn client_commands_list_rotate_and_delete_with_effect_at_once() {
    let app = spawn_app().await;
    // No clients: no output at all, not even a blank line for a JSON-lines reader.
    let (ok, out, err) = shell(&app, &["client", "list", "--json"]);
    assert!(ok && out.is_empty(), "{out:?} {err}");
    let (ok, out, err) = shell(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Reports",
            "--redirect-uri",
            "https://reports.example/cb",
            "--grant",
            "client_credentials",
            "--scope",
            "roles",
        ],
    );
    assert!(ok, "{err}");
    let (id, old) = (value(&out, "client_id"), value(&out, "client_secret"));
    let (ok, out, _) = shell(
        &app,
        &[
            "client",
            "create",
            "--name",
            "SPA",
            "--redirect-uri",
            "https://spa.example/cb",
            "--public",
        ],
    );
    assert!(ok);
    let spa = value(&out, "client_id");

    let (ok, out, err) = shell(&app, &["client", "list", "--json"]);
    assert!(ok, "{err}");
    let listed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{out}");
    let reports = listed
        .iter()
        .find(|c| c["client_id"] == id.as_str())
        .unwrap();
    assert_eq!(reports["name"], "Reports");
    assert_eq!(reports["public"], false);
    assert_eq!(reports["grants"], serde_json::json!(["client_credentials"]));
    assert_eq!(
        reports["redirect_uris"],
        serde_json::json!(["https://reports.example/cb"])
    );
    assert!(!out.contains(&old), "a secret is never listed");
    let (ok, text, _) = shell(&app, &["client", "list"]);
    assert!(ok);
    let spa_line = text.lines().find(|l| l.starts_with(&spa)).expect(&text);
    assert_eq!(spa_line.split('\t').nth(2), Some("public"));

    let token = async |secret: &str| {
        crate::oidc::token_request(
            &app,
            Some((&id, secret)),
            &[("grant_type", "client_credentials"), ("scope", "roles")],
        )
        .await
        .0
    };
    // Used once, so the server holds the client in memory.
    assert_eq!(token(&old).await, StatusCode::OK);
    let (ok, out, err) = shell(&app, &["client", "rotate-secret", "--client-id", &id]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let new = value(&out, "client_secret");
    assert_ne!(new, old);
    assert_eq!(
        token(&old).await,
        StatusCode::UNAUTHORIZED,
        "the old secret stops at once"
    );
    assert_eq!(token(&new).await, StatusCode::OK);
    let rotated = app
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == "client.updated")
        .expect("audited");
    assert!(rotated.details.contains("rotated") && !rotated.details.contains(&new));

    let (ok, _, err) = shell(&app, &["client", "rotate-secret", "--client-id", &spa]);
    assert!(!ok && err.contains("public client has no secret"), "{err}");
    let (ok, _, err) = shell(&app, &["client", "rotate-secret", "--client-id", "nope"]);
    assert!(!ok && err.contains("no client"), "{err}");

    let (ok, _, err) = shell(&app, &["client", "delete", "--client-id", &id]);
    assert!(ok, "{err}");
    assert_eq!(
        token(&new).await,
        StatusCode::UNAUTHORIZED,
        "deleted at once"
    );
    assert!(
        app.audit_names()
            .await
            .contains(&"client.deleted".to_string())
    );
    let (ok, out, _) = shell(&app, &["client", "list"]);
    assert!(ok && !out.contains(&id), "{out}");
    let (ok, _, err) = shell(&app, &["client", "delete", "--client-id", &id]);
    assert!(!ok && err.contains("no client"), "{err}");
}

/// The help is the manual: the new commands and their flags explain themselves.
#[test]
fn help_names_every_command_and_what_its_flags_take() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let help = |args: &[&str]| {
        let (ok, out, err) = crate::cli::portcullis(dir.path(), &db, args, None);
        assert!(ok, "{err}");
        out
    };
    let top = help(&["--help"]);
    assert!(
        top.contains("setup-link") && top.contains("--config <FILE>"),
        "{top}"
    );
    let user = help(&["user", "--help"]);
    for sub in ["list", "reset-password", "disable", "enable"] {
        assert!(user.contains(sub), "{user}");
    }
    let create = help(&["user", "create", "--help"]);
    assert!(
        create.contains("--role <ROLE>") && create.contains("Repeat"),
        "{create}"
    );
    let policy = help(&["policy", "check", "--help"]);
    assert!(policy.contains("[default: GET]"), "{policy}");
    let client = help(&["client", "--help"]);
    for sub in ["list", "delete", "rotate-secret"] {
        assert!(client.contains(sub), "{client}");
    }
}
