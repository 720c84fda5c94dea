//! RFC 8628's device code grant: the device polls with its device code until the user
//! answers at `/device`. Pending: `authorization_pending`, or `slow_down` (and 5 s
//! more between polls) when it comes too soon; denied: `access_denied`; expired:
//! `expired_token`; approved: tokens, issued once. The claim of an approved request
//! and the grant it starts are one transaction, so of concurrent polls after the
//! approval exactly one gets tokens; the others, and every later one, `invalid_grant`.

use super::{Holder, Memberships, Tokens, holder};
use crate::auth::audit::AuditCtx;
use crate::auth::oauth::OAuthProvider;
use crate::auth::oauth::authorize::DEVICE_GRANT;
use crate::auth::oauth::error::{FlowError, OAuthError};
use crate::db::repo::device_codes::{self as devices, DeviceCode};
use crate::db::repo::oauth::{Client, GrantRow};
use crate::db::repo::users::User;
use crate::domain::tokens::{generate, hash};

/// What RFC 8628 adds to the interval when a device polls too soon.
pub const SLOW_DOWN_SECS: i64 = 5;

/// What a poll found. (Lives for one call: size is no concern.)
#[allow(clippy::large_enum_variant)]
enum Poll {
    Refused(OAuthError),
    Approved(DeviceCode, User, Memberships),
}

impl OAuthProvider {
    /// The device code grant, for an authenticated client.
    pub async fn exchange_device_code(
        &self,
        client: &Client,
        device_code: &str,
        ctx: &AuditCtx,
    ) -> Result<Tokens, FlowError> {
        if !client.allows_grant(DEVICE_GRANT) {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the device code grant",
            )
            .into());
        }
        let now = self.clock.now();
        let h = hash(device_code);
        let (h2, cl, ctx2) = (h.clone(), client.clone(), ctx.clone());
        let poll = self
            .transaction(move |c| {
                let unknown = || {
                    Ok(Poll::Refused(OAuthError::InvalidGrant(
                        "unknown device code",
                    )))
                };
                let Some(row) = devices::find(c, &h2)? else {
                    return unknown();
                };
                // Another client's code is unknown to this one.
                if row.client_id != cl.client_id {
                    return unknown();
                }
                if row.status == devices::USED {
                    return Ok(Poll::Refused(OAuthError::InvalidGrant(
                        "device code already used",
                    )));
                }
                if row.status == devices::DENIED {
                    return Ok(Poll::Refused(OAuthError::AccessDenied));
                }
                if row.expires_at <= now {
                    return Ok(Poll::Refused(OAuthError::ExpiredToken));
                }
                if row.status == devices::PENDING {
                    let in_time = devices::polled(c, &h2, now, SLOW_DOWN_SECS)?;
                    return Ok(Poll::Refused(if in_time {
                        OAuthError::AuthorizationPending
                    } else {
                        OAuthError::PollingTooFast
                    }));
                }
                let (Some(user_id), Some(amr)) = (row.user_id.clone(), row.amr.clone()) else {
                    return unknown();
                };
                match holder(c, (&ctx2, now), &user_id, &cl, &amr, DEVICE_GRANT)? {
                    Holder::Active(user, memberships) => Ok(Poll::Approved(row, user, memberships)),
                    Holder::Gone => Ok(Poll::Refused(OAuthError::InvalidGrant(
                        "user no longer active",
                    ))),
                    Holder::Denied => Ok(Poll::Refused(OAuthError::InvalidGrant(
                        "the account may not use this app (any more)",
                    ))),
                }
            })
            .await?;
        let (row, user, memberships) = match poll {
            Poll::Refused(e) => return Err(e.into()),
            Poll::Approved(row, user, memberships) => (row, user, memberships),
        };
        let grant = GrantRow {
            id: generate(),
            client_id: row.client_id.clone(),
            user_id: user.id.clone(),
            // The grant's origin, as an authorization code's hash is for a code grant.
            code_hash: h.clone(),
            scope: row.scope.clone(),
            auth_time: row.auth_time.unwrap_or(now),
            amr: row.amr.clone().unwrap_or_default(),
            sid: row.sid.clone().unwrap_or_default(),
            created_at: now,
            revoked_at: None,
        };
        let claim = move |c: &mut crate::db::AnyConnection| devices::claim(c, &h);
        self.start_grant(
            client,
            (&user, &memberships),
            grant,
            None,
            DEVICE_GRANT,
            ctx,
            claim,
        )
        .await?
        .ok_or_else(|| OAuthError::InvalidGrant("device code already used").into())
    }
}
