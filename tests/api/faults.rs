//! Faults really happen here: a private Redis is stopped and started again, and a real
//! portcullis process gets SIGTERM while a request is in flight.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

struct Redis(Child);

impl Redis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        wait_until("redis to listen", async || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        Redis(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn redis_stopping_gives_503_pages_and_recovery_on_its_own() {
    // Runs its own redis-server, in the suite's Redis pass (where one is installed).
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let mut redis = Redis::start(port).await;
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            redis_url: Some(format!("redis://127.0.0.1:{port}")),
            redis_prefix: Some("faults".into()),
            ..Default::default()
        },
    })
    .await;
    app.create_user("rio@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("rio@example.com").await;
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    assert_eq!(b.get("/readyz").await.status, StatusCode::OK);

    redis.stop();
    for _ in 0..5 {
        let p = b.get("/account").await;
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE, "{}", p.body);
        assert!(p.body.contains("temporarily unavailable"), "{}", p.body);
        assert!(p.headers.contains_key("retry-after"));
    }
    assert_eq!(
        b.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Pages without a session still work.
    assert_eq!(app.browser().get("/login").await.status, StatusCode::OK);

    // Back again (empty: sessions are gone, nothing else was in it).
    let _redis = Redis::start(port).await;
    wait_until("/readyz to recover", async || {
        b.get("/readyz").await.status == StatusCode::OK
    })
    .await;
    wait_until("pages to recover", async || {
        b.get("/account").await.status != StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_redirect(&b.get("/account").await, "/login?next=%2Faccount");
    b.login_ok("rio@example.com").await;
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let port = free_port();
    let env = |cmd: &mut Command| {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env("DATABASE_URL", &db)
            .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}"))
            // Slow hashing: a sign-in takes long enough to be in flight at SIGTERM.
            .env("PORTCULLIS_ARGON2_ITERATIONS", "200")
            .env("RUST_LOG", "info");
    };
    let log_path = dir.path().join("server.log");
    let mut create = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    env(&mut create);
    let mut child = create
        .args(["user", "create", "--email", "sig@example.com", "--verified"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success());

    let mut serve = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    env(&mut serve);
    let mut server = serve
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let b = Browser {
        base: base.clone(),
        client: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        jar: Default::default(),
    };
    wait_until("the server to start", async || {
        reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    let token = b.get("/login").await.csrf();
    let started = Instant::now();
    let in_flight = tokio::spawn({
        let client = b.client.clone();
        let base = base.clone();
        async move {
            client
                .post(format!("{base}/login"))
                .form(&[
                    ("csrf_token", token.as_str()),
                    ("email", "sig@example.com"),
                    ("password", PASSWORD),
                ])
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !in_flight.is_finished(),
        "the sign-in is still being worked on"
    );
    let pid = server.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let res = in_flight
        .await
        .unwrap()
        .expect("the in-flight sign-in got an answer");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "it completed");
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let exited = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exited.success(), "clean exit after draining: {exited:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // New connections are refused once it is gone.
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
    // Its log line, written as the server was stopping, reached the log before the
    // exit, with the id the response carried.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("request_id={request_id}")) && l.contains("path=/login"))
        .unwrap_or_else(|| panic!("no log line for request {request_id} in:\n{log}"));
    assert!(line.contains("status=303"), "{line}");
}

/// A real server process on `dir` and `db`, started and waited for.
async fn serve(dir: &std::path::Path, db: &str, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORTCULLIS_DATA_DIR", dir)
        .env("DATABASE_URL", db)
        .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "100000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the server to start", async || {
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    child
}

#[tokio::test]
async fn kill_9_during_writes_leaves_a_clean_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let port = free_port();
    let mut server = serve(dir.path(), &db, port).await;
    let base = format!("http://127.0.0.1:{port}");
    // Writers: registrations and failed sign-ins (each a transaction with audit events).
    let mut tasks = Vec::new();
    for w in 0..4 {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let b = Browser {
                base,
                client: reqwest::Client::builder()
                    .cookie_store(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap(),
                jar: Default::default(),
            };
            for i in 0.. {
                let Ok(page) = b.client.get(format!("{}/register", b.base)).send().await else {
                    break;
                };
                let Ok(html) = page.text().await else { break };
                let Some(token) = html
                    .split("name=\"csrf_token\" value=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                else {
                    break;
                };
                let email = format!("w{w}n{i}@example.com");
                let form = [
                    ("csrf_token", token),
                    ("email", email.as_str()),
                    ("password", PASSWORD),
                ];
                if b.client
                    .post(format!("{}/register", b.base))
                    .form(&form)
                    .send()
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap(); // SIGKILL: no shutdown code runs.
    server.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }

    // The next start is clean: migrations, the chain, and every user complete.
    let mut server = serve(dir.path(), &db, port).await;
    let (ok, out, err) = crate::cli::portcullis(dir.path(), &db, &["audit", "verify"], None);
    assert!(ok, "{err}");
    assert!(out.contains("intact"), "{out}");
    // A registration writes the user, its audit event and its verification mail in one
    // transaction: after the kill, all three agree.
    let check = portcullis::db::Db::connect(&db).unwrap();
    let (users, registered, mails) = check
        .run(|c| {
            use diesel::prelude::*;
            use portcullis::db::schema::audit_events as a;
            let users = portcullis::db::repo::users::count(c)?;
            let registered: i64 = a::table
                .filter(a::event.eq("user.registered"))
                .filter(a::outcome.eq("success"))
                .count()
                .get_result(c)?;
            let mails = portcullis::db::repo::outbox::all(c)?.len() as i64;
            Ok::<_, portcullis::db::DbError>((users, registered, mails))
        })
        .await
        .unwrap();
    assert!(users > 0, "some registrations went through");
    assert_eq!(users, registered);
    assert_eq!(users, mails);
    assert_eq!(
        reqwest::get(format!("{base}/login"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
