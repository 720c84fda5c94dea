//! Groups, attacker-minded: membership flows up through nested groups into access
//! rules, `Remote-Groups` and the OIDC `groups` claim, and goes at once; nobody
//! without `groups.write` changes groups, and nobody with it acts on a stronger
//! account through them; a group never ends up inside itself; the shell manages them.

use portcullis::auth::access::groups::{Editor, GroupError};
use portcullis::auth::audit::AuditCtx;
use portcullis::domain::access::RuleSpec;
use reqwest::StatusCode;
use serde_json::json;

use crate::access::{forward, rule, ruled_app};
use crate::admin::{admin_app, post_form, role_with};
use crate::cli::portcullis;
use crate::helpers::*;

async fn group(app: &TestApp, name: &str, parent: Option<&str>) {
    app.state
        .groups
        .create(&Editor::Operator, name, "", parent, &AuditCtx::cli())
        .await
        .unwrap();
}

async fn join(app: &TestApp, name: &str, email: &str) {
    assert!(
        app.state
            .groups
            .set_member(&Editor::Operator, name, email, true, &AuditCtx::cli())
            .await
            .unwrap()
    );
}

fn groups_rules() -> Vec<RuleSpec> {
    vec![
        RuleSpec {
            subject: vec!["group:admins".into()],
            ..rule("admins only", "admin.example.com", "one_factor")
        },
        rule("everyone", "app.example.com", "one_factor"),
    ]
}

/// A rule naming `group:admins` lets its members in, and the members of a group
/// inside it; everyone else gets 403. Remote-Groups lists the groups with the
/// inherited ones, Remote-Roles the roles; deleting a group takes it away at once.
#[tokio::test]
async fn nested_groups_open_sites_and_fill_remote_groups_until_deleted() {
    let app = ruled_app(groups_rules(), "deny").await;
    app.create_user("ann@example.com", &["admin"]).await;
    app.create_user("cid@example.com", &[]).await;
    app.create_user("bo@example.com", &[]).await;
    group(&app, "admins", None).await;
    group(&app, "oncall", Some("admins")).await;
    group(&app, "staff", None).await;
    join(&app, "admins", "ann@example.com").await;
    join(&app, "oncall", "cid@example.com").await;
    join(&app, "staff", "cid@example.com").await;
    join(&app, "staff", "bo@example.com").await;

    let (ann, cid, bo) = (app.browser(), app.browser(), app.browser());
    ann.login_ok("ann@example.com").await;
    cid.login_ok("cid@example.com").await;
    bo.login_ok("bo@example.com").await;

    let p = forward(&ann, "https://admin.example.com/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-groups"], "admins");
    assert_eq!(p.headers["remote-roles"], "admin");
    // A member of the child group is in the parent too.
    let p = forward(&cid, "https://admin.example.com/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-groups"], "admins,oncall,staff");
    assert_eq!(p.headers["remote-roles"], "");
    // Not a member, directly or through a child: refused.
    let p = forward(&bo, "https://admin.example.com/").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = forward(&bo, "https://app.example.com/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-groups"], "staff");

    // The parent goes: nobody is in it any more, at once, and the child stays.
    app.state
        .groups
        .delete(&Editor::Operator, "admins", &AuditCtx::cli())
        .await
        .unwrap();
    assert_eq!(
        forward(&ann, "https://admin.example.com/").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        forward(&cid, "https://admin.example.com/").await.status,
        StatusCode::FORBIDDEN
    );
    let p = forward(&cid, "https://app.example.com/").await;
    assert_eq!(p.headers["remote-groups"], "oncall,staff");
    let p = forward(&ann, "https://app.example.com/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.headers["remote-groups"], "");

    // Leaving a group also takes effect on the next request.
    app.state
        .groups
        .set_member(
            &Editor::Operator,
            "staff",
            "bo@example.com",
            false,
            &AuditCtx::cli(),
        )
        .await
        .unwrap();
    let p = forward(&bo, "https://app.example.com/").await;
    assert_eq!(p.headers["remote-groups"], "");

    let names = app.audit_names().await;
    for event in [
        "group.created",
        "group.member_added",
        "group.member_removed",
        "group.deleted",
    ] {
        assert!(names.iter().any(|n| n == event), "{event}: {names:?}");
    }
}

