//! Faults really happen here: a private Redis is stopped and started again, and a real
//! portcullis process gets SIGTERM while a request is in flight.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

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
            .env("RUST_LOG", "warn");
    };
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
    let mut server = serve.stdout(Stdio::null()).spawn().unwrap();
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
    let exited = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exited.success(), "clean exit after draining: {exited:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // New connections are refused once it is gone.
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}
