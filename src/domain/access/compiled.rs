//! The rules as forward auth runs them: indexed by host, then by the first segment of
//! the path, so a request looks only at the rules that could match it. The answer is
//! [`super::decide`]'s, in the same order: the candidates are walked by position.

use std::collections::HashMap;

use super::rule::{DomainPattern, Rule};
use super::{Policy, Request, Subject, Verdict, first_match};

/// Rules for one host pattern.
#[derive(Debug, Default)]
struct Bucket {
    /// Rules whose paths are all prefixes, by their first segment.
    by_segment: HashMap<String, Vec<usize>>,
    /// Rules on every path, on `/`, or with a regular expression.
    any_path: Vec<usize>,
}

impl Bucket {
    fn add(&mut self, i: usize, rule: &Rule) {
        let segments: Option<Vec<&str>> = if rule.path_regexes.is_empty() {
            rule.paths.iter().map(|p| first_segment(p)).collect()
        } else {
            None
        };
        match segments {
            Some(segs) if !segs.is_empty() => {
                for s in segs {
                    let list = self.by_segment.entry(s.to_string()).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
            _ => self.any_path.push(i),
        }
    }

    fn candidates(&self, segment: &str, out: &mut Vec<usize>) {
        out.extend_from_slice(&self.any_path);
        if let Some(list) = self.by_segment.get(segment) {
            out.extend_from_slice(list);
        }
    }
}

/// The first segment of a normalised path (`/admin/users` → `admin`); `None` for `/`,
/// which covers every path.
fn first_segment(path: &str) -> Option<&str> {
    let s = path.trim_start_matches('/').split('/').next().unwrap_or("");
    (!s.is_empty()).then_some(s)
}

/// A rule list, checked and indexed.
#[derive(Debug, Default)]
pub struct Compiled {
    rules: Vec<Rule>,
    default: Option<Policy>,
    exact: HashMap<String, Bucket>,
    /// By suffix, with its dot: `.example.com`.
    wildcard: HashMap<String, Bucket>,
    any_host: Bucket,
}

impl Compiled {
    pub fn new(rules: Vec<Rule>, default: Policy) -> Self {
        let mut c = Compiled {
            default: Some(default),
            ..Default::default()
        };
        for (i, rule) in rules.iter().enumerate() {
            for d in &rule.domains {
                let bucket = match d {
                    DomainPattern::Any => &mut c.any_host,
                    DomainPattern::Exact(h) => c.exact.entry(h.clone()).or_default(),
                    DomainPattern::Wildcard(s) => c.wildcard.entry(s.clone()).or_default(),
                };
                bucket.add(i, rule);
            }
        }
        c.rules = rules;
        c
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn default_policy(&self) -> Policy {
        self.default.unwrap_or(Policy::OneFactor)
    }

    /// The same answer as `decide(self.rules(), default, req, who)`.
    pub fn decide(&self, req: &Request, who: Option<&Subject>) -> Verdict {
        let segment = first_segment(&req.path).unwrap_or("");
        let mut ids = Vec::new();
        self.any_host.candidates(segment, &mut ids);
        if let Some(b) = self.exact.get(&req.host) {
            b.candidates(segment, &mut ids);
        }
        if !self.wildcard.is_empty() {
            let mut rest = req.host.as_str();
            while let Some(dot) = rest.find('.') {
                let suffix = &rest[dot..];
                if let Some(b) = self.wildcard.get(suffix) {
                    b.candidates(segment, &mut ids);
                }
                rest = &rest[dot + 1..];
            }
        }
        ids.sort_unstable();
        ids.dedup();
        first_match(
            ids.into_iter().map(|i| (i, &self.rules[i])),
            self.default_policy(),
            req,
            who,
        )
    }
}
