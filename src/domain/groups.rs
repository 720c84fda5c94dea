//! Groups: names, and the tree they form. A group may sit inside a parent group, and
//! membership flows upwards: a member of `backend` (inside `engineering`) is also a
//! member of `engineering`, and of every group above it. A user's effective groups
//! are their direct groups plus all of those groups' ancestors; access rules
//! (`group:NAME`), forward auth's `Remote-Groups` and the OIDC `groups` claim all
//! read the effective groups.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::domain::names::NameError;
use crate::domain::names::{Kind, check};

/// A valid group name (surrounding spaces trimmed): 1 to 64 of `a-z`, `0-9`, `-`, `_`,
/// `.`, starting with a letter or digit. Commas (the `Remote-Groups` separator), spaces
/// and colons never appear in one, and neither is `.` nor `..` (it is a path segment
/// in `/admin/groups/{name}`).
pub fn validate_name(raw: &str) -> Result<String, NameError> {
    check(Kind::Group, raw)
}

/// The groups as a tree: each group's name and parent, by id.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<String, (String, Option<String>)>,
}

impl Tree {
    /// From `(id, name, parent id)` rows. A parent that is not among them is ignored.
    pub fn new(rows: impl IntoIterator<Item = (String, String, Option<String>)>) -> Self {
        Self {
            nodes: rows
                .into_iter()
                .map(|(id, name, parent)| (id, (name, parent)))
                .collect(),
        }
    }

    pub fn name(&self, id: &str) -> Option<&str> {
        self.nodes.get(id).map(|(n, _)| n.as_str())
    }

    /// `id` and every group above it, nearest first. Stops at a repeat, so even a
    /// cycle written behind our back cannot loop.
    pub fn lineage(&self, id: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut at = Some(id.to_string());
        while let Some(cur) = at {
            if !self.nodes.contains_key(&cur) || !seen.insert(cur.clone()) {
                break;
            }
            at = self.nodes[&cur].1.clone();
            out.push(cur);
        }
        out
    }

    /// The names of the groups a member of `direct` (ids) is in: those groups and
    /// every ancestor of each, sorted, each once.
    pub fn effective(&self, direct: &[String]) -> Vec<String> {
        let names: BTreeSet<String> = direct
            .iter()
            .flat_map(|id| self.lineage(id))
            .filter_map(|id| self.name(&id).map(str::to_string))
            .collect();
        names.into_iter().collect()
    }

    /// Whether making `parent` the parent of `id` would put `id` inside itself: `parent`
    /// is `id`, or `id` is above `parent` already.
    pub fn would_cycle(&self, id: &str, parent: &str) -> bool {
        id == parent || self.lineage(parent).iter().any(|a| a == id)
    }

    /// `id` and every group below it: whose members' effective groups change when
    /// `id` moves or goes.
    pub fn subtree(&self, id: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|g| self.lineage(g).iter().any(|a| a == id))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::names::Fault;

    fn tree(edges: &[(&str, Option<&str>)]) -> Tree {
        Tree::new(
            edges
                .iter()
                .map(|(id, p)| (id.to_string(), format!("n-{id}"), p.map(str::to_string))),
        )
    }

    fn fault(raw: &str) -> Result<String, Fault> {
        validate_name(raw).map_err(|e| e.fault)
    }

    #[test]
    fn names() {
        assert_eq!(
            validate_name(" eng.backend_2-x ").as_deref(),
            Ok("eng.backend_2-x")
        );
        assert_eq!(fault(""), Err(Fault::Empty));
        assert_eq!(fault("   "), Err(Fault::Empty));
        assert_eq!(validate_name(&"a".repeat(64)).map(|n| n.len()), Ok(64));
        assert_eq!(fault(&"a".repeat(65)), Err(Fault::TooLong));
        for bad in [
            "Admins", "a,b", "a b", "group:x", "é", "a/b", "a\nb", ".", "..", "-x", "_x",
        ] {
            assert_eq!(fault(bad), Err(Fault::BadCharacter), "{bad:?}");
        }
        assert_eq!(
            validate_name("A").unwrap_err().to_string(),
            "A group name starts with a lower-case letter or a digit and uses only \
             lower-case letters a-z, digits, '-', '_' and '.'."
        );
        assert_eq!(
            validate_name("").unwrap_err().to_string(),
            "A group needs a name."
        );
    }

    #[test]
    fn membership_flows_up_to_every_ancestor() {
        let t = tree(&[
            ("eng", None),
            ("backend", Some("eng")),
            ("db", Some("backend")),
            ("ops", None),
        ]);
        assert_eq!(t.effective(&["db".into()]), ["n-backend", "n-db", "n-eng"]);
        assert_eq!(t.effective(&["eng".into()]), ["n-eng"]);
        assert_eq!(
            t.effective(&["backend".into(), "ops".into(), "eng".into()]),
            ["n-backend", "n-eng", "n-ops"]
        );
        assert!(t.effective(&["gone".into()]).is_empty());
        assert_eq!(t.subtree("eng"), ["backend", "db", "eng"]);
        assert_eq!(t.subtree("ops"), ["ops"]);
    }

    #[test]
    fn cycles_are_refused_and_never_loop() {
        let t = tree(&[("a", None), ("b", Some("a")), ("c", Some("b"))]);
        assert!(t.would_cycle("a", "a"));
        assert!(t.would_cycle("a", "c"));
        assert!(t.would_cycle("b", "c"));
        assert!(!t.would_cycle("c", "a"));
        assert!(!t.would_cycle("a", "x"));
        // A cycle already in the data (written by hand) still ends.
        let bad = tree(&[("a", Some("b")), ("b", Some("a"))]);
        assert_eq!(bad.effective(&["a".into()]), ["n-a", "n-b"]);
        assert_eq!(bad.subtree("a"), ["a", "b"]);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

            /// Any tree built by refusing cycles stays a forest: effective groups
            /// contain the direct one and are closed under "parent of".
            #[test]
            fn parents_set_through_would_cycle_never_form_a_cycle(
                moves in proptest::collection::vec((0usize..8, 0usize..8), 0..40),
                member in 0usize..8,
            ) {
                let id = |i: usize| format!("g{i}");
                let mut parent: BTreeMap<String, Option<String>> =
                    (0..8).map(|i| (id(i), None)).collect();
                let build = |p: &BTreeMap<String, Option<String>>| {
                    Tree::new(p.iter().map(|(k, v)| (k.clone(), k.clone(), v.clone())))
                };
                for (child, to) in moves {
                    if !build(&parent).would_cycle(&id(child), &id(to)) {
                        parent.insert(id(child), Some(id(to)));
                    }
                }
                let t = build(&parent);
                for g in parent.keys() {
                    prop_assert!(!t.lineage(g).iter().skip(1).any(|a| a == g));
                }
                let eff = t.effective(&[id(member)]);
                prop_assert!(eff.contains(&id(member)));
                for g in &eff {
                    if let Some(Some(p)) = parent.get(g) {
                        prop_assert!(eff.contains(p));
                    }
                }
            }
        }
    }
}
