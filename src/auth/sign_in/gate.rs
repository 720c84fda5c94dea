//! The one gate into a signed-in session.
//!
//! Every way in — the password alone, the second step after it (code, recovery code,
//! security key), a passkey, the setup link — ends here, and so does every step-up that
//! raises an existing session. In the transaction that writes the session, the gate
//! re-reads the account and refuses when it is gone or disabled, or when what the
//! visitor proved no longer stands: the password hash changed since it was verified,
//! the account's credentials changed since a pending sign-in began (its [`Stamp`]), the
//! passkey was removed, the session being raised was revoked. Proving takes time (argon2,
//! a user typing a code); an admin's disable or the owner's password reset that lands
//! meanwhile wins.
//!
//! Session registry rows are built only here (`Sessions::new_row` is private to `auth`
//! and called from this module alone), so a new way in cannot skip the check.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::sessions::Sessions;
use crate::clock::Clock;
use crate::db::conn::write_transaction;
use crate::db::repo::audit::ChainHead;
use crate::db::repo::sessions as session_rows;
use crate::db::repo::users;
use crate::db::{AnyConnection, Db};
use crate::domain::audit::{AuditAction, Outcome};

/// A fingerprint of what an account signs in with: its password hash and the identity
/// of its second factors (authenticator app, security keys and passkeys, the set of
/// recovery codes). Recorded when a sign-in starts and compared at the gate; using a
/// factor (a TOTP step, a key's counter, a spent recovery code) does not change it,
/// adding, removing or replacing one does. Only a hash of it travels in session state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Stamp(String);

/// What was proven, and so what must still hold when the session is written.
pub enum Proof<'a> {
    /// The second step after a password: the account as it was when the password was
    /// accepted.
    SecondStep(&'a Stamp),
    /// A passkey alone: the credential that signed must still be the account's.
    Passkey { credential_id: &'a str },
    /// The setup link has just created this administrator.
    Setup,
}

/// Who is coming in, from where.
pub struct Entrant<'a> {
    pub user_id: &'a str,
    pub ip: &'a str,
    pub user_agent: &'a str,
}

/// The account's stamp, read under the account's row lock (PostgreSQL; SQLite's
/// writer already serialises). `None` when the account is gone or disabled.
pub fn stamp_in(c: &mut AnyConnection, user_id: &str) -> crate::db::QueryResult<Option<Stamp>> {
    let Some((hash, disabled)) = users::lock_for_sign_in(c, user_id)? else {
        return Ok(None);
    };
    if disabled {
        return Ok(None);
    }
    let f = crate::db::repo::mfa::factor_identity(c, user_id)?;
    let mut h = Sha256::new();
    h.update(b"stamp-v1\0");
    h.update(hash.unwrap_or_default().as_bytes());
    h.update(b"\0totp\0");
    if let Some((created, secret)) = &f.totp {
        h.update(created.to_be_bytes());
        h.update(secret.as_bytes());
    }
    h.update(b"\0keys\0");
    for id in &f.keys {
        h.update(id.as_bytes());
        h.update(b"\0");
    }
    h.update(b"\0recovery\0");
    h.update(f.recovery_set.unwrap_or_default().as_bytes());
    Ok(Some(Stamp(hex::encode(h.finalize()))))
}

/// The stamp a pending sign-in records after its password was verified against
/// `verified_hash`: `None` when the account no longer signs in with it (disabled, or
/// the password changed while it was being hashed).
pub fn pending_stamp_in(
    c: &mut AnyConnection,
    user_id: &str,
    verified_hash: &str,
) -> crate::db::QueryResult<Option<Stamp>> {
    if !users::still_signs_in_with(c, user_id, verified_hash)? {
        return Ok(None);
    }
    stamp_in(c, user_id)
}

