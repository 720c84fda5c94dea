//! Security keys and passkeys (WebAuthn, webauthn-rs).
//!
//! Both are stored as webauthn-rs `Passkey`s with user verification required. A
//! *passkey* is also made discoverable (resident), so it can sign in from `/login`
//! without a password; a *security key* is a second factor after the password.
//! Ceremony states live in the server-side session, never in the browser.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use url::Url;
use webauthn_rs::prelude::*;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::mfa::SecondFactors;
use crate::clock::Clock;
pub use crate::db::repo::webauthn::StoredCredential;
use crate::db::repo::{users, users::User, webauthn as repo};
use crate::db::{AnyConnection, Db};
use crate::domain::audit::{AuditAction, Outcome};
use crate::mail::messages::MethodAdded;
use crate::mail::outbox::enqueue;

pub const KIND_PASSKEY: &str = "passkey";
pub const KIND_SECURITY_KEY: &str = "security_key";

/// The relying party: its id is the host of the public URL and can never change
/// without invalidating every credential. Its name (the brand) is what browsers show
/// in the passkey prompt, and may change freely.
pub fn relying_party(public_url: &Url, name: &str) -> anyhow::Result<Arc<Webauthn>> {
    let host = public_url
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("public_url has no host"))?;
    let local = matches!(host, "localhost" | "127.0.0.1");
    let w = WebauthnBuilder::new(host, public_url)
        .map_err(|e| anyhow::anyhow!("webauthn: {e}"))?
        .rp_name(name)
        // Development and tests run on random localhost ports.
        .allow_any_port(local)
        .build()
        .map_err(|e| anyhow::anyhow!("webauthn: {e}"))?;
    Ok(Arc::new(w))
}

fn user_handle(user_id: &str) -> Result<Uuid, InternalError> {
    Uuid::parse_str(user_id).map_err(|e| InternalError::Corrupt {
        what: "user id",
        why: e.to_string(),
    })
}

