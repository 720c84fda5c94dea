//! The audit log's hash chain: intact after real use, and `portcullis audit verify`
//! naming the first event that was changed, deleted or reordered.

use diesel::RunQueryDsl;
use portcullis::auth::audit::{ChainVerdict, verify_chain};

use crate::cli::portcullis;
use crate::helpers::*;

async fn verdict(app: &TestApp) -> ChainVerdict {
    app.db
        .run(|c| verify_chain(c).map_err(portcullis::db::DbError::from))
        .await
        .unwrap()
}

async fn sql(app: &TestApp, q: &'static str) {
    app.db
        .run(move |c| {
            diesel::sql_query(q)
                .execute(c)
                .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
}

/// Some real events: a registration, sign-ins that fail and one that works.
async fn activity(app: &TestApp) {
    app.create_user("eve@example.com", &[]).await;
    let b = app.browser();
    for _ in 0..3 {
        b.login("eve@example.com", "not the password at all").await;
    }
    b.login_ok("eve@example.com").await;
}

#[tokio::test]
async fn the_chain_verifies_and_names_a_changed_row() {
    let app = spawn_app().await;
    activity(&app).await;
    let events = app.audit().await;
    assert!(events.len() >= 5);
    assert!(events.iter().all(|e| e.hash.len() == 64));
    assert_eq!(
        verdict(&app).await,
        ChainVerdict::Intact {
            events: events.len() as u64
        }
    );
    let dir = app.data_dir.path();
    let db = &app.config.database_url;
    let (ok, out, err) = portcullis(dir, db, &["audit", "verify"], None);
    assert!(ok, "{err}");
    assert!(out.contains("intact"), "{out}");

    // Someone edits the third event to hide what happened.
    let third = events.iter().map(|e| e.id).min().unwrap() + 2;
    let q: &'static str = Box::leak(
        format!("UPDATE audit_events SET outcome = 'success' WHERE id = {third}").into_boxed_str(),
    );
    sql(&app, q).await;
    assert!(
        matches!(verdict(&app).await, ChainVerdict::Broken { id, problem } if id == third && problem.contains("changed"))
    );
    let (ok, _, err) = portcullis(dir, db, &["audit", "verify"], None);
    assert!(!ok);
    assert!(err.contains(&format!("event {third}")), "{err}");
}

#[tokio::test]
async fn a_deleted_row_is_named_by_the_one_after_it() {
    let app = spawn_app().await;
    activity(&app).await;
    let ids: Vec<i64> = app.audit().await.iter().rev().map(|e| e.id).collect();
    let q: &'static str =
        Box::leak(format!("DELETE FROM audit_events WHERE id = {}", ids[1]).into_boxed_str());
    sql(&app, q).await;
    match verdict(&app).await {
        ChainVerdict::Broken { id, problem } => {
            assert_eq!(id, ids[2]);
            assert!(problem.contains("deleted"));
        }
        v => panic!("a deletion went unnoticed: {v:?}"),
    }
}

#[tokio::test]
async fn two_instances_appending_at_once_leave_one_valid_chain() {
    let a = spawn_app().await;
    let b = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            database_url: Some(a.config.database_url.clone()),
            // Instances of one deployment share the master key, and with it the chain key.
            secret_key_file: Some(a.config.secret_key_file.display().to_string()),
            ..Default::default()
        },
    })
    .await;
    a.create_user("ann@example.com", &[]).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let browser = if i % 2 == 0 { a.browser() } else { b.browser() };
        tasks.push(tokio::spawn(async move {
            browser
                .login("ann@example.com", "wrong password number one")
                .await;
            browser
                .login("nobody@example.com", "wrong password number two")
                .await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    match verdict(&a).await {
        ChainVerdict::Intact { events } => assert!(events >= 80, "{events} events"),
        v => panic!("concurrent appends broke the chain: {v:?}"),
    }
}

#[tokio::test]
async fn retention_prunes_the_oldest_and_the_rest_still_verifies() {
    let app = spawn_app().await;
    activity(&app).await;
    app.clock.advance(3 * 86_400);
    app.browser().login_ok("eve@example.com").await;
    let now = app.clock.now();
    let pruned = app
        .db
        .run(move |c| {
            portcullis::auth::audit::prune(
                c,
                &portcullis::auth::audit::AuditCtx::cli(),
                now - 86_400,
                now,
            )
            .map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
    assert!(pruned >= 5, "{pruned}");
    let events = app.audit().await;
    assert!(events.iter().all(|e| e.created_at >= now - 86_400));
    let note = events
        .iter()
        .find(|e| e.event == "audit.pruned")
        .expect("pruning is recorded");
    assert!(note.details.contains("anchor"));
    assert!(matches!(verdict(&app).await, ChainVerdict::Intact { .. }));
    let (ok, out, err) = portcullis(
        app.data_dir.path(),
        &app.config.database_url,
        &["audit", "verify"],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("intact"));

    // Deleting the oldest remaining event is still caught: the next one no longer
    // follows the anchor.
    let oldest = events.iter().map(|e| e.id).min().unwrap();
    let q = format!("DELETE FROM audit_events WHERE id = {oldest}");
    sql(&app, Box::leak(q.into_boxed_str())).await;
    assert!(matches!(verdict(&app).await, ChainVerdict::Broken { .. }));
}

/// What a database writer without the master key can do: rewrite the chain's links with
/// plain SHA-256, from the first event on, as `audit verify` used to accept.
fn relink_with_sha256(c: &mut portcullis::db::AnyConnection) -> diesel::QueryResult<()> {
    use diesel::prelude::*;
    use portcullis::db::schema::audit_events as a;
    use portcullis::domain::audit::chain_hash;
    let rows = portcullis::db::repo::audit::batch_after(c, 0, 100_000)?;
    let mut prev = String::new();
    for row in rows {
        let hash = chain_hash(&prev, &row.chain_fields());
        diesel::update(a::table.find(row.id))
            .set((a::prev_hash.eq(&prev), a::hash.eq(&hash)))
            .execute(c)?;
        prev = hash;
    }
    Ok(())
}

fn checkpoint_of(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("checkpoint="))
        .unwrap_or_else(|| panic!("no checkpoint line in {out}"))
        .to_string()
}

#[tokio::test]
async fn a_writer_without_the_key_cannot_relink_the_chain_after_deleting_an_event() {
    let app = spawn_app().await;
    activity(&app).await;
    let ids: Vec<i64> = app.audit().await.iter().rev().map(|e| e.id).collect();
    let victim = ids[2];
    app.db
        .run(move |c| {
            use diesel::prelude::*;
            use portcullis::db::schema::audit_events as a;
            diesel::delete(a::table.find(victim)).execute(c)?;
            relink_with_sha256(c).map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
    assert!(matches!(verdict(&app).await, ChainVerdict::Broken { .. }));
    let (ok, out, err) = portcullis(
        app.data_dir.path(),
        &app.config.database_url,
        &["audit", "verify"],
        None,
    );
    assert!(!ok, "a relinked chain passed: {out}");
    assert!(err.contains("altered at event"), "{err}");
}

#[tokio::test]
async fn a_checkpoint_catches_the_deletion_of_the_newest_events() {
    let app = spawn_app().await;
    activity(&app).await;
    let (dir, db) = (app.data_dir.path(), app.config.database_url.clone());
    let (ok, out, err) = portcullis(dir, &db, &["audit", "checkpoint"], None);
    assert!(ok, "{err}");
    let cp = checkpoint_of(&out);
    assert!(out.lines().any(|l| l.starts_with("public_key=")), "{out}");
    let cp_id: i64 = cp.split('.').nth(1).unwrap().parse().unwrap();
    assert_eq!(cp_id, app.audit().await[0].id, "the newest event");

    // More events after the checkpoint: it still verifies.
    app.browser().login_ok("eve@example.com").await;
    let (ok, out, err) = portcullis(dir, &db, &["audit", "verify", "--expect", &cp], None);
    assert!(ok, "{err}");
    assert!(out.contains("intact"), "{out}");

    // The newest events go, the checkpointed one with them: the chain that is left is
    // valid, but no longer reaches the checkpoint.
    let q = format!("DELETE FROM audit_events WHERE id >= {}", cp_id - 1);
    sql(&app, Box::leak(q.into_boxed_str())).await;
    let (ok, _, err) = portcullis(dir, &db, &["audit", "verify", "--expect", &cp], None);
    assert!(!ok);
    assert!(err.contains("no longer reaches"), "{err}");
    assert!(err.contains(&format!("event {cp_id}")), "{err}");
}

#[tokio::test]
async fn a_forged_checkpoint_is_refused() {
    let app = spawn_app().await;
    activity(&app).await;
    let (dir, db) = (app.data_dir.path(), app.config.database_url.clone());
    let (ok, out, err) = portcullis(dir, &db, &["audit", "checkpoint"], None);
    assert!(ok, "{err}");
    let cp = checkpoint_of(&out);
    let parts: Vec<&str> = cp.trim_start_matches("checkpoint=").split('.').collect();

    // Another hash for the same event, keeping the signature.
    let other_hash = "0".repeat(64);
    let moved = format!("v1.{}.{}.{}.{}", parts[1], other_hash, parts[3], parts[4]);
    // A checkpoint signed with another key.
    let stranger = portcullis::auth::audit::checkpoint::Signer::new(
        &portcullis::master_key::MasterKey::from_bytes([9; 32]),
    );
    let foreign = stranger
        .sign(
            parts[1].parse().unwrap(),
            parts[2],
            parts[3].parse().unwrap(),
        )
        .to_string();
    for forged in [moved, foreign] {
        let (ok, _, err) = portcullis(dir, &db, &["audit", "verify", "--expect", &forged], None);
        assert!(!ok, "{forged} accepted");
        assert!(err.contains("signature is not valid"), "{err}");
    }
    let (ok, _, err) = portcullis(dir, &db, &["audit", "verify", "--expect", "garbage"], None);
    assert!(!ok && err.contains("not a checkpoint"), "{err}");
}

#[tokio::test]
async fn a_chain_written_before_keying_verifies_after_its_transition() {
    use diesel::prelude::*;
    use portcullis::db::schema::audit_events as a;
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    assert!(portcullis(dir.path(), &db, &["migrate"], None).0);
    // Events as the previous release wrote them: plain SHA-256 links.
    let old = portcullis::db::Db::connect(&db).unwrap();
    old.run(|c| {
        let mut prev = String::new();
        for i in 0..5i64 {
            let details = format!("{{\"n\":{i}}}");
            let f = portcullis::domain::audit::ChainFields {
                created_at: 1_700_000_000 + i,
                event: "login.failed",
                outcome: "failure",
                actor_id: None,
                target_id: None,
                ip: Some("192.0.2.1"),
                user_agent: None,
                request_id: None,
                details: &details,
            };
            let hash = portcullis::domain::audit::chain_hash(&prev, &f);
            diesel::insert_into(a::table)
                .values((
                    a::created_at.eq(f.created_at),
                    a::event.eq(f.event),
                    a::outcome.eq(f.outcome),
                    a::ip.eq(f.ip),
                    a::details.eq(&details),
                    a::prev_hash.eq(&prev),
                    a::hash.eq(&hash),
                ))
                .execute(c)?;
            prev = hash;
        }
        // Nor did that release mark the chain keyed (this one's `migrate` just did, on
        // the empty log).
        diesel::sql_query("DELETE FROM settings WHERE name = 'audit_chain_keyed'").execute(c)?;
        Ok::<_, portcullis::db::DbError>(())
    })
    .await
    .unwrap();
    drop(old);

    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            database_url: Some(db.clone()),
            secret_key_file: Some(dir.path().join("secret.key").display().to_string()),
            ..Default::default()
        },
    })
    .await;
    activity(&app).await;
    let names: Vec<String> = app.audit_names().await.into_iter().rev().collect();
    assert_eq!(names[5], "audit.chain_keyed", "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "audit.chain_keyed").count(),
        1,
        "one transition"
    );
    let (ok, out, err) = portcullis(dir.path(), &db, &["audit", "verify"], None);
    assert!(ok, "{err}");
    assert!(out.contains("intact"), "{out}");
    let (ok, out, err) = portcullis(dir.path(), &db, &["audit", "checkpoint"], None);
    assert!(ok, "{err}");
    let cp = checkpoint_of(&out);
    let (ok, _, err) = portcullis(dir.path(), &db, &["audit", "verify", "--expect", &cp], None);
    assert!(ok, "{err}");

    // The old part is covered by the transition's keyed link: relinking it is caught.
    app.db
        .run(|c| {
            diesel::update(a::table.filter(a::id.eq(2)))
                .set(a::outcome.eq("success"))
                .execute(c)?;
            relink_with_sha256(c).map_err(portcullis::db::DbError::from)
        })
        .await
        .unwrap();
    let (ok, _, err) = portcullis(dir.path(), &db, &["audit", "verify"], None);
    assert!(!ok);
    assert!(err.contains("altered at event"), "{err}");
}

/// README lists every event name an operator can meet in the log (and filter by on
/// `/admin/audit`): the contract's names, and each one added since.
#[test]
fn the_readme_lists_every_event_name() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme.find("- Events: ").expect("README lists the events");
    let end = start
        + readme[start..]
            .find("; outcomes")
            .expect("then the outcomes");
    let listed = &readme[start..end];
    let missing: Vec<&str> = portcullis::domain::audit::AuditAction::ALL
        .iter()
        .map(|a| a.name())
        .filter(|name| !listed.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in README's event list: {missing:?}"
    );
}