/// A password sign-in with nothing to follow: the registry row goes in only if the
/// account still signs in with `verified_hash`, in the caller's transaction (which
/// records `login.succeeded` after it). Returns the new session's public id and the
/// audit chain's head the insert took, or `None` when the account changed.
pub fn admit_password_in(
    c: &mut AnyConnection,
    sessions: &Sessions,
    who: &Entrant<'_>,
    key_hash: String,
    verified_hash: &str,
) -> crate::db::QueryResult<Option<(String, Option<ChainHead>)>> {
    let row = sessions.new_row(who.user_id, who.ip, who.user_agent, Some(key_hash));
    let sid = row.sid.clone();
    Ok(
        session_rows::insert_if_signs_in_with(c, &row, verified_hash)?
            .map(|head| (sid, Some(head))),
    )
}

/// The gate for every way in but the password alone: writes the session's registry
/// row if `proof` still stands, and returns its public id; `None` (audited as a
/// refused sign-in) when it does not.
pub async fn admit(
    db: &Db,
    sessions: &Sessions,
    clock: &Clock,
    who: Entrant<'_>,
    proof: Proof<'_>,
    ctx: &AuditCtx,
) -> Result<Option<String>, InternalError> {
    let row = sessions.new_row(who.user_id, who.ip, who.user_agent, None);
    let (uid, ctx, now) = (
        who.user_id.to_string(),
        ctx.with_actor(who.user_id),
        clock.now(),
    );
    let check = match proof {
        Proof::SecondStep(s) => Check::Stamp(s.clone()),
        Proof::Passkey { credential_id } => Check::Credential(credential_id.to_string()),
        Proof::Setup => Check::Enabled,
    };
    db.run(move |c| {
        write_transaction(c, |c| {
            if !holds(c, &uid, &check)? {
                refused(c, &ctx, now, &uid, CHANGED)?;
                return Ok(None);
            }
            session_rows::insert(c, &row)?;
            Ok::<_, InternalError>(Some(row.sid))
        })
    })
    .await
}

/// A step-up on the signed-in session `sid`: true when the account is still enabled,
/// the session still exists (not revoked meanwhile) and, for a password, the hash it
/// was verified against is still the account's. The caller raises the session only then.
pub async fn raise(
    db: &Db,
    clock: &Clock,
    user_id: &str,
    sid: &str,
    verified_hash: Option<&str>,
    ctx: &AuditCtx,
) -> Result<bool, InternalError> {
    let (uid, sid, ctx, now) = (
        user_id.to_string(),
        sid.to_string(),
        ctx.with_actor(user_id),
        clock.now(),
    );
    let check = match verified_hash {
        Some(h) => Check::Password(h.to_string()),
        None => Check::Enabled,
    };
    db.run(move |c| {
        write_transaction(c, |c| {
            let ok =
                holds(c, &uid, &check)? && session_rows::find_for_user(c, &uid, &sid)?.is_some();
            if !ok {
                refused(c, &ctx, now, &uid, CHANGED)?;
            }
            Ok::<_, InternalError>(ok)
        })
    })
    .await
}

enum Check {
    Enabled,
    Password(String),
    Stamp(Stamp),
    Credential(String),
}

fn holds(c: &mut AnyConnection, uid: &str, check: &Check) -> crate::db::QueryResult<bool> {
    Ok(match check {
        Check::Password(h) => users::still_signs_in_with(c, uid, h)?,
        Check::Stamp(s) => stamp_in(c, uid)?.as_ref() == Some(s),
        Check::Enabled => stamp_in(c, uid)?.is_some(),
        Check::Credential(id) => {
            stamp_in(c, uid)?.is_some()
                && crate::db::repo::webauthn::find(c, id)?.is_some_and(|r| r.user_id == uid)
        }
    })
}

/// `login.failed` for a sign-in refused although what was proven was right, with why.
pub(in crate::auth) fn refused(
    c: &mut AnyConnection,
    ctx: &AuditCtx,
    now: i64,
    uid: &str,
    reason: &str,
) -> crate::db::QueryResult<()> {
    record(
        c,
        ctx,
        now,
        AuditAction::LoginFailed,
        Outcome::Denied,
        Some(uid),
        json!({ "reason": reason }),
    )
}

const CHANGED: &str = "account changed during sign-in";
