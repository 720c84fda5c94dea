//! Forward auth (`/auth/forward`): a reverse proxy asks, for each request to a site it
//! protects, whether to let it through. The answer is the user (for the `Remote-*`
//! headers), "sign in first" (with where to), or a plain refusal.
//!
//! Sign-in happens on our pages, at the sign-in address of the app's cookie domain
//! (`domain::forward::cookie_domain`), and comes back through
//! `/auth/forward/return?rd=…`, which redirects only to an allowed address
//! (`domain::forward::allowed_return`): this service's origin, a domain in
//! `forward_auth_allowed_domains`, or a cookie domain.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use super::{Access, Principal};
use crate::auth::InternalError;
use crate::config::Config;
use crate::domain::forward::allowed_return;
use crate::domain::forward::cookie_domain::{CookieDomain, for_host};
use crate::domain::forward::original::{Original, Style};

/// The forward-auth service.
#[derive(Clone)]
pub struct ForwardAuth {
    access: Access,
    public_url: Url,
    /// `forward_auth_allowed_domains` and the cookie domains.
    allowed: Vec<String>,
    cookie_domains: Vec<CookieDomain>,
}

/// What to tell the proxy.
#[derive(Debug)]
pub enum ForwardAnswer {
    /// Let the request through, with this user in the headers.
    Allow(Principal),
    /// Not signed in: send the browser to `location`, in the proxy's way.
    SignIn {
        location: String,
        style: Style,
        /// The original request's method (a redirect after a POST is a 303).
        method: String,
    },
    /// Not signed in, and no allowed address to come back to.
    Unauthorized,
}

impl ForwardAuth {
    pub fn new(access: Access, config: &Config) -> Self {
        let mut allowed = config.forward_auth_allowed_domains.clone();
        allowed.extend(config.cookie_domains.iter().map(|d| d.domain.clone()));
        Self {
            access,
            public_url: config.public_url.clone(),
            allowed,
            cookie_domains: config.cookie_domains.clone(),
        }
    }

    /// The answer for a request by `user_id` (None: no session) to `original` (None:
    /// the proxy did not say, or is not trusted to).
    pub async fn answer(
        &self,
        user_id: Option<&str>,
        original: Option<Original>,
    ) -> Result<ForwardAnswer, InternalError> {
        if let Some(uid) = user_id
            && let Some(who) = self.access.principal(uid).await?
        {
            return Ok(ForwardAnswer::Allow(who));
        }
        let Some(original) = original else {
            return Ok(ForwardAnswer::Unauthorized);
        };
        Ok(match self.sign_in_url(&original.url) {
            Some(location) => ForwardAnswer::SignIn {
                location,
                style: original.style,
                method: original.method,
            },
            None => ForwardAnswer::Unauthorized,
        })
    }

    /// `rd` as a parsed address, if forward auth may send a browser there.
    pub fn return_target(&self, rd: &str) -> Option<Url> {
        allowed_return(rd, &self.public_url, &self.allowed)
    }

    /// The sign-in page that comes back to `original`: on the sign-in address of the
    /// cookie domain the app is under (so the cookie is written where the app sees it),
    /// else on the public URL.
    fn sign_in_url(&self, original: &Url) -> Option<String> {
        let url = self.return_target(original.as_str())?;
        let portal = url
            .host_str()
            .and_then(|h| for_host(&self.cookie_domains, h))
            .and_then(|d| d.portal.as_ref())
            .unwrap_or(&self.public_url);
        let back = format!("/auth/forward/return?rd={}", enc(url.as_str()));
        Some(format!(
            "{}/login?next={}",
            portal.as_str().trim_end_matches('/'),
            enc(&back)
        ))
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}
