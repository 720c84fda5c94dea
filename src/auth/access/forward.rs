//! Forward auth (`/auth/forward`): a reverse proxy asks, for each request to a site it
//! protects, whether to let it through. The answer is the user (for the `Remote-*`
//! headers), "sign in first" (with where to), or a plain refusal.
//!
//! Sign-in happens on our pages, at the sign-in address of the app's cookie domain
//! (`domain::forward::cookie_domain`), and comes back through
//! `/auth/forward/return?rd=…`, which redirects only to an allowed address
//! (`domain::forward::allowed_return`): this service's origin, a domain in
//! `forward_auth_allowed_domains`, or a cookie domain.
//!
//! Which sites a user may reach, and how proven, is the access rules' decision
//! (`domain::access`, compiled in [`Policies`]): every answer goes through
//! [`ForwardAuth::answer`], so no path can skip them.

use std::net::IpAddr;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use super::policy::{Denial, Policies};
use super::{Access, Principal};
use crate::auth::InternalError;
use crate::auth::audit::AuditCtx;
use crate::config::Config;
use crate::domain::access::{Policy, Request, Verdict};
use crate::domain::forward::allowed_return;
use crate::domain::forward::cookie_domain::{CookieDomain, for_host};
use crate::domain::forward::original::{Original, Style};

/// The forward-auth service.
#[derive(Clone)]
pub struct ForwardAuth {
    access: Access,
    pub policies: Policies,
    public_url: Url,
    /// `forward_auth_allowed_domains` and the cookie domains.
    allowed: Vec<String>,
    cookie_domains: Vec<CookieDomain>,
}

/// Who asks. A session's parts are borrowed from the request's signed-in state: a
/// proxy asks before every request it passes.
#[derive(Debug, Clone)]
pub enum Caller<'a> {
    Anonymous,
    /// A browser session: when it was proven, and with what (`amr`).
    Session {
        user_id: &'a str,
        auth_at: i64,
        amr: &'a [String],
    },
    /// A personal access token (a script): one factor, whatever the account has.
    Token {
        user_id: String,
    },
}

impl Caller<'_> {
    fn user_id(&self) -> Option<&str> {
        match self {
            Self::Anonymous => None,
            Self::Session { user_id, .. } => Some(user_id),
            Self::Token { user_id } => Some(user_id),
        }
    }
}

/// Why a signed-in request is refused, for the page that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// A rule (or the default) refuses this user here.
    Rule,
    /// The site needs a second factor and the account has none.
    NoSecondFactor,
    /// The site needs a second factor, which a token cannot prove.
    Token,
    /// The proxy did not say which site it asks about, and rules are set.
    UnknownSite,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::NoSecondFactor => "second_factor",
            Self::Token => "token",
            Self::UnknownSite => "unknown_site",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "second_factor" => Self::NoSecondFactor,
            "token" => Self::Token,
            "unknown_site" => Self::UnknownSite,
            _ => Self::Rule,
        }
    }
}

/// What to tell the proxy.
#[derive(Debug)]
pub enum ForwardAnswer {
    /// Let the request through, with this user in the headers (none on a public path
    /// asked for anonymously).
    Allow(Option<Principal>),
    /// Sign in first (or confirm a second factor): send the browser to `location`, in
    /// the proxy's way.
    SignIn {
        location: String,
        style: Style,
        /// The original request's method (a redirect after a POST is a 303).
        method: String,
        /// The caller's session names an account that is gone or disabled: end it, or
        /// the sign-in page, which trusts the session, would send the browser back.
        end_session: bool,
    },
    /// Refused. `location` is the page that explains it, when the site is known.
    Denied {
        reason: DenyReason,
        /// The site, as the user knows it.
        app: Option<String>,
        location: Option<String>,
    },
    /// Not signed in, and no allowed address to come back to.
    Unauthorized,
}

impl ForwardAuth {
    pub fn new(access: Access, policies: Policies, config: &Config) -> Self {
        let mut allowed = config.forward_auth_allowed_domains.clone();
        allowed.extend(config.cookie_domains.iter().map(|d| d.domain.clone()));
        Self {
            access,
            policies,
            public_url: config.public_url.clone(),
            allowed,
            cookie_domains: config.cookie_domains.clone(),
        }
    }

