//! Where to send a user after signing in: only a path on this origin.
//! Anything else (other hosts, `//host`, `/\host`, schemes, encoded variants, control
//! characters) falls back to the default, so the login page is never an open redirect.

use percent_encoding::percent_decode_str;

pub const DEFAULT_AFTER_LOGIN: &str = "/account";

pub fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| is_safe_path(n))
        .map(str::to_string)
        .unwrap_or_else(|| DEFAULT_AFTER_LOGIN.to_string())
}

pub fn is_safe_path(next: &str) -> bool {
    if next.len() > 2048 || !next.starts_with('/') {
        return false;
    }
    // Check the raw form and the decoded form (twice, for double encoding).
    let once = percent_decode_str(next).decode_utf8_lossy().to_string();
    let twice = percent_decode_str(&once).decode_utf8_lossy().to_string();
    [next, once.as_str(), twice.as_str()].iter().all(|s| {
        let s = s.trim_start();
        s.starts_with('/')
            && !s.starts_with("//")
            && !s.starts_with("/\\")
            && !s.contains('\\')
            && !s
                .chars()
                .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_local_paths() {
        assert_eq!(safe_next(Some("/account/sessions")), "/account/sessions");
        assert_eq!(
            safe_next(Some("/oauth/authorize?client_id=a&x=%2F")),
            "/oauth/authorize?client_id=a&x=%2F"
        );
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "/%2F%2Fevil.example",
            "/%2fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "/\tevil",
            "/%0d%0aSet-Cookie:x",
            "",
            "evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/account", "{bad:?} was allowed");
        }
        assert_eq!(safe_next(None), "/account");
    }
}
