//! Accounts: registration, creation from the shell, password change, roles, and the
//! `Accounts` service that the account and emailed-link pages call; what the service
//! holds about a user, for them to download (`own_data`), and deleting one's own
//! account (`closing`).

pub mod admin;
pub mod closing;
pub mod links;
pub mod own_data;
pub mod setup;

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::accounts::links::{
    issue_verification, notify_password_changed, notify_registration_attempt,
};
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::authorize::{GrantsEnd, end_app_grants};
use crate::auth::oauth::cache::BackChannelCache;
use crate::auth::password::{Hasher, Verified};
use crate::auth::sessions::Sessions;
use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::repo::{roles, users, users::User};
use crate::db::{Db, DbError};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::email::EmailAddress;
use crate::domain::password;
use crate::mail::MailCtx;

pub const MAX_NAME_LEN: usize = 100;

/// Registration, email links, password and address changes, first-start setup: what
/// the pages under /register, /verify-email, /password, /setup and /account call.
#[derive(Clone)]
pub struct Accounts {
    pub(crate) db: Db,
    pub(crate) clock: Clock,
    pub(crate) hasher: Hasher,
    pub(crate) throttle: Throttle,
    pub(crate) mail: MailCtx,
    pub(crate) cache: BackChannelCache,
    pub(crate) sessions: Sessions,
    /// The file's registration settings, under the runtime ones (/admin/settings).
    pub(crate) config: Config,
}

impl Accounts {
    fn min_password_len(&self) -> usize {
        self.config.password_min_length
    }

    /// Whether `/register` takes new accounts now (runtime settings over the file).
    pub async fn registration_open(&self) -> Result<bool, InternalError> {
        Ok(crate::auth::settings::registration(&self.db, &self.config)
            .await?
            .enabled)
    }

    /// Registers an account under the registration settings in effect now.
    pub async fn register(
        &self,
        input: NewAccount,
        ctx: &AuditCtx,
    ) -> Result<Registered, AccountError> {
        let reg = crate::auth::settings::registration(&self.db, &self.config).await?;
        let policy = RegistrationPolicy {
            enabled: reg.enabled,
            allowed_domains: &reg.allowed_domains,
            min_password_len: self.min_password_len(),
        };
        register(self, &policy, input, ctx).await
    }

    /// Changes the password after checking the current one and ends the user's other
    /// sessions (all but `keep_session`); with `end_apps`, their app grants too.
    pub async fn change_password(
        &self,
        user_id: &str,
        keep_session: &str,
        current: String,
        new: String,
        end_apps: bool,
        ctx: &AuditCtx,
    ) -> Result<(), AccountError> {
        change_password(self, user_id, current, new, end_apps, ctx).await?;
        self.sessions
            .revoke_all(user_id, Some(keep_session))
            .await?;
        Ok(())
    }
}

/// Problems the user can fix; each carries the message shown next to the form.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Email(String),
    #[error("{0}")]
    Password(String),
    #[error("{0}")]
    Name(String),
    #[error("Registration is closed.")]
    RegistrationClosed,
    #[error("Registration is limited to addresses at {0}.")]
    DomainNotAllowed(String),
    #[error("An account with that email already exists.")]
    Exists,
    #[error("There is no role named {0}.")]
    NoSuchRole(String),
    #[error("No account has that email address.")]
    NoSuchUser,
    #[error("The current password is not correct.")]
    WrongPassword,
    #[error("{0} is the last administrator; assign the role to someone else first.")]
    LastAdmin(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

pub struct RegistrationPolicy<'a> {
    pub enabled: bool,
    pub allowed_domains: &'a [String],
    pub min_password_len: usize,
}

pub struct NewAccount {
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
}

pub enum Registered {
    /// A new account.
    Created(User),
    /// The address already has an account: the caller answers exactly as for a new one
    /// (no enumeration) and tells the owner by email instead.
    AlreadyExists(User),
}

fn clean_name(name: Option<String>) -> Result<Option<String>, AccountError> {
    let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if let Some(n) = &name {
        if n.chars().count() > MAX_NAME_LEN {
            return Err(AccountError::Name(format!(
                "Use at most {MAX_NAME_LEN} characters for the name."
            )));
        }
        if n.chars().any(char::is_control) {
            return Err(AccountError::Name(
                "The name cannot contain control characters.".into(),
            ));
        }
    }
    Ok(name)
}

/// Checks the policy off the executor (zxcvbn takes milliseconds on long inputs).
pub async fn check_password_policy(
    pw: &str,
    min_len: usize,
    inputs: Vec<String>,
) -> Result<(), AccountError> {
    let pw = pw.to_string();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        password::check(&pw, min_len, &refs)
    })
    .await
    .unwrap_or_else(|_| Err("The password could not be checked.".into()))
    .map_err(AccountError::Password)
}