/// Without `groups.write` nothing about groups opens, whatever else is held, and
/// no role can hand that permission to someone who lacks it. With it, an editor
/// still cannot change a stronger account's groups, directly or by moving or
/// deleting a group it is in.
#[tokio::test]
async fn a_limited_admin_cannot_manage_groups_or_reach_past_their_rank() {
    let app = admin_app().await;
    role_with(
        &app,
        "helpdesk",
        &["users.read", "users.write", "roles.write"],
    )
    .await;
    role_with(&app, "groupie", &["groups.write", "users.read"]).await;
    app.create_user("admin@example.com", &["admin"]).await;
    let plain = app.create_user("plain@example.com", &[]).await;
    app.create_user("help@example.com", &["helpdesk"]).await;
    app.create_user("gus@example.com", &["groupie"]).await;
    group(&app, "ops", None).await;

    let help = app.browser();
    help.login_ok("help@example.com").await;
    assert_eq!(
        help.get("/admin/groups").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        help.get("/admin/groups/ops").await.status,
        StatusCode::FORBIDDEN
    );
    let refused = [
        ("/admin/groups".to_string(), vec![("name", "mine")]),
        (
            "/admin/groups/ops/add".to_string(),
            vec![("email", "help@example.com")],
        ),
        ("/admin/groups/ops/parent".to_string(), vec![("parent", "")]),
        ("/admin/groups/ops/delete".to_string(), vec![]),
        (
            format!("/admin/users/{plain}/groups"),
            vec![("op", "add"), ("group", "ops")],
        ),
    ];
    for (path, fields) in &refused {
        let p = post_form(&help, path, fields).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Nor can a role editor mint a role that grants it.
    let p = post_form(
        &help,
        "/admin/roles",
        &[("name", "sneaky"), ("permission", "groups.write")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let groups = app.state.groups.list().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].members, 0);

    // A group editor manages groups of accounts no stronger than theirs...
    let gus = app.browser();
    gus.login_ok("gus@example.com").await;
    assert_eq!(gus.get("/admin/groups").await.status, StatusCode::OK);
    let p = post_form(
        &gus,
        "/admin/groups/ops/add",
        &[("email", "plain@example.com")],
    )
    .await;
    assert_redirect(&p, "/admin/groups/ops?done=added");
    // Removing from the user's page asks first, naming the group; they stay in it.
    let user_page = format!("/admin/users/{plain}");
    let p = post_form(
        &gus,
        &format!("{user_page}/groups"),
        &[("op", "remove"), ("group", "ops")],
    )
    .await;
    let form = crate::confirm::asks(&p, "Remove from this group?", &user_page);
    assert!(
        crate::confirm::says(&p).contains("\"ops\""),
        "{}",
        crate::confirm::says(&p)
    );
    assert!(form.1.contains(&("op".to_string(), "remove".to_string())));
    assert!(form.1.contains(&("group".to_string(), "ops".to_string())));
    assert_eq!(app.state.groups.list().await.unwrap()[0].members, 1);
    let p = crate::confirm::press(&gus, &form, false).await;
    assert_redirect(&p, &format!("{user_page}?done=remove-group"));
    assert_eq!(app.state.groups.list().await.unwrap()[0].members, 0);
    // ...but not an administrator's, not even by deleting or moving their group.
    let p = post_form(
        &gus,
        "/admin/groups/ops/add",
        &[("email", "admin@example.com")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.error().unwrap().contains("permissions you do not hold"));
    join(&app, "ops", "admin@example.com").await;
    group(&app, "top", None).await;
    let p = post_form(&gus, "/admin/groups/ops/parent", &[("parent", "top")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = post_form(&gus, "/admin/groups/ops/delete", &[("confirm", "yes")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = post_form(
        &gus,
        "/admin/groups/ops/remove",
        &[("email", "admin@example.com"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let ops = app.state.groups.detail("ops").await.unwrap().unwrap();
    assert_eq!(ops.parent, None);
    assert_eq!(ops.members.len(), 1);
    assert!(
        app.audit()
            .await
            .iter()
            .any(|e| e.event == "group.member_added" && e.outcome == "denied")
    );

    // A group editor whose role is taken away is bounded at once.
    let admin = app.browser();
    admin.login_ok("admin@example.com").await;
    app.state
        .admin
        .set_role(
            &portcullis::auth::accounts::admin::Actor::Operator,
            &app.state
                .admin
                .find_by_email("gus@example.com")
                .await
                .unwrap()
                .unwrap()
                .id,
            "groupie",
            false,
            &AuditCtx::cli(),
        )
        .await
        .unwrap();
    let p = post_form(&gus, "/admin/groups", &[("name", "late")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
}

/// Groups are made, nested, filled and emptied on the admin pages; a group never
/// ends up inside itself, however the parent is set.
#[tokio::test]
async fn admin_pages_nest_groups_and_refuse_cycles() {
    let app = admin_app().await;
    let uid = app.create_user("admin@example.com", &["admin"]).await;
    app.create_user("dee@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("admin@example.com").await;
    let home = b.get("/admin").await;
    assert!(home.body.contains("href=\"/admin/groups\""));

    for (name, parent) in [("eng", ""), ("backend", "eng"), ("db", "backend")] {
        let p = b
            .submit(
                "/admin/groups",
                "/admin/groups",
                &[("name", name), ("description", "d"), ("parent", parent)],
            )
            .await;
        assert_redirect(&p, "/admin/groups?done=created");
    }
    let list = b.get("/admin/groups").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.count("tr.group"), 3);
    for label in ["Name", "Description", "Parent group"] {
        assert!(list.body.contains(&format!(">{label}</label>")), "{label}");
    }

    // Bad names, duplicates and unknown parents are refused with the reason.
    for (name, parent, status) in [
        ("Eng", "", StatusCode::BAD_REQUEST),
        ("a,b", "", StatusCode::BAD_REQUEST),
        ("eng", "", StatusCode::CONFLICT),
        ("x", "nope", StatusCode::NOT_FOUND),
    ] {
        let p = b
            .submit(
                "/admin/groups",
                "/admin/groups",
                &[("name", name), ("parent", parent)],
            )
            .await;
        assert_eq!(p.status, status, "{name}");
        assert!(p.error().is_some(), "{name}");
    }

    // Cycles: inside itself, or inside a group below it.
    for parent in ["eng", "backend", "db"] {
        let p = b
            .submit(
                "/admin/groups/eng",
                "/admin/groups/eng/parent",
                &[("parent", parent)],
            )
            .await;
        assert_eq!(p.status, StatusCode::CONFLICT, "{parent}");
        assert!(p.error().unwrap().contains("inside"), "{parent}");
    }
    let err = app
        .state
        .groups
        .set_parent(&Editor::Operator, "backend", Some("db"), &AuditCtx::cli())
        .await
        .unwrap_err();
    assert!(matches!(err, GroupError::Cycle(..)), "{err}");
    // Moving to the top and back is fine.
    let p = b
        .submit(
            "/admin/groups/db",
            "/admin/groups/db/parent",
            &[("parent", "")],
        )
        .await;
    assert_redirect(&p, "/admin/groups/db?done=parent");
    let p = b
        .submit(
            "/admin/groups/db",
            "/admin/groups/db/parent",
            &[("parent", "backend")],
        )
        .await;
    assert_redirect(&p, "/admin/groups/db?done=parent");

    // Members by email on the group page; unknown addresses are named.
    let p = b
        .submit(
            "/admin/groups/db",
            "/admin/groups/db/add",
            &[("email", "Dee@Example.com")],
        )
        .await;
    assert_redirect(&p, "/admin/groups/db?done=added");
    let p = b
        .submit(
            "/admin/groups/db",
            "/admin/groups/db/add",
            &[("email", "ghost@example.com")],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.error().unwrap().contains("ghost@example.com"));
    let page = b.get("/admin/groups/db").await;
    assert_eq!(page.count("li.member"), 1);
    assert!(page.body.contains(">Email</label>"));
    assert_eq!(page.text_of("#group-parent").unwrap().trim(), "backend");

    // The user page shows direct and inherited groups, and changes them.
    let dee = app
        .state
        .admin
        .find_by_email("dee@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let page = b.get(&format!("/admin/users/{dee}")).await;
    let shown = page.text_of("#user-groups").unwrap();
    assert!(shown.contains("Member of db."), "{shown}");
    assert!(shown.contains("backend, eng"), "{shown}");
    let p = b
        .submit(
            &format!("/admin/users/{uid}"),
            &format!("/admin/users/{uid}/groups"),
            &[("op", "add"), ("group", "eng")],
        )
        .await;
    assert_redirect(&p, &format!("/admin/users/{uid}?done=add-group"));
    assert_eq!(
        app.state.groups.effective(&uid).await.unwrap(),
        vec!["eng".to_string()]
    );
    // The member's Remove only asks, naming them and the group.
    let p = b
        .submit(
            "/admin/groups/db",
            "/admin/groups/db/remove",
            &[("email", "dee@example.com")],
        )
        .await;
    let form = crate::confirm::asks(&p, "Remove this member?", "/admin/groups/db");
    assert_eq!(
        crate::confirm::says(&p),
        "dee@example.com leaves the group \"db\" and loses whatever it gave them, from their next request."
    );
    assert!(p.body.contains("Yes, remove"));
    assert_eq!(
        b.get("/admin/groups/db").await.count("li.member"),
        1,
        "not yet"
    );
    let p = crate::confirm::press(&b, &form, false).await;
    assert_redirect(&p, "/admin/groups/db?done=removed");
    assert!(app.state.groups.effective(&dee).await.unwrap().is_empty());

    // Deleting the middle group moves its child to the top level.
    let p = b
        .submit(
            "/admin/groups",
            "/admin/groups/backend/delete",
            &[("confirm", "yes")],
        )
        .await;
    assert_redirect(&p, "/admin/groups?done=deleted");
    let db = app.state.groups.detail("db").await.unwrap().unwrap();
    assert_eq!(db.parent, None);
    // Without a CSRF token nothing happens.
    let p = b.post("/admin/groups/db/delete", &[]).await;
    assert!(!p.status.is_success() && !p.status.is_redirection());
    assert!(app.state.groups.detail("db").await.unwrap().is_some());
}

/// An app asking for the `groups` scope gets the effective groups in the ID token
/// and from userinfo; discovery lists the scope.
#[tokio::test]
async fn the_groups_scope_puts_effective_groups_in_id_token_and_userinfo() {
    let app = crate::oidc::oidc_app_with(Default::default()).await;
    app.create_user("eve@example.com", &[]).await;
    group(&app, "staff", None).await;
    group(&app, "design", Some("staff")).await;
    join(&app, "design", "eve@example.com").await;
    let disco: serde_json::Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", app.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(
        disco["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("groups"))
    );

    let mut c = crate::oidc::new_client(false);
    c.scopes.push("groups".into());
    let (id, secret) = crate::oidc::client_with(&app, c).await;
    let secret = secret.unwrap();
    let b = app.browser();
    b.login_ok("eve@example.com").await;
    let code =
        crate::oidc::authorize_scope(&b, &id, "openid email groups", "").await["code"].clone();
    let (status, t) = crate::oidc::exchange(&app, &id, &secret, &code).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let claims = crate::oidc::jwt_claims(t["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["design", "staff"]));
    let info: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.base))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["groups"], json!(["design", "staff"]));

    // Without the scope, no claim.
    let code = crate::oidc::authorize_scope(&b, &id, "openid email", "").await["code"].clone();
    let (_, t) = crate::oidc::exchange(&app, &id, &secret, &code).await;
    let claims = crate::oidc::jwt_claims(t["id_token"].as_str().unwrap());
    assert!(claims.get("groups").is_none(), "{claims}");

    // Leaving the group shows in userinfo at once.
    let code = crate::oidc::authorize_scope(&b, &id, "openid groups", "").await["code"].clone();
    let (_, t) = crate::oidc::exchange(&app, &id, &secret, &code).await;
    let userinfo = async || -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}/oauth/userinfo", app.base))
            .bearer_auth(t["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    assert_eq!(userinfo().await["groups"], json!(["design", "staff"]));
    app.state
        .groups
        .set_member(
            &Editor::Operator,
            "design",
            "eve@example.com",
            false,
            &AuditCtx::cli(),
        )
        .await
        .unwrap();
    assert_eq!(userinfo().await["groups"], json!([]));
}

/// `portcullis group create|add|remove`, with one-line errors and a non-zero exit
/// for an unknown group, parent or user.
#[tokio::test]
async fn the_shell_creates_groups_and_changes_members() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        r#"
access_default = "deny"

[[access_rule]]
name = "staff site"
domain = "staff.example.com"
subject = "group:staff"
policy = "one_factor"
"#,
    )
    .unwrap();
    let cfg = config.display().to_string();
    let pw = format!("{PASSWORD}\n");
    let run = |args: &[&str]| {
        let mut all = vec!["--config", cfg.as_str()];
        all.extend_from_slice(args);
        portcullis(dir.path(), &db, &all, None)
    };
    assert!(
        portcullis(
            dir.path(),
            &db,
            &["user", "create", "--email", "u@example.com"],
            Some(&pw)
        )
        .0
    );
    let check = || {
        let (ok, out, err) = run(&[
            "policy",
            "check",
            "--email",
            "u@example.com",
            "--url",
            "https://staff.example.com/",
        ]);
        assert!(ok, "{err}");
        out.lines()
            .find_map(|l| l.strip_prefix("decision="))
            .unwrap()
            .to_string()
    };
    let (ok, out, err) = run(&["group", "create", "--name", "staff"]);
    assert!(ok, "{err}");
    assert!(out.contains("created group staff"), "{out}");
    let (ok, out, err) = run(&[
        "group",
        "create",
        "--name",
        "eng",
        "--parent",
        "staff",
        "--description",
        "Engineers",
    ]);
    assert!(ok && out.contains("inside staff"), "{out}{err}");
    let (ok, _, err) = run(&["group", "create", "--name", "x", "--parent", "nope"]);
    assert!(!ok && err.contains("There is no group named nope"), "{err}");
    let (ok, _, err) = run(&["group", "create", "--name", "Bad Name"]);
    assert!(!ok && err.contains("lower-case"), "{err}");
    let (ok, _, err) = run(&["group", "create", "--name", "staff"]);
    assert!(!ok && err.contains("already exists"), "{err}");

    let add = ["group", "add", "--group", "eng", "--email", "u@example.com"];
    assert_eq!(check(), "deny");
    let (ok, out, _) = run(&add);
    assert!(ok && out.contains("is now in the group eng"), "{out}");
    // In eng, inside staff: the rule for group:staff lets them in.
    assert_eq!(check(), "one_factor");
    let (ok, out, _) = run(&add);
    assert!(ok && out.contains("already in the group eng"), "{out}");
    let (ok, _, err) = run(&[
        "group",
        "add",
        "--group",
        "nope",
        "--email",
        "u@example.com",
    ]);
    assert!(!ok && err.contains("There is no group named nope"), "{err}");
    let (ok, _, err) = run(&[
        "group",
        "add",
        "--group",
        "eng",
        "--email",
        "who@example.com",
    ]);
    assert!(!ok && err.contains("No account"), "{err}");
    let remove = [
        "group",
        "remove",
        "--group",
        "eng",
        "--email",
        "u@example.com",
    ];
    let (ok, out, _) = run(&remove);
    assert!(ok && out.contains("no longer in the group eng"), "{out}");
    assert_eq!(check(), "deny");
    let (ok, out, _) = run(&remove);
    assert!(ok && out.contains("was not in the group eng"), "{out}");

    // Every flag has a line of help.
    for (sub, flags) in [
        ("create", &["--name", "--parent", "--description"][..]),
        ("add", &["--group", "--email"][..]),
        ("remove", &["--group", "--email"][..]),
    ] {
        let (ok, out, _) = run(&["group", sub, "--help"]);
        assert!(ok, "{sub}");
        for flag in flags {
            let line = out
                .lines()
                .find(|l| l.trim_start().starts_with(flag))
                .unwrap_or_else(|| panic!("{sub} {flag}: {out}"));
            assert!(
                line.len() > flag.len() + 12 || out.contains(&format!("{flag} <")),
                "{sub} {flag}: {out}"
            );
        }
    }
}
