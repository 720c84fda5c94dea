//! The data directory holds password hashes, sealed secrets and live reset links: only
//! the service's own user may read it (folders 0700, files 0600).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::helpers::*;

/// Every path under `root` (itself included) whose mode is not 0700 (folders) or 0600
/// (files), with its mode.
pub fn too_open(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            if mode != 0o700 {
                out.push((p.clone(), mode));
            }
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        } else if mode != 0o600 {
            out.push((p, mode));
        }
    }
    out
}

#[tokio::test]
async fn what_the_service_writes_is_for_its_own_user_only() {
    let app = spawn_app().await;
    app.create_user("ida@example.com", &[]).await;
    let b = app.browser();
    b.register("new@example.com", PASSWORD, "New").await;
    assert!(
        !app.wait_for_outbox(1).await.is_empty(),
        "a verification mail"
    );
    b.login_ok("ida@example.com").await;
    let dir = app.data_dir.path();
    assert!(dir.join("outbox").is_dir());
    assert!(dir.join("secret.key").is_file());
    if std::env::var("TEST_DATABASE_URL").is_err() {
        assert!(dir.join("portcullis.db").is_file());
        assert!(dir.join("portcullis.db-wal").is_file());
    }
    assert_eq!(too_open(dir), vec![]);
}
