//! Email addresses: parsed once, compared by a normalised (lower-case) form.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    /// As typed (trimmed), for display and mail.
    original: String,
    /// Lower-cased, for uniqueness and lookups.
    normalized: String,
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        if s.is_empty() {
            return Err("Enter your email address.");
        }
        if s.len() > 254 {
            return Err("That email address is too long.");
        }
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or("Enter a valid email address, like name@example.com.")?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || "!#$%&'*+-/=?^_`{|}~.".contains(c)
                    || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
            });
        let domain_ok = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| {
                        c.is_ascii_alphanumeric()
                            || c == '-'
                            || (!c.is_ascii() && c.is_alphanumeric())
                    })
            });
        if !local_ok || !domain_ok {
            return Err("Enter a valid email address, like name@example.com.");
        }
        Ok(Self {
            original: s.to_string(),
            normalized: s.to_lowercase(),
        })
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// Whether the address is under `.invalid` (RFC 2606): never deliverable, and
    /// where service accounts' synthetic addresses live, so no person may take one.
    pub fn undeliverable(&self) -> bool {
        let d = self.domain();
        d == "invalid" || d.ends_with(".invalid")
    }

    /// What a person is told when they give an [`Self::undeliverable`] address.
    pub const UNDELIVERABLE: &'static str = "That address cannot receive mail: enter one that can.";

    pub fn domain(&self) -> &str {
        self.normalized
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("")
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.original
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::EmailAddress;

    #[test]
    fn normalises_case_and_keeps_original() {
        let e = EmailAddress::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.as_ref(), "Alice@Example.COM");
        assert_eq!(e.normalized(), "alice@example.com");
        assert_eq!(e.domain(), "example.com");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "alice",
            "@x.org",
            "a@",
            "a b@x.org",
            "a@x..org",
            "<script>@x.org",
            "a@-x.org",
            "a@x\n.org",
            "a\n@x.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        // Whitespace around the address (a pasted line end) is not part of it.
        assert_eq!(
            EmailAddress::parse("a@x.org\n").unwrap().normalized(),
            "a@x.org"
        );
        assert!(EmailAddress::parse("a\u{0}@x.org").is_err());
        assert!(EmailAddress::parse("a\"b@x.org").is_err());
    }

    #[test]
    fn accepts_common_forms() {
        for ok in [
            "a@x.org",
            "first.last+tag@sub.example.co.uk",
            "user@localhost",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok} refused");
        }
    }
}
