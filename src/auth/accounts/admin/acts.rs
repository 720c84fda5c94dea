//! Administrators' acts on a user, each in a write transaction that starts with
//! [`super::target`] (a role change through [`super::change_role`]).

use serde_json::json;

use super::{Actor, Admin, AdminError, Target, change_role, is_last_admin};
use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::authorize::{GrantsEnd, end_app_grants};
use crate::db::repo::directory;
use crate::domain::audit::{AuditAction, Outcome};
use crate::mail::messages::MethodRemoved;
use crate::mail::outbox::enqueue;

impl Admin {
    /// Assigns or removes a role; `true` when it changed something.
    pub async fn set_role(
        &self,
        actor: &Actor,
        user_id: &str,
        role: &str,
        assign: bool,
        ctx: &AuditCtx,
    ) -> Result<bool, AdminError> {
        let (uid, role) = (user_id.to_string(), role.to_string());
        let (ctx, now, actor) = (ctx.clone(), self.clock.now(), actor.clone());
        let changed = self
            .db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    change_role(c, &actor, &uid, &role, assign, &ctx, now)
                })
                .map_err(|e: crate::db::QueryError| InternalError::from(e))
            })
            .await??;
        // Userinfo answers with the user's roles.
        if changed {
            self.cache.invalidate().await;
        }
        Ok(changed)
    }

    /// Disables (and signs out everywhere at once) or enables an account.
    pub async fn set_disabled(
        &self,
        actor: &Actor,
        user_id: &str,
        disabled: bool,
        ctx: &AuditCtx,
    ) -> Result<(), AdminError> {
        let action = if disabled {
            AuditAction::UserDisabled
        } else {
            AuditAction::UserEnabled
        };
        let ctx2 = ctx.clone();
        let t = self
            .act_on(actor, user_id, action, ctx, json!({}), move |c, t, now| {
                if disabled && t.own {
                    return Ok(Err(AdminError::OwnAccount));
                }
                if disabled && is_last_admin(c, &t.user.id)? {
                    return Ok(Err(AdminError::LastAdmin));
                }
                directory::set_disabled(c, &t.user.id, disabled, now)?;
                if disabled {
                    // Enabling again must not bring the apps' tokens back.
                    end_app_grants(c, &ctx2, now, &t.user.id, GrantsEnd::AdminDisabled)?;
                }
                t.done(c, &ctx2, now, action, json!({}))?;
                Ok(Ok(t))
            })
            .await?;
        // The account's access tokens follow the flag at once.
        self.cache.invalidate().await;
        if disabled {
            // After the flag: a sign-in racing with this is refused by the flag.
            self.end_sessions(&t, ctx).await?;
        }
        Ok(())
    }

    /// Signs the user out on every device; returns how many sessions ended.
    pub async fn revoke_sessions(
        &self,
        actor: &Actor,
        user_id: &str,
        ctx: &AuditCtx,
    ) -> Result<usize, AdminError> {
        let t = self
            .act_on(
                actor,
                user_id,
                AuditAction::SessionRevoked,
                ctx,
                json!({"all": true}),
                |_, t, _| Ok(Ok(t)),
            )
            .await?;
        Ok(self.end_sessions(&t, ctx).await?)
    }

    /// Ends every session of a checked target and audits it. The sessions live outside
    /// the database (Redis when configured), so this follows the target's transaction.
    async fn end_sessions(&self, t: &Target, ctx: &AuditCtx) -> Result<usize, InternalError> {
        let n = self.sessions.revoke_all(&t.user.id, None).await?;
        let (uid, ctx, now) = (t.user.id.clone(), ctx.clone(), self.clock.now());
        self.db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    end_app_grants(c, &ctx, now, &uid, GrantsEnd::AdminRevokedSessions)?;
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::SessionRevoked,
                        Outcome::Success,
                        Some(&uid),
                        json!({"all": true, "count": n}),
                    )
                })
                .map_err(InternalError::from)
            })
            .await?;
        self.cache.invalidate().await;
        Ok(n)
    }

    /// Removes the authenticator app, security keys, passkeys and recovery codes: the
    /// user signs in with the password alone and enrols again. They are told by email.
    pub async fn reset_second_factors(
        &self,
        actor: &Actor,
        user_id: &str,
        ctx: &AuditCtx,
    ) -> Result<usize, AdminError> {
        let (ctx2, mail) = (ctx.clone(), self.mail.clone());
        self.act_on(
            actor,
            user_id,
            AuditAction::MfaReset,
            ctx,
            json!({}),
            move |c, t, now| {
                let user = &t.user;
                let n = directory::delete_second_factors(c, &user.id)?;
                t.done(c, &ctx2, now, AuditAction::MfaReset, json!({"removed": n}))?;
                if n > 0 {
                    let notice = MethodRemoved {
                        base: mail.base.clone(),
                        brand: mail.brand.clone(),
                        email: user.email.clone(),
                        method: "every second factor, by an administrator".into(),
                    };
                    let rendered = notice.render_all().map_err(crate::db::abort)?;
                    enqueue(c, &mail.outbox, &user.email, rendered, now)?;
                }
                Ok(Ok(n))
            },
        )
        .await
    }

    /// Mails the user a password reset link, as `/password/forgot` would: the same
    /// message, earlier links voided. A disabled account or a service account gets none
    /// (the refusal is audited there), and the administrator is told why.
    pub async fn send_password_reset(
        &self,
        actor: &Actor,
        user_id: &str,
        ctx: &AuditCtx,
    ) -> Result<(), AdminError> {
        let (ctx2, mail) = (ctx.clone(), self.mail.clone());
        self.act_on(
            actor,
            user_id,
            AuditAction::PasswordResetRequested,
            ctx,
            json!({}),
            move |c, t, now| {
                let sent = crate::auth::accounts::links::issue_reset(
                    c,
                    &mail,
                    &t.user.email_normalized,
                    &ctx2,
                    now,
                )?;
                Ok(match sent {
                    true => Ok(()),
                    false if t.user.is_service() => Err(AdminError::ServiceAccount),
                    false => Err(AdminError::AccountDisabled),
                })
            },
        )
        .await
    }

    /// Deletes the account after the admin typed its email address.
    pub async fn delete(
        &self,
        actor: &Actor,
        user_id: &str,
        confirmation: &str,
        ctx: &AuditCtx,
    ) -> Result<(), AdminError> {
        let confirmation = confirmation.trim().to_string();
        self.remove(actor, user_id, Deletion::ByAdmin(confirmation), ctx)
            .await
    }

    /// The user deletes their own account (`/account/delete`); the caller has checked
    /// that it is them (a fresh sign-in and their password or second factor). The same
    /// act as an administrator's delete, with the user as the actor: the last active
    /// administrator is refused here too.
    pub async fn delete_own(&self, user_id: &str, ctx: &AuditCtx) -> Result<(), AdminError> {
        let actor = Actor::User(user_id.to_string());
        self.remove(&actor, user_id, Deletion::ByOwner, ctx).await
    }

    /// Deletes an account, for an administrator or for its owner: every rule about who
    /// may delete whom is in this one place.
    async fn remove(
        &self,
        actor: &Actor,
        user_id: &str,
        how: Deletion,
        ctx: &AuditCtx,
    ) -> Result<(), AdminError> {
        // First shut the account (a sign-in racing with this is refused), then end its
        // sessions while their registry rows still exist, then delete.
        let ctx1 = ctx.clone();
        // Both steps are the one act: a refusal at either is audited as it.
        let act = AuditAction::UserDeleted;
        let by_owner = matches!(how, Deletion::ByOwner);
        self.act_on(actor, user_id, act, ctx, json!({}), move |c, t, now| {
            match &how {
                Deletion::ByAdmin(confirmation) => {
                    if t.own {
                        return Ok(Err(AdminError::OwnAccount));
                    }
                    if !confirmation.eq_ignore_ascii_case(&t.user.email) {
                        return Ok(Err(AdminError::ConfirmationMismatch));
                    }
                }
                // `target` sets `own` from the actor; an owner's deletion of anyone
                // else would be a bug in the caller, refused all the same.
                Deletion::ByOwner if !t.own => return Ok(Err(AdminError::NoSuchUser)),
                Deletion::ByOwner => {}
            }
            if is_last_admin(c, &t.user.id)? {
                let reason = json!({"reason": "last administrator"});
                record(
                    c,
                    &ctx1,
                    now,
                    act,
                    Outcome::Denied,
                    Some(&t.user.id),
                    reason,
                )?;
                return Ok(Err(AdminError::LastAdmin));
            }
            directory::set_disabled(c, &t.user.id, true, now)?;
            end_app_grants(c, &ctx1, now, &t.user.id, GrantsEnd::AdminDeleted)?;
            Ok(Ok(()))
        })
        .await?;
        self.cache.invalidate().await;
        self.sessions.revoke_all(user_id, None).await?;
        let ctx2 = ctx.clone();
        // Checked again: the account may have gained a role since it was shut.
        self.act_on(actor, user_id, act, ctx, json!({}), move |c, t, now| {
            // Rows of the user go with it (foreign keys cascade); audit rows stay.
            directory::delete_user(c, &t.user.id)?;
            let details = json!({"email": t.user.email, "by_owner": by_owner});
            t.done(c, &ctx2, now, act, details)?;
            Ok(Ok(()))
        })
        .await
    }
}

/// Who asked for a deletion, with what they proved.
enum Deletion {
    /// An administrator, with the email address they typed to confirm.
    ByAdmin(String),
    /// The user themself, already proven by the caller.
    ByOwner,
}
