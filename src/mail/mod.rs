//! Outgoing mail over lettre: SMTP when `SMTP_URL` is set, otherwise `.eml` files in
//! `<data dir>/outbox/` plus a log line. Requests only write to the outbox table
//! (`outbox::enqueue`); the `worker` delivers, with retries.

pub mod messages;
pub mod outbox;
pub mod worker;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
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
                std::fs::create_dir_all(&dir)?;
                Ok(Mailer::File(
                    AsyncFileTransport::<Tokio1Executor>::new(&dir),
                    dir,
                ))
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
            Mailer::File(t, dir) => {
                let id = t.send(msg).await?;
                tracing::info!(to = %email.to, subject = %email.subject, file = %dir.join(format!("{id}.eml")).display(), "mail written to the outbox");
            }
        }
        Ok(())
    }
}
