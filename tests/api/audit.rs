//! The audit log's hash chain: intact after real use, and `portcullis audit verify`
//! naming the first event that was changed, deleted or reordered.

use diesel::RunQueryDsl;
use portcullis::auth::audit::{ChainVerdict, verify_chain};

use crate::cli::portcullis;
use crate::helpers::*;

async fn verdict(app: &TestApp) -> ChainVerdict {
    app.state
        .db
        .run(|c| verify_chain(c).map_err(portcullis::db::DbError::from))
        .await
        .unwrap()
}

async fn sql(app: &TestApp, q: &'static str) {
    app.state
        .db
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
        .state
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
