//! "Sign in to continue to Team Wiki (wiki.example.com)": which app the sign-in pages
//! are for, read from their `next` on the server. An authorization request names its
//! client by id, and the provider's record gives the name (`auth::oauth::app_context`);
//! a pushed request held by this browser gives its (already checked) redirect URI; a
//! forward-auth return names the app's host when forward auth may send a browser there.
//! Anything else, or anything unknown, names no app.

use crate::auth::oauth::app_context::{AppContext, host_of};
use crate::web::ctx::Ctx;
use crate::web::handlers::oauth::authorize::pushed_request;

/// The app the sign-in that continues at `next` is for, if we can tell.
pub async fn app_context(ctx: &Ctx, next: &str) -> Option<AppContext> {
    if let Some(query) = next.strip_prefix("/auth/forward/return?") {
        let (_, rd) = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "rd")?;
        let target = ctx.state.forward.return_target(&rd)?;
        return Some(AppContext {
            name: None,
            host: host_of(target.as_str()),
        })
        .filter(|a| a.host.is_some());
    }
    let query = next.strip_prefix("/oauth/authorize?")?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let client_id = get("client_id")?;
    let redirect_uri = if get("request_uri").is_some() {
        pushed_request(ctx, next)
            .filter(|r| r.client_id == client_id)
            .map(|r| r.redirect_uri)
    } else {
        Some(get("redirect_uri").unwrap_or_default().to_string())
    };
    ctx.state
        .oauth
        .app_context(client_id, redirect_uri.as_deref())
        .await
}
