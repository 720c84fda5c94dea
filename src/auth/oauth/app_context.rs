//! Which app a sign-in is for, as the sign-in and consent pages name it: the
//! registered client's name and the host of its redirect URI. Everything shown comes
//! from the client's record, never from the request itself: a link can name any
//! `client_id`, but only a registered client has a name to show, and only a redirect
//! URI the client registered has a host worth showing.

use crate::auth::oauth::OAuthProvider;

/// The app a page names: "continue to `name` (`host`)". One of the two at least.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppContext {
    pub name: Option<String>,
    pub host: Option<String>,
}

/// The host of an absolute URL (`wiki.example.com`), if it has one.
pub fn host_of(uri: &str) -> Option<String> {
    url::Url::parse(uri)
        .ok()?
        .host_str()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

impl OAuthProvider {
    /// The app `client_id` names, with the host of `redirect_uri` when the client
    /// registered it. `redirect_uri` is `None` when the request does not carry it (a
    /// pushed request no longer held): then the host is shown only when every
    /// registered redirect URI has the same one. An unknown client (or a failed
    /// lookup: this is only a label) is `None`.
    pub async fn app_context(
        &self,
        client_id: &str,
        redirect_uri: Option<&str>,
    ) -> Option<AppContext> {
        if client_id.is_empty() {
            return None;
        }
        let generation = self.generation().await;
        let client = self.client(generation, client_id).await.ok()??;
        let registered = client.redirect_uris();
        let host = match redirect_uri {
            Some(uri) if registered.iter().any(|r| r == uri) => host_of(uri),
            Some(_) => None,
            None => {
                let mut hosts = registered.iter().filter_map(|u| host_of(u));
                let first = hosts.next();
                first.filter(|f| hosts.all(|h| &h == f))
            }
        };
        Some(AppContext {
            name: Some(client.name.clone()),
            host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_the_domain_without_scheme_port_or_path() {
        assert_eq!(
            host_of("https://wiki.example.com:8443/cb?x=1").as_deref(),
            Some("wiki.example.com")
        );
        assert_eq!(host_of("com.example.app:/cb"), None);
        assert_eq!(host_of("not a url"), None);
    }
}