fn cred_key(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

fn load_passkeys(rows: &[repo::StoredCredential]) -> Vec<(String, Passkey)> {
    rows.iter()
        .filter_map(|r| {
            serde_json::from_str::<Passkey>(&r.credential)
                .ok()
                .map(|p| (r.id.clone(), p))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum WebauthnFailure {
    #[error("The security key could not be verified. Try again.")]
    Rejected,
    #[error("This security key is already registered.")]
    AlreadyRegistered,
    #[error("Give the key a name (up to 60 characters).")]
    BadName,
    #[error("Unknown kind of key.")]
    UnknownKind,
    #[error(
        "Security keys and passkeys need portcullis to be reached by a domain name: set PORTCULLIS_PUBLIC_URL to one."
    )]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// A registration under way: the options for the browser, the state to keep until
/// the browser answers, and what the user asked for.
pub struct RegistrationStarted {
    pub options: serde_json::Value,
    pub state: PasskeyRegistration,
    pub kind: &'static str,
    pub name: String,
}

/// A name the user gives a key: shown on the page and in emails.
pub fn valid_name(name: &str) -> bool {
    let name = name.trim();
    !name.is_empty() && name.chars().count() <= 60 && !name.chars().any(char::is_control)
}

/// The signed-in account a credential is being added to.
pub struct Holder<'a> {
    pub uid: &'a str,
    pub email: &'a str,
    pub name: Option<&'a str>,
}

impl SecondFactors {
    fn relying_party(&self) -> Result<&Webauthn, WebauthnFailure> {
        self.webauthn.as_deref().ok_or(WebauthnFailure::Unavailable)
    }

    /// Starts adding a credential of `kind` named `name`: the browser gets the options,
    /// the session keeps the state.
    pub async fn start_key_registration(
        &self,
        user: &Holder<'_>,
        kind: &str,
        name: &str,
    ) -> Result<RegistrationStarted, WebauthnFailure> {
        let kind = match kind {
            KIND_PASSKEY => KIND_PASSKEY,
            KIND_SECURITY_KEY => KIND_SECURITY_KEY,
            _ => return Err(WebauthnFailure::UnknownKind),
        };
        if !valid_name(name) {
            return Err(WebauthnFailure::BadName);
        }
        let (db, wa) = (&self.db, self.relying_party()?);
        let uid = user.uid.to_string();
        let rows = db
            .run(move |c| repo::for_user(c, &uid).map_err(InternalError::from))
            .await?;
        let exclude: Vec<CredentialID> = load_passkeys(&rows)
            .iter()
            .map(|(_, p)| p.cred_id().clone())
            .collect();
        let display = user.name.unwrap_or(user.email);
        let (ccr, state) = wa
            .start_passkey_registration(user_handle(user.uid)?, user.email, display, Some(exclude))
            .map_err(InternalError::from)?;
        let mut options = serde_json::to_value(&ccr).map_err(InternalError::from)?;
        if kind == KIND_PASSKEY {
            // Discoverable, so that it can sign in without a username (and via autofill).
            if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection") {
                sel["residentKey"] = json!("required");
                sel["requireResidentKey"] = json!(true);
            }
        }
        Ok(RegistrationStarted {
            options,
            state,
            kind,
            name: name.trim().to_string(),
        })
    }

    /// Adds the credential the browser made, once it checks out against `state`.
    pub async fn finish_key_registration(
        &self,
        user_id: &str,
        kind: &str,
        name: &str,
        credential: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
        ctx: &AuditCtx,
    ) -> Result<(), WebauthnFailure> {
        let (db, clock, mail) = (&self.db, &self.clock, &self.mail);
        if !valid_name(name) {
            return Err(WebauthnFailure::BadName);
        }
        let wa = self.relying_party()?;
        let name = name.trim();
        let passkey = match wa.finish_passkey_registration(credential, state) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(error = %e, "webauthn registration rejected");
                return Err(WebauthnFailure::Rejected);
            }
        };
        let now = clock.now();
        let row = repo::StoredCredential {
            id: cred_key(passkey.cred_id().as_ref()),
            user_id: user_id.to_string(),
            kind: if kind == KIND_PASSKEY {
                KIND_PASSKEY
            } else {
                KIND_SECURITY_KEY
            }
            .to_string(),
            name: name.to_string(),
            credential: serde_json::to_string(&passkey).map_err(InternalError::from)?,
            created_at: now,
            last_used_at: None,
        };
        let (ctx, mail) = (ctx.clone(), mail.clone());
        db.run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                // Credential ids are unique across all users: one registered elsewhere is refused.
                if repo::find(c, &row.id)?.is_some() {
                    return Ok(Err(WebauthnFailure::AlreadyRegistered));
                }
                let user = users::find(c, &row.user_id)?.ok_or(crate::db::QueryError::NotFound)?;
                repo::insert(c, &row)?;
                record(
                    c,
                    &ctx,
                    now,
                    AuditAction::WebauthnAdded,
                    Outcome::Success,
                    Some(&row.user_id),
                    json!({"kind": row.kind, "name": row.name}),
                )?;
                let what = if row.kind == KIND_PASSKEY {
                    "a passkey"
                } else {
                    "a security key"
                };
                let notice = MethodAdded {
                    base: mail.base.clone(),
                    brand: mail.brand.clone(),
                    email: user.email.clone(),
                    method: format!("{what} named \"{}\"", row.name),
                };
                let rendered = notice.render_all().map_err(crate::db::abort)?;
                enqueue(c, &mail.outbox, &user.email, rendered, now)?;
                Ok::<_, crate::db::QueryError>(Ok(()))
            })
            .map_err(InternalError::from)
        })
        .await?
    }
}

/// Second factor: a challenge for the user's own credentials (None when they have none).
pub async fn start_authentication(
    db: &Db,
    wa: &Webauthn,
    user_id: &str,
) -> Result<Option<(RequestChallengeResponse, PasskeyAuthentication)>, InternalError> {
    let uid = user_id.to_string();
    let rows = db
        .run(move |c| repo::for_user(c, &uid).map_err(InternalError::from))
        .await?;
    let keys: Vec<Passkey> = load_passkeys(&rows).into_iter().map(|(_, p)| p).collect();
    if keys.is_empty() {
        return Ok(None);
    }
    wa.start_passkey_authentication(&keys)
        .map(Some)
        .map_err(InternalError::from)
}

