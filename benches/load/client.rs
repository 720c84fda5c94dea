//! HTTP: the bench's client, its user, and signing in like a browser.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{COOKIE, HeaderValue, LOCATION};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode, Url};

use super::*;

pub(crate) const EMAIL: &str = "bench@example.com";
pub(crate) const PASSWORD: &str = "correct horse battery staple 42";
/// Concurrent requests for the throughput figure.
pub(crate) const HTTP_CONCURRENCY: usize = 32;
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn plain_client() -> Result<Client, String> {
    Client::builder()
        .redirect(Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(HTTP_CONCURRENCY)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("http client: {e}"))
}

pub(crate) fn csrf_from(html: &str) -> Result<String, String> {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse(r#"input[name="csrf_token"]"#)
        .map_err(|e| format!("selector: {e}"))?;
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr("value"))
        .map(str::to_string)
        .ok_or_else(|| "no csrf_token input on /login".to_string())
}

/// Creates the bench's user (EMAIL / PASSWORD, verified, with `roles`) through the CLI,
/// with the server's own environment.
pub(crate) fn create_bench_user(bin: &Path, server: &Server, roles: &[&str]) -> Result<(), String> {
    let mut cli = Command::new(bin);
    cli.args(["user", "create", "--email", EMAIL, "--verified"]);
    for r in roles {
        cli.args(["--role", r]);
    }
    cli.env_clear().envs(server.env.iter().map(|(k, v)| (k, v)));
    let out = run_cmd(
        &mut cli,
        Some(&format!("{PASSWORD}\n")),
        Duration::from_secs(60),
    )?;
    if !out.ok {
        return Err(format!(
            "portcullis user create failed: {}{}",
            out.stdout.trim(),
            out.stderr.trim()
        ));
    }
    Ok(())
}

/// Signs in like a browser (cookie jar, form token); returns the signed-in Cookie header.
pub(crate) async fn sign_in(server: &Server) -> Result<HeaderValue, String> {
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let page = client
        .get(server.url("/login"))
        .send()
        .await
        .map_err(|e| format!("GET /login: {e}"))?;
    if page.status() != StatusCode::OK {
        return Err(format!("GET /login: {}", page.status()));
    }
    let token = csrf_from(&page.text().await.map_err(|e| format!("GET /login: {e}"))?)?;
    let res = client
        .post(server.url("/login"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .map_err(|e| format!("POST /login: {e}"))?;
    let location = location_header(&res);
    if res.status() != StatusCode::SEE_OTHER || location != "/account" {
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        return Err(format!(
            "POST /login: expected 303 to /account, got {status} to {location:?}: {}",
            snippet(&body)
        ));
    }
    let base = Url::parse(&server.base).map_err(|e| e.to_string())?;
    let cookie = jar
        .cookies(&base)
        .ok_or_else(|| "no cookies after sign-in".to_string())?;
    let text = cookie.to_str().map_err(|e| e.to_string())?;
    if !text.split("; ").any(|c| c.starts_with("portcullis=")) || !text.contains("portcullis_csrf=")
    {
        return Err(format!("unexpected cookies after sign-in: {text}"));
    }
    // The explicit header must be enough on its own.
    let check = plain_client()?
        .get(server.url("/account"))
        .header(COOKIE, cookie.clone())
        .send()
        .await
        .map_err(|e| format!("GET /account: {e}"))?;
    let status = check.status();
    let body = check.text().await.unwrap_or_default();
    if status != StatusCode::OK || !body.contains(EMAIL) {
        return Err(format!(
            "GET /account after sign-in: {status}: {}",
            snippet(&body)
        ));
    }
    Ok(cookie)
}

/// The `Location` header of a response, empty when it has none (or not as text).
pub(crate) fn location_header(res: &reqwest::Response) -> String {
    res.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

pub(crate) fn snippet(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    s.chars().take(160).collect()
}
