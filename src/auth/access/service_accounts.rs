//! Service accounts: non-human principals for scripts and services, on
//! `/admin/service-accounts` and from the command line. One is a row of `users` with
//! `kind = 'service'`: no password, the synthetic address `NAME@service.invalid`
//! (`domain::service_accounts`), and an owner group it counts as a member of for access
//! rules and `Remote-Groups`. It never signs in: every sign-in read in `repo::users`
//! finds only persons, password resets skip it and the outbox never mails `.invalid`.
//! It reaches sites behind forward auth with personal access tokens that
//! administrators make for it ([`PersonalTokens`]), and APIs with client credentials:
//! OAuth clients bound to it (`oauth_clients.service_account_id`) that may use only
//! `client_credentials`, whose tokens name it as `sub`. Deleting it ends both.
//! Who may call these is the caller's check (`users.write` on the admin pages, the
//! operator's shell).

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::access::tokens::{NewToken, PersonalTokens, TokenError, TokenInfo};
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::authorize::end_personal_tokens;
use crate::auth::oauth::authorize::service_account_client;
use crate::auth::oauth::cache::BackChannelCache;
use crate::clock::Clock;
use crate::db::conn::write_transaction;
use crate::db::repo::oauth as client_rows;
use crate::db::repo::users::{self, SERVICE, User};
use crate::db::repo::{directory, groups as group_rows, personal_tokens as token_rows};
use crate::db::{Db, QueryError};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::service_accounts::{NameError, address, parse_name};

#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountError {
    #[error("{0}")]
    BadName(NameError),
    #[error("An account named {0} already exists.")]
    Exists(String),
    #[error("There is no group named {0}.")]
    NoSuchGroup(String),
    #[error("There is no such service account.")]
    NoSuchAccount,
    #[error(transparent)]
    Token(TokenError),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<crate::db::DbError> for ServiceAccountError {
    fn from(e: crate::db::DbError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<QueryError> for ServiceAccountError {
    fn from(e: QueryError) -> Self {
        Self::Internal(e.into())
    }
}

/// A service account as the list shows it.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub id: String,
    pub name: String,
    /// `NAME@service.invalid`: Remote-Email, and the user for Basic authentication.
    pub email: String,
    /// The owner group's name (empty if it is gone, which deleting groups prevents).
    pub group: String,
    /// Live tokens.
    pub tokens: usize,
    pub created_at: i64,
}

/// A service account's client credentials as its page lists them (never the secret).
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    pub created_at: i64,
}

/// The service-account service.
#[derive(Clone)]
pub struct ServiceAccounts {
    db: Db,
    clock: Clock,
    /// Forward auth memoises principals: emptied when an account goes.
    cache: BackChannelCache,
    tokens: PersonalTokens,
}

impl ServiceAccounts {
    pub fn new(db: Db, clock: Clock, cache: BackChannelCache, tokens: PersonalTokens) -> Self {
        Self {
            db,
            clock,
            cache,
            tokens,
        }
    }

    /// Every service account, by name.
    pub async fn list(&self) -> Result<Vec<ServiceAccount>, InternalError> {
        let now = self.clock.now();
        self.db
            .run(move |c| {
                let groups: std::collections::HashMap<String, String> = group_rows::all(c)?
                    .into_iter()
                    .map(|g| (g.id, g.name))
                    .collect();
                let mut out = Vec::new();
                for u in users::services(c)? {
                    let tokens = token_rows::live_of_user(c, &u.id, now)?.len();
                    out.push(summary(u, &groups, tokens));
                }
                Ok::<_, InternalError>(out)
            })
            .await
    }

    /// One service account by id (`None` for a person's id or an unknown one).
    pub async fn get(&self, id: &str) -> Result<Option<ServiceAccount>, InternalError> {
        Ok(self.list().await?.into_iter().find(|a| a.id == id))
    }

    /// One service account by name.
    pub async fn by_name(&self, name: &str) -> Result<Option<ServiceAccount>, InternalError> {
        let name = name.trim();
        Ok(self.list().await?.into_iter().find(|a| a.name == name))
    }

