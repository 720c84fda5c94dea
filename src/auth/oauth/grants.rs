//! The token endpoint's grants: `authorization_code`, `refresh_token` and
//! `client_credentials`, and the tokens they sign.
//!
//! - An authorization code works once. Its first exchange starts a *grant* (a family);
//!   a second use of the code revokes that grant, and with it everything it issued.
//! - Refresh tokens are opaque, stored as SHA-256, and rotate on every use; presenting
//!   a used one again revokes the whole family (`refresh_token.reused`).
//! - Access tokens are JWTs (RFC 9068: `typ: at+jwt`, `aud`, `scope`, `client_id`,
//!   `jti`) carrying their grant's id in `gid`, so revoking the grant refuses them at
//!   userinfo and introspection (see `introspection`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::OAuthProvider;
use crate::auth::oauth::app_access::{self, Denial};
use crate::auth::oauth::error::{FlowError, OAuthError};
use crate::auth::oauth::signing_keys::supported;
use crate::db::AnyConnection;
use crate::db::conn::write_transaction;
use crate::db::repo::oauth::{self as repo, AuthCode, Client, GrantRow, RefreshRow};
use crate::db::repo::users::User;
use crate::db::repo::{groups, roles, users};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::tokens::{generate, hash};

pub const ID_TOKEN_TTL_SECS: i64 = 300;

