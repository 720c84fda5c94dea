//! Recovery codes: 10 random codes of 100 bits each, shown once, stored as keyed
//! hashes (HMAC-SHA256 with a key derived from the master key).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const COUNT: usize = 10;
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// `xxxxx-xxxxx-xxxxx-xxxxx`: 20 characters from a 32-letter alphabet without look-alikes.
pub fn generate() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let chars: Vec<u8> = bytes.iter().map(|b| ALPHABET[(*b & 31) as usize]).collect();
    chars
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).to_string())
        .collect::<Vec<_>>()
        .join("-")
}

/// What the user typed, in the form that is hashed: no separators, lower case.
pub fn normalize(input: &str) -> Option<String> {
    let s: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_lowercase();
    (s.len() == 20 && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

pub fn hash(pepper: &[u8; 32], normalized: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper)
        .unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(normalized.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_normalise() {
        let a = generate();
        assert_eq!(a.len(), 23);
        assert_ne!(a, generate());
        let typed = a.to_uppercase().replace('-', " ");
        assert_eq!(normalize(&typed).unwrap(), a.replace('-', ""));
        assert!(normalize("123456").is_none());
        assert_ne!(hash(&[1; 32], "x"), hash(&[2; 32], "x"));
    }
}
