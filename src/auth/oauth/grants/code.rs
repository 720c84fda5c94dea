//! The `authorization_code` grant: a code works once; its first exchange starts a
//! grant, a second use revokes that grant and everything it issued.

use subtle::ConstantTimeEq;

use super::{Holder, Memberships, Tokens, holder, replayed, s256};
use crate::auth::audit::AuditCtx;
use crate::auth::oauth::OAuthProvider;
use crate::auth::oauth::error::{FlowError, OAuthError};
use crate::db::repo::oauth::{self as repo, AuthCode, Client, GrantRow};
use crate::db::repo::users::User;
use crate::domain::tokens::{generate, hash};

const GRANT: &str = "authorization_code";

/// What a look at a presented code found. (Lives for one call: size is no concern.)
#[allow(clippy::large_enum_variant)]
enum PresentedCode {
    Unknown,
    Reused,
    Invalid(&'static str),
    Valid(AuthCode, User, Memberships),
}

impl OAuthProvider {
    /// The `authorization_code` grant, for an authenticated client.
    ///
    /// Checked first without changing anything (a wrong client, redirect URI or PKCE
    /// verifier does not burn the code), signed next, and only then is the code claimed
    /// and the grant stored, in one transaction: a failure before that leaves the code
    /// usable; a second use after it revokes what the first one issued.
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
        ctx: &AuditCtx,
    ) -> Result<Tokens, FlowError> {
        if !client.allows_grant(GRANT) {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use authorization_code",
            )
            .into());
        }
        let now = self.clock.now();
        let h = hash(code);
        let (cid, public, redirect_uri, verifier, ctx2, h2, cl) = (
            client.client_id.clone(),
            client.is_public(),
            redirect_uri.to_string(),
            verifier.map(str::to_string),
            ctx.clone(),
            h.clone(),
            client.clone(),
        );
        let look = self
            .transaction(move |c| {
                let Some(row) = repo::find_code(c, &h2)? else {
                    return Ok(PresentedCode::Unknown);
                };
                if row.used_at.is_some() {
                    if let Some(g) = repo::grant_of_code(c, &h2)? {
                        replayed(c, &ctx2, now, &g, "code")?;
                    }
                    return Ok(PresentedCode::Reused);
                }
                let why = if row.client_id != cid {
                    Some("code issued to another client")
                } else if row.expires_at <= now {
                    Some("code expired")
                } else if row.redirect_uri != redirect_uri {
                    Some("redirect_uri does not match")
                } else {
                    match (&row.code_challenge, &verifier) {
                        (Some(ch), Some(v)) if s256(v).as_bytes().ct_eq(ch.as_bytes()).into() => {
                            None
                        }
                        (None, None) if !public => None,
                        _ => Some("PKCE verification failed"),
                    }
                };
                if let Some(why) = why {
                    return Ok(PresentedCode::Invalid(why));
                }
                match holder(c, (&ctx2, now), &row.user_id, &cl, &row.amr, GRANT)? {
                    Holder::Active(user, roles) => Ok(PresentedCode::Valid(row, user, roles)),
                    Holder::Gone => Ok(PresentedCode::Invalid("user no longer active")),
                    Holder::Denied => Ok(PresentedCode::Invalid(
                        "the account may not use this app (any more)",
                    )),
                }
            })
            .await?;
        let (row, user, roles) = match look {
            PresentedCode::Unknown => return Err(OAuthError::InvalidGrant("unknown code").into()),
            PresentedCode::Reused => {
                // The first use's grant was revoked.
                self.cache.invalidate().await;
                return Err(OAuthError::InvalidGrant(
                    "code already used; what it issued is revoked",
                )
                .into());
            }
            PresentedCode::Invalid(why) => return Err(OAuthError::InvalidGrant(why).into()),
            PresentedCode::Valid(r, u, roles) => (r, u, roles),
        };
        let grant = GrantRow {
            id: generate(),
            client_id: row.client_id.clone(),
            user_id: row.user_id.clone(),
            code_hash: h.clone(),
            scope: row.scope.clone(),
            auth_time: row.auth_time,
            amr: row.amr.clone(),
            sid: row.sid.clone(),
            created_at: now,
            revoked_at: None,
        };
        let ctx2 = ctx.clone();
        let claim = move |c: &mut crate::db::AnyConnection| {
            if repo::use_code(c, &h, now)? {
                return Ok(true);
            }
            // A concurrent exchange of the same code got there first.
            if let Some(winner) = repo::grant_of_code(c, &h)? {
                replayed(c, &ctx2, now, &winner, "code")?;
            }
            Ok(false)
        };
        let started = self
            .start_grant(
                client,
                (&user, &roles),
                grant,
                row.nonce.as_deref(),
                GRANT,
                ctx,
                claim,
            )
            .await?;
        match started {
            Some(tokens) => Ok(tokens),
            None => {
                self.cache.invalidate().await;
                Err(OAuthError::InvalidGrant("code already used; what it issued is revoked").into())
            }
        }
    }
}
