//! node `oidc-provider`, measured on this machine in this run with the same wrk loads,
//! so the provider targets ("≥ 5× node's discovery and JWKS", "client_credentials ≥
//! node's") are ratios of one run rather than of figures taken on another machine.
//! The figures (`oidc::NODE_*`) were measured on a machine whose own loopback
//! is faster than some this bench runs on; they are kept as the fallback when node or
//! the npm registry is not there, and the report says which one a target used.
//!
//! The server is `benches/reference/oidc-provider/server.mjs`, at the version locked in
//! its `package-lock.json` (installed with `npm ci` on first use).

use super::*;

pub struct NodeRates {
    pub discovery: f64,
    pub jwks: f64,
    pub client_credentials: f64,
    pub idle_rss_kib: Option<u64>,
}

const SECRET: &str = "bench-reference-secret-0123456789abcdef";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/oidc-provider")
}

/// Installs the locked packages when they are not there yet.
fn install() -> Result<(), String> {
    if dir().join("node_modules/oidc-provider").is_dir() {
        return Ok(());
    }
    eprintln!("bench: npm ci in {}", dir().display());
    let out = run_cmd(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir()),
        None,
        Duration::from_secs(300),
    )?;
    if !out.ok {
        return Err(format!("npm ci failed: {}", snippet(&out.stderr)));
    }
    Ok(())
}

/// A running reference server, stopped when dropped.
struct Node {
    child: std::process::Child,
    pid: u32,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        unregister(|r| &mut r.pids, &self.pid);
    }
}

pub async fn measure() -> Result<NodeRates, String> {
    install()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let child = Command::new("node")
        .arg("server.mjs")
        .current_dir(dir())
        .env("PORT", port.to_string())
        .env("CLIENT_SECRET", SECRET)
        .env("NODE_ENV", "production")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start node: {e}"))?;
    let pid = child.id();
    registry().pids.push(pid);
    let node = Node { child, pid };
    let base = format!("http://127.0.0.1:{port}");
    let discovery_url = format!("{base}/.well-known/openid-configuration");
    let client = plain_client()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let jwks_url = loop {
        if let Ok(r) = client.get(&discovery_url).send().await
            && r.status() == StatusCode::OK
        {
            let doc: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
            break doc["jwks_uri"]
                .as_str()
                .ok_or("node's discovery has no jwks_uri")?
                .to_string();
        }
        if Instant::now() > deadline {
            return Err("node oidc-provider did not answer within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let idle_rss_kib = read_rss_kib(node.pid);
    eprintln!("[node] wrk: discovery, JWKS, client_credentials, {HTTP_CONCURRENCY} connections");
    let discovery = wrk::rate(&discovery_url, wrk::Request::get()).await?;
    let jwks = wrk::rate(&jwks_url, wrk::Request::get()).await?;
    let client_credentials = wrk::rate(
        &format!("{base}/token"),
        wrk::Request::post_form("grant_type=client_credentials".into())
            .header("Authorization", oidc::basic("bench", SECRET)),
    )
    .await?;
    for (name, t) in [
        ("discovery", &discovery),
        ("JWKS", &jwks),
        ("client_credentials", &client_credentials),
    ] {
        if let Some(p) = t.problems() {
            return Err(format!("node {name}: {p}"));
        }
    }
    drop(node);
    Ok(NodeRates {
        discovery: discovery.rate(),
        jwks: jwks.rate(),
        client_credentials: client_credentials.rate(),
        idle_rss_kib,
    })
}
