//! Where a sign-in page continues to, and so which other origins its forms may lead
//! to. Browsers apply the CSP's `form-action` to every redirect after a form is sent:
//! without the app's origin there, the last hop back to the app is blocked. Only the
//! pages of a sign-in that continues to an app get it, and only that app's origin.

use actix_web::HttpResponse;

use crate::web::headers::FormTargets;
use crate::web::state::AppState;

/// The origin `next` finally leads to, outside our own: an authorization request's
/// registered redirect URI, or the app behind forward auth that the sign-in returns
/// to (when its address is allowed).
pub async fn return_targets(st: &AppState, next: &str) -> Vec<String> {
    if let Some(query) = next.strip_prefix("/auth/forward/return?") {
        return url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "rd")
            .and_then(|(_, rd)| st.forward.return_target(&rd))
            .map(|u| u.origin().ascii_serialization())
            .into_iter()
            .collect();
    }
    st.oauth.return_origin(next).await
}

/// Lets the page's forms lead to `targets` (see `headers::FormTargets`).
pub fn allow_targets(mut res: HttpResponse, targets: Vec<String>) -> HttpResponse {
    if !targets.is_empty() {
        res.extensions_mut().insert(FormTargets(targets));
    }
    res
}