/// Checks `password` against the policy (it may not echo the address or the name),
/// then hashes it.
async fn checked_hash(
    hasher: &Hasher,
    password: String,
    min_len: usize,
    email: &EmailAddress,
    name: Option<&str>,
) -> Result<String, AccountError> {
    check_password_policy(&password, min_len, email_inputs(email, name)).await?;
    Ok(hasher.hash(password).await.map_err(InternalError::from)?)
}

fn email_inputs(email: &EmailAddress, name: Option<&str>) -> Vec<String> {
    let mut v = vec![email.normalized().to_string()];
    if let Some((local, _)) = email.normalized().split_once('@') {
        v.push(local.to_string());
    }
    if let Some(n) = name {
        v.push(n.to_lowercase());
    }
    v
}

pub fn new_user(
    email: &EmailAddress,
    name: Option<String>,
    hash: String,
    verified: bool,
    now: i64,
) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_string(),
        email_normalized: email.normalized().to_string(),
        name_search: name.as_deref().unwrap_or_default().trim().to_lowercase(),
        display_name: name,
        password_hash: Some(hash),
        email_verified: verified,
        disabled: false,
        created_at: now,
        updated_at: now,
        kind: users::PERSON.to_string(),
        owner_group_id: None,
    }
}

/// Inserts a new account and gives it `role_names`, in the caller's transaction: audited
/// as `created` (with its details), then each role as `role.assigned`.
pub(crate) fn insert_user(
    c: &mut crate::db::AnyConnection,
    (ctx, now): (&AuditCtx, i64),
    user: &User,
    (created, details): (AuditAction, serde_json::Value),
    role_names: &[String],
) -> crate::db::QueryResult<()> {
    users::insert(c, user)?;
    let uid = Some(user.id.as_str());
    record(c, ctx, now, created, Outcome::Success, uid, details)?;
    for r in role_names {
        roles::assign(c, &user.id, r, now)?;
        let role = json!({"role": r});
        record(
            c,
            ctx,
            now,
            AuditAction::RoleAssigned,
            Outcome::Success,
            uid,
            role,
        )?;
    }
    Ok(())
}

/// Registers an account and, in the same transaction, queues its verification link (or,
/// for a taken address, the notice to its owner, within the per-address cap).
async fn register(
    a: &Accounts,
    policy: &RegistrationPolicy<'_>,
    input: NewAccount,
    ctx: &AuditCtx,
) -> Result<Registered, AccountError> {
    let (db, hasher, clock, throttle, mail) = (&a.db, &a.hasher, &a.clock, &a.throttle, &a.mail);
    if !policy.enabled {
        return Err(AccountError::RegistrationClosed);
    }
    let email = match EmailAddress::parse(&input.email) {
        Ok(e) => e,
        Err(m) => return Err(AccountError::Email(m.into())),
    };
    if email.undeliverable() {
        return Err(AccountError::Email(EmailAddress::UNDELIVERABLE.into()));
    }
    if !policy.allowed_domains.is_empty()
        && !policy.allowed_domains.iter().any(|d| d == email.domain())
    {
        return Err(AccountError::DomainNotAllowed(
            policy.allowed_domains.join(", "),
        ));
    }
    let name = clean_name(input.display_name)?;
    // Hash before looking the address up, so both answers cost the same.
    let hash = checked_hash(
        hasher,
        input.password,
        policy.min_password_len,
        &email,
        name.as_deref(),
    )
    .await?;
    // Whether a notice may go out, asked for every registration of the address: a
    // question only a taken one asked would take longer, and tell.
    let notify = throttle.registration_notice_to(email.normalized()).await;
    let now = clock.now();
    let user = new_user(&email, name, hash, false, now);
    let (ctx, mail) = (ctx.clone(), mail.clone());
    let result = db
        .run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                if let Some(existing) = users::find_by_email(c, &user.email_normalized)? {
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::UserRegistered,
                        Outcome::Denied,
                        Some(&existing.id),
                        json!({"reason": "email already registered", "owner_notified": notify}),
                    )?;
                    // A service account's address is never mailed.
                    if notify && !existing.is_service() {
                        notify_registration_attempt(c, &mail, &existing, now)?;
                    }
                    return Ok(Registered::AlreadyExists(existing));
                }
                users::insert(c, &user)?;
                record(
                    c,
                    &ctx.with_actor(&user.id),
                    now,
                    AuditAction::UserRegistered,
                    Outcome::Success,
                    Some(&user.id),
                    json!({}),
                )?;
                issue_verification(c, &mail, &user, now)?;
                Ok(Registered::Created(user))
            })
            .map_err(|e: crate::db::QueryError| DbError::from(e))
        })
        .await;
    match result {
        Ok(r) => Ok(r),
        // Two registrations of one address racing: the loser answers like the winner.
        Err(e) if e.is_unique_violation() => {
            let norm = email.normalized().to_string();
            let existing = db
                .run(move |c| users::find_by_email(c, &norm).map_err(DbError::from))
                .await
                .map_err(InternalError::from)?;
            existing.map(Registered::AlreadyExists).ok_or_else(|| {
                InternalError::Missing("the account whose address was a unique violation").into()
            })
        }
        Err(e) => Err(InternalError::from(e).into()),
    }
}