    /// The answer for `caller`'s request to `original` (None: the proxy did not say,
    /// or is not trusted to), from client address `ip`, at time `now`. `generation`:
    /// the cache generation counter when it was read along with the caller's session
    /// or token (with Redis, in the same round trip), else `None`. `audit` makes the
    /// audit context of a refusal (most answers write nothing).
    pub async fn answer(
        &self,
        caller: &Caller<'_>,
        original: Option<Original>,
        ip: IpAddr,
        now: i64,
        audit: &dyn Fn() -> AuditCtx,
        generation: Option<u64>,
    ) -> Result<ForwardAnswer, InternalError> {
        // One generation for both memos: with Redis, read in the caller's round trip
        // when it could be, else here (one more).
        let generation = self.access.generation(generation).await;
        let who = match caller.user_id() {
            Some(uid) => self.access.principal_at(generation, uid).await?,
            None => None,
        };
        // Rules an admin stored on another instance since the last request.
        self.policies.refresh_at(generation).await?;
        let rules = self.policies.current();
        let Some(original) = original else {
            // Without the address, no rule can be matched. With none set, the default
            // is all there is to apply; with some, refusing is the only safe answer.
            if !rules.rules().is_empty() {
                return Ok(ForwardAnswer::Denied {
                    reason: DenyReason::UnknownSite,
                    app: None,
                    location: None,
                });
            }
            return Ok(match (who, rules.default_policy()) {
                (_, Policy::Deny) => ForwardAnswer::Denied {
                    reason: DenyReason::Rule,
                    app: None,
                    location: None,
                },
                (Some(p), Policy::OneFactor) => ForwardAnswer::Allow(Some(p)),
                (Some(p), _) if self.second_factor_fresh(caller, now) => {
                    ForwardAnswer::Allow(Some(p))
                }
                _ => ForwardAnswer::Unauthorized,
            });
        };
        let req = Request::new(&original.host, &original.path, &original.method, ip);
        let mut who = who;
        let verdict = match who.as_mut() {
            Some(p) => p.as_subject(|s| rules.decide(&req, Some(s))),
            None => rules.decide(&req, None),
        };
        let asked = &original;
        let deny = |reason: DenyReason| async move {
            let rule_name = match verdict.rule() {
                Some(i) => rules.rules()[i].name.as_str(),
                None => "default",
            };
            self.policies
                .record_denial(
                    Denial {
                        user_id: caller.user_id(),
                        host: &req.host,
                        path: &req.path,
                        method: &req.method,
                        rule: rule_name,
                        reason: reason.as_str(),
                    },
                    &audit(),
                )
                .await?;
            // A script gets the 403 itself; a browser, the page that says why.
            let location = match (caller, asked.url()) {
                (Caller::Token { .. }, _) | (_, None) => None,
                (_, Some(url)) => self.page_url(&url, "/auth/forward/denied", reason),
            };
            Ok::<_, InternalError>(ForwardAnswer::Denied {
                reason,
                app: Some(asked.host.clone()),
                location,
            })
        };
        let policy = match (verdict, &who) {
            (Verdict::Policy(Policy::Bypass, _), _) => return Ok(ForwardAnswer::Allow(who)),
            (Verdict::Policy(Policy::Deny, _), _) => return deny(DenyReason::Rule).await,
            (Verdict::NeedsIdentity(_), _) | (_, None) => {
                // Who asks is not known (or the account is gone): sign in. A token
                // that names no live account gets no sign-in page.
                if matches!(caller, Caller::Token { .. }) {
                    return Ok(ForwardAnswer::Unauthorized);
                }
                let ended = matches!(caller, Caller::Session { .. });
                return Ok(self.sign_in(&original, "/login", None, ended));
            }
            (Verdict::Policy(p, _), Some(_)) => p,
        };
        if policy == Policy::OneFactor || self.second_factor_fresh(caller, now) {
            return Ok(ForwardAnswer::Allow(who));
        }
        // two_factor, not proven recently enough.
        match caller {
            Caller::Token { .. } => deny(DenyReason::Token).await,
            Caller::Session { user_id, .. } => {
                if crate::auth::mfa::status(&self.access.db, user_id)
                    .await?
                    .any()
                {
                    Ok(self.sign_in(&original, "/login/reauth", Some("factor=1"), false))
                } else {
                    deny(DenyReason::NoSecondFactor).await
                }
            }
            Caller::Anonymous => Ok(self.sign_in(&original, "/login", None, false)),
        }
    }

    /// A session whose second factor was proven within the configured time.
    fn second_factor_fresh(&self, caller: &Caller<'_>, now: i64) -> bool {
        match caller {
            Caller::Session { auth_at, amr, .. } => {
                amr.iter().any(|m| m == "mfa")
                    && now.saturating_sub(*auth_at) <= self.policies.two_factor_max_age
            }
            _ => false,
        }
    }

    fn sign_in(
        &self,
        original: &Original,
        page: &str,
        extra: Option<&str>,
        end_session: bool,
    ) -> ForwardAnswer {
        match original
            .url()
            .and_then(|url| self.return_page(&url, page, extra))
        {
            Some(location) => ForwardAnswer::SignIn {
                location,
                style: original.style,
                method: original.method.clone(),
                end_session,
            },
            None => ForwardAnswer::Unauthorized,
        }
    }

    /// `rd` as a parsed address, if forward auth may send a browser there.
    pub fn return_target(&self, rd: &str) -> Option<Url> {
        allowed_return(rd, &self.public_url, &self.allowed)
    }

    /// The page (`/login`, `/login/reauth`) that comes back to `original`: on the
    /// sign-in address of the cookie domain the app is under (so the cookie is
    /// written where the app sees it), else on the public URL.
    fn return_page(&self, original: &Url, page: &str, extra: Option<&str>) -> Option<String> {
        let url = self.return_target(original.as_str())?;
        let back = format!("/auth/forward/return?rd={}", enc(url.as_str()));
        let extra = extra.map(|e| format!("{e}&")).unwrap_or_default();
        Some(format!(
            "{}{page}?{extra}next={}",
            self.portal(&url),
            enc(&back)
        ))
    }

    /// The page that explains a refusal, on the portal of the app's domain.
    fn page_url(&self, original: &Url, page: &str, reason: DenyReason) -> Option<String> {
        let url = self.return_target(original.as_str())?;
        Some(format!(
            "{}{page}?rd={}&why={}",
            self.portal(&url),
            enc(url.as_str()),
            reason.as_str()
        ))
    }

    fn portal(&self, url: &Url) -> String {
        url.host_str()
            .and_then(|h| for_host(&self.cookie_domains, h))
            .and_then(|d| d.portal.as_ref())
            .unwrap_or(&self.public_url)
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}
