//! The `refresh_token` grant: refresh tokens are opaque, stored as SHA-256 and rotate
//! on every use; presenting a used one again revokes the whole family.

use serde_json::json;

use super::{Holder, Memberships, Tokens, holder, issued, replayed, subset};
use crate::auth::audit::AuditCtx;
use crate::auth::oauth::OAuthProvider;
use crate::auth::oauth::error::{FlowError, OAuthError};
use crate::db::repo::oauth::{self as repo, Client, GrantRow, RefreshRow};
use crate::db::repo::users::User;
use crate::domain::tokens::{generate, hash};

const GRANT: &str = "refresh_token";

#[allow(clippy::large_enum_variant)]
enum PresentedRefresh {
    Invalid(&'static str),
    BadScope,
    Reused,
    /// The user may no longer use the client; the grant was revoked.
    Denied,
    Valid(GrantRow, String, User, Memberships),
}

impl OAuthProvider {
    /// The `refresh_token` grant: rotates the token; a replay revokes the family.
    /// As with codes: checked, then signed, then rotated and audited in one transaction,
    /// so a failure on the way never turns the client's retry into a "replay".
    pub async fn refresh(
        &self,
        client: &Client,
        token: &str,
        scope: Option<&str>,
        ctx: &AuditCtx,
    ) -> Result<Tokens, FlowError> {
        if !client.allows_grant(GRANT) {
            return Err(
                OAuthError::UnauthorizedClient("this client may not use refresh_token").into(),
            );
        }
        let now = self.clock.now();
        let h = hash(token);
        let (h2, cid, asked, ctx2, cl) = (
            h.clone(),
            client.client_id.clone(),
            scope.map(str::to_string),
            ctx.clone(),
            client.clone(),
        );
        let look = self
            .transaction(move |c| {
                let Some(row) = repo::find_refresh(c, &h2)? else {
                    return Ok(PresentedRefresh::Invalid("unknown refresh token"));
                };
                let Some(grant) = repo::find_grant(c, &row.grant_id)? else {
                    return Ok(PresentedRefresh::Invalid("unknown refresh token"));
                };
                if grant.client_id != cid {
                    return Ok(PresentedRefresh::Invalid(
                        "refresh token issued to another client",
                    ));
                }
                if row.used_at.is_some() {
                    replayed(c, &ctx2, now, &grant, "refresh_token")?;
                    return Ok(PresentedRefresh::Reused);
                }
                if grant.revoked_at.is_some() {
                    return Ok(PresentedRefresh::Invalid("refresh token revoked"));
                }
                if row.expires_at <= now {
                    return Ok(PresentedRefresh::Invalid("refresh token expired"));
                }
                let scope = match asked {
                    Some(s) if !s.trim().is_empty() => {
                        if !subset(&s, &grant.scope) {
                            return Ok(PresentedRefresh::BadScope);
                        }
                        s.split_whitespace().collect::<Vec<_>>().join(" ")
                    }
                    _ => grant.scope.clone(),
                };
                match holder(c, (&ctx2, now), &grant.user_id, &cl, &grant.amr, GRANT)? {
                    Holder::Active(user, roles) => {
                        Ok(PresentedRefresh::Valid(grant, scope, user, roles))
                    }
                    Holder::Gone => Ok(PresentedRefresh::Invalid("user no longer active")),
                    Holder::Denied => {
                        // Taken out of the app's groups (or the app now asks for a
                        // second factor this grant was not proven with): the grant
                        // ends, so its access tokens stop working too.
                        repo::revoke_grant(c, &grant.id, now)?;
                        Ok(PresentedRefresh::Denied)
                    }
                }
            })
            .await?;
        let reused = || -> Result<Tokens, FlowError> {
            Err(
                OAuthError::InvalidGrant("refresh token already used; the whole grant is revoked")
                    .into(),
            )
        };
        let (grant, scope, user, roles) = match look {
            PresentedRefresh::Invalid(why) => return Err(OAuthError::InvalidGrant(why).into()),
            PresentedRefresh::BadScope => {
                return Err(OAuthError::InvalidScope(
                    "a refresh may only narrow the granted scope",
                )
                .into());
            }
            PresentedRefresh::Reused => {
                // The grant was revoked.
                self.cache.invalidate().await;
                return reused();
            }
            PresentedRefresh::Denied => {
                self.cache.invalidate().await;
                return Err(OAuthError::InvalidGrant(
                    "the account may not use this app any more; the grant is revoked",
                )
                .into());
            }
            PresentedRefresh::Valid(g, s, u, r) => (g, s, u, r),
        };
        let (access, id_token) = self
            .sign_for_user(client, (&user, &roles), &grant, &scope, None)
            .await?;
        let next = generate();
        let (next_h, ttl, g, s2, ctx) = (
            hash(&next),
            self.refresh_ttl,
            grant.clone(),
            scope.clone(),
            ctx.clone(),
        );
        let rotated = self
            .transaction(move |c| {
                    // Checked and marked in one statement: of two concurrent uses, one loses.
                    if !repo::use_refresh(c, &h, now)? {
                        replayed(c, &ctx, now, &g, "refresh_token")?;
                        return Ok(false);
                    }
                    repo::insert_refresh(
                        c,
                        &RefreshRow {
                            token_hash: next_h,
                            grant_id: g.id.clone(),
                            created_at: now,
                            expires_at: now + ttl,
                            used_at: None,
                        },
                    )?;
                    let details = json!({"client_id": g.client_id, "scope": s2, "grant_type": GRANT, "grant": g.id});
                    issued(c, &ctx, now, &g, details)?;
                    Ok(true)
            })
            .await?;
        if !rotated {
            self.cache.invalidate().await;
            return reused();
        }
        crate::counters::token_issued(GRANT);
        Ok(Tokens {
            access_token: access,
            id_token,
            refresh_token: Some(next),
            expires_in: self.access_ttl,
            scope,
        })
    }
}
