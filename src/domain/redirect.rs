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

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Pieces an attacker combines to smuggle another origin past the check.
        fn tricky() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("/".to_string()),
                Just("\\".to_string()),
                Just("%2F".to_string()),
                Just("%2f".to_string()),
                Just("%5C".to_string()),
                Just("%5c".to_string()),
                Just("%25".to_string()),
                Just("2F".to_string()),
                Just("%".to_string()),
                Just(".".to_string()),
                Just(":".to_string()),
                Just("@".to_string()),
                Just("evil.example".to_string()),
                Just("https:".to_string()),
                Just(" ".to_string()),
                Just("\t".to_string()),
                Just("%09".to_string()),
                Just("%0a".to_string()),
                Just("%E2%80%A8".to_string()),
                Just("\u{3000}".to_string()),
                "[a-z?=&#]{1,4}",
            ];
            proptest::collection::vec(piece, 0..10).prop_map(|v| v.concat())
        }

        /// What a browser could read as another origin: `//`, `/\`, a backslash
        /// anywhere (some read it as `/`), or a control character (tabs and newlines
        /// are dropped by URL parsers), after up to two decodings.
        fn same_origin_path(r: &str) {
            let once = percent_decode_str(r).decode_utf8_lossy().to_string();
            let twice = percent_decode_str(&once).decode_utf8_lossy().to_string();
            for form in [r, once.as_str(), twice.as_str()] {
                assert!(form.starts_with('/'), "{r:?} ({form:?}) is not a path");
                assert!(
                    !form.starts_with("//") && !form.contains('\\'),
                    "{r:?} ({form:?}) names another host"
                );
                assert!(
                    !form.chars().any(char::is_control),
                    "{r:?} has a control char"
                );
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn safe_next_always_answers_a_same_origin_path(next in tricky()) {
                same_origin_path(&safe_next(Some(&next)));
            }

            #[test]
            fn safe_next_on_any_string(next in any::<String>()) {
                same_origin_path(&safe_next(Some(&next)));
            }
        }
    }
}