    /// Creates a service account owned by `group`; returns its id. Audited as
    /// `service_account.created`.
    pub async fn create(
        &self,
        name: &str,
        group: &str,
        ctx: &AuditCtx,
    ) -> Result<String, ServiceAccountError> {
        let name = parse_name(name).map_err(ServiceAccountError::BadName)?;
        let group = group.trim().to_string();
        let (now, ctx) = (self.clock.now(), ctx.clone());
        let email = address(&name);
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            email_normalized: email.clone(),
            email,
            name_search: name.clone(),
            display_name: Some(name),
            password_hash: None,
            email_verified: true,
            disabled: false,
            created_at: now,
            updated_at: now,
            kind: SERVICE.to_string(),
            owner_group_id: None,
        };
        let id = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let Some(g) = group_rows::find_by_name(c, &group)? else {
                        return Ok(Err(ServiceAccountError::NoSuchGroup(group)));
                    };
                    if users::find_by_email(c, &user.email_normalized)?.is_some() {
                        return Ok(Err(ServiceAccountError::Exists(
                            user.display_name.unwrap_or_default(),
                        )));
                    }
                    let user = User {
                        owner_group_id: Some(g.id),
                        ..user
                    };
                    users::insert(c, &user)?;
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::ServiceAccountCreated,
                        Outcome::Success,
                        Some(&user.id),
                        json!({"name": user.display_name, "email": user.email, "group": g.name}),
                    )?;
                    Ok::<_, QueryError>(Ok(user.id))
                })
                .map_err(ServiceAccountError::from)?
            })
            .await?;
        self.cache.invalidate().await;
        Ok(id)
    }

    /// Deletes a service account: its tokens end (audited as `personal_token.revoked`),
    /// then it goes (`service_account.deleted`).
    pub async fn delete(&self, id: &str, ctx: &AuditCtx) -> Result<(), ServiceAccountError> {
        let (id, now, ctx) = (id.to_string(), self.clock.now(), ctx.clone());
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    let Some(u) = users::find(c, &id)?.filter(User::is_service) else {
                        return Ok(Err(ServiceAccountError::NoSuchAccount));
                    };
                    end_personal_tokens(c, &ctx, now, &u.id, "service_account.deleted")?;
                    for client in client_rows::of_service_account(c, &u.id)? {
                        delete_client(c, &ctx, now, &u.id, &client.client_id)?;
                    }
                    directory::delete_user(c, &u.id)?;
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::ServiceAccountDeleted,
                        Outcome::Success,
                        Some(&u.id),
                        json!({"name": u.display_name, "email": u.email}),
                    )?;
                    Ok::<_, QueryError>(Ok(()))
                })
                .map_err(ServiceAccountError::from)?
            })
            .await?;
        self.cache.invalidate().await;
        Ok(())
    }

    /// [`Self::delete`] by name (the command line).
    pub async fn delete_by_name(
        &self,
        name: &str,
        ctx: &AuditCtx,
    ) -> Result<(), ServiceAccountError> {
        let Some(a) = self.by_name(name).await? else {
            return Err(ServiceAccountError::NoSuchAccount);
        };
        self.delete(&a.id, ctx).await
    }

    /// The account's live tokens, newest first.
    pub async fn tokens(&self, id: &str) -> Result<Vec<TokenInfo>, ServiceAccountError> {
        self.require(id).await?;
        Ok(self.tokens.list(id).await?)
    }

    /// A new token for the account (the secret, shown once). Audited as
    /// `personal_token.created` with the administrator as the actor.
    pub async fn create_token(
        &self,
        id: &str,
        new: NewToken,
        ctx: &AuditCtx,
    ) -> Result<String, ServiceAccountError> {
        self.require(id).await?;
        match self.tokens.create(id, new, ctx).await {
            Ok((_, secret)) => Ok(secret),
            Err(TokenError::Internal(e)) => Err(e.into()),
            Err(TokenError::NoSuchUser) => Err(ServiceAccountError::NoSuchAccount),
            Err(e) => Err(ServiceAccountError::Token(e)),
        }
    }

    /// Revokes one of the account's tokens; false when it has no such live token.
    pub async fn revoke_token(
        &self,
        id: &str,
        token_id: &str,
        ctx: &AuditCtx,
    ) -> Result<bool, ServiceAccountError> {
        self.require(id).await?;
        Ok(self.tokens.revoke(id, token_id, ctx).await?)
    }

    /// The account's client credentials (OAuth clients that act as it), oldest first.
    pub async fn clients(&self, id: &str) -> Result<Vec<ClientInfo>, ServiceAccountError> {
        self.require(id).await?;
        let id = id.to_string();
        let rows = self
            .db
            .run(move |c| client_rows::of_service_account(c, &id).map_err(InternalError::from))
            .await?;
        Ok(rows
            .into_iter()
            .map(|c| ClientInfo {
                client_id: c.client_id,
                created_at: c.created_at,
            })
            .collect())
    }

    /// New client credentials for the account: a confidential OAuth client that may
    /// use only the `client_credentials` grant, and whose access tokens name the
    /// service account as `sub` (with the `groups` scope, introspection lists its
    /// groups). Returns the client id and its secret, shown once. Audited as
    /// `client.created`, naming the account.
    pub async fn add_client(
        &self,
        id: &str,
        ctx: &AuditCtx,
    ) -> Result<(String, String), ServiceAccountError> {
        let (id, now, ctx) = (id.to_string(), self.clock.now(), ctx.clone());
        let made = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let Some(u) = users::find(c, &id)?.filter(User::is_service) else {
                        return Ok(Err(ServiceAccountError::NoSuchAccount));
                    };
                    let name = u.display_name.unwrap_or_default();
                    let (row, secret) = service_account_client(&u.id, &name, now);
                    client_rows::insert_client(c, &row)?;
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::ClientCreated,
                        Outcome::Success,
                        Some(&u.id),
                        json!({"client_id": row.client_id, "name": name, "public": false,
                               "service_account": name, "grants": row.grants}),
                    )?;
                    Ok::<_, QueryError>(Ok((row.client_id, secret)))
                })
                .map_err(ServiceAccountError::from)?
            })
            .await?;
        Ok(made)
    }

    /// Deletes one of the account's clients (its tokens stop working at once); false
    /// when the account has no such client.
    pub async fn delete_client(
        &self,
        id: &str,
        client_id: &str,
        ctx: &AuditCtx,
    ) -> Result<bool, ServiceAccountError> {
        self.require(id).await?;
        let (id, cid, now, ctx) = (
            id.to_string(),
            client_id.to_string(),
            self.clock.now(),
            ctx.clone(),
        );
        let deleted = self
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let ours = client_rows::find_client(c, &cid)?
                        .is_some_and(|cl| cl.service_account_id.as_deref() == Some(id.as_str()));
                    if ours {
                        delete_client(c, &ctx, now, &id, &cid)?;
                    }
                    Ok(ours)
                })
                .map_err(|e: QueryError| InternalError::from(e))
            })
            .await?;
        if deleted {
            self.cache.invalidate().await;
        }
        Ok(deleted)
    }

    async fn require(&self, id: &str) -> Result<(), ServiceAccountError> {
        let id = id.to_string();
        let found = self
            .db
            .run(move |c| users::find(c, &id).map_err(InternalError::from))
            .await?;
        match found {
            Some(u) if u.is_service() => Ok(()),
            _ => Err(ServiceAccountError::NoSuchAccount),
        }
    }
}

/// Deletes a service account's client in the caller's transaction; audited as
/// `client.deleted`, naming the account.
fn delete_client(
    c: &mut crate::db::AnyConnection,
    ctx: &AuditCtx,
    now: i64,
    account: &str,
    client_id: &str,
) -> crate::db::QueryResult<()> {
    client_rows::delete_client(c, client_id)?;
    record(
        c,
        ctx,
        now,
        AuditAction::ClientDeleted,
        Outcome::Success,
        Some(account),
        json!({"client_id": client_id}),
    )
}

fn summary(
    u: User,
    groups: &std::collections::HashMap<String, String>,
    tokens: usize,
) -> ServiceAccount {
    ServiceAccount {
        group: u
            .owner_group_id
            .as_ref()
            .and_then(|g| groups.get(g).cloned())
            .unwrap_or_default(),
        name: u.display_name.unwrap_or_default(),
        id: u.id,
        email: u.email,
        tokens,
        created_at: u.created_at,
    }
}
