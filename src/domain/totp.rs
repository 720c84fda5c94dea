//! TOTP per RFC 6238 with the settings every authenticator app understands (SHA-1,
//! 6 digits, 30 s) and ±1 step of clock skew. Returns the matched step: accepting each
//! step only once (replay protection) is the caller's job, since it needs storage.

use totp_rs::{Algorithm, TOTP};

pub const STEP_SECS: u64 = 30;
pub const DIGITS: usize = 6;

/// `issuer` and `account` only label the entry in the app; codes do not depend on them.
fn totp(secret: &[u8], issuer: Option<&str>, account: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECS,
        secret.to_vec(),
        issuer.map(str::to_string),
        account.into(),
    )
    .ok()
}

/// A new random secret (160 bits, as RFC 4226 recommends).
pub fn new_secret() -> Vec<u8> {
    let mut s = vec![0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut s);
    s
}

pub fn to_base32(secret: &[u8]) -> String {
    totp_rs::Secret::Raw(secret.to_vec())
        .to_encoded()
        .to_string()
}

pub fn from_base32(b32: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::Encoded(b32.replace(' ', "").to_uppercase())
        .to_bytes()
        .ok()
}

/// The manual entry key in groups of four, for reading aloud or typing.
pub fn grouped(b32: &str) -> String {
    b32.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The code for a given step (tests and enrolment use it).
pub fn code_at(secret: &[u8], step: u64) -> Option<String> {
    totp(secret, None, "x").map(|t| t.generate(step * STEP_SECS))
}

/// The step whose code matches, within ±1 step of `now` (unix seconds).
pub fn matching_step(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, None, "x")?;
    let current = now / STEP_SECS;
    // Check every candidate so timing does not tell which step matched.
    let mut found = None;
    for step in current.saturating_sub(1)..=current + 1 {
        if crate::domain::tokens::ct_eq(t.generate(step * STEP_SECS).as_bytes(), code.as_bytes()) {
            found.get_or_insert(step);
        }
    }
    found
}

/// `otpauth://` URL for authenticator apps, labelled `issuer:account` with the issuer
/// repeated as a parameter (both percent-encoded by totp-rs), as Google Authenticator's
/// key URI format asks. The issuer is the brand name, which the configuration keeps
/// free of `:`.
pub fn provisioning_url(secret: &[u8], issuer: &str, account: &str) -> String {
    totp(secret, Some(issuer), account)
        .map(|t| t.get_url())
        .unwrap_or_default()
}

/// The QR code of `data` as an inline SVG element (no image service, CSP-clean).
pub fn qr_svg(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build()
            .replacen("<?xml version=\"1.0\" standalone=\"yes\"?>", "", 1),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_of_one_step_either_way_and_no_more() {
        let s = new_secret();
        let now = 1_700_000_000u64;
        let step = now / STEP_SECS;
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = code_at(&s, (step as i64 + offset) as u64).unwrap();
            assert_eq!(
                matching_step(&s, &code, now).is_some(),
                ok,
                "offset {offset}"
            );
        }
        assert_eq!(
            matching_step(&s, &code_at(&s, step).unwrap(), now),
            Some(step)
        );
        assert!(matching_step(&s, "12345", now).is_none());
        assert!(matching_step(&s, "abcdef", now).is_none());
    }

    #[test]
    fn base32_round_trip_and_grouping() {
        let s = new_secret();
        let b = to_base32(&s);
        assert_eq!(b.len(), 32);
        assert_eq!(from_base32(&grouped(&b)).unwrap(), s);
        assert_eq!(grouped("ABCDEFGH"), "ABCD EFGH");
    }

    #[test]
    fn the_issuer_is_percent_encoded_in_label_and_parameter() {
        let url = provisioning_url(&new_secret(), "Acme & Co", "a@b.c");
        assert!(
            url.starts_with("otpauth://totp/Acme%20%26%20Co:a%40b.c?secret="),
            "{url}"
        );
        assert!(url.ends_with("&issuer=Acme%20%26%20Co"), "{url}");
    }

    #[test]
    fn qr_is_inline_svg() {
        let svg = qr_svg("otpauth://totp/portcullis:a%40b.c?secret=ABC&issuer=portcullis");
        assert!(svg.trim_start().starts_with("<svg"));
        assert!(!svg.contains("<script"));
    }
}