pub struct Tokens {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scope: String,
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `at_hash`: the left half of the access token's hash, with the ID token's algorithm's
/// hash (SHA-256 for RS256 and ES256, SHA-512 for Ed25519), base64url.
fn at_hash(alg: &str, access_token: &str) -> String {
    if alg == "EdDSA" {
        let d = Sha512::digest(access_token.as_bytes());
        URL_SAFE_NO_PAD.encode(&d[..32])
    } else {
        let d = Sha256::digest(access_token.as_bytes());
        URL_SAFE_NO_PAD.encode(&d[..16])
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn subset(asked: &str, allowed: &str) -> bool {
    let allowed: Vec<&str> = allowed.split_whitespace().collect();
    asked.split_whitespace().all(|s| allowed.contains(&s))
}

/// What a look at a presented code found. (Lives for one call: size is no concern.)
#[allow(clippy::large_enum_variant)]
enum PresentedCode {
    Unknown,
    Reused,
    Invalid(&'static str),
    Valid(AuthCode, User, Memberships),
}

#[allow(clippy::large_enum_variant)]
enum PresentedRefresh {
    Invalid(&'static str),
    BadScope,
    Reused,
    /// The user may no longer use the client; the grant was revoked.
    Denied,
    Valid(GrantRow, String, User, Memberships),
}

/// A rotated refresh token or a second use of a code: someone else holds a copy, so
/// the grant ends (its refresh and access tokens stop working) and the event is kept.
fn replayed(
    c: &mut AnyConnection,
    ctx: &AuditCtx,
    now: i64,
    grant: &GrantRow,
    what: &'static str,
) -> crate::db::QueryResult<()> {
    let revoked = repo::revoke_grant(c, &grant.id, now)?.is_some();
    let (action, outcome) = if what == "refresh_token" {
        (AuditAction::RefreshTokenReused, Outcome::Denied)
    } else {
        (AuditAction::TokenRevoked, Outcome::Success)
    };
    record(
        c,
        ctx,
        now,
        action,
        outcome,
        Some(&grant.user_id),
        json!({"client_id": grant.client_id, "grant": grant.id, "reused": what, "grant_revoked": revoked}),
    )
}

/// A user's roles and groups (inherited ones included), for the `roles` and `groups`
/// claims.
#[derive(Debug)]
pub(crate) struct Memberships {
    roles: Vec<String>,
    groups: Vec<String>,
}

/// The user behind a code or a grant, as the token endpoint finds them.
#[allow(clippy::large_enum_variant)]
enum Holder {
    Active(User, Memberships),
    /// Disabled or deleted.
    Gone,
    /// Still there, but may not use this client any more (`app_access`).
    Denied(Denial),
}

/// The user behind a code or a grant proven with `amr`, if still allowed in, and
/// allowed to use `client`: every user-bound grant passes here before it signs.
fn active_user(
    c: &mut AnyConnection,
    id: &str,
    client: &Client,
    amr: &str,
) -> crate::db::QueryResult<Holder> {
    match users::find(c, id)? {
        Some(u) if !u.disabled => {
            let memberships = Memberships {
                roles: roles::of_user(c, id)?,
                groups: groups::effective_of_user(c, id)?,
            };
            let amr: Vec<&str> = amr.split_whitespace().collect();
            Ok(match app_access::judge(client, &memberships.groups, &amr) {
                Some(why) => Holder::Denied(why),
                None => Holder::Active(u, memberships),
            })
        }
        _ => Ok(Holder::Gone),
    }
}

impl OAuthProvider {
    async fn access_token(
        &self,
        client: &Client,
        sub: &str,
        scope: &str,
        grant: Option<&GrantRow>,
    ) -> Result<String, InternalError> {
        let now = self.clock.now();
        let mut claims = json!({
            "iss": self.issuer, "sub": sub, "aud": client.client_id,
            "client_id": client.client_id, "scope": scope, "jti": generate(),
            "iat": now, "exp": now + self.access_ttl,
        });
        if let Some(g) = grant {
            claims["auth_time"] = json!(g.auth_time);
            claims["gid"] = json!(g.id);
        }
        self.keys
            .sign(self.access_alg, object(claims), "at+jwt")
            .await
    }

    async fn id_token(
        &self,
        client: &Client,
        (user, memberships): (&User, &Memberships),
        grant: &GrantRow,
        scope: &str,
        nonce: Option<&str>,
        access: &str,
    ) -> Result<String, InternalError> {
        let now = self.clock.now();
        let alg = supported(&client.id_token_alg).unwrap_or("RS256");
        let amr: Vec<&str> = grant.amr.split_whitespace().collect();
        let mut claims = json!({
            "iss": self.issuer, "sub": user.id, "aud": client.client_id, "azp": client.client_id,
            "iat": now, "exp": now + ID_TOKEN_TTL_SECS, "auth_time": grant.auth_time,
            "amr": amr, "acr": if amr.contains(&"mfa") { "mfa" } else { "pwd" },
            "sid": grant.sid, "at_hash": at_hash(alg, access),
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        if scopes.contains(&"email") {
            claims["email"] = json!(user.email);
            claims["email_verified"] = json!(user.email_verified);
        }
        if scopes.contains(&"profile") {
            claims["name"] = json!(user.display_name);
        }
        if scopes.contains(&"roles") {
            claims["roles"] = json!(memberships.roles);
        }
        if scopes.contains(&"groups") {
            claims["groups"] = json!(memberships.groups);
        }
        self.keys.sign(alg, object(claims), "JWT").await
    }

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
        if !client.allows_grant("authorization_code") {
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
            .db
            .run(move |c| {
                write_transaction(c, |c| {
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
                            (Some(ch), Some(v))
                                if s256(v).as_bytes().ct_eq(ch.as_bytes()).into() =>
                            {
                                None
                            }
                            (None, None) if !public => None,
                            _ => Some("PKCE verification failed"),
                        }
                    };
                    if let Some(why) = why {
                        return Ok(PresentedCode::Invalid(why));
                    }
                    match active_user(c, &row.user_id, &cl, &row.amr)? {
                        Holder::Active(user, roles) => Ok(PresentedCode::Valid(row, user, roles)),
                        Holder::Gone => Ok(PresentedCode::Invalid("user no longer active")),
                        Holder::Denied(why) => {
                            app_access::record_denied(
                                c,
                                &ctx2,
                                now,
                                &row.user_id,
                                &cid,
                                why,
                                "authorization_code",
                            )?;
                            Ok(PresentedCode::Invalid(
                                "the account may not use this app (any more)",
                            ))
                        }
                    }
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
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
        let access = self
            .access_token(client, &user.id, &grant.scope, Some(&grant))
            .await?;
        let id_token = if grant.scope.split_whitespace().any(|s| s == "openid") {
            Some(
                self.id_token(
                    client,
                    (&user, &roles),
                    &grant,
                    &grant.scope,
                    row.nonce.as_deref(),
                    &access,
                )
                .await?,
            )
        } else {
            None
        };
        let refresh = client.allows_grant("refresh_token").then(generate);
        let refresh_row = refresh.as_deref().map(|r| RefreshRow {
            token_hash: hash(r),
            grant_id: grant.id.clone(),
            created_at: now,
            expires_at: now + self.refresh_ttl,
            used_at: None,
        });
        let (ctx, g) = (ctx.clone(), grant.clone());
        let claimed = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    if !repo::use_code(c, &h, now)? {
                        // A concurrent exchange of the same code got there first.
                        if let Some(winner) = repo::grant_of_code(c, &h)? {
                            replayed(c, &ctx, now, &winner, "code")?;
                        }
                        return Ok(false);
                    }
                    repo::insert_grant(c, &g)?;
                    if let Some(r) = &refresh_row {
                        repo::insert_refresh(c, r)?;
                    }
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::TokenIssued,
                        Outcome::Success,
                        Some(&g.user_id),
                        json!({"client_id": g.client_id, "scope": g.scope, "grant_type": "authorization_code",
                               "grant": g.id, "refresh_token": refresh_row.is_some()}),
                    )?;
                    Ok(true)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        if !claimed {
            self.cache.invalidate().await;
            return Err(
                OAuthError::InvalidGrant("code already used; what it issued is revoked").into(),
            );
        }
        crate::counters::token_issued("authorization_code");
        Ok(Tokens {
            access_token: access,
            id_token,
            refresh_token: refresh,
            expires_in: self.access_ttl,
            scope: grant.scope,
        })
    }

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
        if !client.allows_grant("refresh_token") {
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
            .db
            .run(move |c| {
                write_transaction(c, |c| {
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
                    match active_user(c, &grant.user_id, &cl, &grant.amr)? {
                        Holder::Active(user, roles) => {
                            Ok(PresentedRefresh::Valid(grant, scope, user, roles))
                        }
                        Holder::Gone => Ok(PresentedRefresh::Invalid("user no longer active")),
                        Holder::Denied(why) => {
                            // Taken out of the app's groups (or the app now asks for a
                            // second factor this grant was not proven with): the grant
                            // ends, so its access tokens stop working too.
                            repo::revoke_grant(c, &grant.id, now)?;
                            app_access::record_denied(
                                c,
                                &ctx2,
                                now,
                                &grant.user_id,
                                &cid,
                                why,
                                "refresh_token",
                            )?;
                            Ok(PresentedRefresh::Denied)
                        }
                    }
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
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
        let access = self
            .access_token(client, &user.id, &scope, Some(&grant))
            .await?;
        let id_token = if scope.split_whitespace().any(|s| s == "openid") {
            Some(
                self.id_token(client, (&user, &roles), &grant, &scope, None, &access)
                    .await?,
            )
        } else {
            None
        };
        let next = generate();
        let (next_h, ttl, g, s2, ctx) = (
            hash(&next),
            self.refresh_ttl,
            grant.clone(),
            scope.clone(),
            ctx.clone(),
        );
        let rotated = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
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
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::TokenIssued,
                        Outcome::Success,
                        Some(&g.user_id),
                        json!({"client_id": g.client_id, "scope": s2, "grant_type": "refresh_token", "grant": g.id}),
                    )?;
                    Ok(true)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        if !rotated {
            self.cache.invalidate().await;
            return reused();
        }
        crate::counters::token_issued("refresh_token");
        Ok(Tokens {
            access_token: access,
            id_token,
            refresh_token: Some(next),
            expires_in: self.access_ttl,
            scope,
        })
    }

    /// The `client_credentials` grant: a token for the client itself (no user, no
    /// ID token, no refresh token), every one audited.
    pub async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
        ctx: &AuditCtx,
    ) -> Result<Tokens, FlowError> {
        if client.is_public() || !client.allows_grant("client_credentials") {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use client_credentials",
            )
            .into());
        }
        // User scopes mean nothing without a user.
        let allowed: Vec<String> = client
            .scopes()
            .into_iter()
            .filter(|s| !matches!(s.as_str(), "openid" | "offline_access"))
            .collect();
        let scope = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) if s.split_whitespace().all(|x| allowed.iter().any(|a| a == x)) => {
                s.split_whitespace().collect::<Vec<_>>().join(" ")
            }
            Some(_) => {
                return Err(OAuthError::InvalidScope(
                    "a scope is unknown or not allowed for this client",
                )
                .into());
            }
            None => allowed.join(" "),
        };
        // A service account's client credentials act as the service account, while
        // it is active.
        if let Some(account) = client.service_account_id.clone() {
            let active = self
                .db
                .run(move |c| {
                    crate::db::repo::users::find(c, &account).map_err(InternalError::from)
                })
                .await?
                .is_some_and(|u| !u.disabled);
            if !active {
                return Err(OAuthError::InvalidClient.into());
            }
        }
        let sub = client
            .service_account_id
            .as_deref()
            .unwrap_or(&client.client_id);
        let access = self.access_token(client, sub, &scope, None).await?;
        self.audit
            .record(
                ctx,
                self.clock.now(),
                AuditAction::TokenIssued,
                Outcome::Success,
                client.service_account_id.as_deref(),
                json!({"client_id": client.client_id, "scope": scope, "grant_type": "client_credentials"}),
            )
            .await?;
        crate::counters::token_issued("client_credentials");
        Ok(Tokens {
            access_token: access,
            id_token: None,
            refresh_token: None,
            expires_in: self.access_ttl,
            scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn scopes_narrow_only() {
        assert!(subset("openid email", "openid profile email"));
        assert!(!subset("openid roles", "openid profile email"));
    }
}
