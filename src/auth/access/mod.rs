//! Who may do what: permissions, and the roles that hold them. [`Access`] answers the
//! two questions every request asks: may this user open an admin page, and who is this
//! user for an app behind forward auth.

pub mod forward;
pub mod groups;
pub mod permissions;
pub mod policy;
pub mod roles;
pub mod service_accounts;
pub mod tokens;

use std::collections::BTreeSet;

use crate::auth::InternalError;
use crate::auth::oauth::cache::BackChannelCache;
use crate::db::Db;
use crate::db::repo::{groups as group_rows, roles as role_rows, users};
use permissions::{Permission, permissions_of};

/// The access service.
#[derive(Clone)]
pub struct Access {
    db: Db,
    admin_requires_second_factor: bool,
    /// Forward auth asks about the same users on every request a proxy serves.
    cache: BackChannelCache,
}

/// Whether a user may open a page that needs a permission.
#[derive(Debug)]
pub enum Admission {
    Granted(BTreeSet<Permission>),
    /// The user does not hold the permission.
    Denied,
    /// The user holds it, but administrators must enrol a second factor first.
    NeedsSecondFactor,
}

/// A signed-in user as apps behind forward auth see them (defined in `domain`, so
/// the back-channel cache can hold it without `oauth` depending on `access`).
pub use crate::domain::access::Principal;

impl Access {
    pub fn new(db: Db, admin_requires_second_factor: bool, cache: BackChannelCache) -> Self {
        Self {
            db,
            admin_requires_second_factor,
            cache,
        }
    }

    /// Deny by default: read fresh from the database on every request, so a role taken
    /// away a second ago no longer opens anything.
    pub async fn admission(
        &self,
        user_id: &str,
        p: Permission,
    ) -> Result<Admission, InternalError> {
        let uid = user_id.to_string();
        let (perms, has_factor) = self
            .db
            .run(move |c| {
                Ok::<_, InternalError>((
                    permissions_of(c, &uid)?,
                    crate::auth::mfa::required(c, &uid)?,
                ))
            })
            .await?;
        Ok(if !perms.contains(&p) {
            Admission::Denied
        } else if self.admin_requires_second_factor && !has_factor {
            Admission::NeedsSecondFactor
        } else {
            Admission::Granted(perms)
        })
    }

    /// Every permission the user holds through their roles.
    pub async fn permissions(&self, user_id: &str) -> Result<BTreeSet<Permission>, InternalError> {
        let uid = user_id.to_string();
        self.db
            .run(move |c| permissions_of(c, &uid).map_err(InternalError::from))
            .await
    }

    /// An active account by email, as access rules see it (`policy check`).
    pub async fn principal_by_email(
        &self,
        email: &str,
    ) -> Result<Option<Principal>, InternalError> {
        let normalized = email.trim().to_lowercase();
        let found = self
            .db
            .run(move |c| users::find_by_email(c, &normalized).map_err(InternalError::from))
            .await?;
        match found {
            Some(u) => self.principal(&u.id).await,
            None => Ok(None),
        }
    }

    /// The user behind a session, for the headers forward auth hands to apps; `None`
    /// for an account that is gone or disabled.
    /// Memoised until anything that could change it (a role, the account's state)
    /// moves the cache's generation on; see `auth::oauth::cache`.
    pub async fn principal(&self, user_id: &str) -> Result<Option<Principal>, InternalError> {
        // The generation before the read: a change meanwhile makes the memo unusable.
        let generation = self.cache.generation().await;
        self.principal_at(generation, user_id).await
    }

    /// The cache's generation, read once for a request that memoises several things
    /// (with Redis, each read is a round trip): `read`, the counter's value when it
    /// came along with the caller's session or token check, else read now.
    pub async fn generation(&self, read: Option<u64>) -> Option<u64> {
        match read {
            Some(value) => self.cache.generation_as_read(value),
            None => self.cache.generation().await,
        }
    }

    /// [`Self::principal`] with the generation read before it.
    pub async fn principal_at(
        &self,
        generation: Option<u64>,
        user_id: &str,
    ) -> Result<Option<Principal>, InternalError> {
        if let Some(hit) = self.cache.principal(generation, user_id) {
            return Ok(hit);
        }
        let found = self.principal_fresh(user_id).await?;
        self.cache.put_principal(generation, user_id, found.clone());
        Ok(found)
    }

    async fn principal_fresh(&self, user_id: &str) -> Result<Option<Principal>, InternalError> {
        let uid = user_id.to_string();
        let (user, roles, groups) = self
            .db
            .run(move |c| {
                Ok::<_, InternalError>((
                    users::find(c, &uid)?,
                    role_rows::of_user(c, &uid)?,
                    group_rows::effective_of_user(c, &uid)?,
                ))
            })
            .await?;
        Ok(user.filter(|u| !u.disabled).map(|u| Principal {
            id: u.id,
            email: u.email,
            name: u.display_name.unwrap_or_default(),
            roles,
            groups,
        }))
    }
}
