//! The harness: the real application on port 0 with a fresh database per test, and
//! browsers (reqwest clients with their own cookie jar, not following redirects).

use std::sync::LazyLock;

use diesel::{Connection, PgConnection, RunQueryDsl};
use portcullis::auth::accounts::{NewAccount, create_user};
use portcullis::auth::audit::AuditCtx;
use portcullis::clock::Clock;
use portcullis::config::{Config, FileConfig};
use portcullis::db::repo::audit::AuditEvent;
use portcullis::startup::Application;
use portcullis::web::state::AppState;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use scraper::{Html, Selector};

pub const PASSWORD: &str = "correct horse battery staple 42";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        portcullis::telemetry::init();
    }
});

pub struct TestApp {
    pub handle: portcullis::startup::AppHandle,
    pub base: String,
    pub state: actix_web::web::Data<AppState>,
    /// The database and hasher behind the services, for arranging and inspecting.
    pub db: portcullis::db::Db,
    pub hasher: portcullis::auth::password::Hasher,
    pub clock: Clock,
    pub data_dir: tempfile::TempDir,
    pub config: Config,
    pub setup_link: Option<String>,
}

/// Test-specific configuration on top of the defaults.
#[derive(Default)]
pub struct Options {
    pub file: FileConfig,
}

/// Settings for an app that delivers mail to `smtp_url`, retrying every second.
pub fn with_smtp(smtp_url: &str) -> FileConfig {
    FileConfig {
        smtp_url: Some(smtp_url.to_string()),
        mail_retry_base_secs: Some(1),
        mail_retry_max_secs: Some(1),
        ..Default::default()
    }
}

/// A fresh PostgreSQL database when asked for one, else a SQLite file in `dir`.
pub fn database_url(dir: &std::path::Path) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            let mut admin = PgConnection::establish(&base).unwrap_or_else(|e| {
                panic!("TEST_DATABASE_URL is set but PostgreSQL cannot be reached: {e}")
            });
            let name = format!("pc_test_{}", uuid::Uuid::new_v4().simple());
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .expect("create test database");
            let mut url = url::Url::parse(&base).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            // libpq over TLS can crash at process exit while pool threads still close
            // connections (diesel-rs/diesel#3441); the test server is on loopback.
            if !url.query_pairs().any(|(k, _)| k == "sslmode") {
                url.query_pairs_mut().append_pair("sslmode", "disable");
            }
            url.to_string()
        }
        _ => format!("sqlite://{}", dir.join("portcullis.db").display()),
    }
}

pub fn redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    LazyLock::force(&TRACING);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut f = opts.file;
    if f.listen.is_none() {
        f.listen = Some("127.0.0.1:0".into());
    }
    f.data_dir = Some(dir.path().display().to_string());
    if f.database_url.is_none() {
        f.database_url = Some(database_url(dir.path()));
    }
    if f.redis_url.is_none()
        && let Some(r) = redis_url()
    {
        f.redis_url = Some(r);
        f.redis_prefix = Some(format!("t{}", uuid::Uuid::new_v4().simple()));
    }
    let config = f.validate().expect("valid test config");
    let clock = Clock::system();
    let app = Application::build_with_clock(config.clone(), clock.clone())
        .await
        .expect("application starts");
    let port = app.port();
    let state = app.state.clone();
    let (db, hasher) = (app.db.clone(), app.hasher.clone());
    let setup_link = app.setup_link.clone();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        handle,
        base: format!("http://127.0.0.1:{port}"),
        state,
        db,
        hasher,
        clock,
        data_dir: dir,
        config,
        setup_link,
    }
}

impl TestApp {
    pub fn browser(&self) -> Browser {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        Browser {
            base: self.base.clone(),
            client: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar,
        }
    }

    /// Creates a verified user directly (faster than the registration pages).
    pub async fn create_user(&self, email: &str, roles: &[&str]) -> String {
        let st = &self.state;
        let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
        let input = NewAccount {
            email: email.into(),
            password: PASSWORD.into(),
            display_name: Some("Test User".into()),
        };
        create_user(
            &self.db,
            &self.hasher,
            &st.clock,
            10,
            input,
            &roles,
            true,
            &AuditCtx::cli(),
        )
        .await
        .expect("user created")
        .id
    }

