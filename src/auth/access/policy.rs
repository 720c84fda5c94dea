//! The access rules forward auth runs, compiled once per change, and the record of
//! who was refused. A proxy asks on every request, so a refused user reloading a page
//! (or a script looping) must not write an audit event each time: denials are written
//! once per user, site and rule per minute, with how many were folded in.

use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record_alone};
use crate::clock::Clock;
use crate::db::Db;
use crate::domain::access::compiled::Compiled;
use crate::domain::access::{Policy, Rule};
use crate::domain::audit::{AuditAction, Outcome};

/// One audit event per key per this many seconds.
const DENIAL_WINDOW_SECS: i64 = 60;
/// Past this many keys, old ones are dropped (a flood of distinct keys must not grow
/// memory without bound).
const DENIAL_KEYS_MAX: usize = 10_000;

#[derive(Clone)]
pub struct Policies {
    compiled: Arc<RwLock<Arc<Compiled>>>,
    /// Rules from the configuration file; they come before those stored by admins.
    configured: Arc<Vec<Rule>>,
    default: Policy,
    /// `access_two_factor_max_age_secs`.
    pub two_factor_max_age: i64,
    db: Db,
    clock: Clock,
    /// key → (window start, denials folded in since).
    denials: Arc<DashMap<String, (i64, u64)>>,
}

/// What was refused, for the audit log.
pub struct Denial<'a> {
    pub user_id: Option<&'a str>,
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a str,
    /// The deciding rule's name, or "default".
    pub rule: &'a str,
    /// Why, in a word: `rule`, `second_factor`, `token`.
    pub reason: &'a str,
}

impl Policies {
    pub fn new(
        db: Db,
        clock: Clock,
        rules: Vec<Rule>,
        default: Policy,
        two_factor_max_age: i64,
    ) -> Self {
        let compiled = Compiled::new(rules.clone(), default);
        Self {
            compiled: Arc::new(RwLock::new(Arc::new(compiled))),
            configured: Arc::new(rules),
            default,
            two_factor_max_age,
            db,
            clock,
            denials: Arc::new(DashMap::new()),
        }
    }

    /// The rules in force, compiled; cheap (one reference count).
    pub fn current(&self) -> Arc<Compiled> {
        self.compiled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the rules that follow the configured ones.
    pub fn set_stored(&self, stored: Vec<Rule>) {
        let mut all: Vec<Rule> = self.configured.as_ref().clone();
        all.extend(stored);
        let next = Arc::new(Compiled::new(all, self.default));
        *self.compiled.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    pub fn default_policy(&self) -> Policy {
        self.default
    }

    /// Records a denial, folded with the others of the same user, site and rule in
    /// the current minute.
    pub async fn record_denial(&self, d: Denial<'_>, ctx: &AuditCtx) -> Result<(), InternalError> {
        let now = self.clock.now();
        let who = d.user_id.map_or_else(
            || format!("ip:{}", ctx.ip.as_deref().unwrap_or("")),
            |u| format!("user:{u}"),
        );
        let key = format!("{who}\u{0}{}\u{0}{}\u{0}{}", d.host, d.rule, d.reason);
        let folded = {
            let mut entry = self.denials.entry(key).or_insert((i64::MIN, 0));
            if now.saturating_sub(entry.0) < DENIAL_WINDOW_SECS {
                entry.1 += 1;
                return Ok(());
            }
            let folded = entry.1;
            *entry = (now, 0);
            folded
        };
        if self.denials.len() > DENIAL_KEYS_MAX {
            self.denials
                .retain(|_, (start, _)| now.saturating_sub(*start) < DENIAL_WINDOW_SECS);
        }
        record_alone(
            &self.db,
            now,
            ctx,
            AuditAction::AccessDenied,
            Outcome::Failure,
            d.user_id.map(str::to_string),
            json!({
                "host": d.host,
                "path": d.path,
                "method": d.method,
                "rule": d.rule,
                "reason": d.reason,
                "earlier_denials_folded_in": folded,
            }),
        )
        .await
    }
}

/// A decision in words, for `portcullis policy check` and the admin test form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// `allow` (a public path), `deny`, `one_factor` or `two_factor`.
    pub decision: &'static str,
    /// The deciding rule's name, or `default`.
    pub rule: String,
    pub why: String,
}

/// Why a request could not be tried against the rules.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("{0}")]
    BadRequest(String),
    #[error("No active account has the email address {0}.")]
    NoSuchUser(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Policies {
    /// What forward auth would decide for the account with `email` (anonymous when
    /// `None`) asking for `url`: the admin page's "test a request" and `policy check`.
    pub async fn test(
        &self,
        access: &super::Access,
        email: Option<&str>,
        url: &str,
        method: &str,
        ip: std::net::IpAddr,
    ) -> Result<Explanation, TestError> {
        let parsed = url::Url::parse(url.trim())
            .map_err(|e| TestError::BadRequest(format!("The address {url} is not a URL: {e}.")))?;
        let Some(host) = parsed.host_str() else {
            return Err(TestError::BadRequest(format!(
                "The address {url} names no host."
            )));
        };
        let method = method.trim().to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(TestError::BadRequest(format!(
                "{method:?} is not an HTTP method."
            )));
        }
        let subject = match email.map(str::trim).filter(|e| !e.is_empty()) {
            None => None,
            Some(email) => {
                let who = access
                    .principal_by_email(email)
                    .await?
                    .ok_or_else(|| TestError::NoSuchUser(email.to_string()))?;
                Some(crate::domain::access::Subject {
                    email: who.email.to_lowercase(),
                    groups: who.groups,
                    roles: who.roles,
                })
            }
        };
        let req = crate::domain::access::Request::new(host, parsed.path(), &method, ip);
        Ok(self.explain(&req, subject.as_ref()))
    }

    /// What forward auth would decide for `who` asking for `req`.
    pub fn explain(
        &self,
        req: &crate::domain::access::Request,
        who: Option<&crate::domain::access::Subject>,
    ) -> Explanation {
        use crate::domain::access::Verdict;
        let rules = self.current();
        let verdict = rules.decide(req, who);
        let word = |p: Policy| match p {
            Policy::Bypass => "allow",
            Policy::Deny => "deny",
            Policy::OneFactor => "one_factor",
            Policy::TwoFactor => "two_factor",
        };
        match verdict {
            Verdict::Policy(p, crate::domain::access::DecidedBy::Default) => Explanation {
                decision: word(p),
                rule: "default".into(),
                why: format!(
                    "no rule matches {} {}{}; access_default is {}",
                    req.method,
                    req.host,
                    req.path,
                    p.as_str()
                ),
            },
            _ => {
                let i = verdict.rule().unwrap_or_default();
                let rule = &rules.rules()[i];
                let decision = match verdict {
                    Verdict::Policy(p, _) => word(p),
                    Verdict::NeedsIdentity(_) => "one_factor",
                };
                Explanation {
                    decision,
                    rule: rule.name.clone(),
                    why: format!(
                        "rule {} of {} matches: {}",
                        i + 1,
                        rules.rules().len(),
                        rule.describe()
                    ),
                }
            }
        }
    }
}
