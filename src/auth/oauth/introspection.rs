//! The checks on tokens we issued: introspection (RFC 7662), revocation (RFC 7009),
//! userinfo, and ID tokens given back as logout hints. Access tokens die with their
//! grant (`gid`), alone (`jti`), or with their user; what was read is memoised in the
//! back-channel cache under the request's generation.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::OAuthProvider;
use crate::auth::oauth::app_access;
use crate::auth::oauth::cache::Profile;
use crate::db::conn::write_transaction;
use crate::db::repo::oauth::{self as repo, Client};
use crate::db::repo::{groups, roles, users};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::tokens::hash;

impl OAuthProvider {
    /// An access token's claims if it is ours, unexpired and not revoked (alone, or
    /// with its grant, or because its user was disabled).
    async fn active_access_token(
        &self,
        generation: Option<u64>,
        token: &str,
    ) -> Result<Option<Map<String, Value>>, InternalError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let v = match self.cache.verified(&digest) {
            Some(v) => v,
            None => {
                let Some(v) = self.keys.verify(token).await? else {
                    return Ok(None);
                };
                self.cache.put_verified(digest, &v);
                v
            }
        };
        if v.typ.as_deref() != Some("at+jwt")
            || v.claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str())
            || v.claims.get("exp").and_then(Value::as_i64).unwrap_or(0) <= self.clock.now()
        {
            return Ok(None);
        }
        let jti = v
            .claims
            .get("jti")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let gid = v
            .claims
            .get("gid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let sub = v
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let client_id = v
            .claims
            .get("client_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // The generation was taken before the read, so a change committed after it
        // cannot be hidden by what this call memoises.
        if let Some(live) = self.cache.live(generation, &jti) {
            return Ok(live.then_some(v.claims));
        }
        let key = jti.clone();
        let live = self
            .db
            .run(move |c| -> Result<bool, InternalError> {
                if repo::jti_revoked(c, &jti)? {
                    return Ok(false);
                }
                match gid {
                    Some(g) => {
                        let Some(grant) =
                            repo::find_grant(c, &g)?.filter(|g| g.revoked_at.is_none())
                        else {
                            return Ok(false);
                        };
                        if users::find(c, &sub)?.is_none_or(|u| u.disabled) {
                            return Ok(false);
                        }
                        // Who may use the app, asked again: a user taken out of its
                        // groups loses its access tokens at once, not at the next
                        // refresh (group and client changes empty this cache).
                        let Some(client) = repo::find_client(c, &client_id)? else {
                            return Ok(false);
                        };
                        let amr: Vec<&str> = grant.amr.split_whitespace().collect();
                        Ok(app_access::denial(c, &client, &sub, &amr)?.is_none())
                    }
                    // A client's own token dies with the client; a service
                    // account's, with the account too.
                    None => Ok(repo::find_client(c, &client_id)?.is_some()
                        && (sub == client_id
                            || users::find(c, &sub)?.is_some_and(|u| !u.disabled))),
                }
            })
            .await?;
        self.cache.put_live(generation, &key, live);
        Ok(live.then_some(v.claims))
    }

    /// OpenID Connect userinfo for a Bearer access token: `None` (answer 401) unless the
    /// token is live, was issued to a user (it has a grant) with the `openid` scope, and
    /// the user is enabled. Claims follow the token's scopes.
    pub async fn userinfo(&self, token: &str) -> Result<Option<Value>, InternalError> {
        let generation = self.generation().await;
        let Some(claims) = self.active_access_token(generation, token).await? else {
            return Ok(None);
        };
        let scopes: Vec<&str> = claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if claims.get("gid").is_none() || !scopes.contains(&"openid") {
            return Ok(None);
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(p) = self.profile(generation, sub).await? else {
            return Ok(None);
        };
        let mut body = json!({ "sub": sub });
        if scopes.contains(&"email") {
            body["email"] = json!(p.email);
            body["email_verified"] = json!(p.email_verified);
        }
        if scopes.contains(&"profile") {
            body["name"] = json!(p.name);
        }
        if scopes.contains(&"roles") {
            body["roles"] = json!(p.roles);
        }
        if scopes.contains(&"groups") {
            body["groups"] = json!(p.groups);
        }
        Ok(Some(body))
    }

    /// A user's userinfo profile, `None` when disabled or gone; memoised like token
    /// liveness (the generation is taken before the read).
    async fn profile(
        &self,
        generation: Option<u64>,
        user_id: &str,
    ) -> Result<Option<Profile>, InternalError> {
        if let Some(p) = self.cache.profile(generation, user_id) {
            return Ok(p);
        }
        let uid = user_id.to_string();
        let p = self
            .db
            .run(move |c| -> Result<Option<Profile>, InternalError> {
                let Some(u) = users::find(c, &uid)?.filter(|u| !u.disabled) else {
                    return Ok(None);
                };
                Ok(Some(Profile {
                    roles: roles::of_user(c, &uid)?,
                    groups: groups::effective_of_user(c, &uid)?,
                    email: u.email,
                    email_verified: u.email_verified,
                    name: u.display_name,
                }))
            })
            .await?;
        self.cache.put_profile(generation, user_id, p.clone());
        Ok(p)
    }

    /// RFC 7662: what a resource server may learn about a token. Access tokens are for
    /// resource servers to check, so any confidential client may ask; a refresh token
    /// is reported only to the client holding it.
    pub async fn introspect(
        &self,
        generation: Option<u64>,
        caller: &str,
        token: &str,
    ) -> Result<Value, InternalError> {
        if token.contains('.') {
            let Some(claims) = self.active_access_token(generation, token).await? else {
                return Ok(json!({"active": false}));
            };
            let mut out = json!({"active": true, "token_type": "Bearer"});
            for k in [
                "scope",
                "client_id",
                "sub",
                "exp",
                "iat",
                "iss",
                "aud",
                "jti",
            ] {
                if let Some(v) = claims.get(k) {
                    out[k] = v.clone();
                }
            }
            // A service account's token (client credentials, no grant): who it is, and
            // its groups when the scope asks for them.
            let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
            if claims.get("gid").is_none()
                && text("sub") != text("client_id")
                && let Some(p) = self.profile(generation, text("sub")).await?
            {
                out["username"] = json!(p.email);
                if text("scope").split_whitespace().any(|s| s == "groups") {
                    out["groups"] = json!(p.groups);
                }
            }
            return Ok(out);
        }
        let (h, now, caller) = (hash(token), self.clock.now(), caller.to_string());
        let found = self
            .db
            .run(move |c| -> Result<_, InternalError> {
                let Some(row) = repo::find_refresh(c, &h)? else {
                    return Ok(None);
                };
                let Some(g) = repo::find_grant(c, &row.grant_id)? else {
                    return Ok(None);
                };
                let active = row.used_at.is_none()
                    && g.client_id == caller
                    && row.expires_at > now
                    && g.revoked_at.is_none()
                    && users::find(c, &g.user_id)?.is_some_and(|u| !u.disabled);
                if !active {
                    return Ok(None);
                }
                // The refresh would be refused (and the grant ended): not active.
                let Some(client) = repo::find_client(c, &g.client_id)? else {
                    return Ok(None);
                };
                let amr: Vec<&str> = g.amr.split_whitespace().collect();
                if app_access::denial(c, &client, &g.user_id, &amr)?.is_some() {
                    return Ok(None);
                }
                Ok(Some((row, g)))
            })
            .await?;
        Ok(match found {
            Some((row, g)) => json!({
                "active": true, "token_type": "refresh_token", "scope": g.scope,
                "client_id": g.client_id, "sub": g.user_id, "iat": row.created_at,
                "exp": row.expires_at, "iss": self.issuer,
            }),
            None => json!({"active": false}),
        })
    }

    /// RFC 7009: revokes a token the client holds. A refresh token takes its whole
    /// grant with it; an access token is revoked alone. Tokens that are unknown, not
    /// this client's, or already dead are ignored (the answer is the same).
    pub async fn revoke(
        &self,
        client: &Client,
        token: &str,
        ctx: &AuditCtx,
    ) -> Result<(), InternalError> {
        let now = self.clock.now();
        let (cid, ctx) = (client.client_id.clone(), ctx.clone());
        if token.contains('.') {
            let Some(v) = self.keys.verify(token).await? else {
                return Ok(());
            };
            let claim = |k: &str| v.claims.get(k).and_then(Value::as_str).map(str::to_string);
            let exp = v.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
            if v.typ.as_deref() != Some("at+jwt")
                || claim("client_id").as_deref() != Some(cid.as_str())
                || exp <= now
            {
                return Ok(());
            }
            let (jti, sub) = (claim("jti").unwrap_or_default(), claim("sub"));
            let target = sub.filter(|s| *s != cid);
            let done = self
                .db
                .run(move |c| {
                    write_transaction(c, |c| {
                        if repo::jti_revoked(c, &jti)? {
                            return Ok(());
                        }
                        repo::revoke_jti(c, &jti, exp)?;
                        record(
                            c,
                            &ctx,
                            now,
                            AuditAction::TokenRevoked,
                            Outcome::Success,
                            target.as_deref(),
                            json!({"client_id": cid, "token_type": "access_token", "jti": jti}),
                        )
                    })
                    .map_err(InternalError::from)
                })
                .await;
            self.cache.invalidate().await;
            return done;
        }
        let h = hash(token);
        let done = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let Some(row) = repo::find_refresh(c, &h)? else {
                        return Ok(());
                    };
                    let Some(g) = repo::find_grant(c, &row.grant_id)? else {
                        return Ok(());
                    };
                    if g.client_id != cid || repo::revoke_grant(c, &g.id, now)?.is_none() {
                        return Ok(());
                    }
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::TokenRevoked,
                        Outcome::Success,
                        Some(&g.user_id),
                        json!({"client_id": cid, "token_type": "refresh_token", "grant": g.id}),
                    )
                })
                .map_err(InternalError::from)
            })
            .await;
        self.cache.invalidate().await;
        done
    }

    /// An ID token we issued, as a logout hint: signature and issuer checked, expiry
    /// not (a hint may be old).
    pub async fn id_token_hint(
        &self,
        token: &str,
    ) -> Result<Option<Map<String, Value>>, InternalError> {
        let Some(v) = self.keys.verify(token).await? else {
            return Ok(None);
        };
        let ours = v.claims.get("iss").and_then(Value::as_str) == Some(self.issuer.as_str());
        Ok((ours && v.typ.as_deref() != Some("at+jwt")).then_some(v.claims))
    }
}
