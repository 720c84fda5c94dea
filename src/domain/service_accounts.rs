//! Service accounts' names and their synthetic addresses. A service account's address
//! is `NAME@service.invalid`: `.invalid` is reserved by RFC 2606, so it can never be
//! delivered to, and the outbox drops anything addressed there.

/// The domain of every service account's address.
pub const DOMAIN: &str = "service.invalid";

pub use crate::domain::names::NameError;
use crate::domain::names::{Kind, check};

/// A valid name (trimmed): 1 to 64 of `a-z 0-9 - _`, starting with a letter or digit,
/// so that `NAME@service.invalid` is a valid address.
pub fn parse_name(raw: &str) -> Result<String, NameError> {
    check(Kind::ServiceAccount, raw)
}

/// The synthetic address of the service account `name` (already parsed).
pub fn address(name: &str) -> String {
    format!("{name}@{DOMAIN}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::email::EmailAddress;
    use crate::domain::names::Fault;

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
        let fault = |raw: &str| parse_name(raw).map_err(|e| e.fault);
        assert_eq!(fault(" "), Err(Fault::Empty));
        assert_eq!(fault(&"n".repeat(65)), Err(Fault::TooLong));
        for bad in ["Backup", "-ci", "_ci", "a.b", "a b", "a@b", "ci,x", "é"] {
            assert_eq!(fault(bad), Err(Fault::BadCharacter), "{bad}");
        }
        assert_eq!(
            parse_name("A").unwrap_err().to_string(),
            "A service account name starts with a lower-case letter or a digit and uses \
             only lower-case letters a-z, digits, '-' and '_'."
        );
    }
}
