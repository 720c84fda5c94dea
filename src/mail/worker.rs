//! Delivers the outbox: leases due messages (so two instances never send the same one
//! at once), sends them, and marks them sent; a failure is retried with exponential
//! back-off until it goes through or is too old, and is logged and reported to the
//! `on_failure` hook (the audit log, wired in by `startup`: mail sits below `auth`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Notify, watch};

use super::{Email, Mailer};
use crate::clock::Clock;
use crate::db::repo::outbox::{self, OutboxMail};
use crate::db::{AnyConnection, Db, DbError, QueryResult};

/// How long a claimed message stays ours; longer than one SMTP attempt can take.
const LEASE_SECS: i64 = 120;
const BATCH: i64 = 20;

/// Told of a failed delivery (the first failure and the final one), inside the
/// transaction that records it: `(connection, now, details)`.
pub type FailureHook =
    Arc<dyn Fn(&mut AnyConnection, i64, serde_json::Value) -> QueryResult<()> + Send + Sync>;

#[derive(Clone)]
pub struct Settings {
    pub from: String,
    pub retry_base_secs: i64,
    pub retry_max_secs: i64,
    pub give_up_after_secs: i64,
    pub on_failure: FailureHook,
}

pub fn backoff(settings: &Settings, attempts: i32) -> i64 {
    let exp = (attempts.max(1) - 1).min(20) as u32;
    settings
        .retry_base_secs
        .saturating_mul(1i64 << exp)
        .min(settings.retry_max_secs)
}

pub fn spawn(
    db: Db,
    mailer: Mailer,
    clock: Clock,
    settings: Settings,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let worker_id = format!("worker-{}", uuid::Uuid::new_v4().simple());
    tokio::spawn(async move {
        loop {
            if let Err(e) = deliver_due(&db, &mailer, &clock, &settings, &worker_id).await {
                tracing::warn!(error = %e, "mail outbox pass failed; will retry");
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => break,
            }
        }
    });
}

/// One pass over the due messages; returns how many were sent.
pub async fn deliver_due(
    db: &Db,
    mailer: &Mailer,
    clock: &Clock,
    settings: &Settings,
    worker_id: &str,
) -> Result<usize, DbError> {
    let now = clock.now();
    let me = worker_id.to_string();
    let claimed = db
        .run(move |c| {
            outbox::claim_due(c, &me, now, now + LEASE_SECS, BATCH).map_err(DbError::from)
        })
        .await?;
    let mut sent = 0;
    for mail in claimed {
        let email = Email {
            to: mail.to_addr.clone(),
            subject: mail.subject.clone(),
            text: mail.body_text.clone(),
            html: mail.body_html.clone(),
        };
        let result =
            tokio::time::timeout(Duration::from_secs(60), mailer.send(&settings.from, email)).await;
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        match outcome {
            Ok(()) => {
                let (id, me, at) = (mail.id.clone(), worker_id.to_string(), clock.now());
                db.run(move |c| outbox::mark_sent(c, &id, &me, at).map_err(DbError::from))
                    .await?;
                sent += 1;
            }
            Err(err) => failed(db, clock, settings, worker_id, &mail, &err).await?,
        }
    }
    Ok(sent)
}

async fn failed(
    db: &Db,
    clock: &Clock,
    settings: &Settings,
    worker_id: &str,
    mail: &OutboxMail,
    err: &str,
) -> Result<(), DbError> {
    let now = clock.now();
    let attempts = mail.attempts + 1;
    let give_up = now - mail.created_at >= settings.give_up_after_secs;
    let next = now + backoff(settings, attempts);
    let domain = mail
        .to_addr
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    if give_up {
        tracing::error!(mail_id = %mail.id, to_domain = %domain, attempts, error = %err, "mail delivery abandoned");
    } else {
        tracing::warn!(mail_id = %mail.id, to_domain = %domain, attempts, error = %err, retry_in_secs = next - now, "mail delivery failed; will retry");
    }
    let (id, me, e) = (
        mail.id.clone(),
        worker_id.to_string(),
        err.chars().take(500).collect::<String>(),
    );
    // Audit the first failure and the final one: visible, without one row per retry.
    let audit = attempts == 1 || give_up;
    let hook = settings.on_failure.clone();
    db.run(move |c| {
        outbox::mark_failed(c, &id, &me, next, &e, give_up.then_some(now))?;
        if audit {
            (hook)(c, now, json!({"mail_id": id, "to_domain": domain, "attempts": attempts, "error": e, "abandoned": give_up}))?;
        }
        Ok::<_, DbError>(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Settings {
            from: String::new(),
            retry_base_secs: 5,
            retry_max_secs: 300,
            give_up_after_secs: 1,
            on_failure: Arc::new(|_, _, _| Ok(())),
        };
        assert_eq!(backoff(&s, 1), 5);
        assert_eq!(backoff(&s, 2), 10);
        assert_eq!(backoff(&s, 4), 40);
        assert_eq!(backoff(&s, 10), 300);
        assert_eq!(backoff(&s, 1000), 300);
    }
}
