//! The token side of the provider: the token endpoint's grants, introspection,
//! revocation, and the checks userinfo and logout make on tokens we issued.
//!
//! - An authorization code works once. Its first exchange starts a *grant* (a family);
//!   a second use of the code revokes that grant, and with it everything it issued.
//! - Refresh tokens are opaque, stored as SHA-256, and rotate on every use; presenting
//!   a used one again revokes the whole family (`refresh_token.reused`).
//! - Access tokens are JWTs (RFC 9068: `typ: at+jwt`, `aud`, `scope`, `client_id`,
//!   `jti`) carrying their grant's id in `gid`, so revoking the grant refuses them at
//!   userinfo and introspection; one can also be revoked alone by its `jti`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::cache::Profile;
use crate::auth::oauth::signing_keys::{KeyRing, supported};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::conn::write_transaction;
use crate::db::repo::oauth::{self as repo, AuthCode, Client, GrantRow, RefreshRow};
use crate::db::repo::users::User;
use crate::db::repo::{roles, users};
use crate::db::{AnyConnection, Db};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::tokens::{generate, hash};
use crate::master_key::Sealer;

pub const ID_TOKEN_TTL_SECS: i64 = 300;

/// RFC 6749 section 5.2 errors the token endpoint answers with.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    InvalidGrant(&'static str),
    InvalidScope(&'static str),
    UnauthorizedClient(&'static str),
}

pub struct Tokens {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scope: String,
}

pub struct Issuer {
    pub keys: KeyRing,
    audit: crate::auth::audit::Batcher,
    db: Db,
    clock: Clock,
    issuer: String,
    access_ttl: i64,
    refresh_ttl: i64,
    access_alg: &'static str,
    /// Client records and access-token liveness kept between calls; every change
    /// that could make them wrong calls `cache.invalidate()` after committing.
    pub cache: crate::auth::oauth::cache::BackChannelCache,
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
    Valid(AuthCode, User, Vec<String>),
}

#[allow(clippy::large_enum_variant)]
enum PresentedRefresh {
    Invalid(&'static str),
    BadScope,
    Reused,
    Valid(GrantRow, String, User, Vec<String>),
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

/// The user behind a grant, if still allowed in.
fn active_user(
    c: &mut AnyConnection,
    id: &str,
) -> crate::db::QueryResult<Option<(User, Vec<String>)>> {
    match users::find(c, id)? {
        Some(u) if !u.disabled => Ok(Some((u, roles::of_user(c, id)?))),
        _ => Ok(None),
    }
}

impl Issuer {
    pub fn new(
        db: Db,
        clock: Clock,
        sealer: Sealer,
        config: &Config,
        cache: crate::auth::oauth::cache::BackChannelCache,
    ) -> Self {
        let longest = config.access_token_ttl_secs.max(ID_TOKEN_TTL_SECS);
        Self {
            audit: crate::auth::audit::Batcher::start(db.clone()),
            keys: KeyRing::new(
                db.clone(),
                clock.clone(),
                sealer,
                config.signing_key_rotation_days * 86_400,
                longest,
            ),
            db,
            clock,
            issuer: config.base_url().trim_end_matches('/').to_string(),
            access_ttl: config.access_token_ttl_secs,
            refresh_ttl: config.refresh_token_ttl_secs,
            access_alg: supported(&config.access_token_signing_alg).unwrap_or("RS256"),
            cache,
        }
    }

    /// The cache generation, read once per request and handed to `client`,
    /// `introspect` and the like: with Redis each read is a round trip, and taking it
    /// before every read of the request keeps the cache's rule (see `auth::oauth::cache`).
    pub async fn generation(&self) -> Option<u64> {
        self.cache.generation().await
    }

    /// A client record, from the cache when it is current for the request's
    /// `generation` (only found clients are memoised: one created later is seen at
    /// once).
    pub async fn client(
        &self,
        generation: Option<u64>,
        id: &str,
    ) -> Result<Option<Client>, InternalError> {
        if let Some(c) = self.cache.client(generation, id) {
            return Ok(Some(c));
        }
        let found = crate::auth::oauth::authorize::client(&self.db, id).await?;
        if let Some(c) = &found {
            self.cache.put_client(generation, c);
        }
        Ok(found)
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
        (user, roles): (&User, &[String]),
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
            claims["roles"] = json!(roles);
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
    ) -> Result<Result<Tokens, TokenError>, InternalError> {
        if !client.allows_grant("authorization_code") {
            return Ok(Err(TokenError::UnauthorizedClient(
                "this client may not use authorization_code",
            )));
        }
        let now = self.clock.now();
        let h = hash(code);
        let (cid, public, redirect_uri, verifier, ctx2, h2) = (
            client.client_id.clone(),
            client.is_public(),
            redirect_uri.to_string(),
            verifier.map(str::to_string),
            ctx.clone(),
            h.clone(),
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
                    match active_user(c, &row.user_id)? {
                        Some((user, roles)) => Ok(PresentedCode::Valid(row, user, roles)),
                        None => Ok(PresentedCode::Invalid("user no longer active")),
                    }
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        let (row, user, roles) = match look {
            PresentedCode::Unknown => return Ok(Err(TokenError::InvalidGrant("unknown code"))),
            PresentedCode::Reused => {
                // The first use's grant was revoked.
                self.cache.invalidate().await;
                return Ok(Err(TokenError::InvalidGrant(
                    "code already used; what it issued is revoked",
                )));
            }
            PresentedCode::Invalid(why) => return Ok(Err(TokenError::InvalidGrant(why))),
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
            return Ok(Err(TokenError::InvalidGrant(
                "code already used; what it issued is revoked",
            )));
        }
        crate::counters::token_issued("authorization_code");
        Ok(Ok(Tokens {
            access_token: access,
            id_token,
            refresh_token: refresh,
            expires_in: self.access_ttl,
            scope: grant.scope,
        }))
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
    ) -> Result<Result<Tokens, TokenError>, InternalError> {
        if !client.allows_grant("refresh_token") {
            return Ok(Err(TokenError::UnauthorizedClient(
                "this client may not use refresh_token",
            )));
        }
        let now = self.clock.now();
        let h = hash(token);
        let (h2, cid, asked, ctx2) = (
            h.clone(),
            client.client_id.clone(),
            scope.map(str::to_string),
            ctx.clone(),
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
                    match active_user(c, &grant.user_id)? {
                        Some((user, roles)) => {
                            Ok(PresentedRefresh::Valid(grant, scope, user, roles))
                        }
                        None => Ok(PresentedRefresh::Invalid("user no longer active")),
                    }
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        let reused = || {
            Ok(Err(TokenError::InvalidGrant(
                "refresh token already used; the whole grant is revoked",
            )))
        };
        let (grant, scope, user, roles) = match look {
            PresentedRefresh::Invalid(why) => return Ok(Err(TokenError::InvalidGrant(why))),
            PresentedRefresh::BadScope => {
                return Ok(Err(TokenError::InvalidScope(
                    "a refresh may only narrow the granted scope",
                )));
            }
            PresentedRefresh::Reused => {
                // The grant was revoked.
                self.cache.invalidate().await;
                return reused();
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
        Ok(Ok(Tokens {
            access_token: access,
            id_token,
            refresh_token: Some(next),
            expires_in: self.access_ttl,
            scope,
        }))
    }

    /// The `client_credentials` grant: a token for the client itself (no user, no
    /// ID token, no refresh token), every one audited.
    pub async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
        ctx: &AuditCtx,
    ) -> Result<Result<Tokens, TokenError>, InternalError> {
        if client.is_public() || !client.allows_grant("client_credentials") {
            return Ok(Err(TokenError::UnauthorizedClient(
                "this client may not use client_credentials",
            )));
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
                return Ok(Err(TokenError::InvalidScope(
                    "a scope is unknown or not allowed for this client",
                )));
            }
            None => allowed.join(" "),
        };
        let access = self
            .access_token(client, &client.client_id, &scope, None)
            .await?;
        self.audit
            .record(
                ctx,
                self.clock.now(),
                AuditAction::TokenIssued,
                Outcome::Success,
                None,
                json!({"client_id": client.client_id, "scope": scope, "grant_type": "client_credentials"}),
            )
            .await?;
        crate::counters::token_issued("client_credentials");
        Ok(Ok(Tokens {
            access_token: access,
            id_token: None,
            refresh_token: None,
            expires_in: self.access_ttl,
            scope,
        }))
    }

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
                    Some(g) => Ok(!repo::grant_revoked(c, &g)?
                        && users::find(c, &sub)?.is_some_and(|u| !u.disabled)),
                    // A client's own token dies with the client.
                    None => Ok(repo::find_client(c, &client_id)?.is_some()),
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
                Ok(active.then_some((row, g)))
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
