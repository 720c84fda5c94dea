//! Personal access tokens (scripts acting as their owner): the secret's format, the
//! scopes a token may carry, its name and its expiry. Pure: the service in
//! `auth::access::tokens` stores and checks them.
//!
//! A secret is `pcp_` followed by 32 bytes from the OS RNG in URL-safe base64 (43
//! characters): the prefix lets secret scanners and people recognise one, and lets
//! forward auth refuse anything else before looking anything up. Only its SHA-256 is
//! stored (`domain::tokens::hash`).

/// What every secret starts with.
pub const PREFIX: &str = "pcp_";

/// Reach sites behind forward auth, with any method.
pub const SCOPE_FORWARD: &str = "forward";
/// Reach sites behind forward auth with safe methods only (GET, HEAD, OPTIONS).
pub const SCOPE_FORWARD_READ: &str = "forward:read";

/// Every scope, with what it lets a script do (for the page and `--help`).
pub const SCOPES: &[(&str, &str)] = &[
    (SCOPE_FORWARD, "reach sites behind forward auth"),
    (
        SCOPE_FORWARD_READ,
        "reach sites behind forward auth, reading only (GET, HEAD, OPTIONS)",
    ),
];

/// The scope a token gets when none is asked for.
pub const DEFAULT_SCOPE: &str = SCOPE_FORWARD;

/// Longest name, in characters.
pub const NAME_MAX: usize = 60;

/// Longest lifetime that may be asked for, in days (ten years).
pub const MAX_DAYS: u32 = 3650;

/// The lifetimes the page offers, in days (`None`: no expiry).
pub const EXPIRY_CHOICES: &[Option<u32>] = &[Some(7), Some(30), Some(90), Some(365), None];

/// Why a token cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenInputError {
    #[error("Give the token a name (at most {NAME_MAX} characters).")]
    Name,
    #[error("Unknown scope {0:?}: choose forward or forward:read.")]
    UnknownScope(String),
    #[error("The expiry must be between 1 and {MAX_DAYS} days.")]
    Expiry,
}

/// A fresh secret: `pcp_` and 43 URL-safe characters.
pub fn generate() -> String {
    format!("{PREFIX}{}", super::tokens::generate())
}

/// Whether `s` has the shape of a secret (checked before any lookup, so that a
/// password or another kind of token is refused without touching the database).
pub fn looks_like_secret(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A token's name, trimmed: 1 to 60 characters, no control characters.
pub fn parse_name(name: &str) -> Result<String, TokenInputError> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > NAME_MAX || name.chars().any(char::is_control) {
        return Err(TokenInputError::Name);
    }
    Ok(name.to_string())
}

/// The scopes asked for, known ones only, each once, in the table's order; none asked
/// for gives the default.
pub fn parse_scopes<S: AsRef<str>>(asked: &[S]) -> Result<Vec<&'static str>, TokenInputError> {
    let mut chosen = Vec::new();
    for s in asked {
        let s = s.as_ref().trim();
        if s.is_empty() {
            continue;
        }
        let Some((known, _)) = SCOPES.iter().find(|(k, _)| *k == s) else {
            return Err(TokenInputError::UnknownScope(s.chars().take(40).collect()));
        };
        if !chosen.contains(known) {
            chosen.push(*known);
        }
    }
    if chosen.is_empty() {
        chosen.push(DEFAULT_SCOPE);
    }
    chosen.sort_by_key(|s| SCOPES.iter().position(|(k, _)| k == s));
    Ok(chosen)
}

/// Scopes as stored (space-separated) back to a list; unknown ones are dropped.
pub fn stored_scopes(stored: &str) -> Vec<&'static str> {
    stored
        .split_whitespace()
        .filter_map(|s| SCOPES.iter().find(|(k, _)| *k == s).map(|(k, _)| *k))
        .collect()
}

/// When a token made at `now` for `days` days expires (`None`: never).
pub fn expires_at(now: i64, days: Option<u32>) -> Result<Option<i64>, TokenInputError> {
    match days {
        None => Ok(None),
        Some(d) if (1..=MAX_DAYS).contains(&d) => Ok(Some(now + i64::from(d) * 86_400)),
        Some(_) => Err(TokenInputError::Expiry),
    }
}

