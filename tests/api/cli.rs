//! The binary's commands, run as an operator would.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::*;
use reqwest::StatusCode;

pub fn portcullis(
    dir: &std::path::Path,
    db: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    portcullis_with(dir, db, &[], args, stdin)
}

/// The same, with more environment (e.g. `REDIS_URL`).
pub fn portcullis_with(
    dir: &std::path::Path,
    db: &str,
    env: &[(&str, String)],
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORTCULLIS_DATA_DIR", dir)
        .env("DATABASE_URL", db)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run portcullis");
    if let Some(input) = stdin {
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn operator_creates_an_admin_from_the_shell_and_it_can_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let (ok, out, err) = portcullis(dir.path(), &db, &["migrate"], None);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"));

    let (ok, out, err) = portcullis(
        dir.path(),
        &db,
        &[
            "user",
            "create",
            "--email",
            "Ops@Example.com",
            "--name",
            "Ops",
            "--role",
            "admin",
            "--verified",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok, "{err}");
    assert!(out.contains("created user Ops@Example.com"));

    // Same address again: refused with a one-line error.
    let (ok, _, err) = portcullis(
        dir.path(),
        &db,
        &["user", "create", "--email", "ops@example.com"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Weak password, no password, unknown role.
    let (ok, _, err) = portcullis(
        dir.path(),
        &db,
        &["user", "create", "--email", "w@example.com"],
        Some("password1\n"),
    );
    assert!(
        !ok && (err.contains("Use at least") || err.contains("too easy")),
        "{err}"
    );
    let (ok, _, err) = portcullis(
        dir.path(),
        &db,
        &["user", "create", "--email", "n@example.com"],
        None,
    );
    assert!(!ok && err.contains("standard input"), "{err}");
    let (ok, _, err) = portcullis(
        dir.path(),
        &db,
        &[
            "user",
            "set-role",
            "--email",
            "ops@example.com",
            "--role",
            "wizard",
        ],
        None,
    );
    assert!(!ok && err.contains("no role named wizard"), "{err}");

    // The last administrator keeps the role.
    let (ok, _, err) = portcullis(
        dir.path(),
        &db,
        &[
            "user",
            "unset-role",
            "--email",
            "ops@example.com",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(!ok && err.contains("last administrator"), "{err}");

    // The server started on the same database signs the user in; no setup link is printed.
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            database_url: Some(db.clone()),
            secret_key_file: Some(dir.path().join("secret.key").display().to_string()),
            ..Default::default()
        },
    })
    .await;
    assert!(
        app.setup_link.is_none(),
        "an admin exists, so no setup link"
    );
    let b = app.browser();
    b.login_ok("ops@example.com").await;
    let p = b.get("/account").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("admin"));
    let names = app.audit_names().await;
    assert!(names.contains(&"role.assigned".to_string()));
}

#[tokio::test]
async fn set_role_and_unset_role_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let pw = format!("{PASSWORD}\n");
    assert!(
        portcullis(
            dir.path(),
            &db,
            &[
                "user",
                "create",
                "--email",
                "a@example.com",
                "--role",
                "admin"
            ],
            Some(&pw)
        )
        .0
    );
    assert!(
        portcullis(
            dir.path(),
            &db,
            &["user", "create", "--email", "b@example.com"],
            Some(&pw)
        )
        .0
    );
    let (ok, out, _) = portcullis(
        dir.path(),
        &db,
        &[
            "user",
            "set-role",
            "--email",
            "b@example.com",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(ok && out.contains("now has the role admin"));
    let (ok, out, _) = portcullis(
        dir.path(),
        &db,
        &[
            "user",
            "unset-role",
            "--email",
            "a@example.com",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(ok && out.contains("no longer has the role admin"), "{out}");
    let (ok, _, err) = portcullis(
        dir.path(),
        &db,
        &[
            "user",
            "set-role",
            "--email",
            "ghost@example.com",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(!ok && err.contains("No account"), "{err}");
}

#[test]
fn unknown_configuration_is_an_error_naming_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("migrate")
        .env("PORTCULLIS_LISTN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORTCULLIS_LISTN"));
}

#[test]
fn an_out_of_range_number_is_an_error_naming_the_key_and_range() {
    // 2^32: once wrapped to 0 and then raised to a limit of 1 in silence.
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = portcullis_with(
        dir.path(),
        &format!("sqlite://{}", dir.path().join("p.db").display()),
        &[(
            "PORTCULLIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE",
            "4294967296".into(),
        )],
        &["migrate"],
        None,
    );
    assert!(!ok);
    assert!(
        stderr.contains("PORTCULLIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE")
            && stderr.contains("1 to 1000000"),
        "{stderr}"
    );
}

#[tokio::test]
async fn operator_registers_oauth_clients_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let (ok, out, err) = portcullis(
        dir.path(),
        &db,
        &[
            "client",
            "create",
            "--name",
            "Wiki",
            "--redirect-uri",
            "https://wiki.example/cb",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("client_id=")), "{out}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret="))
        .expect("a confidential client gets its secret once");
    assert!(secret.len() >= 43, "32 random bytes, base64url");

    let (ok, out, _) = portcullis(
        dir.path(),
        &db,
        &[
            "client",
            "create",
            "--name",
            "SPA",
            "--redirect-uri",
            "https://spa.example/cb",
            "--public",
        ],
        None,
    );
    assert!(ok);
    assert!(
        !out.contains("client_secret="),
        "a public client has no secret"
    );

    let (ok, _, err) = portcullis(
        dir.path(),
        &db,
        &[
            "client",
            "create",
            "--name",
            "Bad",
            "--redirect-uri",
            "not a url",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("not an absolute"), "{err}");
}

/// Every command ends with its own exit status, never a crash at exit: libpq over TLS
/// crashed (SIGSEGV) when the process exited while a pool thread was still opening or
/// closing a connection (diesel-rs/diesel#3441), after the verdict was printed.
#[tokio::test]
async fn audit_verify_on_postgres_always_exits_with_its_status() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    if !db.starts_with("postgres") {
        return;
    }
    // Over TLS, where the crash was (the test server has ssl on).
    let mut url = url::Url::parse(&db).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "sslmode")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("sslmode", "require");
    let db = url.to_string();
    assert!(portcullis(dir.path(), &db, &["migrate"], None).0);
    let mut crashes = Vec::new();
    for run in 0..60 {
        let status = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["audit", "verify"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env("DATABASE_URL", &db)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if let Some(sig) = status.signal() {
            crashes.push((run, sig));
        } else {
            assert_eq!(status.code(), Some(0), "run {run}");
        }
    }
    assert!(
        crashes.is_empty(),
        "killed by a signal (run, signal): {crashes:?}"
    );
}
