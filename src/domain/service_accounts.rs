//! Service accounts' names and their synthetic addresses. A service account's address
//! is `NAME@service.invalid`: `.invalid` is reserved by RFC 2606, so it can never be
//! delivered to, and the outbox drops anything addressed there.

/// The domain of every service account's address.
pub const DOMAIN: &str = "service.invalid";

const NAME_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    BadCharacter,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Empty => "A service account needs a name.",
            Self::TooLong => "A service account name is at most 64 characters.",
            Self::BadCharacter => {
                "A service account name starts with a lower-case letter or a digit and uses \
                 only lower-case letters a-z, digits, '-' and '_'."
            }
        })
    }
}

impl std::error::Error for NameError {}

/// A valid name (trimmed): 1 to 64 of `a-z 0-9 - _`, starting with a letter or digit,
/// so that `NAME@service.invalid` is a valid address.
pub fn parse_name(raw: &str) -> Result<String, NameError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > NAME_MAX {
        return Err(NameError::TooLong);
    }
    let first_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !first_ok || !rest_ok {
        return Err(NameError::BadCharacter);
    }
    Ok(name.to_string())
}

/// The synthetic address of the service account `name` (already parsed).
pub fn address(name: &str) -> String {
    format!("{name}@{DOMAIN}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::email::EmailAddress;

    #[test]
    fn names_make_valid_undeliverable_addresses() {
        for ok in ["backup", "ci-runner", "a", "x_1", &"n".repeat(64)] {
            let name = parse_name(ok).unwrap();
            let addr = address(&name);
            assert!(EmailAddress::parse(&addr).is_ok(), "{addr}");
            assert!(addr.ends_with("@service.invalid"));
        }
        assert_eq!(parse_name("  ci  ").unwrap(), "ci");
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(parse_name(" "), Err(NameError::Empty));
        assert_eq!(parse_name(&"n".repeat(65)), Err(NameError::TooLong));
        for bad in ["Backup", "-ci", "_ci", "a.b", "a b", "a@b", "ci,x", "é"] {
            assert_eq!(parse_name(bad), Err(NameError::BadCharacter), "{bad}");
        }
    }
}