    /// Newest first.
    pub async fn audit(&self) -> Vec<AuditEvent> {
        self.db
            .run(|c| {
                portcullis::db::repo::audit::recent(c, None, 1000)
                    .map_err(portcullis::db::DbError::from)
            })
            .await
            .expect("audit rows")
    }

    pub async fn audit_names(&self) -> Vec<String> {
        self.audit().await.into_iter().map(|e| e.event).collect()
    }

    /// Messages written to the outbox folder (no SMTP configured).
    pub fn outbox(&self) -> Vec<String> {
        let dir = self.data_dir.path().join("outbox");
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .filter_map(|p| std::fs::read_to_string(p).ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Waits (bounded) for background mail to land.
    pub async fn wait_for_outbox(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let v = self.outbox();
            if v.len() >= n {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.outbox()
    }
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn doc(&self) -> Html {
        Html::parse_document(&self.body)
    }

    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        let sel = Selector::parse("input[name=csrf_token]").unwrap();
        self.doc()
            .select(&sel)
            .next()
            .and_then(|e| e.value().attr("value"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no csrf_token on page: {}", self.body))
    }

    pub fn text_of(&self, css: &str) -> Option<String> {
        let sel = Selector::parse(css).unwrap();
        self.doc()
            .select(&sel)
            .next()
            .map(|e| e.text().collect::<String>().trim().to_string())
    }

    pub fn count(&self, css: &str) -> usize {
        let sel = Selector::parse(css).unwrap();
        self.doc().select(&sel).count()
    }

    /// The error the page shows: the message in the error summary of a form, or
    /// else the first alert.
    pub fn error(&self) -> Option<String> {
        self.text_of(".error-summary li")
            .or_else(|| self.text_of("[role=alert]"))
    }

    /// An attribute of the first element matching `css`.
    pub fn attr_of(&self, css: &str, name: &str) -> Option<String> {
        let sel = Selector::parse(css).unwrap();
        self.doc()
            .select(&sel)
            .next()
            .and_then(|e| e.value().attr(name))
            .map(str::to_string)
    }
}

pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub jar: std::sync::Arc<reqwest::cookie::Jar>,
}

pub fn assert_redirect(p: &Page, to: &str) {
    assert_eq!(
        p.status,
        StatusCode::SEE_OTHER,
        "expected a redirect to {to}, body: {}",
        p.body
    );
    assert_eq!(p.location().as_deref(), Some(to));
}

impl Browser {
    async fn page(resp: reqwest::Response) -> Page {
        Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.expect("body"),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Self::page(
            self.client
                .post(format!("{}{path}", self.base))
                .form(fields)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// Opens `page_path`, takes the CSRF token from it, and posts `fields` to `action`.
    pub async fn submit(&self, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.get(page_path).await.csrf();
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Page {
        self.submit(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    pub async fn login_ok(&self, email: &str) {
        let p = self.login(email, PASSWORD).await;
        assert_redirect(&p, "/account");
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> Page {
        self.submit(
            "/register",
            "/register",
            &[
                ("email", email),
                ("password", password),
                ("display_name", name),
            ],
        )
        .await
    }

    pub async fn logout(&self) -> Page {
        self.submit("/account", "/logout", &[]).await
    }

    fn url(&self) -> url::Url {
        url::Url::parse(&self.base).expect("base URL")
    }

    /// A cookie's value from this browser's jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore as _;
        let header = self.jar.cookies(&self.url())?;
        header.to_str().ok()?.split("; ").find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    /// Plants a cookie, as an attacker or a copied cookie would.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .add_cookie_str(&format!("{name}={value}; Path=/"), &self.url());
    }

    /// A second browser that carries a copy of this one's cookies (a stolen cookie).
    pub fn clone_cookies_into(&self, other: &Browser) {
        use reqwest::cookie::CookieStore as _;
        if let Some(h) = self.jar.cookies(&self.url()) {
            for kv in h.to_str().unwrap_or("").split("; ") {
                other
                    .jar
                    .add_cookie_str(&format!("{kv}; Path=/"), &other.url());
            }
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ok` every 100 ms for up to 30 s; panics naming `what` if it never holds.
pub async fn wait_until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if ok().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
