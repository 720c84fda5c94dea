//! Personal access tokens: a user's scripts reach sites behind forward auth as that
//! user. [`PersonalTokens`] makes them (the secret is returned once and only its
//! SHA-256 kept), lists and revokes the owner's own, and checks a secret
//! ([`PersonalTokens::verify`]): known, not revoked, not expired, and its account
//! active. Every event that ends a user's app grants ends their tokens too
//! (`oauth::authorize::end_personal_tokens`, called from `end_app_grants`), so no path
//! that signs a user out everywhere can forget them.
//!
//! A token that checks out is memoised like forward auth's principals
//! (`oauth::cache`): per cache generation, for at most `PRINCIPAL_MAX_AGE`. Whatever
//! ends a token calls `cache.invalidate()` after it commits, so a revoked token is
//! refused at the next request.

use std::net::IpAddr;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::cache::{BackChannelCache, LiveToken};
use crate::auth::throttle::{RetryAfter, Throttle};
use crate::clock::Clock;
use crate::db::Db;
use crate::db::conn::write_transaction;
use crate::db::repo::personal_tokens::{self as repo, PersonalToken};
use crate::db::repo::users;
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::personal_tokens::{self as rules, Presented, TokenInputError};
use crate::domain::tokens::hash;

/// A use is written at most this often per token (seconds).
const TOUCH_EVERY: i64 = 60;

/// The personal-token service.
#[derive(Clone)]
pub struct PersonalTokens {
    db: Db,
    clock: Clock,
    throttle: Throttle,
    cache: BackChannelCache,
}

/// What a script's `Authorization` header comes to.
#[derive(Debug)]
pub enum Presentation {
    /// A live token of an active account, presented the right way.
    Valid(Verified),
    /// Anything else: unknown, revoked or expired, another account's (Basic), not a
    /// token at all (an account password), or another scheme.
    Invalid,
    /// Too many failures from this address: wait.
    Throttled(RetryAfter),
}

/// What a new token is asked to be.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<String>,
    /// `None`: no expiry.
    pub expires_in_days: Option<u32>,
}