/// `portcullis user create`: an operator creating an account (no registration policy).
#[expect(clippy::too_many_arguments)]
pub async fn create_user(
    db: &Db,
    hasher: &Hasher,
    clock: &Clock,
    min_password_len: usize,
    input: NewAccount,
    role_names: &[String],
    verified: bool,
    ctx: &AuditCtx,
) -> Result<User, AccountError> {
    let email = EmailAddress::parse(&input.email).map_err(|m| AccountError::Email(m.into()))?;
    if email.undeliverable() {
        return Err(AccountError::Email(EmailAddress::UNDELIVERABLE.into()));
    }
    let name = clean_name(input.display_name)?;
    let hash = checked_hash(
        hasher,
        input.password,
        min_password_len,
        &email,
        name.as_deref(),
    )
    .await?;
    let now = clock.now();
    let user = new_user(&email, name, hash, verified, now);
    let role_names = role_names.to_vec();
    let ctx = ctx.clone();
    db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            for r in &role_names {
                if !roles::exists(c, r)? {
                    return Ok(Err(AccountError::NoSuchRole(r.clone())));
                }
            }
            if users::find_by_email(c, &user.email_normalized)?.is_some() {
                return Ok(Err(AccountError::Exists));
            }
            let created = (AuditAction::UserCreated, json!({"email": user.email}));
            insert_user(c, (&ctx, now), &user, created, &role_names)?;
            Ok(Ok(user))
        })
        .map_err(|e: crate::db::QueryError| InternalError::from(e))
    })
    .await?
}

/// The signed-in user's row and whether `password` is their current password.
pub(super) async fn signed_in_user_verified(
    db: &Db,
    hasher: &Hasher,
    user_id: &str,
    password: String,
) -> Result<(User, Verified), InternalError> {
    let uid = user_id.to_string();
    let user = db
        .run(move |c| users::find(c, &uid).map_err(InternalError::from))
        .await?
        .ok_or(InternalError::Missing("signed-in user"))?;
    let verified = hasher
        .verify(user.password_hash.clone(), password)
        .await
        .map_err(InternalError::from)?;
    Ok((user, verified))
}

/// Changes the password after checking the current one; with `end_apps`, the user's
/// app grants end in the same transaction. The caller then ends the user's other
/// sessions.
async fn change_password(
    a: &Accounts,
    user_id: &str,
    current: String,
    new: String,
    end_apps: bool,
    ctx: &AuditCtx,
) -> Result<(), AccountError> {
    let (db, hasher, clock, mail, cache) = (&a.db, &a.hasher, &a.clock, &a.mail, &a.cache);
    let min_len = a.min_password_len();
    let (user, verified) = signed_in_user_verified(db, hasher, user_id, current).await?;
    if let Verified::No = verified {
        let (ctx, uid, now) = (ctx.clone(), user.id.clone(), clock.now());
        db.run(move |c| {
            record(
                c,
                &ctx,
                now,
                AuditAction::PasswordChanged,
                Outcome::Failure,
                Some(&uid),
                json!({"reason": "wrong current password"}),
            )
            .map_err(InternalError::from)
        })
        .await?;
        return Err(AccountError::WrongPassword);
    }
    let email = EmailAddress::parse(&user.email).map_err(|e| InternalError::Corrupt {
        what: "email address",
        why: e.to_string(),
    })?;
    let hash = checked_hash(hasher, new, min_len, &email, user.display_name.as_deref()).await?;
    let (ctx, now, mail) = (ctx.clone(), clock.now(), mail.clone());
    db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            users::set_password_hash(c, &user.id, &hash, now)?;
            if end_apps {
                end_app_grants(c, &ctx, now, &user.id, GrantsEnd::PasswordChanged)?;
            } else {
                // Tokens end at every password change: whoever knew the old password
                // may have made some.
                crate::auth::oauth::authorize::end_personal_tokens(
                    c,
                    &ctx,
                    now,
                    &user.id,
                    "password.changed",
                )?;
            }
            record(
                c,
                &ctx,
                now,
                AuditAction::PasswordChanged,
                Outcome::Success,
                Some(&user.id),
                json!({"apps_signed_out": end_apps}),
            )?;
            notify_password_changed(c, &mail, &user, false, now)
        })
        .map_err(InternalError::from)
    })
    .await?;
    // Either way the account's personal access tokens ended, and they are memoised.
    cache.invalidate().await;
    Ok(())
}
