//! The password step of signing in.

use std::net::IpAddr;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, event, record, record_event};
use crate::auth::password::Verified;
use crate::auth::sign_in::gate::{self, Stamp};
use crate::auth::throttle::RetryAfter;
use crate::db::conn::write_transaction;
use crate::db::repo::{users, users::User};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::email::EmailAddress;
use crate::domain::tokens;

pub enum LoginOutcome {
    /// The password is right; `next` says whether a second factor must follow.
    Success {
        user: Box<User>,
        roles: Vec<String>,
        next: NextStep,
    },
    /// Unknown email or wrong password: one answer for both.
    Invalid,
    /// The password was right but the account is disabled.
    Disabled,
    /// The password was right but the address is not confirmed yet (and must be).
    Unverified {
        email: String,
    },
    Throttled(RetryAfter),
}

enum Admitted {
    SignedIn(String),
    Pending(Stamp),
}

pub enum NextStep {
    /// A second factor must follow; nothing is registered yet. The stamp is the
    /// account as it was now: the pending sign-in carries it to the gate.
    SecondFactor(Stamp),
    /// Signed in: the session's registry row is in, with this public id, written in
    /// the transaction that records `login.succeeded`, already tied to the session
    /// store key `key` (so one write per sign-in: no second statement to link them).
    SignedIn { sid: String, key: String },
}

impl super::SignIn {
    /// The password step: `email` and `password` from the sign-in form, `ip` the
    /// client's (its own limit besides the account's).
    pub async fn password(
        &self,
        ip: IpAddr,
        email: &str,
        password: String,
        ctx: &AuditCtx,
    ) -> Result<LoginOutcome, InternalError> {
        let (db, sessions, hasher, throttle, clock) = (
            &self.db,
            &self.sessions,
            &self.hasher,
            &self.throttle,
            &self.clock,
        );
        let require_verified = self.config.require_verified_email;
        // Input that is not an address cannot name an account: it gets the per-IP limit
        // only, and is never stored as a key (it could be a password typed in the wrong box).
        let account_key = EmailAddress::parse(email)
            .map(|e| e.normalized().to_string())
            .unwrap_or_default();
        // Counted before the (slow) hash, so concurrent guesses cannot all be checked
        // before any failure counts.
        let reservation = match throttle.reserve(ip, &account_key).await {
            Ok(reservation) => reservation,
            Err(retry) => {
                let (ctx, now, key) = (ctx.clone(), clock.now(), account_key.clone());
                db.run(move |c| {
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::RateLimitExceeded,
                        Outcome::Denied,
                        None,
                        json!({"limit": "login", "account": key}),
                    )
                    .map_err(InternalError::from)
                })
                .await?;
                return Ok(LoginOutcome::Throttled(retry));
            }
        };

        let key = account_key.clone();
        let found = db
            .run(move |c| users::find_for_sign_in(c, &key).map_err(InternalError::from))
            .await?;
        let stored = found.as_ref().and_then(|(u, _, _)| u.password_hash.clone());
        let verified = hasher.verify(stored.clone(), password).await?;
        let now = clock.now();
        if reservation.outlived() {
            // The verdict came too late to be counted against the account: not used.
            return Ok(LoginOutcome::Throttled(RetryAfter(1)));
        }

        match (verified, found) {
            (Verified::Yes { rehash }, Some((user, mfa, roles))) => {
                let (ctx2, uid) = (ctx.with_actor(&user.id), user.id.clone());
                // The password is right: the account's failures are forgotten.
                reservation.succeeded().await;
                if user.disabled {
                    db.run(move |c| denied(c, &ctx2, now, &uid, "account disabled"))
                        .await?;
                    return Ok(LoginOutcome::Disabled);
                }
                if require_verified && !user.email_verified {
                    db.run(move |c| denied(c, &ctx2, now, &uid, "email not verified"))
                        .await?;
                    return Ok(LoginOutcome::Unverified { email: user.email });
                }
                let key = (!mfa).then(tokens::generate);
                let key_hash = key.as_ref().map(|k| tokens::hash(k));
                let (ip, ua) = (
                    ctx.ip.clone().unwrap_or_default(),
                    ctx.user_agent.clone().unwrap_or_default(),
                );
                let sessions = sessions.clone();
                let verified_hash = stored.unwrap_or_default();
                let admitted = db
                    .run(move |c| {
                        write_transaction(c, |c| {
                            // Hashing took a while: a disable or password reset that landed
                            // meanwhile must win, and one that follows must see this session.
                            // Both checks are the sign-in gate's; with a session to open, the
                            // check, the insert and the audit chain's lock are one statement.
                            let who = gate::Entrant {
                                user_id: &uid,
                                ip: &ip,
                                user_agent: &ua,
                            };
                            let (admitted, head) = match key_hash {
                                Some(kh) => {
                                    match gate::admit_password_in(
                                        c,
                                        &sessions,
                                        &who,
                                        kh,
                                        &verified_hash,
                                    )? {
                                        Some((sid, head)) => (Some(Admitted::SignedIn(sid)), head),
                                        None => (None, None),
                                    }
                                }
                                None => (
                                    gate::pending_stamp_in(c, &uid, &verified_hash)?
                                        .map(Admitted::Pending),
                                    None,
                                ),
                            };
                            let Some(admitted) = admitted else {
                                denied(c, &ctx2, now, &uid, "account changed during sign-in")?;
                                return Ok(None);
                            };
                            if let Some(h) = rehash {
                                users::set_password_hash(c, &uid, &h, now)?;
                            }
                            // The second-factor path (no head yet) takes the chain's lock
                            // in `record_event`, after the rehash has locked the user's row
                            // (the usual order).
                            let ev = event(
                                &ctx2,
                                now,
                                AuditAction::LoginSucceeded,
                                Outcome::Success,
                                Some(&uid),
                                json!({"method": "password", "second_factor_next": mfa}),
                            );
                            record_event(c, head, &ev)?;
                            Ok::<_, InternalError>(Some(admitted))
                        })
                    })
                    .await?;
                let next = match (admitted, key) {
                    (Some(Admitted::SignedIn(sid)), Some(key)) => NextStep::SignedIn { sid, key },
                    (Some(Admitted::Pending(stamp)), _) => NextStep::SecondFactor(stamp),
                    _ => return Ok(LoginOutcome::Invalid),
                };
                Ok(LoginOutcome::Success {
                    user: Box::new(user),
                    roles,
                    next,
                })
            }
            (_, found) => {
                let backoff = reservation.failed().await;
                let account_key = if account_key.is_empty() {
                    "<not an address>".to_string()
                } else {
                    account_key
                };
                let ctx = ctx.clone();
                let target = found.map(|(u, _, _)| u.id);
                db.run(move |c| {
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::LoginFailed,
                        Outcome::Failure,
                        target.as_deref(),
                        json!({"account": account_key}),
                    )?;
                    if let Some(RetryAfter(secs)) = backoff {
                        record(
                            c,
                            &ctx,
                            now,
                            AuditAction::RateLimitExceeded,
                            Outcome::Denied,
                            target.as_deref(),
                            json!({"limit": "account_backoff", "seconds": secs}),
                        )?;
                    }
                    Ok::<_, InternalError>(())
                })
                .await?;
                Ok(LoginOutcome::Invalid)
            }
        }
    }
}

/// `login.failed` for a right password that is refused anyway, with why.
fn denied(
    c: &mut crate::db::AnyConnection,
    ctx: &AuditCtx,
    now: i64,
    uid: &str,
    reason: &str,
) -> Result<(), InternalError> {
    gate::refused(c, ctx, now, uid, reason).map_err(InternalError::from)
}