/// Whether a token with these scopes may send a request with `method` (None: the proxy
/// did not say) through forward auth.
pub fn allows_forward(scopes: &[&str], method: Option<&str>) -> bool {
    if scopes.contains(&SCOPE_FORWARD) {
        return true;
    }
    scopes.contains(&SCOPE_FORWARD_READ)
        && method.is_some_and(|m| {
            ["GET", "HEAD", "OPTIONS"]
                .iter()
                .any(|safe| m.eq_ignore_ascii_case(safe))
        })
}

/// What an `Authorization` header presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// `Bearer <secret>`.
    Bearer(String),
    /// `Basic base64(user:secret)`: the account's email address and a token.
    Basic { user: String, secret: String },
    /// Any other scheme, or a value that does not parse.
    Other,
}

/// Reads an `Authorization` header value (the scheme is case-insensitive).
pub fn parse_authorization(value: &str) -> Presented {
    use base64::Engine;
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Presented::Bearer(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        // A token holds no ':', so the last one ends the user part.
        if let Some((user, secret)) = decoded.as_deref().and_then(|d| d.rsplit_once(':')) {
            return Presented::Basic {
                user: user.to_string(),
                secret: secret.to_string(),
            };
        }
    }
    Presented::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognisable_and_checked_for_shape() {
        let s = generate();
        assert!(s.starts_with("pcp_"));
        assert!(looks_like_secret(&s));
        assert_ne!(s, generate());
        for bad in [
            "",
            "pcp_",
            "correct horse battery staple 42",
            &s[4..],
            &format!("{s}x"),
            &format!("pcp_{}", "a".repeat(42) + "!"),
            &s.replace("pcp_", "PCP_"),
        ] {
            assert!(!looks_like_secret(bad), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  backup job ").unwrap(), "backup job");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(61)).is_err());
        assert!(parse_name(&"é".repeat(60)).is_ok());
        assert!(parse_name("a\nb").is_err());
    }

    #[test]
    fn scopes_are_known_deduplicated_and_default_to_forward() {
        assert_eq!(parse_scopes::<&str>(&[]).unwrap(), vec!["forward"]);
        assert_eq!(parse_scopes(&[""]).unwrap(), vec!["forward"]);
        assert_eq!(
            parse_scopes(&["forward:read", "forward", "forward"]).unwrap(),
            vec!["forward", "forward:read"]
        );
        assert!(matches!(
            parse_scopes(&["admin"]),
            Err(TokenInputError::UnknownScope(_))
        ));
        assert_eq!(stored_scopes("forward:read junk"), vec!["forward:read"]);
    }

    #[test]
    fn expiry_is_bounded() {
        assert_eq!(expires_at(100, None).unwrap(), None);
        assert_eq!(expires_at(100, Some(1)).unwrap(), Some(100 + 86_400));
        assert!(expires_at(100, Some(0)).is_err());
        assert!(expires_at(100, Some(MAX_DAYS + 1)).is_err());
    }

    #[test]
    fn read_scope_allows_safe_methods_only() {
        assert!(allows_forward(&["forward"], Some("POST")));
        assert!(allows_forward(&["forward"], None));
        assert!(allows_forward(&["forward:read"], Some("get")));
        assert!(!allows_forward(&["forward:read"], Some("DELETE")));
        assert!(!allows_forward(&["forward:read"], None));
        assert!(!allows_forward(&[], Some("GET")));
    }

    #[test]
    fn authorization_headers_are_read_by_scheme() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            parse_authorization("Bearer pcp_abc"),
            Presented::Bearer("pcp_abc".into())
        );
        assert_eq!(
            parse_authorization("bearer   pcp_abc "),
            Presented::Bearer("pcp_abc".into())
        );
        assert_eq!(
            parse_authorization(&format!("Basic {}", b64("a:b@x.org:pcp_t"))),
            Presented::Basic {
                user: "a:b@x.org".into(),
                secret: "pcp_t".into()
            }
        );
        for other in [
            "Bearer",
            "Bearer ",
            "Basic !!!",
            &format!("Basic {}", b64("no colon")),
            "Digest username=x",
            "",
            "pcp_abc",
        ] {
            assert_eq!(parse_authorization(other), Presented::Other, "{other}");
        }
    }
}
