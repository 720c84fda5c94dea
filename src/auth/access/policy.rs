//! The access rules forward auth runs, compiled once per change, and the record of
//! who was refused. A proxy asks on every request, so a refused user reloading a page
//! (or a script looping) must not write an audit event each time: denials are written
//! once per user, site and rule per minute, with how many were folded in.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record, record_alone};
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::access_rules as repo;
use crate::domain::access::compiled::Compiled;
use crate::domain::access::{Policy, Rule, RuleSpec};
use crate::domain::audit::{AuditAction, Outcome};

/// One audit event per key per this many seconds.
const DENIAL_WINDOW_SECS: i64 = 60;
/// Past this many keys, old ones are dropped (a flood of distinct keys must not grow
/// memory without bound).
const DENIAL_KEYS_MAX: usize = 10_000;
/// Without a shared generation (PostgreSQL without Redis), stored rules are read again
/// this often, so another instance's change arrives within it.
const RELOAD_EVERY: Duration = Duration::from_secs(10);

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
    /// Ids of the stored rules in force, in order (they follow the configured ones).
    stored_ids: Arc<RwLock<Vec<String>>>,
    /// A change to the stored rules moves the generation on; each instance reloads
    /// when it sees a generation it has not loaded.
    cache: BackChannelCache,
    loaded: Arc<Mutex<(Option<u64>, Option<Instant>)>>,
}

/// Why a rule could not be added or deleted.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Invalid(String),
    #[error("No such rule: it may have been deleted already.")]
    NotFound,
    #[error(transparent)]
    Internal(#[from] InternalError),
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
        cache: BackChannelCache,
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
            stored_ids: Arc::new(RwLock::new(Vec::new())),
            cache,
            loaded: Arc::new(Mutex::new((None, None))),
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
    fn set_stored(&self, stored: Vec<(String, Rule)>) {
        let mut all: Vec<Rule> = self.configured.as_ref().clone();
        let mut ids = Vec::with_capacity(stored.len());
        for (id, rule) in stored {
            ids.push(id);
            all.push(rule);
        }
        let next = Arc::new(Compiled::new(all, self.default));
        // Both under the rules' lock, so a reader never pairs one with the other's
        // previous version.
        let mut compiled = self.compiled.write().unwrap_or_else(|e| e.into_inner());
        *self.stored_ids.write().unwrap_or_else(|e| e.into_inner()) = ids;
        *compiled = next;
    }

    /// The stored rules' ids, in order; they are the last rules of `current()`.
    pub fn stored_ids(&self) -> Vec<String> {
        let _rules = self.compiled.read().unwrap_or_else(|e| e.into_inner());
        self.stored_ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The stored rule with this id, as it is in force, so the admin page can name the
    /// rule it is about to delete; `None` for an id no stored rule has (a configured
    /// rule has none).
    pub async fn stored_rule(&self, id: &str) -> Result<Option<Rule>, InternalError> {
        self.refresh().await?;
        if let Some(rule) = self.in_force(id) {
            return Ok(Some(rule));
        }
        // Without a shared generation another instance's new rule can be up to
        // `RELOAD_EVERY` away: read again rather than call a real rule unknown.
        self.load_stored().await?;
        Ok(self.in_force(id))
    }

    fn in_force(&self, id: &str) -> Option<Rule> {
        // Both under the rules' lock, as `set_stored` writes them.
        let compiled = self.compiled.read().unwrap_or_else(|e| e.into_inner());
        let ids = self.stored_ids.read().unwrap_or_else(|e| e.into_inner());
        let k = ids.iter().position(|x| x == id)?;
        compiled.rules().get(self.configured.len() + k).cloned()
    }

    /// Reads the stored rules (all of them, or none: a rule that no longer checks, say
    /// after an upgrade, keeps the previous set in force and is logged).
    pub async fn load_stored(&self) -> Result<(), InternalError> {
        let generation = self.cache.generation().await;
        let rows = self
            .db
            .run(|c| repo::all(c).map_err(InternalError::from))
            .await?;
        let first = self.configured.len() + 1;
        let mut stored = Vec::with_capacity(rows.len());
        for (i, (id, spec)) in rows.into_iter().enumerate() {
            let rule = serde_json::from_str::<RuleSpec>(&spec)
                .map_err(|e| e.to_string())
                .and_then(|s| Rule::from_spec(s, first + i));
            match rule {
                Ok(r) => stored.push((id, r)),
                Err(e) => {
                    tracing::error!(rule = %id, error = %e, "a stored access rule does not check; keeping the rules in force");
                    return Ok(());
                }
            }
        }
        self.set_stored(stored);
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = (generation, Some(Instant::now()));
        Ok(())
    }

    /// Reloads the stored rules if another change may have happened since they were
    /// read: a new generation, or (without one) `RELOAD_EVERY`. Cheap otherwise: an
    /// atomic read on SQLite, one Redis GET with Redis.
    pub async fn refresh(&self) -> Result<(), InternalError> {
        self.refresh_at(self.cache.generation().await).await
    }

    /// [`Self::refresh`] with the generation already read for this request.
    pub async fn refresh_at(&self, generation: Option<u64>) -> Result<(), InternalError> {
        let stale = {
            let (g, at) = *self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            match generation {
                Some(now) => g != Some(now),
                None => at.is_none_or(|t| t.elapsed() >= RELOAD_EVERY),
            }
        };
        if stale {
            self.load_stored().await?;
        }
        Ok(())
    }

    /// Adds a rule after the others, as the admin page sends it.
    pub async fn add(&self, spec: RuleSpec, ctx: &AuditCtx) -> Result<(), RuleError> {
        let position = self.configured.len() + self.stored_ids().len() + 1;
        let rule = Rule::from_spec(spec.clone(), position).map_err(RuleError::Invalid)?;
        let json = serde_json::to_string(&spec).map_err(InternalError::from)?;
        let (id, now, ctx) = (
            uuid::Uuid::new_v4().to_string(),
            self.clock.now(),
            ctx.clone(),
        );
        let name = rule.name.clone();
        self.db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    repo::append(c, &id, &json, now)?;
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::AccessRuleCreated,
                        Outcome::Success,
                        None,
                        json!({"id": id, "name": name, "rule": spec}),
                    )
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        self.cache.invalidate().await;
        self.load_stored().await?;
        Ok(())
    }

    /// Deletes a stored rule.
    pub async fn delete(&self, id: &str, ctx: &AuditCtx) -> Result<(), RuleError> {
        let (id, now, ctx) = (id.to_string(), self.clock.now(), ctx.clone());
        let removed = self
            .db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    let Some(spec) = repo::remove(c, &id)? else {
                        return Ok(false);
                    };
                    let spec: serde_json::Value =
                        serde_json::from_str(&spec).unwrap_or(serde_json::Value::Null);
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::AccessRuleDeleted,
                        Outcome::Success,
                        None,
                        json!({"id": id, "rule": spec}),
                    )?;
                    Ok(true)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        if !removed {
            return Err(RuleError::NotFound);
        }
        self.cache.invalidate().await;
        self.load_stored().await?;
        Ok(())
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
