//! Outgoing mail over lettre: SMTP when `SMTP_URL` is set, otherwise `.eml` files in
//! `<data dir>/outbox/` plus a log line. Requests only write to the outbox table
//! (`outbox::enqueue`); the `worker` delivers, with retries.

pub mod messages;
pub mod outbox;
pub mod worker;

use std::path::{Path, PathBuf};

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// The outbox folder. Not lettre's file transport: that one creates `<id>.eml` and
    /// then writes into it, so whoever watches the folder (a script picking up a
    /// verification link, the tests) can read a message that is still empty.
    File(PathBuf),
}

pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mailer {
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        match &cfg.smtp_url {
            Some(url) => Ok(Mailer::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build(),
            )),
            None => {
                let dir = cfg.data_dir.join("outbox");
                crate::files::create_private_dir(&dir)?;
                Ok(Mailer::File(dir))
            }
        }
    }

    pub async fn send(&self, from: &str, email: Email) -> anyhow::Result<()> {
        let msg = Message::builder()
            .from(from.parse::<Mailbox>()?)
            .to(email.to.parse::<Mailbox>()?)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(email.text, email.html))?;
        match self {
            Mailer::Smtp(t) => {
                t.send(msg).await?;
            }
            Mailer::File(dir) => {
                let (dir, raw) = (dir.clone(), msg.formatted());
                let file = tokio::task::spawn_blocking(move || write_eml(&dir, &raw)).await??;
                tracing::info!(to = %email.to, subject = %email.subject, file = %file.display(), "mail written to the outbox");
            }
        }
        Ok(())
    }
}

/// Writes one message as `<uuid>.eml`, whole or not at all: the bytes go to a hidden
/// temporary name first and are renamed into place (atomic within one folder).
fn write_eml(dir: &Path, raw: &[u8]) -> std::io::Result<PathBuf> {
    let id = uuid::Uuid::new_v4();
    let tmp = dir.join(format!(".{id}.eml.tmp"));
    let file = dir.join(format!("{id}.eml"));
    // 0600 whatever the umask: the message holds a live link.
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    std::io::Write::write_all(&mut opts.open(&tmp)?, raw)?;
    std::fs::rename(&tmp, &file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_message_appears_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_eml(dir.path(), b"Subject: hi\r\n\r\nbody").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"Subject: hi\r\n\r\nbody");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].ends_with(".eml") && !names[0].starts_with('.'));
    }
}

/// What the code that writes messages needs, whichever capability it serves (emailed
/// links, "a factor was added" notices, admin notices): the public base URL for
/// absolute links, the links' lifetimes, and the outbox.
#[derive(Clone)]
pub struct MailCtx {
    pub base: String,
    pub brand: messages::MailBrand,
    /// Where messages are queued (and what wakes their delivery).
    pub outbox: outbox::Outbox,
    pub verify_ttl: i64,
    pub reset_ttl: i64,
}

impl MailCtx {
    pub fn from_config(config: &crate::config::Config, outbox: outbox::Outbox) -> Self {
        Self {
            base: config.base_url(),
            brand: messages::MailBrand::from_config(config),
            verify_ttl: config.email_verification_ttl_secs,
            reset_ttl: config.password_reset_ttl_secs,
            outbox,
        }
    }
}
