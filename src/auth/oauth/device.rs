//! RFC 8628's front: a device's request (`/oauth/device_authorization`) and the user's
//! answer at `/device`. The token endpoint's side is `grants::device`.
//!
//! The device code is 32 random bytes; the user code is short (`domain::user_code`),
//! so both are stored as SHA-256 and every code a person enters is counted before it
//! is looked up, per client address and per account (`Throttle::device_code_entry`).
//! Approving holds the user to what the authorization endpoint would: the app's
//! groups and networks, its second-factor rule (`app_access`); it records consent as
//! the consent page does. A request is answered once: approving and denying are
//! conditional updates of a pending row. A user the app's groups or networks refuse
//! ends the request as a Deny does (the device is told `access_denied`).

use std::net::IpAddr;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::app_access::{Denial, SecondFactor, record_denied};
use crate::auth::oauth::authorize::{DEVICE_GRANT, consent_given};
use crate::auth::oauth::decision::{SignedIn, allowed_scope};
use crate::auth::oauth::{Client, FlowError, OAuthError, OAuthProvider};
use crate::auth::throttle::{RetryAfter, Throttle};
use crate::db::conn::write_transaction;
use crate::db::repo::device_codes::{self as devices, Approval, DeviceCode};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::tokens::{generate, hash};
use crate::domain::user_code;

/// Seconds a device waits between polls, unless told to slow down.
pub const POLL_INTERVAL_SECS: i64 = 5;

/// The path of the page where users enter codes.
pub const VERIFICATION_PATH: &str = "/device";

/// A started request, as the device is told (RFC 8628 section 3.2).
pub struct DeviceStart {
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// The user's answer at `/device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAnswer {
    Allow,
    Deny,
}

/// What `/device` shows after a code was entered (or answered).
#[derive(Debug)]
pub enum DeviceOutcome {
    /// Ask the user: `app` wants `scopes`, for the device showing `user_code`.
    Prompt {
        app: String,
        scopes: Vec<String>,
        user_code: String,
    },
    /// Allowed: the device gets its tokens at its next poll.
    Approved { app: String },
    /// Denied: the device is told `access_denied`.
    Denied { app: String },
    /// No request waits under this code (mistyped, expired, answered already).
    UnknownCode,
    /// Too many codes entered; try again after this many seconds.
    Throttled(RetryAfter),
    /// The app asks for a second factor: prove it, then come back.
    NeedsSecondFactor { user_code: String },
    /// The account may not use the app (recorded as `access.denied`).
    NoAccess(Denial),
}

