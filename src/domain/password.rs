//! Password policy per NIST SP 800-63B: a length floor (configurable), a ceiling of 256,
//! no composition rules, and a strength estimate (zxcvbn, which carries a
//! common-password dictionary) that must reach 3 of 4.

pub const MAX_LEN: usize = 256;
pub const MIN_SCORE: u8 = 3;

pub fn check(password: &str, min_len: usize, user_inputs: &[&str]) -> Result<(), String> {
    let len = password.chars().count();
    if len < min_len {
        return Err(format!("Use at least {min_len} characters."));
    }
    if len > MAX_LEN {
        return Err(format!("Use at most {MAX_LEN} characters."));
    }
    let estimate = zxcvbn::zxcvbn(password, user_inputs);
    if u8::from(estimate.score()) < MIN_SCORE {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .unwrap_or_default();
        let mut msg = "This password is too easy to guess. Try a longer phrase of unrelated words."
            .to_string();
        if !hint.is_empty() {
            msg = format!("{msg} ({hint})");
        }
        return Err(msg);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn length_floor_and_ceiling() {
        assert!(check("short", 10, &[]).is_err());
        assert!(check(&"x".repeat(257), 10, &[]).is_err());
    }

    #[test]
    fn common_passwords_refused_strong_phrase_accepted() {
        assert!(check("password123", 10, &[]).is_err());
        assert!(check("qwertyuiop", 10, &[]).is_err());
        assert!(check("correct horse battery staple orbit", 10, &[]).is_ok());
    }

    #[test]
    fn own_email_counts_against() {
        assert!(check("alice.example", 10, &["alice.example"]).is_err());
    }
}
