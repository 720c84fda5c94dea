-- Outgoing mail, written in the same transaction as the change that caused it and
-- delivered by a background worker: nothing is lost when SMTP is down or the process
-- restarts. A worker leases a row (claimed_by/claimed_until) before sending, so two
-- instances never send the same message at the same time.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    created_at BIGINT NOT NULL,
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_until BIGINT,
    sent_at BIGINT,
    failed_at BIGINT,
    last_error TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox(sent_at, next_attempt_at);