impl OAuthProvider {
    /// Starts a device authorization request for an authenticated client: only a client
    /// registered with the device grant may, and only for scopes it may have. The
    /// request and its `device.authorization_started` event are stored together.
    pub async fn start_device_authorization(
        &self,
        client: &Client,
        scope: Option<&str>,
        ctx: &AuditCtx,
    ) -> Result<DeviceStart, FlowError> {
        if !client.allows_grant(DEVICE_GRANT) {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the device code grant",
            )
            .into());
        }
        let scope = allowed_scope(client, scope.unwrap_or_default())?;
        let now = self.clock.now();
        let device_code = generate();
        let mut row = DeviceCode {
            device_code_hash: hash(&device_code),
            user_code_hash: String::new(),
            client_id: client.client_id.clone(),
            scope,
            status: devices::PENDING.into(),
            user_id: None,
            auth_time: None,
            amr: None,
            sid: None,
            poll_interval: POLL_INTERVAL_SECS,
            last_polled_at: None,
            created_at: now,
            expires_at: now + self.device_ttl,
        };
        // A user code already waiting (or expired and not yet pruned) is drawn again.
        for _ in 0..5 {
            let shown = user_code::generate();
            let normalized = user_code::normalize(&shown).unwrap_or_default();
            row.user_code_hash = hash(&normalized);
            let (r, audit) = (row.clone(), ctx.clone());
            let stored = self
                .db
                .run(move |c| {
                    write_transaction(c, |c| {
                        if !devices::insert(c, &r)? {
                            return Ok(false);
                        }
                        // Neither code: the device code is a credential, and the user
                        // code is what a person types to link an account.
                        let details = json!({"client_id": r.client_id, "scope": r.scope});
                        let (action, outcome) =
                            (AuditAction::DeviceAuthorizationStarted, Outcome::Success);
                        record(c, &audit, now, action, outcome, None, details)?;
                        Ok(true)
                    })
                    .map_err(|e: crate::db::QueryError| InternalError::from(e))
                })
                .await?;
            if stored {
                let uri = format!("{}{VERIFICATION_PATH}", self.issuer);
                return Ok(DeviceStart {
                    device_code,
                    verification_uri_complete: format!("{uri}?user_code={shown}"),
                    verification_uri: uri,
                    user_code: shown,
                    expires_in: self.device_ttl,
                    interval: POLL_INTERVAL_SECS,
                });
            }
        }
        Err(OAuthError::TemporarilyUnavailable.into())
    }

    /// A user code entered at `/device` by a signed-in `user` whose browser is at
    /// `ip`, with their `answer` once they gave one. The entry is counted first;
    /// then the request behind the code is found and the app's rules applied.
    pub async fn device_entry(
        &self,
        (throttle, ip): (&Throttle, IpAddr),
        user: &SignedIn,
        entered: &str,
        answer: Option<DeviceAnswer>,
        ctx: &AuditCtx,
    ) -> Result<DeviceOutcome, InternalError> {
        if let Err(wait) = throttle.device_code_entry(ip, &user.user_id).await {
            self.audit
                .record(
                    ctx,
                    self.clock.now(),
                    AuditAction::RateLimitExceeded,
                    Outcome::Denied,
                    Some(&user.user_id),
                    json!({"limit": "device_code"}),
                )
                .await?;
            return Ok(DeviceOutcome::Throttled(wait));
        }
        let Some(normalized) = user_code::normalize(entered) else {
            return Ok(DeviceOutcome::UnknownCode);
        };
        let (h, now) = (hash(&normalized), self.clock.now());
        let row = self
            .db
            .run(move |c| devices::pending(c, &h, now).map_err(InternalError::from))
            .await?;
        let Some(row) = row else {
            return Ok(DeviceOutcome::UnknownCode);
        };
        let Some(client) = self.find_client(&row.client_id).await? else {
            return Ok(DeviceOutcome::UnknownCode);
        };
        let ids = (user.user_id.as_str(), client.client_id.as_str());
        if let Some(why) = self.app_admits(&client, &user.user_id, Some(ip)).await? {
            // The groups and networks are the operator's to change, not the user's: the
            // request ends here, and the device hears `access_denied` at its next poll
            // instead of waiting for an answer that cannot come.
            self.refuse_device(row, user, why, ctx).await?;
            return Ok(DeviceOutcome::NoAccess(why));
        }
        match self
            .second_factor(&client, &user.user_id, &user.amr)
            .await?
        {
            SecondFactor::Satisfied => {}
            SecondFactor::Missing => {
                // The user can add a second factor and come back while the request
                // still waits (the page says so): it is left pending.
                let why = Denial::NoSecondFactor;
                self.app_denied_by(ids, why, "device", ctx).await?;
                return Ok(DeviceOutcome::NoAccess(why));
            }
            SecondFactor::StepUp => {
                return Ok(DeviceOutcome::NeedsSecondFactor {
                    user_code: user_code::display(&normalized),
                });
            }
        }
        let Some(answer) = answer else {
            return Ok(DeviceOutcome::Prompt {
                app: client.name,
                scopes: row.scope.split_whitespace().map(str::to_string).collect(),
                user_code: user_code::display(&normalized),
            });
        };
        let answered = self.answer_device(row, user, answer, ctx).await?;
        Ok(match (answered, answer) {
            (false, _) => DeviceOutcome::UnknownCode,
            (true, DeviceAnswer::Allow) => DeviceOutcome::Approved { app: client.name },
            (true, DeviceAnswer::Deny) => DeviceOutcome::Denied { app: client.name },
        })
    }

    /// Ends a pending request that the app's rules refuse `user`, as a Deny would:
    /// `access.denied` says why, and `device.denied` (with the same `reason`) that the
    /// request ended, both in the transaction of the conditional update. When the
    /// request no longer waited (answered or expired meanwhile), only the refusal is
    /// recorded.
    async fn refuse_device(
        &self,
        row: DeviceCode,
        user: &SignedIn,
        why: Denial,
        ctx: &AuditCtx,
    ) -> Result<(), InternalError> {
        let (ctx, now, uid) = (ctx.clone(), self.clock.now(), user.user_id.clone());
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    let (h, cid) = (&row.device_code_hash, row.client_id.as_str());
                    // The row before the chain, as `answer_device` takes them: two
                    // transactions never wait for each other's lock.
                    let ended = devices::answer(c, h, now, None)?;
                    record_denied(c, &ctx, now, &uid, cid, why, "device")?;
                    if ended {
                        let details = json!({
                            "client_id": cid, "scope": row.scope, "reason": why.reason(),
                        });
                        let (action, outcome) = (AuditAction::DeviceDenied, Outcome::Denied);
                        record(c, &ctx, now, action, outcome, Some(&uid), details)?;
                    }
                    Ok(())
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await
    }

    /// Records the answer to a pending request with its audit event (and, when
    /// allowed, the consent), in one transaction; false when the request no longer
    /// waited.
    async fn answer_device(
        &self,
        row: DeviceCode,
        user: &SignedIn,
        answer: DeviceAnswer,
        ctx: &AuditCtx,
    ) -> Result<bool, InternalError> {
        let (ctx, now, user) = (ctx.clone(), self.clock.now(), user.clone());
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    let uid = user.user_id.as_str();
                    let amr = user.amr.join(" ");
                    let approval = (answer == DeviceAnswer::Allow).then(|| Approval {
                        user_id: uid,
                        auth_time: user.auth_time,
                        amr: &amr,
                        sid: &user.sid,
                    });
                    if !devices::answer(c, &row.device_code_hash, now, approval)? {
                        return Ok(false);
                    }
                    let (action, outcome) = match answer {
                        DeviceAnswer::Allow => {
                            consent_given(c, (&ctx, now), uid, &row.client_id, &row.scope)?;
                            (AuditAction::DeviceApproved, Outcome::Success)
                        }
                        DeviceAnswer::Deny => (AuditAction::DeviceDenied, Outcome::Denied),
                    };
                    let details = json!({"client_id": row.client_id, "scope": row.scope});
                    record(c, &ctx, now, action, outcome, Some(uid), details)?;
                    Ok(true)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await
    }
}
