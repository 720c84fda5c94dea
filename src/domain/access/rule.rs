//! One access rule: as written ([`RuleSpec`], in the configuration file's
//! `[[access_rule]]` tables or on `/admin/policies`) and as checked ([`Rule`]).

use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::path::{normalize, under};
use super::{Policy, Request, Subject};

/// A rule as written. Every list may also be written as one string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Shown by `policy check` and in the audit log; by default "rule N".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Hosts: `app.example.com`, `*.example.com` (any subdomain), or `*` (any host).
    #[serde(default, deserialize_with = "one_or_many")]
    pub domain: Vec<String>,
    /// Path prefixes, whole segments: `/admin` covers `/admin/users`, not `/administrator`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub path: Vec<String>,
    /// Regular expressions on the path (without the query).
    #[serde(default, deserialize_with = "one_or_many")]
    pub path_regex: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub method: Vec<String>,
    /// Client networks (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub network: Vec<String>,
    /// Who: `user:alice@example.com`, `group:staff`, `role:admin`, `email_domain:example.com`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub subject: Vec<String>,
    pub policy: String,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    Any,
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: any host that ends with it.
    Wildcard(String),
}

impl DomainPattern {
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(h) => h == host,
            Self::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

/// Who a rule is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectPattern {
    User(String),
    Group(String),
    Role(String),
    EmailDomain(String),
}

impl SubjectPattern {
    fn matches(&self, s: &Subject) -> bool {
        match self {
            Self::User(e) => s.email.eq_ignore_ascii_case(e),
            Self::Group(g) => s.groups.iter().any(|x| x == g),
            Self::Role(r) => s.roles.iter().any(|x| x == r),
            Self::EmailDomain(d) => s
                .email
                .rsplit_once('@')
                .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(d)),
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub domains: Vec<DomainPattern>,
    pub paths: Vec<String>,
    pub path_regexes: Vec<Regex>,
    pub methods: Vec<String>,
    pub networks: Vec<IpNet>,
    pub subjects: Vec<SubjectPattern>,
    pub policy: Policy,
    /// As written, for display and storage.
    pub spec: RuleSpec,
}

impl Rule {
    /// Checks a rule; `position` (from 1) names it when it has no name. Errors say
    /// which field and why.
    pub fn from_spec(spec: RuleSpec, position: usize) -> Result<Rule, String> {
        let name = match spec.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("rule {position}"),
        };
        let at = |m: String| format!("access rule {name:?}: {m}");
        let policy = Policy::parse(&spec.policy).map_err(at)?;
        if spec.domain.is_empty() {
            return Err(at(
                "domain is required (a host, *.example.com, or * for any)".into(),
            ));
        }
        let domains = spec
            .domain
            .iter()
            .map(|d| domain_pattern(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(at)?;
        let paths = spec
            .path
            .iter()
            .map(|p| {
                let p = p.trim();
                if !p.starts_with('/') {
                    return Err(format!("path {p:?} must start with /"));
                }
                // Kept trailing slash: "/admin/" and "/admin" differ for `under`.
                let n = normalize(p);
                Ok(if p.ends_with('/') || n == "/" {
                    n
                } else {
                    n.trim_end_matches('/').to_string()
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(at)?;
        let path_regexes = spec
            .path_regex
            .iter()
            .map(|r| {
                regex::RegexBuilder::new(r)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("path_regex {r:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(at)?;
        let methods = spec
            .method
            .iter()
            .map(|m| {
                let m = m.trim().to_ascii_uppercase();
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(format!("method {m:?} is not an HTTP method"));
                }
                Ok(m)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(at)?;
        let networks = spec
            .network
            .iter()
            .map(|n| network(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(at)?;
        let subjects = spec
            .subject
            .iter()
            .map(|s| subject(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(at)?;
        if policy == Policy::Bypass && !subjects.is_empty() {
            return Err(at(
                "a bypass rule cannot name subjects: a public path is public to everyone, \
                 and who asks is not known without a sign-in"
                    .into(),
            ));
        }
        Ok(Rule {
            name,
            domains,
            paths,
            path_regexes,
            methods,
            networks,
            subjects,
            policy,
            spec,
        })
    }

    /// Everything but the subject.
    pub fn matches_request(&self, req: &Request) -> bool {
        self.domains.iter().any(|d| d.matches(&req.host))
            && (self.paths.is_empty() && self.path_regexes.is_empty()
                || self.paths.iter().any(|p| under(&req.path, p))
                || self.path_regexes.iter().any(|r| r.is_match(&req.path)))
            && (self.methods.is_empty() || self.methods.contains(&req.method))
            && (self.networks.is_empty() || self.networks.iter().any(|n| n.contains(&req.ip)))
    }

    pub fn matches_subject(&self, s: &Subject) -> bool {
        self.subjects.iter().any(|p| p.matches(s))
    }

    /// Why this rule matched, in words, for `policy check` and the admin test form.
    pub fn describe(&self) -> String {
        let s = &self.spec;
        let mut parts = vec![format!("domain {}", s.domain.join(", "))];
        if !s.path.is_empty() {
            parts.push(format!("path under {}", s.path.join(", ")));
        }
        if !s.path_regex.is_empty() {
            parts.push(format!("path matching {}", s.path_regex.join(", ")));
        }
        if !s.method.is_empty() {
            parts.push(format!("method {}", self.methods.join(", ")));
        }
        if !s.network.is_empty() {
            parts.push(format!("from {}", s.network.join(", ")));
        }
        if !s.subject.is_empty() {
            parts.push(format!("for {}", s.subject.join(", ")));
        }
        parts.join("; ")
    }
}

fn domain_pattern(d: &str) -> Result<DomainPattern, String> {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    if d == "*" {
        return Ok(DomainPattern::Any);
    }
    let (wild, host) = match d.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, d.as_str()),
    };
    let ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(format!(
            "domain {d:?} is not a host name (app.example.com, *.example.com or *)"
        ));
    }
    Ok(if wild {
        DomainPattern::Wildcard(format!(".{host}"))
    } else {
        DomainPattern::Exact(host.to_string())
    })
}

pub(super) fn network(n: &str) -> Result<IpNet, String> {
    let n = n.trim();
    n.parse::<IpNet>()
        .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("network {n:?} is not an address or CIDR block"))
}

fn subject(s: &str) -> Result<SubjectPattern, String> {
    let s = s.trim();
    let (kind, value) = s.split_once(':').unwrap_or(("", s));
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("subject {s:?} names no one"));
    }
    Ok(match kind {
        "user" if value.contains('@') => SubjectPattern::User(value.to_ascii_lowercase()),
        "group" => SubjectPattern::Group(value.to_string()),
        "role" => SubjectPattern::Role(value.to_string()),
        "email_domain" => {
            SubjectPattern::EmailDomain(value.trim_start_matches('@').to_ascii_lowercase())
        }
        _ => {
            return Err(format!(
                "subject {s:?}: write user:EMAIL, group:NAME, role:NAME or email_domain:DOMAIN"
            ));
        }
    })
}

/// Checks a list of rules in order.
pub fn check_all(specs: Vec<RuleSpec>) -> Result<Vec<Rule>, String> {
    specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| Rule::from_spec(s, i + 1))
        .collect()
}
