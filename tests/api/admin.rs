//! The admin area: deny by default on every route, no escalation, last-admin rules,
//! user management with its audit trail, the audit viewer and its exports.

use diesel::RunQueryDsl;
use reqwest::StatusCode;

use crate::helpers::*;

/// An app where admins need no second factor (the enrolment rule has its own test).
pub(crate) async fn admin_app() -> TestApp {
    spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            admin_requires_second_factor: Some(false),
            ..Default::default()
        },
    })
    .await
}

pub(crate) async fn sql(app: &TestApp, q: String) {
    app.db
        .run(move |c| {
            diesel::sql_query(q)
                .execute(c)
                .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
}

/// A custom role holding exactly `perms`.
pub(crate) async fn role_with(app: &TestApp, role: &str, perms: &[&str]) {
    sql(
        app,
        format!("INSERT INTO roles (name, description, builtin, created_at) VALUES ('{role}', '', FALSE, 0)"),
    )
    .await;
    for p in perms {
        sql(
            app,
            format!("INSERT INTO role_permissions (role, permission) VALUES ('{role}', '{p}')"),
        )
        .await;
    }
}

const ACTIONS: [&str; 8] = [
    "assign-role",
    "remove-role",
    "disable",
    "enable",
    "revoke-sessions",
    "reset-second-factors",
    "send-password-reset",
    "delete",
];

fn reads(target: &str) -> Vec<String> {
    vec![
        "/admin/clients".into(),
        "/admin".into(),
        "/admin/users".into(),
        format!("/admin/users/{target}"),
        "/admin/audit".into(),
        "/admin/audit/verify".into(),
        "/admin/audit/export?format=csv".into(),
        "/admin/roles".into(),
        "/admin/settings".into(),
    ]
}

async fn post_action(b: &Browser, target: &str, action: &str, fields: &[(&str, &str)]) -> Page {
    // A token from any page of this session works for every form of it.
    let token = b.get("/account").await.csrf();
    let mut all = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    // Presses the confirmation step's button too (deleting has its own typed one).
    if !fields.iter().any(|(k, _)| *k == "confirm") {
        all.push(("confirm", "yes"));
    }
    b.post(&format!("/admin/users/{target}/{action}"), &all)
        .await
}

#[tokio::test]
async fn every_admin_route_is_denied_by_default() {
    let app = admin_app().await;
    role_with(&app, "auditor", &["audit.read"]).await;
    let target = app.create_user("target@example.com", &[]).await;
    app.create_user("plain@example.com", &[]).await;
    app.create_user("auditor@example.com", &["auditor"]).await;
    let (client_id, _) = app
        .state
        .oauth
        .create_client(
            portcullis::auth::oauth::authorize::NewClient {
                name: "Wiki".into(),
                redirect_uris: vec!["http://app.example/cb".into()],
                post_logout_redirect_uris: vec![],
                public: false,
                scopes: vec![],
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
    let client_page = format!("/admin/clients/{client_id}");
    let client_rotate = format!("/admin/clients/{client_id}/rotate-secret");
    let client_delete = format!("/admin/clients/{client_id}/delete");

    // Anonymous: sent to sign in, nothing done.
    let anon = app.browser();
    for path in reads(&target) {
        let p = anon.get(&path).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert!(p.location().unwrap().starts_with("/login?next="), "{path}");
    }
    for action in ACTIONS {
        let p = anon
            .post(
                &format!("/admin/users/{target}/{action}"),
                &[("role", "admin")],
            )
            .await;
        assert_ne!(p.status, StatusCode::OK, "{action}");
        assert!(!p.status.is_success(), "{action}: {}", p.status);
    }

    // A signed-in user without permissions: 403 everywhere.
    let plain = app.browser();
    plain.login_ok("plain@example.com").await;
    for path in reads(&target) {
        assert_eq!(
            plain.get(&path).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    for action in ACTIONS {
        let p = post_action(
            &plain,
            &target,
            action,
            &[("role", "admin"), ("confirm", "target@example.com")],
        )
        .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{action}");
    }

    for (path, fields) in [
        (
            "/admin/roles",
            vec![("name", "sneaky"), ("permission", "users.write")],
        ),
        ("/admin/roles/auditor", vec![("permission", "users.write")]),
        ("/admin/roles/auditor/delete", vec![]),
        ("/admin/settings", vec![("registration_enabled", "on")]),
        (
            "/admin/clients",
            vec![("name", "Evil"), ("redirect_uris", "http://evil.example/")],
        ),
        (client_page.as_str(), vec![("name", "Renamed")]),
        (client_rotate.as_str(), vec![]),
        (client_delete.as_str(), vec![("confirm", "Wiki")]),
    ] {
        let token = plain.get("/account").await.csrf();
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend(fields);
        assert_eq!(
            plain.post(path, &all).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }

    // audit.read opens the audit log and nothing else.
    let auditor = app.browser();
    auditor.login_ok("auditor@example.com").await;
    assert_eq!(auditor.get("/admin").await.status, StatusCode::OK);
    assert_eq!(auditor.get("/admin/audit").await.status, StatusCode::OK);
    assert_eq!(
        auditor.get("/admin/audit/export?format=jsonl").await.status,
        StatusCode::OK
    );
    assert_eq!(
        auditor.get("/admin/users").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auditor.get(&client_page).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auditor.get(&format!("/admin/users/{target}")).await.status,
        StatusCode::FORBIDDEN
    );
    for action in ACTIONS {
        let p = post_action(
            &auditor,
            &target,
            action,
            &[("role", "admin"), ("confirm", "target@example.com")],
        )
        .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{action}");
    }
    // None of it changed anything.
    for e in app.audit().await {
        if e.target_id.as_deref() == Some(target.as_str()) {
            assert!(
                ![
                    "role.assigned",
                    "user.disabled",
                    "user.deleted",
                    "mfa.reset",
                    "session.revoked",
                ]
                .contains(&e.event.as_str()),
                "{} happened",
                e.event
            );
        }
    }
}

#[tokio::test]
async fn an_admin_without_a_second_factor_is_sent_to_enrol() {
    let app = spawn_app().await;
    app.create_user("boss@example.com", &["admin"]).await;
    let b = app.browser();
    b.login_ok("boss@example.com").await;
    let p = b.get("/admin/users").await;
    assert_redirect(&p, "/account/totp?admin=1");
    let page = b.get("/account/totp?admin=1").await;
    assert!(page.body.contains("Administration needs a second factor"));
}

#[tokio::test]
async fn users_are_found_by_prefix_filtered_and_paged() {
    let app = admin_app().await;
    app.create_user("admin@example.com", &["admin"]).await;
    for i in 0..55 {
        app.create_user(&format!("member{i:02}@example.com"), &[])
            .await;
    }
    app.create_user("zed@other.org", &[]).await;
    let b = app.browser();
    b.login_ok("admin@example.com").await;

    let p = b.get("/admin/users?q=MEMBER").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.count("tr.user"), 50);
    let next = p
        .doc()
        .select(&scraper::Selector::parse("a[rel=next]").unwrap())
        .next()
        .and_then(|a| a.value().attr("href"))
        .map(str::to_string)
        .expect("a next page");
    let p2 = b.get(&next).await;
    assert_eq!(p2.count("tr.user"), 5);
    assert!(p2.body.contains("member54@example.com"));
    assert!(!p2.body.contains("member00@example.com"));

    // Name prefix (every test user is "Test User"), role and status filters.
    assert!(b.get("/admin/users?q=test").await.count("tr.user") >= 50);
    let admins = b.get("/admin/users?role=admin").await;
    assert_eq!(admins.count("tr.user"), 1);
    assert!(admins.body.contains("admin@example.com"));
    assert_eq!(b.get("/admin/users?q=zed").await.count("tr.user"), 1);
    assert_eq!(b.get("/admin/users?q=nobody").await.count("tr.user"), 0);
    assert_eq!(
        b.get("/admin/users?status=disabled").await.count("tr.user"),
        0
    );
    assert_eq!(b.get("/admin/users?mfa=yes").await.count("tr.user"), 0);
}

#[tokio::test]
async fn admin_actions_work_take_effect_at_once_and_are_audited() {
    let app = admin_app().await;
    let admin_id = app.create_user("admin@example.com", &["admin"]).await;
    let uid = app.create_user("sam@example.com", &[]).await;
    let sam = app.browser();
    sam.login_ok("sam@example.com").await;
    let b = app.browser();
    b.login_ok("admin@example.com").await;
    let page = b.get(&format!("/admin/users/{uid}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.count("tr.session"), 1, "Sam's session is listed");
    // No role is picked for the administrator: the list starts with a prompt, and
    // sending the form without a choice changes nothing.
    assert_eq!(
        page.text_of("#assign-role option[selected]").as_deref(),
        Some("Choose a role")
    );
    assert_eq!(page.count("#assign-role option[selected]"), 1);
    let p = post_action(&b, &uid, "assign-role", &[("role", "")]).await;
    assert!(p.status.is_client_error(), "{}", p.status);

    let last_event = |events: Vec<portcullis::db::repo::audit::AuditEvent>, name: &str| {
        events
            .into_iter()
            .find(|e| e.event == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };

    // Forward auth remembers who Sam is (a proxy asks on every request), but no
    // longer than until an admin changes him.
    let roles_at_the_proxy = async || {
        let p = sam.get("/auth/forward").await;
        assert_eq!(p.status, StatusCode::OK);
        p.headers["remote-roles"].to_str().unwrap().to_string()
    };
    assert_eq!(roles_at_the_proxy().await, "");
    let p = post_action(&b, &uid, "assign-role", &[("role", "admin")]).await;
    assert_redirect(&p, &format!("/admin/users/{uid}?done=assign-role"));
    assert_eq!(
        roles_at_the_proxy().await,
        "admin",
        "a new role is seen at once"
    );
    let e = last_event(app.audit().await, "role.assigned");
    assert_eq!(e.actor_id.as_deref(), Some(admin_id.as_str()));
    assert_eq!(e.target_id.as_deref(), Some(uid.as_str()));
    // "Remove role admin" only asks, naming the role; the user keeps it meanwhile.
    let user_page = format!("/admin/users/{uid}");
    let p = post_form(
        &b,
        &format!("{user_page}/remove-role"),
        &[("role", "admin")],
    )
    .await;
    let form = crate::confirm::asks(&p, "Remove this role?", &user_page);
    assert!(
        crate::confirm::says(&p).contains("\"admin\""),
        "{}",
        crate::confirm::says(&p)
    );
    assert!(p.body.contains("Yes, remove role"));
    assert!(form.1.contains(&("role".to_string(), "admin".to_string())));
    assert_eq!(roles_at_the_proxy().await, "admin", "not yet");
    let p = crate::confirm::press(&b, &form, false).await;
    assert_redirect(&p, &format!("/admin/users/{uid}?done=remove-role"));
    assert_eq!(
        roles_at_the_proxy().await,
        "",
        "a removed role is gone at once"
    );
    assert_eq!(
        last_event(app.audit().await, "role.removed")
            .target_id
            .as_deref(),
        Some(uid.as_str())
    );

    // Disable: Sam's open session is refused on its next request, and sign-in too.
    let p = post_action(&b, &uid, "disable", &[]).await;
    assert_redirect(&p, &format!("/admin/users/{uid}?done=disable"));
    assert_eq!(
        sam.get("/auth/forward").await.status,
        StatusCode::UNAUTHORIZED,
        "forward auth refuses him at once"
    );
    assert_redirect(&sam.get("/account").await, "/login?next=%2Faccount");
    assert_ne!(
        sam.login("sam@example.com", PASSWORD)
            .await
            .location()
            .as_deref(),
        Some("/account")
    );
    assert_eq!(
        last_event(app.audit().await, "user.disabled")
            .actor_id
            .as_deref(),
        Some(admin_id.as_str())
    );
    let p = post_action(&b, &uid, "enable", &[]).await;
    assert_redirect(&p, &format!("/admin/users/{uid}?done=enable"));
    sam.login_ok("sam@example.com").await;

    let p = post_action(&b, &uid, "revoke-sessions", &[]).await;
    assert_redirect(&p, &format!("/admin/users/{uid}?done=revoke-sessions"));
    assert_redirect(&sam.get("/account").await, "/login?next=%2Faccount");
    assert!(
        last_event(app.audit().await, "session.revoked")
            .details
            .contains("\"all\":true")
    );

    let p = post_action(&b, &uid, "reset-second-factors", &[]).await;
    assert_redirect(&p, &format!("/admin/users/{uid}?done=reset-second-factors"));
    assert_eq!(
        last_event(app.audit().await, "mfa.reset")
            .target_id
            .as_deref(),
        Some(uid.as_str())
    );

    let p = post_action(&b, &uid, "send-password-reset", &[]).await;
    assert_redirect(&p, &format!("/admin/users/{uid}?done=send-password-reset"));
    // The second-factor reset above already mailed its notice: wait for this one.
    wait_until("the password reset mail", async || {
        app.outbox()
            .iter()
            .any(|m| m.contains("/password/reset?token="))
    })
    .await;

    // Step-up: eleven minutes later the next change asks to confirm it is the admin.
    app.clock.advance(660);
    let p = post_action(&b, &uid, "disable", &[]).await;
    assert_eq!(
        p.location().as_deref(),
        Some(
            format!(
                "/login/reauth?next=%2Fadmin%2Fusers%2F{}",
                uid.replace('-', "%2D")
            )
            .as_str()
        )
    );
    let p = b
        .submit(
            "/login/reauth",
            "/login/reauth",
            &[("password", PASSWORD), ("next", "/admin/users")],
        )
        .await;
    assert_redirect(&p, "/admin/users");

    // Delete needs the address typed.
    let p = post_action(&b, &uid, "delete", &[("confirm", "someone@else.com")]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.error().unwrap().contains("Type the user's email"));
    let p = post_action(&b, &uid, "delete", &[("confirm", "sam@example.com")]).await;
    assert_redirect(&p, "/admin/users?deleted=1");
    assert_eq!(
        b.get(&format!("/admin/users/{uid}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        last_event(app.audit().await, "user.deleted")
            .target_id
            .as_deref(),
        Some(uid.as_str())
    );
    assert_ne!(
        sam.login("sam@example.com", PASSWORD)
            .await
            .location()
            .as_deref(),
        Some("/account")
    );
}

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold_and_the_last_admin_stays() {
    let app = admin_app().await;
    role_with(&app, "helpdesk", &["users.read", "users.write"]).await;
    let admin_id = app.create_user("admin@example.com", &["admin"]).await;
    app.create_user("help@example.com", &["helpdesk"]).await;
    let victim = app.create_user("vic@example.com", &[]).await;

    let help = app.browser();
    help.login_ok("help@example.com").await;
    let p = post_action(&help, &victim, "assign-role", &[("role", "admin")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.error().unwrap().contains("permissions you do not hold"));
    // Nor take admin away from someone.
    let p = post_action(&help, &admin_id, "remove-role", &[("role", "admin")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // A role within their own permissions is fine.
    let p = post_action(&help, &victim, "assign-role", &[("role", "helpdesk")]).await;
    assert!(p.status.is_redirection(), "{}", p.body);

    // The only admin cannot demote, disable or delete themselves.
    let a = app.browser();
    a.login_ok("admin@example.com").await;
    let p = post_action(&a, &admin_id, "remove-role", &[("role", "admin")]).await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    assert!(p.error().unwrap().contains("last active administrator"));
    assert_eq!(
        post_action(&a, &admin_id, "disable", &[]).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        post_action(&a, &admin_id, "delete", &[("confirm", "admin@example.com")])
            .await
            .status,
        StatusCode::CONFLICT
    );
    // With a second admin, the first may step down.
    let p = post_action(&a, &victim, "assign-role", &[("role", "admin")]).await;
    assert!(p.status.is_redirection());
    let p = post_action(&a, &admin_id, "remove-role", &[("role", "admin")]).await;
    assert!(p.status.is_redirection(), "{}", p.body);
    assert_eq!(a.get("/admin/users").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_audit_viewer_filters_and_exports_what_it_shows() {
    let app = admin_app().await;
    app.create_user("admin@example.com", &["admin"]).await;
    let uid = app.create_user("ivy@example.com", &[]).await;
    // A hostile client: its user agent is a spreadsheet formula.
    let evil = reqwest::Client::builder()
        .user_agent("=HYPERLINK(\"http://evil.example\",\"x\")")
        .cookie_store(true)
        .build()
        .unwrap();
    let login = evil
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = scraper::Html::parse_document(&login)
        .select(&scraper::Selector::parse("input[name=csrf_token]").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_string();
    for _ in 0..2 {
        evil.post(format!("{}/login", app.base))
            .form(&[
                ("csrf_token", token.as_str()),
                ("email", "ivy@example.com"),
                ("password", "wrong password, clearly"),
            ])
            .send()
            .await
            .unwrap();
    }
    let b = app.browser();
    b.login_ok("admin@example.com").await;

    let p = b
        .get("/admin/audit?event=login.failed&user=ivy%40example.com")
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.count("tr.event"), 2);
    assert_eq!(
        b.get("/admin/audit?event=login.failed&outcome=success")
            .await
            .count("tr.event"),
        0
    );

    let csv = b
        .get("/admin/audit/export?format=csv&event=login.failed&user=ivy%40example.com")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines.len(),
        3,
        "a header and the two filtered rows: {}",
        csv.body
    );
    assert!(lines[0].starts_with("id,time,event"));
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains("login.failed") && l.contains(&uid))
    );
    assert!(
        csv.body.contains("\"'=HYPERLINK("),
        "formula neutralised: {}",
        csv.body
    );
    assert!(!csv.body.contains(",=HYPERLINK"));

    let jsonl = b
        .get("/admin/audit/export?format=jsonl&event=login.failed&user=ivy%40example.com")
        .await;
    let rows: Vec<serde_json::Value> = jsonl
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r["event"] == "login.failed" && r["target_id"] == uid.as_str())
    );
    assert_eq!(
        b.get("/admin/audit/export?format=xls").await.status,
        StatusCode::BAD_REQUEST
    );

    let v = b.get("/admin/audit/verify").await;
    assert!(
        v.text_of("#verdict").unwrap().contains("intact"),
        "{}",
        v.body
    );

    // Ivy sees her own events, and not the admin's.
    let ivy = app.browser();
    ivy.login_ok("ivy@example.com").await;
    let mine = ivy.get("/account/activity").await;
    assert!(mine.body.contains("login.failed"));
    assert!(mine.body.contains("login.succeeded"));
    assert!(!mine.body.contains("admin@example.com"));
}

pub(crate) async fn post_form(b: &Browser, path: &str, fields: &[(&str, &str)]) -> Page {
    let token = b.get("/account").await.csrf();
    let mut all = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    b.post(path, &all).await
}

#[tokio::test]
async fn custom_roles_grant_only_what_their_editor_holds() {
    let app = admin_app().await;
    role_with(&app, "rolesmith", &["roles.write", "users.read"]).await;
    app.create_user("admin@example.com", &["admin"]).await;
    app.create_user("smith@example.com", &["rolesmith"]).await;
    let smith = app.browser();
    smith.login_ok("smith@example.com").await;

    // A role editor cannot mint a role with permissions they lack.
    let p = post_form(
        &smith,
        "/admin/roles",
        &[("name", "superuser"), ("permission", "users.write")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.error().unwrap().contains("do not hold"));
    // Nor change or delete the built-in ones.
    let p = post_form(
        &smith,
        "/admin/roles/admin",
        &[("permission", "users.read")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(
        post_form(&smith, "/admin/roles/admin/delete", &[("confirm", "yes")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Within their own permissions it works, and is audited.
    let p = post_form(
        &smith,
        "/admin/roles",
        &[
            ("name", "viewer"),
            ("description", "Looks only"),
            ("permission", "users.read"),
        ],
    )
    .await;
    assert_redirect(&p, "/admin/roles?done=created");
    let page = smith.get("/admin/roles").await;
    assert!(page.body.contains("Looks only"));
    assert!(
        app.audit_names()
            .await
            .contains(&"role.created".to_string())
    );
    assert_eq!(
        post_form(&smith, "/admin/roles", &[("name", "viewer")])
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        post_form(&smith, "/admin/roles", &[("name", "Bad Name!")])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // The admin edits and deletes it.
    let a = app.browser();
    a.login_ok("admin@example.com").await;
    let p = post_form(
        &a,
        "/admin/roles/viewer",
        &[
            ("description", "Reads users and audit"),
            ("permission", "users.read"),
            ("permission", "audit.read"),
        ],
    )
    .await;
    assert_redirect(&p, "/admin/roles?done=saved");
    // Delete role only asks, naming the role and what its holders lose.
    let p = post_form(&a, "/admin/roles/viewer/delete", &[]).await;
    let form = crate::confirm::asks(&p, "Delete this role?", "/admin/roles");
    assert_eq!(form.0, "/admin/roles/viewer/delete");
    assert_eq!(
        crate::confirm::says(&p),
        "The role \"viewer\" is deleted. No user holds it."
    );
    assert!(p.body.contains("Yes, delete"));
    assert!(
        a.get("/admin/roles")
            .await
            .body
            .contains("Reads users and audit")
    );
    assert!(
        !app.audit_names()
            .await
            .contains(&"role.deleted".to_string())
    );
    // A role no one made is not there to delete.
    let p = post_form(&a, "/admin/roles/nosuch/delete", &[]).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    let p = crate::confirm::press(&a, &form, false).await;
    assert_redirect(&p, "/admin/roles?done=deleted");
    let names = app.audit_names().await;
    assert!(names.contains(&"role.updated".to_string()));
    assert!(names.contains(&"role.deleted".to_string()));
    assert!(!a.get("/admin/roles").await.body.contains("role-viewer"));
}

#[tokio::test]
async fn registration_settings_take_effect_without_a_restart() {
    let app = admin_app().await;
    app.create_user("admin@example.com", &["admin"]).await;
    let a = app.browser();
    a.login_ok("admin@example.com").await;
    assert_eq!(app.browser().get("/register").await.status, StatusCode::OK);

    let p = post_form(
        &a,
        "/admin/settings",
        &[("allowed_domains", "not a domain!")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    // Closed: the form says so and a submission is refused.
    let p = post_form(&a, "/admin/settings", &[("allowed_domains", "")]).await;
    assert_redirect(&p, "/admin/settings?done=1");
    let visitor = app.browser();
    assert_eq!(visitor.get("/register").await.status, StatusCode::FORBIDDEN);
    assert!(
        !visitor
            .get("/login")
            .await
            .body
            .contains("href=\"/register\"")
    );
    let p = visitor
        .submit(
            "/login",
            "/register",
            &[("email", "new@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // Open, but only for one domain.
    let p = post_form(
        &a,
        "/admin/settings",
        &[
            ("registration_enabled", "on"),
            ("allowed_domains", "Corp.Example"),
        ],
    )
    .await;
    assert_redirect(&p, "/admin/settings?done=1");
    let p = visitor.register("new@example.com", PASSWORD, "New").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    let p = visitor.register("new@corp.example", PASSWORD, "New").await;
    assert_redirect(&p, "/login?registered=1");
    assert!(
        app.audit_names()
            .await
            .contains(&"settings.changed".to_string())
    );
}

#[tokio::test]
async fn clients_are_created_edited_rotated_and_deleted_on_admin_pages() {
    let app = admin_app().await;
    app.create_user("root@example.com", &["admin"]).await;
    let b = app.browser();
    b.login_ok("root@example.com").await;
    let token = |id: String, secret: String| {
        let base = app.base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };

    let csrf = b.get("/admin/clients").await.csrf();
    // Bad input: a clear error, 400, nothing created.
    let p = b
        .post(
            "/admin/clients",
            &[
                ("csrf_token", &csrf),
                ("name", "Billing"),
                ("redirect_uris", "javascript:alert(1)"),
                ("grant", "authorization_code"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.error().unwrap().contains("not an absolute http(s) URL"));
    let p = b
        .post(
            "/admin/clients",
            &[
                ("csrf_token", &csrf),
                ("name", "Billing"),
                (
                    "redirect_uris",
                    "https://billing.example/cb\nhttps://billing.example/cb2",
                ),
                ("scope", "openid"),
                ("scope", "roles"),
                ("grant", "authorization_code"),
                ("grant", "client_credentials"),
                ("id_token_alg", "ES256"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let id = p.text_of("#client-id").unwrap();
    let secret = p.text_of("#client-secret").expect("the secret, shown once");
    assert_eq!(token(id.clone(), secret.clone()).await, StatusCode::OK);
    let page = b.get(&format!("/admin/clients/{id}")).await;
    assert!(
        page.text_of("#client-secret").is_none(),
        "never shown again"
    );
    assert!(b.get("/admin/clients").await.body.contains("Billing"));

    // Edit: the new settings take effect.
    let p = b
        .post(
            &format!("/admin/clients/{id}"),
            &[
                ("csrf_token", &csrf),
                ("name", "Billing v2"),
                ("redirect_uris", "https://billing.example/new"),
                ("scope", "openid"),
                ("grant", "authorization_code"),
                ("id_token_alg", "RS256"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let client = portcullis::auth::oauth::authorize::client(&app.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.name, "Billing v2");
    assert_eq!(client.redirect_uris(), vec!["https://billing.example/new"]);
    assert_eq!(
        token(id.clone(), secret.clone()).await,
        StatusCode::BAD_REQUEST,
        "client_credentials was taken away"
    );
    // Give it back, then rotate: the old secret stops working at once.
    b.post(
        &format!("/admin/clients/{id}"),
        &[
            ("csrf_token", &csrf),
            ("name", "Billing v2"),
            ("redirect_uris", "https://billing.example/new"),
            ("scope", "roles"),
            ("grant", "client_credentials"),
            ("id_token_alg", "RS256"),
        ],
    )
    .await;
    // Rotate secret asks first, naming the client; the secret keeps working meanwhile.
    let p = b
        .post(
            &format!("/admin/clients/{id}/rotate-secret"),
            &[("csrf_token", &csrf)],
        )
        .await;
    let form = crate::confirm::asks(
        &p,
        "Rotate this client's secret?",
        &format!("/admin/clients/{id}"),
    );
    assert!(
        crate::confirm::says(&p).starts_with("Billing v2 gets a new secret"),
        "{}",
        crate::confirm::says(&p)
    );
    assert!(p.body.contains("Yes, rotate"));
    assert_eq!(p.text_of("#client-secret"), None);
    assert_eq!(token(id.clone(), secret.clone()).await, StatusCode::OK);
    assert_eq!(form.0, format!("/admin/clients/{id}/rotate-secret"));
    let p = b
        .post(
            &format!("/admin/clients/{id}/rotate-secret"),
            &[("csrf_token", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    let rotated = p.text_of("#client-secret").unwrap();
    assert_ne!(rotated, secret);
    assert_eq!(
        token(id.clone(), secret.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(token(id.clone(), rotated.clone()).await, StatusCode::OK);

    // Delete needs the name typed.
    let p = b
        .post(
            &format!("/admin/clients/{id}/delete"),
            &[("csrf_token", &csrf), ("confirm", "Billing")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    let p = b
        .post(
            &format!("/admin/clients/{id}/delete"),
            &[("csrf_token", &csrf), ("confirm", "Billing v2")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(token(id.clone(), rotated).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        b.get(&format!("/admin/clients/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let names = app.audit_names().await;
    for e in ["client.created", "client.updated", "client.deleted"] {
        assert!(names.contains(&e.to_string()), "{e}");
    }
    let updates = names.iter().filter(|n| *n == "client.updated").count();
    assert_eq!(updates, 3, "two edits and a rotation");
}

/// The viewer lists newest first by event time, pages without losing or repeating an
/// event (also when many share a second, and when write order and time order differ, as
/// with several instances whose clocks disagree a little), and a date range selects
/// exactly that day.
#[tokio::test]
async fn the_audit_viewer_pages_by_time_and_filters_a_date_range() {
    use portcullis::db::repo::audit::{NewAuditEvent, insert_many};
    let app = admin_app().await;
    app.create_user("admin@example.com", &["admin"]).await;
    let day = 86_400;
    // Noon, ten days ago: far from midnight, so the date filter is unambiguous.
    let now = app.state.clock.now();
    let noon = now - now % day - 10 * day + day / 2;
    // 70 events in one second, then 70 three days earlier written *after* them, then
    // 5 that claim to be a second older than the first 70 but were written last.
    let mut events = Vec::new();
    for (n, at) in [(70, noon), (70, noon - 3 * day), (5, noon - 1)] {
        for _ in 0..n {
            events.push(NewAuditEvent {
                created_at: at,
                event: "login.failed".into(),
                outcome: "failure".into(),
                actor_id: None,
                target_id: None,
                ip: Some("192.0.2.77".into()),
                user_agent: None,
                request_id: None,
                details: "{}".into(),
            });
        }
    }
    app.db
        .run(move |c| insert_many(c, &events).map_err(portcullis::db::DbError::from))
        .await
        .unwrap();
    let b = app.browser();
    b.login_ok("admin@example.com").await;

    let rows = |p: &Page| -> Vec<(String, i64)> {
        let doc = p.doc();
        let sel = scraper::Selector::parse("tr.event").unwrap();
        let td = scraper::Selector::parse("td").unwrap();
        doc.select(&sel)
            .map(|tr| {
                let cells: Vec<String> = tr
                    .select(&td)
                    .map(|c| c.text().collect::<String>())
                    .collect();
                (cells[1].clone(), cells[0].parse::<i64>().unwrap())
            })
            .collect()
    };
    let mut seen = Vec::new();
    let mut path = "/admin/audit?ip=192.0.2.77".to_string();
    for _ in 0..10 {
        let p = b.get(&path).await;
        assert_eq!(p.status, StatusCode::OK);
        seen.extend(rows(&p));
        let next = p
            .doc()
            .select(&scraper::Selector::parse("a[rel=next]").unwrap())
            .next()
            .and_then(|a| a.value().attr("href").map(str::to_string));
        match next {
            Some(n) => path = n,
            None => break,
        }
    }
    let ids: Vec<i64> = seen.iter().map(|(_, id)| *id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 145, "every event listed once");
    assert_eq!(unique.len(), 145, "no event listed twice");
    // Time order first: the 70 of noon, then the 5 of a second before (written later,
    // so with higher ids), then the 70 of three days before; ids descending within each.
    let (first, rest) = ids.split_at(70);
    let (middle, last) = rest.split_at(5);
    assert!(first.windows(2).all(|w| w[0] > w[1]));
    assert!(
        middle.iter().all(|m| *m > first[0]),
        "later writes, older time"
    );
    assert!(last.iter().all(|l| first.iter().all(|f| l > f)));
    assert!(last.iter().all(|l| middle.iter().all(|m| l < m)));

    let date = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    let d = date(noon - 3 * day);
    let p = b
        .get(&format!("/admin/audit?ip=192.0.2.77&from={d}&to={d}"))
        .await;
    assert_eq!(p.count("tr.event"), 50, "a full first page");
    let csv = b
        .get(&format!(
            "/admin/audit/export?format=csv&ip=192.0.2.77&from={d}&to={d}"
        ))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.body.lines().count(), 1 + 70, "header and that day's 70");
}

/// What `user_id` holds and whether it is disabled, read straight from the database.
async fn roles_and_disabled(app: &TestApp, user_id: &str) -> (Vec<String>, bool) {
    let uid = user_id.to_string();
    app.db
        .run(move |c| {
            let roles = portcullis::db::repo::roles::of_user(c, &uid)?;
            let user = portcullis::db::repo::users::find(c, &uid)?.expect("the user exists");
            Ok::<_, portcullis::db::DbError>((roles, user.disabled))
        })
        .await
        .unwrap()
}

/// Every admin write on a user, with the fields it needs, for a target `email`.
fn writes(email: &str) -> Vec<(&'static str, Vec<(&'static str, &str)>)> {
    vec![
        ("assign-role", vec![("role", "helpdesk")]),
        ("remove-role", vec![("role", "viewer")]),
        ("disable", vec![("confirm", "yes")]),
        ("enable", vec![]),
        ("revoke-sessions", vec![("confirm", "yes")]),
        ("reset-second-factors", vec![("confirm", "yes")]),
        ("send-password-reset", vec![]),
        ("delete", vec![("confirm", email)]),
    ]
}

#[tokio::test]
async fn a_helpdesk_acts_only_on_users_whose_permissions_it_holds() {
    let app = admin_app().await;
    role_with(&app, "helpdesk", &["users.read", "users.write"]).await;
    role_with(&app, "viewer", &["users.read"]).await;
    // Two admins, so the last-admin rule cannot be what stops anything below.
    let boss = app
        .create_user("boss@example.com", &["admin", "viewer"])
        .await;
    app.create_user("admin2@example.com", &["admin"]).await;
    let helper = app.create_user("help@example.com", &["helpdesk"]).await;
    let peer = app.create_user("peer@example.com", &["helpdesk"]).await;
    let plain = app.create_user("plain@example.com", &["viewer"]).await;

    let boss_browser = app.browser();
    boss_browser.login_ok("boss@example.com").await;
    let help = app.browser();
    help.login_ok("help@example.com").await;

    // On a full admin: every write refused with a 403 that says why, each audited.
    for (action, fields) in writes("boss@example.com") {
        let p = post_action(&help, &boss, action, &fields).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{action}: {}", p.body);
        assert!(
            p.error()
                .unwrap_or_default()
                .contains("holds permissions you do not hold"),
            "{action}: {:?}",
            p.error()
        );
    }
    // Nothing changed: roles, flag, session, second factors, no reset mail.
    assert_eq!(
        roles_and_disabled(&app, &boss).await,
        (vec!["admin".to_string(), "viewer".to_string()], false)
    );
    assert_eq!(boss_browser.get("/account").await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !app.outbox().iter().any(|m| m.contains("boss@example.com")),
        "no mail went to the admin"
    );
    let on_boss: Vec<_> = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.target_id.as_deref() == Some(boss.as_str()))
        .filter(|e| e.actor_id.as_deref() == Some(helper.as_str()))
        .collect();
    assert!(
        on_boss.iter().all(|e| e.outcome == "denied"),
        "{:?}",
        on_boss
            .iter()
            .map(|e| (&e.event, &e.outcome))
            .collect::<Vec<_>>()
    );
    assert_eq!(on_boss.len(), 8, "one denied event per refused write");

    // On a peer holding the same permissions, and on a plain user: allowed.
    let p = post_action(&help, &peer, "revoke-sessions", &[]).await;
    assert_redirect(&p, &format!("/admin/users/{peer}?done=revoke-sessions"));
    for (action, fields) in writes("plain@example.com") {
        let p = post_action(&help, &plain, action, &fields).await;
        assert!(p.status.is_redirection(), "{action}: {}", p.body);
    }
    assert_eq!(
        help.get(&format!("/admin/users/{plain}")).await.status,
        StatusCode::NOT_FOUND,
        "the plain user was deleted"
    );

    // An admin acts on anyone: the helpdesk user, and another admin.
    let a = app.browser();
    a.login_ok("admin2@example.com").await;
    let p = post_action(&a, &peer, "disable", &[]).await;
    assert_redirect(&p, &format!("/admin/users/{peer}?done=disable"));
    let p = post_action(&a, &boss, "revoke-sessions", &[]).await;
    assert_redirect(&p, &format!("/admin/users/{boss}?done=revoke-sessions"));
    assert_redirect(
        &boss_browser.get("/account").await,
        "/login?next=%2Faccount",
    );
    let p = post_action(&a, &boss, "remove-role", &[("role", "viewer")]).await;
    assert!(p.status.is_redirection(), "{}", p.body);
}

#[tokio::test]
async fn a_role_editor_cannot_change_a_role_held_by_someone_stronger() {
    let app = admin_app().await;
    role_with(&app, "rolesmith", &["roles.write", "users.read"]).await;
    role_with(&app, "viewer", &["users.read"]).await;
    role_with(&app, "reader", &["users.read"]).await;
    app.create_user("boss@example.com", &["admin", "viewer"])
        .await;
    app.create_user("plain@example.com", &["reader"]).await;
    app.create_user("smith@example.com", &["rolesmith"]).await;
    let smith = app.browser();
    smith.login_ok("smith@example.com").await;

    // Emptying or deleting a role an admin holds would act on the admin.
    let p = post_form(&smith, "/admin/roles/viewer", &[("description", "none")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(
        p.error()
            .unwrap_or_default()
            .contains("holds permissions you do not hold"),
        "{:?}",
        p.error()
    );
    let p = post_form(&smith, "/admin/roles/viewer/delete", &[("confirm", "yes")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let perms = app
        .db
        .run(|c| {
            portcullis::auth::access::permissions::permissions_of_role(c, "viewer")
                .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
    assert_eq!(
        perms,
        [portcullis::auth::access::permissions::Permission::UsersRead].into()
    );
    let denied: Vec<String> = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.outcome == "denied")
        .map(|e| e.event)
        .collect();
    assert!(denied.contains(&"role.updated".to_string()), "{denied:?}");
    assert!(denied.contains(&"role.deleted".to_string()), "{denied:?}");

    // A role only weaker users hold is the editor's to change.
    let p = post_form(&smith, "/admin/roles/reader", &[("description", "none")]).await;
    assert_redirect(&p, "/admin/roles?done=saved");
    let p = post_form(&smith, "/admin/roles/reader/delete", &[]).await;
    crate::confirm::asks(&p, "Delete this role?", "/admin/roles");
    assert_eq!(
        crate::confirm::says(&p),
        "The role \"reader\" is deleted. One user holds it and loses its permissions at once."
    );
    let p = post_form(&smith, "/admin/roles/reader/delete", &[("confirm", "yes")]).await;
    assert_redirect(&p, "/admin/roles?done=deleted");
}

/// Only enabled admins count for the last-admin rule: a disabled admin can lose the
/// role, be disabled again or be deleted while one other admin is active.
#[tokio::test]
async fn a_disabled_admin_is_never_the_last_admin() {
    use portcullis::auth::accounts::admin::Actor;
    use portcullis::auth::audit::AuditCtx;
    let app = admin_app().await;
    let admin = &app.state.admin;
    let ctx = AuditCtx::cli();
    app.create_user("stays@example.com", &["admin"]).await;
    let gone = app.create_user("gone@example.com", &["admin"]).await;
    let disable = async || {
        admin
            .set_disabled(&Actor::Operator, &gone, true, &ctx)
            .await
    };
    disable()
        .await
        .expect("disabling an admin while another is active");
    disable().await.expect("disabling a disabled admin again");
    let taken = admin
        .set_role(&Actor::Operator, &gone, "admin", false, &ctx)
        .await
        .expect("taking admin from a disabled admin");
    assert!(taken, "taking admin from a disabled admin");
    admin
        .delete(&Actor::Operator, &gone, "gone@example.com", &ctx)
        .await
        .expect("deleting a disabled admin");
}
