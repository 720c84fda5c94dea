//! RFC 8628 user codes: what a person reads off a TV and types on a phone. Eight
//! letters from an alphabet without vowels (no words, no look-alike digits), shown as
//! `XXXX-XXXX`; typed in any case, with or without the dash or spaces. 20^8 (about
//! 2^34.6) codes: enough while a code lives minutes and entries are rate limited,
//! never a secret on its own.

use rand::RngCore;

const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const LEN: usize = 8;

/// A fresh code, `XXXX-XXXX`, each letter drawn uniformly from the OS RNG.
pub fn generate() -> String {
    let mut letters = Vec::with_capacity(LEN);
    let mut buf = [0u8; 16];
    while letters.len() < LEN {
        rand::rngs::OsRng.fill_bytes(&mut buf);
        // 240 = 12 * 20: rejecting larger bytes keeps every letter equally likely.
        for b in buf.iter().filter(|b| **b < 240) {
            if letters.len() < LEN {
                letters.push(ALPHABET[(*b % 20) as usize]);
            }
        }
    }
    display(&String::from_utf8_lossy(&letters))
}

/// What the user typed, in the form that is hashed: upper case, no dash or spaces;
/// `None` when it cannot be a code.
pub fn normalize(input: &str) -> Option<String> {
    let s: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    (s.len() == LEN && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// A normalised code as people read it: `XXXX-XXXX`.
pub fn display(normalized: &str) -> String {
    let (a, b) = normalized.split_at(normalized.len().min(LEN / 2));
    format!("{a}-{b}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_look_right_and_differ() {
        let a = generate();
        assert_eq!(a.len(), 9);
        assert_eq!(&a[4..5], "-");
        assert!(
            a.bytes()
                .filter(|b| *b != b'-')
                .all(|b| ALPHABET.contains(&b))
        );
        assert_ne!(a, generate());
    }

    #[test]
    fn typing_is_forgiving_but_not_loose() {
        assert_eq!(normalize("bcdf-ghjk").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize(" BCDF GHJK ").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize("BCDFGHJK").as_deref(), Some("BCDFGHJK"));
        // Vowels and digits are never in a code; nor are 7 or 9 letters.
        assert!(normalize("ABCD-EFGH").is_none());
        assert!(normalize("BCDF-GHJ1").is_none());
        assert!(normalize("BCDF-GHJ").is_none());
        assert!(normalize("BCDF-GHJKL").is_none());
        assert!(normalize("").is_none());
        assert_eq!(display("BCDFGHJK"), "BCDF-GHJK");
    }
}
