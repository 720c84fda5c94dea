//! What the `/admin/users` pages read: a page of the directory, a user's detail, a
//! user by address; and the whole directory for `user list`. Nothing here writes.

use super::{Admin, DirectoryQuery, User};
use crate::auth::InternalError;
use crate::auth::audit::reader::NamedEvent;
use crate::db::repo::audit::Filter;
use crate::db::repo::sessions::SessionRow;
use crate::db::repo::{directory, mfa, roles, users, webauthn};

/// Everything `/admin/users/{id}` shows.
pub struct UserDetail {
    pub user: User,
    pub roles: Vec<String>,
    /// Every role there is (the page offers those the user does not hold).
    pub all_roles: Vec<String>,
    pub totp: bool,
    pub keys: Vec<webauthn::StoredCredential>,
    pub recovery_codes_left: i64,
    pub sessions: Vec<SessionRow>,
    /// The newest events about the user, emails resolved.
    pub events: Vec<NamedEvent>,
}

/// One page of `/admin/users`.
pub struct Directory {
    pub users: Vec<User>,
    /// More users follow the last one.
    pub more: bool,
    /// Every role there is, for the filter.
    pub roles: Vec<String>,
}

/// A user with their roles (sorted), as `user list` shows them.
pub struct Listed {
    pub user: User,
    pub roles: Vec<String>,
}

/// Events shown on a user's page.
const RECENT_EVENTS: i64 = 20;

impl Admin {
    /// One page of users matching `query` (at most `size`), with every role's name.
    pub async fn directory(
        &self,
        query: DirectoryQuery,
        size: i64,
    ) -> Result<Directory, InternalError> {
        self.db
            .run(move |c| {
                let mut users = directory::search(c, &query, size + 1)?;
                let more = users.len() as i64 > size;
                users.truncate(size as usize);
                Ok(Directory {
                    users,
                    more,
                    roles: roles::all_names(c)?,
                })
            })
            .await
    }

    /// Every user, service accounts included, ordered by address, with their roles:
    /// two statements whatever the number of users.
    pub async fn everyone(&self) -> Result<Vec<Listed>, InternalError> {
        self.db
            .run(|c| {
                let users = directory::search(c, &DirectoryQuery::default(), i64::MAX)?;
                let mut held: std::collections::HashMap<String, Vec<String>> =
                    std::collections::HashMap::new();
                for (user_id, role) in roles::assignments(c)? {
                    held.entry(user_id).or_default().push(role);
                }
                Ok(users
                    .into_iter()
                    .map(|user| Listed {
                        roles: held.remove(&user.id).unwrap_or_default(),
                        user,
                    })
                    .collect())
            })
            .await
    }

    /// The user's page: `None` when there is no such user.
    pub async fn detail(&self, user_id: &str) -> Result<Option<UserDetail>, InternalError> {
        let uid = user_id.to_string();
        let found = self
            .db
            .run(move |c| {
                let Some(user) = users::find(c, &uid)? else {
                    return Ok::<_, InternalError>(None);
                };
                let filter = Filter {
                    user_id: Some(uid.clone()),
                    ..Default::default()
                };
                let events = crate::db::repo::audit::page(c, &filter, None, RECENT_EVENTS)?;
                Ok(Some(UserDetail {
                    roles: roles::of_user(c, &uid)?,
                    all_roles: roles::all_names(c)?,
                    totp: mfa::has_totp(c, &uid)?,
                    keys: webauthn::for_user(c, &uid)?,
                    recovery_codes_left: mfa::unused_recovery_codes(c, &uid)?,
                    sessions: Vec::new(),
                    events: crate::auth::audit::reader::named(c, events)?,
                    user,
                }))
            })
            .await?;
        let Some(mut d) = found else { return Ok(None) };
        d.sessions = self.sessions.list(user_id).await?;
        Ok(Some(d))
    }

    /// The user with this email address (normalised as sign-in does), if any.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<User>, InternalError> {
        let norm = crate::domain::email::EmailAddress::parse(email)
            .map(|e| e.normalized().to_string())
            .unwrap_or_else(|_| email.trim().to_lowercase());
        self.db
            .run(move |c| Ok(users::find_by_email(c, &norm)?))
            .await
    }
}
