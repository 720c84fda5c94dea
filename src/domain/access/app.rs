//! Who may use an app (an OAuth client): the client's allowed groups against the
//! user's effective groups (inherited ones included, `domain::groups`). No allowed
//! groups means every account; otherwise one group in common lets the user in. The
//! authorize decision and every user-bound grant at the token endpoint ask this one
//! question, so no code or token reaches a user outside the groups.

/// Whether a user whose effective groups are `effective` may use an app that allows
/// `allowed` (empty: everyone).
pub fn may_use(allowed: &[String], effective: &[String]) -> bool {
    allowed.is_empty() || allowed.iter().any(|g| effective.contains(g))
}

/// Whether a browser at `ip` may use an app that allows `allowed` networks (empty:
/// anywhere). Entries were checked when saved; one that no longer parses matches
/// nothing (the app closes rather than opens).
pub fn from_allowed_network(allowed: &[String], ip: std::net::IpAddr) -> bool {
    allowed.is_empty()
        || allowed
            .iter()
            .filter_map(|n| super::rule::network(n).ok())
            .any(|net| net.contains(&ip.to_canonical()))
}

/// Networks as an operator types them (comma- or space-separated): CIDR blocks or
/// single addresses, normalised, without repeats; `Err` names the first bad one.
pub fn parse_network_list(raw: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        let net = super::rule::network(part).map_err(|e| format!("{part}: {e}"))?;
        let s = net.to_string();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// The allowed groups as an operator types them (comma- or space-separated, or one a
/// line), each a valid group name, sorted and without repeats; `Err` names the first
/// bad one.
pub fn parse_group_list(raw: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        let name =
            crate::domain::groups::validate_name(part).map_err(|e| format!("{part}: {e}"))?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_allowed_groups_lets_everyone_in() {
        assert!(may_use(&[], &[]));
        assert!(may_use(&[], &v(&["staff"])));
    }

    #[test]
    fn one_group_in_common_is_enough() {
        let allowed = v(&["ops", "staff"]);
        assert!(may_use(&allowed, &v(&["staff"])));
        assert!(may_use(&allowed, &v(&["guests", "ops"])));
        assert!(!may_use(&allowed, &v(&["guests"])));
        assert!(!may_use(&allowed, &[]));
    }

    #[test]
    fn names_match_exactly() {
        assert!(!may_use(&v(&["staff"]), &v(&["staff2", "sta"])));
    }

    #[test]
    fn group_lists_parse_from_commas_spaces_and_lines() {
        assert_eq!(
            parse_group_list(" staff, ops\nstaff  dev "),
            Ok(v(&["dev", "ops", "staff"]))
        );
        assert_eq!(parse_group_list(""), Ok(vec![]));
        assert!(parse_group_list("staff, Bad!").is_err());
    }
}
