//! The token endpoint's grants: `authorization_code`, `refresh_token`,
//! `client_credentials` and RFC 8628's device code, and the tokens they sign.
//!
//! - An authorization code works once. Its first exchange starts a *grant* (a family);
//!   a second use of the code revokes that grant, and with it everything it issued.
//! - Refresh tokens are opaque, stored as SHA-256, and rotate on every use; presenting
//!   a used one again revokes the whole family (`refresh_token.reused`).
//! - Access tokens are JWTs (RFC 9068: `typ: at+jwt`, `aud`, `scope`, `client_id`,
//!   `jti`) carrying their grant's id in `gid`, so revoking the grant refuses them at
//!   userinfo and introspection (see `introspection`).
//!
//! `code`, `device` and `refresh` hold the user-bound grants; here are what they share
//! (the user behind a grant, replays, signing, starting a grant) and the
//! `client_credentials` grant.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::OAuthProvider;
use crate::auth::oauth::app_access;
use crate::auth::oauth::error::{FlowError, OAuthError};
use crate::auth::oauth::signing_keys::supported;
use crate::db::AnyConnection;
use crate::db::conn::write_transaction;
use crate::db::repo::oauth::{self as repo, Client, GrantRow, RefreshRow};
use crate::db::repo::users::User;
use crate::db::repo::{groups, roles, users};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::tokens::generate;

mod code;
mod device;
mod refresh;

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

/// Audits the tokens issued under `grant`, in the transaction that stores them.
fn issued(
    c: &mut AnyConnection,
    ctx: &AuditCtx,
    now: i64,
    grant: &GrantRow,
    details: Value,
) -> crate::db::QueryResult<()> {
    let (act, user) = (AuditAction::TokenIssued, Some(grant.user_id.as_str()));
    record(c, ctx, now, act, Outcome::Success, user, details)
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
    /// Still there, but may not use this client any more (`app_access`); audited.
    Denied,
}

/// The user behind a code or a grant proven with `amr`, if still allowed in, and
/// allowed to use `client`: every user-bound grant (`via`) passes here before it
/// signs, and a denial is audited.
fn holder(
    c: &mut AnyConnection,
    (ctx, now): (&AuditCtx, i64),
    id: &str,
    client: &Client,
    amr: &str,
    via: &str,
) -> crate::db::QueryResult<Holder> {
    match users::find(c, id)? {
        Some(u) if !u.disabled => {
            let memberships = Memberships {
                roles: roles::of_user(c, id)?,
                groups: groups::effective_of_user(c, id)?,
            };
            let amr: Vec<&str> = amr.split_whitespace().collect();
            Ok(match app_access::judge(client, &memberships.groups, &amr) {
                Some(why) => {
                    let cid = &client.client_id;
                    app_access::record_denied(c, ctx, now, id, cid, why, via)?;
                    Holder::Denied
                }
                None => Holder::Active(u, memberships),
            })
        }
        _ => Ok(Holder::Gone),
    }
}

impl OAuthProvider {
    /// Runs `f` in one write transaction on the blocking pool.
    async fn transaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> crate::db::QueryResult<T> + Send + 'static,
    ) -> Result<T, InternalError> {
        self.db
            .run(move |c| write_transaction(c, f).map_err(InternalError::from))
            .await
    }

    /// Starts a user's `grant` (from an authorization code or an approved device
    /// request): signs its tokens (the ID token when the scope asks for `openid`, a
    /// refresh token when the client may use that grant), then, in one transaction,
    /// `claim`s what started it and stores the grant, its refresh token and the
    /// `token.issued` event. `None` when the claim was lost: a concurrent exchange of
    /// the same code won, and nothing was stored.
    #[allow(clippy::too_many_arguments)]
    async fn start_grant(
        &self,
        client: &Client,
        holder: (&User, &Memberships),
        grant: GrantRow,
        nonce: Option<&str>,
        grant_type: &'static str,
        ctx: &AuditCtx,
        claim: impl FnOnce(&mut AnyConnection) -> crate::db::QueryResult<bool> + Send + 'static,
    ) -> Result<Option<Tokens>, InternalError> {
        let now = self.clock.now();
        let (access, id_token) = self
            .sign_for_user(client, holder, &grant, &grant.scope, nonce)
            .await?;
        let refresh = client.allows_grant("refresh_token").then(generate);
        let refresh_row = refresh.as_deref().map(|r| RefreshRow {
            token_hash: crate::domain::tokens::hash(r),
            grant_id: grant.id.clone(),
            created_at: now,
            expires_at: now + self.refresh_ttl,
            used_at: None,
        });
        let (ctx, g) = (ctx.clone(), grant.clone());
        let claimed = self
            .transaction(move |c| {
                if !claim(c)? {
                    return Ok(false);
                }
                repo::insert_grant(c, &g)?;
                if let Some(r) = &refresh_row {
                    repo::insert_refresh(c, r)?;
                }
                let details = json!({"client_id": g.client_id, "scope": g.scope, "grant_type": grant_type,
                               "grant": g.id, "refresh_token": refresh_row.is_some()});
                issued(c, &ctx, now, &g, details)?;
                Ok(true)
            })
            .await?;
        if !claimed {
            return Ok(None);
        }
        crate::counters::token_issued(grant_type);
        Ok(Some(Tokens {
            access_token: access,
            id_token,
            refresh_token: refresh,
            expires_in: self.access_ttl,
            scope: grant.scope,
        }))
    }

    /// The access token for a user's `grant` and, when `scope` asks for `openid`, the
    /// ID token.
    async fn sign_for_user(
        &self,
        client: &Client,
        holder: (&User, &Memberships),
        grant: &GrantRow,
        scope: &str,
        nonce: Option<&str>,
    ) -> Result<(String, Option<String>), InternalError> {
        let access = self
            .access_token(client, &holder.0.id, scope, Some(grant))
            .await?;
        let id_token = if scope.split_whitespace().any(|s| s == "openid") {
            Some(
                self.id_token(client, holder, grant, scope, nonce, &access)
                    .await?,
            )
        } else {
            None
        };
        Ok((access, id_token))
    }

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