/// Checks an assertion against `user_id`'s credentials; a credential of another user,
/// a bad signature or a counter that went backwards is refused.
pub async fn finish_authentication(
    db: &Db,
    clock: &Clock,
    wa: &Webauthn,
    user_id: &str,
    credential: &PublicKeyCredential,
    state: &PasskeyAuthentication,
    ctx: &AuditCtx,
) -> Result<bool, InternalError> {
    let id = cred_key(credential.raw_id.as_ref());
    let (i, uid) = (id.clone(), user_id.to_string());
    let row = db
        .run(move |c| repo::find(c, &i).map_err(InternalError::from))
        .await?;
    let now = clock.now();
    let verdict = match row.filter(|r| r.user_id == uid) {
        None => Err("credential not registered to this user".to_string()),
        Some(r) => match serde_json::from_str::<Passkey>(&r.credential) {
            Err(e) => Err(e.to_string()),
            Ok(mut pk) => match wa.finish_passkey_authentication(credential, state) {
                Err(e) => Err(e.to_string()),
                Ok(result) => {
                    let changed = pk.update_credential(&result) == Some(true);
                    Ok(changed.then(|| serde_json::to_string(&pk).unwrap_or_default()))
                }
            },
        },
    };
    let (ctx, uid) = (ctx.clone(), user_id.to_string());
    let ok = verdict.is_ok();
    db.run(move |c| {
        settle((c, id.as_str()), (&ctx, &uid), now, &verdict, SECOND_STEP)?;
        Ok::<_, InternalError>(())
    })
    .await?;
    Ok(ok)
}

/// How a checked assertion is audited: as `ok` or `failed`, naming `method`.
struct Audited {
    ok: AuditAction,
    failed: AuditAction,
    method: &'static str,
}

const SECOND_STEP: Audited = Audited {
    ok: AuditAction::MfaSucceeded,
    failed: AuditAction::MfaFailed,
    method: "hwk",
};

const PASSKEY_SIGN_IN: Audited = Audited {
    ok: AuditAction::LoginSucceeded,
    failed: AuditAction::LoginFailed,
    method: "passkey",
};

/// Settles a checked assertion of the credential `id`: on success its use is recorded
/// (with the credential's new state, if any); either way the attempt is audited about
/// the user `uid`.
fn settle(
    (c, id): (&mut AnyConnection, &str),
    (ctx, uid): (&AuditCtx, &str),
    now: i64,
    verdict: &Result<Option<String>, String>,
    how: Audited,
) -> crate::db::QueryResult<()> {
    let method = how.method;
    match verdict {
        Ok(updated) => {
            repo::record_use(c, id, updated.as_deref(), now)?;
            let details = json!({"method": method});
            record(c, ctx, now, how.ok, Outcome::Success, Some(uid), details)
        }
        Err(why) => {
            let details = json!({"method": method, "reason": why});
            record(
                c,
                ctx,
                now,
                how.failed,
                Outcome::Failure,
                Some(uid),
                details,
            )
        }
    }
}

pub fn start_discoverable(
    wa: &Webauthn,
) -> Result<(RequestChallengeResponse, DiscoverableAuthentication), InternalError> {
    wa.start_discoverable_authentication()
        .map_err(InternalError::from)
}