/// A token as its owner sees it (never its secret).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<&'static str>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// A secret that checks out: whose it is, and what it may do.
#[derive(Debug, Clone)]
pub struct Verified {
    pub token_id: String,
    pub user_id: String,
    /// The owner's address as stored (Basic authentication names it).
    pub email: String,
    pub scopes: Vec<&'static str>,
    /// The cache generation counter, when it was read in the same Redis round trip as
    /// this use was counted: forward auth decides under it without reading it again.
    pub generation_read: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Input(#[from] TokenInputError),
    /// The account is gone or disabled.
    #[error("no active account with that email address")]
    NoSuchUser,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<crate::db::DbError> for TokenError {
    fn from(e: crate::db::DbError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<crate::db::QueryError> for TokenError {
    fn from(e: crate::db::QueryError) -> Self {
        Self::Internal(e.into())
    }
}

impl PersonalTokens {
    pub fn new(db: Db, clock: Clock, throttle: Throttle, cache: BackChannelCache) -> Self {
        Self {
            db,
            clock,
            throttle,
            cache,
        }
    }

    /// Judges an `Authorization` header sent from `ip`: `Bearer <token>`, or Basic
    /// with the account's email address as the user and a token as the password (the
    /// account's password is not a token, so it fails like any wrong guess). Every
    /// failure of a Bearer or Basic credential is counted against `ip`; past the limit
    /// the answer is [`Presentation::Throttled`]. Another scheme is not a guess at a
    /// token and is not counted. Every token-shaped secret counts as a use of that
    /// token (`personal_token_uses_per_minute`); past it, [`Presentation::Throttled`]
    /// too, before anything is looked up.
    pub async fn present(
        &self,
        presented: Presented,
        ip: IpAddr,
    ) -> Result<Presentation, InternalError> {
        let (secret, user) = match presented {
            Presented::Bearer(secret) => (secret, None),
            Presented::Basic { user, secret } => (secret, Some(user)),
            Presented::Other => return Ok(Presentation::Invalid),
        };
        let verified = if rules::looks_like_secret(&secret) {
            let h = hash(&secret);
            let (counted, read) = self.count_use(&h).await;
            if let Err(wait) = counted {
                return Ok(Presentation::Throttled(wait));
            }
            let generation = match read {
                Some(value) => self.cache.generation_as_read(value),
                None => self.cache.generation().await,
            };
            self.lookup(&h, generation).await?.map(|mut v| {
                v.generation_read = read;
                v
            })
        } else {
            None
        };
        let verified =
            verified.filter(|v| user.is_none_or(|u| u.trim().eq_ignore_ascii_case(&v.email)));
        Ok(match verified {
            Some(v) => Presentation::Valid(v),
            None => match self.throttle.personal_token_failed(ip).await {
                Ok(()) => Presentation::Invalid,
                Err(wait) => Presentation::Throttled(wait),
            },
        })
    }

    /// A new token for an active user; returns its id and its secret, which is never
    /// shown again. Audited as `personal_token.created` (without the secret).
    pub async fn create(
        &self,
        user_id: &str,
        new: NewToken,
        ctx: &AuditCtx,
    ) -> Result<(String, String), TokenError> {
        let name = rules::parse_name(&new.name)?;
        let scopes = rules::parse_scopes(&new.scopes)?;
        let now = self.clock.now();
        let expires_at = rules::expires_at(now, new.expires_in_days)?;
        let secret = rules::generate();
        let row = PersonalToken {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_string(),
            name,
            token_hash: hash(&secret),
            scopes: scopes.join(" "),
            created_at: now,
            last_used_at: None,
            expires_at,
            revoked_at: None,
        };
        let id = row.id.clone();
        let ctx = ctx.clone();
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    match users::find(c, &row.user_id)? {
                        Some(u) if !u.disabled => {}
                        _ => return Ok(Err(TokenError::NoSuchUser)),
                    }
                    repo::insert(c, &row)?;
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::PersonalTokenCreated,
                        Outcome::Success,
                        Some(&row.user_id),
                        json!({"token_id": row.id, "name": row.name, "scopes": row.scopes,
                               "expires_at": row.expires_at}),
                    )?;
                    Ok::<_, crate::db::QueryError>(Ok(()))
                })
                .map_err(TokenError::from)?
            })
            .await?;
        Ok((id, secret))
    }

    /// [`Self::create`] for the account with this email address (the command line).
    pub async fn create_for_email(
        &self,
        email: &str,
        new: NewToken,
        ctx: &AuditCtx,
    ) -> Result<(String, String), TokenError> {
        let normalized = email.trim().to_lowercase();
        let user = self
            .db
            .run(move |c| users::find_by_email(c, &normalized).map_err(InternalError::from))
            .await?;
        match user {
            Some(u) if !u.disabled => self.create(&u.id, new, ctx).await,
            _ => Err(TokenError::NoSuchUser),
        }
    }

    /// The user's tokens that still work, newest first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<TokenInfo>, InternalError> {
        let (uid, now) = (user_id.to_string(), self.clock.now());
        let rows = self
            .db
            .run(move |c| repo::live_of_user(c, &uid, now).map_err(InternalError::from))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| TokenInfo {
                scopes: rules::stored_scopes(&r.scopes),
                id: r.id,
                name: r.name,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
                expires_at: r.expires_at,
            })
            .collect())
    }

    /// Revokes one of the user's own tokens; false when they have no such live token
    /// (someone else's id is as unknown as a made-up one). Audited as
    /// `personal_token.revoked`.
    pub async fn revoke(
        &self,
        user_id: &str,
        token_id: &str,
        ctx: &AuditCtx,
    ) -> Result<bool, InternalError> {
        let (uid, id, ctx, now) = (
            user_id.to_string(),
            token_id.to_string(),
            ctx.clone(),
            self.clock.now(),
        );
        let revoked = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let Some(name) = repo::revoke_own(c, &uid, &id, now)? else {
                        return Ok(false);
                    };
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::PersonalTokenRevoked,
                        Outcome::Success,
                        Some(&uid),
                        json!({"token_id": id, "name": name, "reason": "revoked"}),
                    )?;
                    Ok(true)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await?;
        if revoked {
            self.cache.invalidate().await;
        }
        Ok(revoked)
    }

    /// Who a secret belongs to, if it is a live token of an active account; `None` for
    /// anything else (unknown, revoked, expired, a disabled or deleted account, or not
    /// shaped like a token at all — then nothing is looked up). A use is recorded at
    /// most once a minute, when the token is read rather than found memoised.
    pub async fn verify(&self, secret: &str) -> Result<Option<Verified>, InternalError> {
        if !rules::looks_like_secret(secret) {
            return Ok(None);
        }
        // The generation before the read: a change meanwhile makes the memo unusable.
        let generation = self.cache.generation().await;
        self.lookup(&hash(secret), generation).await
    }

    /// One use of the token with this hash, counted: with Redis, in one round trip
    /// that also reads the cache generation counter (returned when read).
    async fn count_use(&self, h: &str) -> (Result<(), RetryAfter>, Option<u64>) {
        if let Some(counter) = self.cache.redis_key()
            && let Some((verdict, read)) =
                self.throttle.personal_token_use_reading(h, counter).await
        {
            return (verdict, Some(read));
        }
        (self.throttle.personal_token_use(h).await, None)
    }

    /// [`Self::verify`] of the secret with hash `h`, under a generation read before.
    async fn lookup(
        &self,
        h: &str,
        generation: Option<u64>,
    ) -> Result<Option<Verified>, InternalError> {
        let (h, now) = (h.to_string(), self.clock.now());
        let memo = self.cache.personal_token(generation, &h);
        let live = match memo {
            Some(t) => Some(t),
            None => {
                let key = h.clone();
                let read = self
                    .db
                    .run(move |c| -> Result<Option<LiveToken>, InternalError> {
                        let Some(t) = repo::find_by_hash(c, &key)? else {
                            return Ok(None);
                        };
                        if t.revoked_at.is_some() || t.expires_at.is_some_and(|e| e <= now) {
                            return Ok(None);
                        }
                        let Some(user) = users::find(c, &t.user_id)?.filter(|u| !u.disabled) else {
                            return Ok(None);
                        };
                        if t.last_used_at.is_none_or(|u| u <= now - TOUCH_EVERY) {
                            repo::touch(c, &t.id, now, now - TOUCH_EVERY)?;
                        }
                        Ok(Some(LiveToken {
                            scopes: rules::stored_scopes(&t.scopes),
                            token_id: t.id,
                            user_id: t.user_id,
                            email: user.email,
                            expires_at: t.expires_at,
                        }))
                    })
                    .await?;
                if let Some(t) = &read {
                    self.cache.put_personal_token(generation, &h, t.clone());
                }
                read
            }
        };
        Ok(live
            .filter(|t| t.expires_at.is_none_or(|e| e > now))
            .map(|t| Verified {
                token_id: t.token_id,
                user_id: t.user_id,
                email: t.email,
                scopes: t.scopes,
                generation_read: None,
            }))
    }
}
