//! Real processes: three `portcullis serve` processes on loopback ports sharing one
//! database, one Redis and one master key behave as one; two racing on their setup
//! links make one administrator; and a PostgreSQL server that restarts under a running
//! instance is survived (the pool reconnects).

use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;

use crate::helpers::*;

/// A `portcullis serve` process, killed when dropped.
struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an instance on `port`; every instance gets the same data directory (so the
/// same master key file), database, Redis, prefix and public URL.
async fn instance(env: &[(&str, String)], port: u16) -> Instance {
    instance_logging(env, port, None).await
}

/// The same, with its log (warnings and errors, on stderr) written to `log` when given.
async fn instance_logging(
    env: &[(&str, String)],
    port: u16,
    log: Option<&std::path::Path>,
) -> Instance {
    let (filter, logs) = match log {
        Some(path) => ("warn", Stdio::from(std::fs::File::create(path).unwrap())),
        None => ("error", Stdio::inherit()),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", filter)
        .stdout(Stdio::null())
        .stderr(logs)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/healthz");
    wait_until("an instance to start", async || {
        reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    Instance { child, base }
}

/// A browser on `base` sharing `jar` (cookies ignore the port, like a load balancer's
/// single name would make them).
fn browser_on(base: &str, jar: &std::sync::Arc<reqwest::cookie::Jar>) -> Browser {
    Browser {
        base: base.to_string(),
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        jar: jar.clone(),
    }
}

#[tokio::test]
async fn three_processes_share_sessions_revocations_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    // Shared limits and revocation are Redis's job: this runs in the suite's Redis pass.
    let Some(redis) = redis_url() else {
        return;
    };
    let ports = [free_port(), free_port(), free_port()];
    let env = vec![
        ("PORTCULLIS_DATA_DIR", dir.path().display().to_string()),
        ("DATABASE_URL", db.clone()),
        ("REDIS_URL", redis),
        (
            "PORTCULLIS_REDIS_PREFIX",
            format!("p{}", uuid::Uuid::new_v4().simple()),
        ),
        // One public name for all three, as behind a load balancer.
        (
            "PORTCULLIS_PUBLIC_URL",
            format!("http://127.0.0.1:{}", ports[0]),
        ),
        ("PORTCULLIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "1000".into()),
        ("PORTCULLIS_LOGIN_FAILURES_BEFORE_BACKOFF", "6".into()),
    ];
    // The first start creates the master key; the others read it.
    let a = instance(&env, ports[0]).await;
    let (b, c) = tokio::join!(instance(&env, ports[1]), instance(&env, ports[2]));
    let (ok, _, err) = crate::cli::portcullis(
        dir.path(),
        &db,
        &["user", "create", "--email", "tri@example.com", "--verified"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok, "{err}");
    crate::cli::portcullis(
        dir.path(),
        &db,
        &[
            "user",
            "create",
            "--email",
            "target@example.com",
            "--verified",
        ],
        Some(&format!("{PASSWORD}\n")),
    );

    // Sign in on A; the cookie works on B and C.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let (on_a, on_b, on_c) = (
        browser_on(&a.base, &jar),
        browser_on(&b.base, &jar),
        browser_on(&c.base, &jar),
    );
    on_a.login_ok("tri@example.com").await;
    for x in [&on_a, &on_b, &on_c] {
        let p = x.get("/account").await;
        assert_eq!(p.status, StatusCode::OK, "{}", x.base);
        assert!(p.body.contains("tri@example.com"));
    }
    // Sign out on C: refused at the next request on A and B.
    let p = on_c.logout().await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    for x in [&on_a, &on_b] {
        assert_redirect(&x.get("/account").await, "/login?next=%2Faccount");
    }

    // Failed sign-ins spread over A, B and C count against one back-off.
    let others = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let spread = [
        browser_on(&a.base, &others),
        browser_on(&b.base, &others),
        browser_on(&c.base, &others),
    ];
    for i in 0..6 {
        let p = spread[i % 3]
            .login("target@example.com", "wrong password 1234")
            .await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // Now even the right password is refused, on every instance.
    for x in &spread {
        let p = x.login("target@example.com", PASSWORD).await;
        assert_eq!(
            p.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}: {}",
            x.base,
            p.body
        );
    }
}

/// The path and query of the setup link an instance logged at start.
fn logged_setup_link(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    let url = text
        .lines()
        .find_map(|l| l.split("open this one-time link to create one: ").nth(1))
        .and_then(|rest| {
            rest.split(|c: char| c.is_whitespace() || c == '\x1b')
                .next()
        })
        .unwrap_or_else(|| panic!("no setup link in the log: {text}"))
        .to_string();
    let parsed = url::Url::parse(&url).unwrap();
    format!("{}?{}", parsed.path(), parsed.query().unwrap())
}

#[tokio::test]
async fn two_processes_racing_on_their_setup_links_make_one_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path());
    let ports = [free_port(), free_port()];
    let mut env = vec![
        ("PORTCULLIS_DATA_DIR", dir.path().display().to_string()),
        ("DATABASE_URL", db),
        (
            "PORTCULLIS_PUBLIC_URL",
            format!("http://127.0.0.1:{}", ports[0]),
        ),
    ];
    if let Some(redis) = redis_url() {
        env.push(("REDIS_URL", redis));
        env.push((
            "PORTCULLIS_REDIS_PREFIX",
            format!("p{}", uuid::Uuid::new_v4().simple()),
        ));
    }
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    // The first start creates the master key; the second reads it.
    let a = instance_logging(&env, ports[0], Some(&logs[0])).await;
    let b = instance_logging(&env, ports[1], Some(&logs[1])).await;
    let links = [logged_setup_link(&logs[0]), logged_setup_link(&logs[1])];

    let attempt = |base: String, path: String, email: &'static str| async move {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let browser = browser_on(&base, &jar);
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{base}{path}: {}", page.body);
        let token = path.split("token=").nth(1).unwrap().to_string();
        let status = browser
            .post(
                "/setup",
                &[
                    ("csrf_token", page.csrf().as_str()),
                    ("token", token.as_str()),
                    ("email", email),
                    ("password", PASSWORD),
                ],
            )
            .await
            .status;
        (status, browser)
    };
    let (one, two) = tokio::join!(
        attempt(a.base.clone(), links[0].clone(), "first@example.com"),
        attempt(b.base.clone(), links[1].clone(), "second@example.com"),
    );
    let winners: Vec<_> = [(&one, "first@example.com"), (&two, "second@example.com")]
        .into_iter()
        .filter(|((status, _), _)| *status == StatusCode::SEE_OTHER)
        .collect();
    assert_eq!(winners.len(), 1, "one winner: {} and {}", one.0, two.0);
    // The winner is an administrator; the other address has no account at all.
    let ((_, browser), email) = winners[0];
    let account = browser.get("/account").await;
    assert!(account.body.contains("admin"), "{}", account.body);
    let loser = if email == "first@example.com" {
        "second@example.com"
    } else {
        "first@example.com"
    };
    let anon = browser_on(
        &a.base,
        &std::sync::Arc::new(reqwest::cookie::Jar::default()),
    );
    assert_eq!(
        anon.login(loser, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    drop(b);
}

/// A private PostgreSQL cluster (initdb in a temp dir, its own port), run as the
/// `postgres` user since PostgreSQL refuses to run as root.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
}

impl PrivatePostgres {
    fn as_postgres(&self, tool: &str, args: &[&str]) -> bool {
        let exe = self.bin.join(tool);
        let mut cmd = if nix_is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn create() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())?;
        let dir = tempfile::tempdir().ok()?;
        if nix_is_root() {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .ok()?;
        }
        let pg = Self {
            dir,
            port: free_port(),
            bin,
        };
        let data = pg.data();
        pg.as_postgres("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"])
            .then_some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start(&self) -> bool {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-o", &opts, "-w", "start"])
    }

    fn stop(&self) -> bool {
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.as_postgres("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test]
async fn a_postgresql_restart_is_survived_and_the_pool_reconnects() {
    // PostgreSQL is what this is about: it runs in the PostgreSQL pass of the suite.
    if std::env::var("TEST_DATABASE_URL").is_err() {
        return;
    }
    let pg = PrivatePostgres::create().expect("initdb a private PostgreSQL");
    assert!(pg.start(), "start the private PostgreSQL");
    let app = spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            database_url: Some(pg.url()),
            ..Default::default()
        },
    })
    .await;
    app.create_user("pia@example.com", &[]).await;
    let b = app.browser();
    b.login_ok("pia@example.com").await;
    assert_eq!(b.get("/readyz").await.status, StatusCode::OK);

    assert!(pg.stop(), "stop PostgreSQL");
    let ready = b.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    // Pages answer something readable meanwhile, never a 500.
    for path in ["/login", "/account"] {
        let page = b.get(path).await;
        assert_ne!(
            page.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {}",
            page.body
        );
    }
    let p = app.browser().login("pia@example.com", PASSWORD).await;
    assert_ne!(p.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", p.body);

    assert!(pg.start(), "start PostgreSQL again");
    wait_until("/readyz to recover", async || {
        b.get("/readyz").await.status == StatusCode::OK
    })
    .await;
    // The same instance, no restart: its session and new sign-ins work again.
    wait_until("the session to work again", async || {
        b.get("/account").await.status == StatusCode::OK
    })
    .await;
    let other = app.browser();
    other.login_ok("pia@example.com").await;
    assert_eq!(other.get("/account").await.status, StatusCode::OK);
}

/// A data directory left readable by everyone (an older version, a copy, `mkdir` with
/// the default umask) is closed at start, and the log names each path it changed.
#[tokio::test]
async fn a_world_readable_data_dir_is_closed_at_start_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = data.join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let stray = [
        data.join("portcullis.db"),
        outbox.join("0a1b.eml"),
        data.join("notes.txt"),
    ];
    for f in &stray {
        std::fs::write(f, b"").unwrap();
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    for d in [&data, &outbox] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let port = free_port();
    let mut env = vec![
        ("PORTCULLIS_DATA_DIR", data.display().to_string()),
        ("DATABASE_URL", database_url(&data)),
    ];
    if let Some(redis) = redis_url() {
        env.push(("REDIS_URL", redis));
        env.push((
            "PORTCULLIS_REDIS_PREFIX",
            format!("p{}", uuid::Uuid::new_v4().simple()),
        ));
    }
    let log = dir.path().join("serve.log");
    let a = instance_logging(&env, port, Some(&log)).await;
    assert_eq!(crate::data_dir::too_open(&data), vec![]);
    let text = std::fs::read_to_string(&log).unwrap();
    for p in stray.iter().chain([&data, &outbox]) {
        assert!(text.contains(&p.display().to_string()), "{p:?} in {text}");
    }
    drop(a);
    // Nothing left to fix: a second start stays quiet about it.
    let log2 = dir.path().join("again.log");
    let _b = instance_logging(&env, free_port(), Some(&log2)).await;
    let again = std::fs::read_to_string(&log2).unwrap();
    assert!(!again.contains(&data.display().to_string()), "{again}");
}