/// Passwordless sign-in with a passkey: finds the user from the credential's user handle.
pub async fn finish_discoverable(
    db: &Db,
    clock: &Clock,
    wa: &Webauthn,
    credential: &PublicKeyCredential,
    state: DiscoverableAuthentication,
    require_verified: bool,
    ctx: &AuditCtx,
) -> Result<Option<(User, Vec<String>, String)>, InternalError> {
    let Ok((handle, _)) = wa.identify_discoverable_authentication(credential) else {
        return Ok(None);
    };
    let uid = handle.to_string();
    let id = cred_key(credential.raw_id.as_ref());
    let (u2, i2) = (uid.clone(), id.clone());
    let (user, rows) = db
        .run(move |c| {
            Ok::<_, InternalError>((
                users::find(c, &u2)?,
                repo::find(c, &i2)?.into_iter().collect::<Vec<_>>(),
            ))
        })
        .await?;
    let Some(user) = user else { return Ok(None) };
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| r.user_id == user.id && r.kind == KIND_PASSKEY)
        .collect();
    let mut keys = load_passkeys(&rows);
    let now = clock.now();
    let verdict = match keys.first_mut() {
        None => Err("not a passkey of this user".to_string()),
        Some((_, pk)) => match wa.finish_discoverable_authentication_v2(credential, state, &*pk) {
            Err(e) => Err(e.to_string()),
            Ok(result) => Ok((pk.update_credential(&result) == Some(true))
                .then(|| serde_json::to_string(&*pk).unwrap_or_default())),
        },
    };
    // The same rules as a password sign-in: a disabled or unconfirmed account stays out.
    let verdict = verdict.and_then(|v| {
        if user.disabled {
            Err("account disabled".to_string())
        } else if require_verified && !user.email_verified {
            Err("email not verified".to_string())
        } else {
            Ok(v)
        }
    });
    let (ctx, u3, used) = (ctx.with_actor(&user.id), user.id.clone(), id.clone());
    let ok = verdict.is_ok();
    let roles = db
        .run(move |c| {
            settle(
                (c, id.as_str()),
                (&ctx, &u3),
                now,
                &verdict,
                PASSKEY_SIGN_IN,
            )?;
            Ok::<_, InternalError>(crate::db::repo::roles::of_user(c, &u3)?)
        })
        .await?;
    Ok(ok.then_some((user, roles, used)))
}

impl SecondFactors {
    /// The user's security keys and passkeys, for their page.
    pub async fn keys(&self, user_id: &str) -> Result<Vec<StoredCredential>, InternalError> {
        let uid = user_id.to_string();
        self.db
            .run(move |c| repo::for_user(c, &uid).map_err(InternalError::from))
            .await
    }

    /// Renames one of the user's own credentials; false for a bad name or another's id.
    pub async fn rename_key(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
        ctx: &AuditCtx,
    ) -> Result<bool, InternalError> {
        if !valid_name(name) {
            return Ok(false);
        }
        let name = name.trim().to_string();
        let (u, i, ctx, now) = (
            user_id.to_string(),
            id.to_string(),
            ctx.clone(),
            self.clock.now(),
        );
        self.db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    let renamed = repo::rename(c, &u, &i, &name)? == 1;
                    if renamed {
                        record(
                            c,
                            &ctx,
                            now,
                            AuditAction::WebauthnRenamed,
                            Outcome::Success,
                            Some(&u),
                            json!({"name": name}),
                        )?;
                    }
                    Ok::<_, crate::db::QueryError>(renamed)
                })
                .map_err(InternalError::from)
            })
            .await
    }

    /// Removes one of the user's own credentials (another user's id removes nothing).
    pub async fn remove_key(
        &self,
        user_id: &str,
        id: &str,
        ctx: &AuditCtx,
    ) -> Result<bool, InternalError> {
        let (u, i, ctx, now, mail) = (
            user_id.to_string(),
            id.to_string(),
            ctx.clone(),
            self.clock.now(),
            self.mail.clone(),
        );
        self.db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    let Some(row) = repo::find(c, &i)?.filter(|r| r.user_id == u) else {
                        return Ok(false);
                    };
                    let removed = repo::delete(c, &u, &i)? == 1;
                    if removed {
                        let what = if row.kind == KIND_PASSKEY {
                            "a passkey"
                        } else {
                            "a security key"
                        };
                        crate::auth::mfa::factor_removed(
                            c,
                            &mail,
                            &u,
                            &format!("{what} named \"{}\"", row.name),
                            now,
                        )?;
                        record(
                            c,
                            &ctx,
                            now,
                            AuditAction::WebauthnRemoved,
                            Outcome::Success,
                            Some(&u),
                            json!({"kind": row.kind, "name": row.name}),
                        )?;
                    }
                    Ok::<_, crate::db::QueryError>(removed)
                })
                .map_err(InternalError::from)
            })
            .await
    }
}
