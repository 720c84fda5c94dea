//! The path a rule is matched against. An app behind the proxy serves `/%61dmin`,
//! `//admin` and `/public/..%2Fadmin` as `/admin` (most servers decode, merge slashes
//! and resolve dot segments), so a rule on `/admin` must see them as `/admin` too, or
//! the encoding walks around it.

use percent_encoding::percent_decode_str;

/// Decoded, slashes merged, `.` and `..` resolved (never above the root), query and
/// fragment dropped; keeps a trailing slash. Always starts with `/`.
pub fn normalize(raw: &str) -> String {
    let raw = raw.split(['?', '#']).next().unwrap_or("");
    // Nearly every path a proxy asks about is already in this form; it is copied
    // once instead of being decoded, split and joined.
    if already_normal(raw) {
        return raw.to_string();
    }
    resolve(raw)
}

/// Whether [`resolve`] would give `raw` back unchanged: it starts with `/`, has
/// nothing to decode (`%`) or to read as a slash (`\\`), and no empty, `.` or `..`
/// segment but for a trailing slash.
fn already_normal(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    if rest.bytes().any(|b| b == b'%' || b == b'\\') {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if matches!(seg, "." | "..") || (seg.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// The whole work of [`normalize`], for a path without query or fragment.
fn resolve(raw: &str) -> String {
    // Decoded until stable: `%252e` is `%2e` after one round, `.` after two, and some
    // stacks decode twice.
    let mut decoded = raw.to_string();
    for _ in 0..3 {
        let next = percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let decoded = decoded.replace('\\', "/");
    let mut parts: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let trailing = decoded.ends_with('/')
        || decoded.ends_with("/.")
        || decoded.ends_with("/..")
        || decoded == "."
        || decoded == "..";
    let mut out = String::with_capacity(decoded.len() + 1);
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

/// Whether `path` (normalised) is under `prefix` (normalised): `/admin` covers
/// `/admin` and `/admin/users` but not `/administrator`; `/admin/` covers what
/// starts with it.
pub fn under(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix) || path == prefix.trim_end_matches('/');
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_resolve_to_what_the_app_serves() {
        for (raw, want) in [
            ("/admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("//admin", "/admin"),
            ("/public/../admin", "/admin"),
            ("/public/..%2Fadmin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%252e%252e/admin", "/admin"),
            ("/public\\..\\admin", "/admin"),
            ("/../../admin", "/admin"),
            ("/admin/?x=1", "/admin/"),
            ("/a/b/.", "/a/b/"),
            ("", "/"),
            ("/", "/"),
            ("/a#frag", "/a"),
        ] {
            assert_eq!(normalize(raw), want, "{raw}");
        }
    }

    proptest::proptest! {
        /// The shortcut for paths already in normal form changes no answer.
        #[test]
        fn the_shortcut_agrees_with_the_whole_work(raw in "[/a.%2eE\\\\?#]{0,12}") {
            let path = raw.split(['?', '#']).next().unwrap_or("");
            proptest::prop_assert_eq!(normalize(&raw), resolve(path));
        }
    }

    #[test]
    fn prefixes_cover_whole_segments() {
        assert!(under("/admin", "/admin"));
        assert!(under("/admin/users", "/admin"));
        assert!(!under("/administrator", "/admin"));
        assert!(under("/admin/users", "/admin/"));
        assert!(under("/admin", "/admin/"));
        assert!(!under("/adminx", "/admin/"));
        assert!(under("/anything", "/"));
    }
}
