//! Every message portcullis sends, rendered from `templates/email/<name>/` as plain text
//! and HTML (the HTML escaped, the text not), with absolute links.

use askama::Template;

/// Who the messages come from, as users see it: the brand name (in subjects, and
/// signing every message) and the accent colour of their buttons.
#[derive(Debug, Clone)]
pub struct MailBrand {
    pub name: String,
    /// `#rrggbb`, checked at start, so safe inside a `style` attribute.
    pub accent: String,
}

impl MailBrand {
    pub fn from_config(config: &crate::config::Config) -> Self {
        let accent = crate::domain::brand::Rgb::parse(&config.brand_accent_color).map_or_else(
            |_| crate::domain::brand::DEFAULT_ACCENT.to_string(),
            |c| c.hex(),
        );
        Self {
            name: config.brand_name.clone(),
            accent,
        }
    }
}

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Declares a message: the struct is the HTML template; subject and text are rendered
/// through thin wrappers that deref to it, so all three see the same fields.
macro_rules! message {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }, $subject:tt, $text:tt, $html:tt) => {
        #[derive(Template)]
        #[template(path = $html)]
        pub struct $name {
            /// The public URL, for links.
            pub base: String,
            pub brand: MailBrand,
            /// The address the message is about (the recipient's, unless said otherwise).
            pub email: String,
            $(pub $field: $ty,)*
        }

        impl $name {
            pub fn render_all(&self) -> Result<Rendered, askama::Error> {
                #[derive(Template)]
                #[template(path = $subject)]
                struct Subject<'a> {
                    inner: &'a $name,
                }
                impl std::ops::Deref for Subject<'_> {
                    type Target = $name;
                    fn deref(&self) -> &$name {
                        self.inner
                    }
                }
                #[derive(Template)]
                #[template(path = $text)]
                struct Text<'a> {
                    inner: &'a $name,
                }
                impl std::ops::Deref for Text<'_> {
                    type Target = $name;
                    fn deref(&self) -> &$name {
                        self.inner
                    }
                }
                // Named like page titles: what it is about, then who sends it.
                let subject = Subject { inner: self }.render()?;
                Ok(Rendered {
                    subject: format!("{} · {}", subject.trim(), self.brand.name),
                    text: Text { inner: self }.render()?,
                    html: self.render()?,
                })
            }
        }
    };
}

message!(
    VerifyEmail {
        link: String,
        valid_for: String
    },
    "email/verify_email/subject.txt",
    "email/verify_email/body.txt",
    "email/verify_email/body.html"
);
message!(
    PasswordReset {
        link: String,
        valid_for: String
    },
    "email/password_reset/subject.txt",
    "email/password_reset/body.txt",
    "email/password_reset/body.html"
);
message!(
    PasswordChanged { reset: bool },
    "email/password_changed/subject.txt",
    "email/password_changed/body.txt",
    "email/password_changed/body.html"
);
message!(
    EmailChangeConfirm {
        new_email: String,
        link: String,
        valid_for: String
    },
    "email/email_change_confirm/subject.txt",
    "email/email_change_confirm/body.txt",
    "email/email_change_confirm/body.html"
);
message!(
    EmailChangeRequested { new_email: String },
    "email/email_change_requested/subject.txt",
    "email/email_change_requested/body.txt",
    "email/email_change_requested/body.html"
);
message!(
    EmailChanged { new_email: String },
    "email/email_changed/subject.txt",
    "email/email_changed/body.txt",
    "email/email_changed/body.html"
);
message!(
    RegistrationAttempt {},
    "email/registration_attempt/subject.txt",
    "email/registration_attempt/body.txt",
    "email/registration_attempt/body.html"
);
message!(
    MethodAdded { method: String },
    "email/method_added/subject.txt",
    "email/method_added/body.txt",
    "email/method_added/body.html"
);
message!(
    RecoveryCodeUsed { left: i64 },
    "email/recovery_code_used/subject.txt",
    "email/recovery_code_used/body.txt",
    "email/recovery_code_used/body.html"
);
message!(
    MethodRemoved { method: String },
    "email/method_removed/subject.txt",
    "email/method_removed/body.txt",
    "email/method_removed/body.html"
);

/// "30 minutes", "24 hours" for a lifetime in seconds.
pub fn valid_for(secs: i64) -> String {
    match secs {
        s if s % 86400 == 0 && s >= 2 * 86400 => format!("{} days", s / 86400),
        s if s % 3600 == 0 && s >= 3600 => {
            let h = s / 3600;
            if h == 1 {
                "1 hour".into()
            } else {
                format!("{h} hours")
            }
        }
        s if s >= 60 => {
            let m = (s + 59) / 60;
            if m == 1 {
                "1 minute".into()
            } else {
                format!("{m} minutes")
            }
        }
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_text_is_not_and_links_are_absolute() {
        let m = EmailChangeConfirm {
            base: "https://auth.example".into(),
            brand: MailBrand {
                name: "Acme <ID>".into(),
                accent: "#112233".into(),
            },
            email: "a@example.com".into(),
            new_email: "<b>@example.com".into(),
            link: "https://auth.example/verify-email?token=abc".into(),
            valid_for: valid_for(86400),
        };
        let r = m.render_all().unwrap();
        assert_eq!(r.subject, "Confirm your new email address · Acme <ID>");
        assert!(r.text.contains("Acme <ID>"));
        assert!(r.html.contains("Acme &#60;ID&#62;") || r.html.contains("Acme &lt;ID&gt;"));
        assert!(r.html.contains("background:#112233"));
        assert!(r.text.contains("<b>@example.com"));
        assert!(!r.html.contains("<b>@example.com"));
        assert!(
            r.text
                .contains("https://auth.example/verify-email?token=abc")
        );
        assert!(r.text.contains("24 hours"));
        assert!(r.html.contains("ignore this message"));
    }

    #[test]
    fn lifetimes_read_well() {
        assert_eq!(valid_for(1800), "30 minutes");
        assert_eq!(valid_for(3600), "1 hour");
        assert_eq!(valid_for(86400), "24 hours");
        assert_eq!(valid_for(3 * 86400), "3 days");
    }
}
