//! Access rules: who may reach which site behind forward auth, and how proven.
//!
//! A rule matches a request on its domain (exact or `*.` wildcard), path (prefix or
//! regular expression), method and client network, and optionally on who asks (users,
//! groups, roles, email domains). Its policy is `bypass` (public, no sign-in),
//! `deny`, `one_factor` (any session) or `two_factor` (a session proven with a second
//! factor). Rules are tried in order and the first match decides; where none matches,
//! the configured default does.
//!
//! [`decide`] is the definition: a plain walk down the list. [`compiled::Compiled`]
//! is what forward auth runs: the same rules indexed by domain, so a thousand rules
//! cost about what ten do. A property test holds the two to the same answers.

pub mod app;
pub mod compiled;
pub mod path;
pub mod rule;

use std::net::IpAddr;

pub use rule::{Rule, RuleSpec};

/// What a rule (or the default) asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Public: let through without a sign-in.
    Bypass,
    Deny,
    /// Any signed-in user (a session, or a personal access token).
    OneFactor,
    /// A session proven with a second factor recently enough.
    TwoFactor,
}

impl Policy {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "bypass" => Ok(Self::Bypass),
            "deny" => Ok(Self::Deny),
            "one_factor" => Ok(Self::OneFactor),
            "two_factor" => Ok(Self::TwoFactor),
            other => Err(format!(
                "{other:?} is not a policy: use bypass, deny, one_factor or two_factor"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::Deny => "deny",
            Self::OneFactor => "one_factor",
            Self::TwoFactor => "two_factor",
        }
    }
}

/// The request a proxy asks about, as the rules see it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Lower case, without port.
    pub host: String,
    /// Normalised ([`path::normalize`]): decoded, dot segments resolved.
    pub path: String,
    /// Upper case.
    pub method: String,
    pub ip: IpAddr,
}

impl Request {
    /// From the parts of an address; the path is normalised here, so every caller
    /// matches on the same form the app will serve.
    pub fn new(host: &str, raw_path: &str, method: &str, ip: IpAddr) -> Self {
        Self {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            path: path::normalize(raw_path),
            method: method.to_ascii_uppercase(),
            ip,
        }
    }
}

/// A signed-in user as apps behind forward auth see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
    /// Groups, inherited ones included.
    pub groups: Vec<String>,
}

impl Principal {
    /// Runs `f` with this principal as access rules see it. The subject borrows the
    /// principal's address, groups and roles for the call rather than copying them:
    /// forward auth decides before every request a proxy passes.
    pub fn as_subject<T>(&mut self, f: impl FnOnce(&Subject) -> T) -> T {
        let subject = Subject {
            email: std::mem::take(&mut self.email),
            groups: std::mem::take(&mut self.groups),
            roles: std::mem::take(&mut self.roles),
        };
        let out = f(&subject);
        (self.email, self.groups, self.roles) = (subject.email, subject.groups, subject.roles);
        out
    }
}

/// Who asks, when known.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// As stored: rules compare addresses and domains without regard to case.
    pub email: String,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
}

/// Which rule decided, or the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The rule at this position of the list.
    Rule(usize),
    Default,
}

/// The answer for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This policy applies.
    Policy(Policy, DecidedBy),
    /// The rule at this position applies to some people only, and the request does
    /// not say who it is: sign in first, then ask again.
    NeedsIdentity(usize),
}

impl Verdict {
    /// The rule that decided, if one did.
    pub fn rule(self) -> Option<usize> {
        match self {
            Self::Policy(_, DecidedBy::Rule(i)) | Self::NeedsIdentity(i) => Some(i),
            Self::Policy(_, DecidedBy::Default) => None,
        }
    }
}

/// The reference decision: the first rule that matches, in order, else `default`.
pub fn decide(rules: &[Rule], default: Policy, req: &Request, who: Option<&Subject>) -> Verdict {
    first_match(rules.iter().enumerate(), default, req, who)
}

/// The walk both forms share: `candidates` in ascending position.
pub(crate) fn first_match<'a>(
    candidates: impl Iterator<Item = (usize, &'a Rule)>,
    default: Policy,
    req: &Request,
    who: Option<&Subject>,
) -> Verdict {
    for (i, rule) in candidates {
        if !rule.matches_request(req) {
            continue;
        }
        if rule.subjects.is_empty() {
            return Verdict::Policy(rule.policy, DecidedBy::Rule(i));
        }
        match who {
            None => return Verdict::NeedsIdentity(i),
            Some(s) if rule.matches_subject(s) => {
                return Verdict::Policy(rule.policy, DecidedBy::Rule(i));
            }
            Some(_) => {}
        }
    }
    Verdict::Policy(default, DecidedBy::Default)
}

#[cfg(test)]
mod tests;
