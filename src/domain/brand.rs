//! The operator's brand: the product name, logo, accent colour and extra stylesheet
//! users see instead of portcullis's own. The checks run at start, so a name that
//! would break a page or an authenticator app, a logo that is not an image, or a
//! colour people cannot read stop the start with a message instead.

/// The name shown when the operator sets none.
pub const DEFAULT_NAME: &str = "portcullis";
/// The built-in accent (the stylesheet's `--accent` in the light scheme).
pub const DEFAULT_ACCENT: &str = "#2b59c3";
/// The longest name accepted, in characters: it sits in titles and headers.
pub const MAX_NAME_CHARS: usize = 64;
/// WCAG 2.x AA for normal text: buttons carry white text on the accent, and links are
/// the accent on white.
pub const MIN_CONTRAST: f64 = 4.5;
/// The largest logo accepted; it is held in memory and sent with every first visit.
pub const MAX_LOGO_BYTES: usize = 512 * 1024;
/// The largest extra stylesheet accepted.
pub const MAX_CSS_BYTES: usize = 256 * 1024;

/// A product name: not empty, at most 64 characters, no control characters (they
/// would break mail headers) and no `:` (authenticator apps split the label
/// `issuer:account` at the first one).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the name is empty".into());
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "the name is {chars} characters long (at most {MAX_NAME_CHARS})"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains a control character".into());
    }
    if name.contains(':') {
        return Err(
            "the name contains ':', which authenticator apps read as the end of the issuer".into(),
        );
    }
    Ok(())
}

/// A colour as 8-bit sRGB channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rgb` or `#rrggbb` (any case).
    pub fn parse(v: &str) -> Result<Rgb, String> {
        let bad = || format!("{v:?} is not a colour: expected #rgb or #rrggbb");
        let hex = v.strip_prefix('#').ok_or_else(bad)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let digit = |i: usize| u8::from_str_radix(&hex[i..=i], 16).map_err(|_| bad());
        let pair = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
        match hex.len() {
            3 => Ok(Rgb(digit(0)? * 17, digit(1)? * 17, digit(2)? * 17)),
            6 => Ok(Rgb(pair(0)?, pair(2)?, pair(4)?)),
            _ => Err(bad()),
        }
    }

    /// Lower-case `#rrggbb`, as written into the generated stylesheet.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// WCAG 2.x relative luminance: each channel linearised from sRGB, then weighted
    /// by how bright the eye sees it.
    pub fn relative_luminance(self) -> f64 {
        let lin = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.0) + 0.7152 * lin(self.1) + 0.0722 * lin(self.2)
    }

    /// The WCAG contrast ratio against white, from 1 (white) to 21 (black).
    pub fn contrast_on_white(self) -> f64 {
        (1.0 + 0.05) / (self.relative_luminance() + 0.05)
    }
}

/// An accent colour: parses, and white text on it (and it on white) is readable.
pub fn check_accent(v: &str) -> Result<(), String> {
    let rgb = Rgb::parse(v)?;
    let ratio = rgb.contrast_on_white();
    if ratio < MIN_CONTRAST {
        return Err(format!(
            "{v} has a contrast ratio of {:.2}:1 on white, below the {MIN_CONTRAST}:1 that \
             readable buttons and links need; choose a darker colour",
            // Floor, so a ratio just under the limit never prints as 4.50.
            (ratio * 100.0).floor() / 100.0
        ));
    }
    Ok(())
}

/// The image types a logo may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoType {
    Svg,
    Png,
}

impl LogoType {
    pub fn mime(self) -> &'static str {
        match self {
            LogoType::Svg => "image/svg+xml",
            LogoType::Png => "image/png",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            LogoType::Svg => "svg",
            LogoType::Png => "png",
        }
    }

    /// What the bytes are, whatever the file is called: the PNG signature, or UTF-8
    /// text that is markup with an `<svg` element. The extension must agree, so a
    /// misnamed file is caught at start rather than shown broken.
    pub fn sniff(file_name: &str, bytes: &[u8]) -> Result<LogoType, String> {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
        let ext = file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let found = if bytes.starts_with(PNG) {
            LogoType::Png
        } else if is_svg(bytes) {
            LogoType::Svg
        } else {
            return Err("the file is neither a PNG nor an SVG image".into());
        };
        if ext != found.extension() {
            return Err(format!(
                "the file holds a {} image but is not named .{}",
                found.extension().to_ascii_uppercase(),
                found.extension()
            ));
        }
        Ok(found)
    }
}

fn is_svg(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with('<') && text.contains("<svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(v: &str) -> f64 {
        Rgb::parse(v).unwrap().contrast_on_white()
    }

    #[test]
    fn contrast_on_white_spans_one_to_twenty_one() {
        assert!((ratio("#ffffff") - 1.0).abs() < 1e-9);
        assert!((ratio("#000000") - 21.0).abs() < 1e-9);
        assert!((ratio("#fff") - 1.0).abs() < 1e-9);
        // WCAG's worked value: #767676 is the lightest grey that passes AA on white.
        assert!((ratio("#767676") - 4.54).abs() < 0.01);
        assert!(ratio("#777777") < MIN_CONTRAST);
    }

    #[test]
    fn the_built_in_blue_passes() {
        assert!(ratio(DEFAULT_ACCENT) >= MIN_CONTRAST);
        check_accent(DEFAULT_ACCENT).unwrap();
    }

    #[test]
    fn a_light_accent_is_refused_naming_its_ratio() {
        let e = check_accent("#ffff00").unwrap_err();
        assert!(e.contains("1.07:1") && e.contains("4.5:1"), "{e}");
        assert!(check_accent("#777777").unwrap_err().contains("4.47:1"));
    }

    #[test]
    fn colours_parse_in_both_forms_and_nothing_else() {
        assert_eq!(Rgb::parse("#1A2b3C").unwrap(), Rgb(0x1a, 0x2b, 0x3c));
        assert_eq!(Rgb::parse("#abc").unwrap().hex(), "#aabbcc");
        for bad in [
            "", "#", "123456", "#12345", "#ggg", "red", "#1234567", "#ü12",
        ] {
            assert!(Rgb::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_checked() {
        check_name("Acme Sign-in").unwrap();
        check_name("Zürich & Co <ID>").unwrap();
        assert!(check_name("").is_err());
        assert!(check_name("  ").is_err());
        assert!(check_name(&"x".repeat(65)).unwrap_err().contains("65"));
        check_name(&"é".repeat(64)).unwrap();
        assert!(check_name("a\nb").is_err());
        assert!(check_name("a:b").is_err());
    }

    #[test]
    fn logos_are_sniffed_and_must_be_named_for_what_they_are() {
        let png = b"\x89PNG\r\n\x1a\n rest";
        let svg =
            b"\xef\xbb\xbf<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        assert_eq!(LogoType::sniff("logo.PNG", png).unwrap(), LogoType::Png);
        assert_eq!(LogoType::sniff("/a/logo.svg", svg).unwrap(), LogoType::Svg);
        assert!(LogoType::sniff("logo.svg", png).is_err());
        assert!(LogoType::sniff("logo.png", svg).is_err());
        assert!(LogoType::sniff("logo.gif", b"GIF89a").is_err());
        assert!(LogoType::sniff("logo.svg", b"hello <svg").is_err());
    }
}
