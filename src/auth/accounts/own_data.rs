//! What the service holds about one user, as the JSON document `/account/data`
//! downloads: the profile, roles and groups, signed-in devices, second factors,
//! personal access tokens, the apps let in, and the audit events the user is the actor
//! or the target of.
//!
//! The document is built from its own types, field by field, never by serialising a
//! stored row: a column added to a table later (a hash, a key) cannot slip into it. So
//! it holds no password hash, session key or its hash, TOTP secret, recovery code,
//! WebAuthn credential, token hash, or an audit event's chain links.

use serde::Serialize;
use serde_json::{Value, json};

use super::{AccountError, Accounts};
use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::db::AnyConnection;
use crate::db::repo::sessions::SessionRow;
use crate::db::repo::{audit, groups, mfa, oauth, personal_tokens, roles, users, webauthn};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::export::iso;
use crate::domain::personal_tokens::stored_scopes;

/// Names the document's shape, so a reader can tell versions apart.
pub const FORMAT: &str = "portcullis.account-data.v1";

/// How many audit events one query reads while the document is built.
const AUDIT_BATCH: i64 = 500;

#[derive(Debug, Serialize)]
pub struct AccountData {
    pub format: &'static str,
    pub exported_at: String,
    pub profile: Profile,
    pub roles: Vec<String>,
    pub groups: GroupsHeld,
    pub sessions: Vec<Device>,
    pub second_factors: SecondFactors,
    pub personal_access_tokens: Vec<Token>,
    /// The apps the user let in (their consents).
    pub apps: Vec<App>,
    /// Sign-ins of apps not ended yet: what may still hold tokens for the user.
    pub app_grants: Vec<AppGrant>,
    /// Newest first.
    pub audit_events: Vec<Event>,
}

#[derive(Debug, Serialize)]
pub struct Profile {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub email_verified: bool,
    pub disabled: bool,
    pub has_password: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct GroupsHeld {
    /// Groups the user was put in.
    pub direct: Vec<String>,
    /// Those and every group above them.
    pub effective: Vec<String>,
}

/// A signed-in device, without its session id or key.
#[derive(Debug, Serialize)]
pub struct Device {
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    pub ip: String,
    pub user_agent: String,
}

#[derive(Debug, Serialize)]
pub struct SecondFactors {
    pub totp: Totp,
    pub security_keys: Vec<SecurityKey>,
    pub recovery_codes_remaining: i64,
}

#[derive(Debug, Serialize)]
pub struct Totp {
    pub enabled: bool,
    pub enabled_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SecurityKey {
    pub name: String,
    /// `security_key` or `passkey`, as stored.
    pub kind: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Token {
    pub name: String,
    pub scopes: Vec<&'static str>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct App {
    pub client_id: String,
    pub name: String,
    pub scope: String,
    pub granted_at: String,
}

#[derive(Debug, Serialize)]
pub struct AppGrant {
    pub client_id: String,
    pub scope: String,
    pub created_at: String,
    pub auth_time: String,
}

#[derive(Debug, Serialize)]
pub struct Event {
    pub id: i64,
    pub time: String,
    pub event: String,
    pub outcome: String,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
}

fn opt_iso(t: Option<i64>) -> Option<String> {
    t.map(iso)
}

/// The document for `user_id` as the database holds it at `now`, with `sessions` (the
/// registry's rows, their last-seen times merged from memory by the caller); `None`
/// when there is no such user.
pub(crate) fn assemble(
    c: &mut AnyConnection,
    user_id: &str,
    now: i64,
    sessions: Vec<SessionRow>,
) -> crate::db::QueryResult<Option<AccountData>> {
    let Some(user) = users::find(c, user_id)? else {
        return Ok(None);
    };
    let tree = groups::tree(c)?;
    let mut direct: Vec<String> = groups::direct_of_user(c, user_id)?
        .iter()
        .filter_map(|id| tree.name(id).map(str::to_string))
        .collect();
    direct.sort();
    let effective = groups::effective_of_user(c, user_id)?;

    let enabled_at = mfa::totp_enabled_at(c, user_id)?;
    let security_keys = webauthn::for_user(c, user_id)?
        .into_iter()
        .map(|k| SecurityKey {
            name: k.name,
            kind: k.kind,
            created_at: iso(k.created_at),
            last_used_at: opt_iso(k.last_used_at),
        })
        .collect();
    let second_factors = SecondFactors {
        totp: Totp {
            enabled: enabled_at.is_some(),
            enabled_at: opt_iso(enabled_at),
        },
        security_keys,
        recovery_codes_remaining: mfa::unused_recovery_codes(c, user_id)?,
    };

    let personal_access_tokens = personal_tokens::all_of_user(c, user_id)?
        .into_iter()
        .map(|t| Token {
            scopes: stored_scopes(&t.scopes),
            name: t.name,
            created_at: iso(t.created_at),
            last_used_at: opt_iso(t.last_used_at),
            expires_at: opt_iso(t.expires_at),
            revoked_at: opt_iso(t.revoked_at),
        })
        .collect();
    let apps = oauth::consents_of(c, user_id)?
        .into_iter()
        .map(|(client_id, name, scope, granted_at)| App {
            client_id,
            name,
            scope,
            granted_at: iso(granted_at),
        })
        .collect();
    let app_grants = oauth::live_grants_of_user(c, user_id)?
        .into_iter()
        .map(|g| AppGrant {
            client_id: g.client_id,
            scope: g.scope,
            created_at: iso(g.created_at),
            auth_time: iso(g.auth_time),
        })
        .collect();

    let devices = sessions
        .into_iter()
        .filter(|s| s.user_id == user.id)
        .map(|s| Device {
            created_at: iso(s.created_at),
            last_seen_at: iso(s.last_seen_at),
            expires_at: iso(s.expires_at),
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect();

    Ok(Some(AccountData {
        format: FORMAT,
        exported_at: iso(now),
        roles: roles::of_user(c, user_id)?,
        groups: GroupsHeld { direct, effective },
        sessions: devices,
        second_factors,
        personal_access_tokens,
        apps,
        app_grants,
        audit_events: own_events(c, user_id)?,
        profile: Profile {
            has_password: user.password_hash.is_some(),
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            email_verified: user.email_verified,
            disabled: user.disabled,
            created_at: iso(user.created_at),
            updated_at: iso(user.updated_at),
        },
    }))
}

/// Every event the user is the actor or the target of, newest first, read in batches
/// along the log's keyset order.
fn own_events(c: &mut AnyConnection, user_id: &str) -> crate::db::QueryResult<Vec<Event>> {
    let filter = audit::Filter {
        user_id: Some(user_id.to_string()),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let batch = audit::page(c, &filter, before, AUDIT_BATCH)?;
        let full = batch.len() as i64 == AUDIT_BATCH;
        before = batch.last().map(|e| e.id);
        out.extend(batch.into_iter().map(|e| Event {
            // Details are JSON as written; anything else is kept as the text it is.
            details: serde_json::from_str(&e.details).unwrap_or(Value::String(e.details)),
            id: e.id,
            time: iso(e.created_at),
            event: e.event,
            outcome: e.outcome,
            actor_id: e.actor_id,
            target_id: e.target_id,
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
        }));
        if !full {
            return Ok(out);
        }
    }
}

impl Accounts {
    /// Everything the service holds about `user_id`, for the user themself. The export
    /// is audited as `account.data_exported` in the transaction that reads it, so the
    /// document holds its own record and the log cannot miss a download.
    pub async fn export_data(
        &self,
        user_id: &str,
        ctx: &AuditCtx,
    ) -> Result<AccountData, AccountError> {
        // The registry rows with last-seen times this instance has not written yet.
        let sessions = self.sessions.list(user_id).await?;
        let (uid, ctx, now) = (user_id.to_string(), ctx.clone(), self.clock.now());
        let data = self
            .db
            .run(move |c| {
                crate::db::conn::write_transaction(c, |c| {
                    if users::find(c, &uid)?.is_none() {
                        return Ok(None);
                    }
                    record(
                        c,
                        &ctx,
                        now,
                        AuditAction::AccountDataExported,
                        Outcome::Success,
                        Some(&uid),
                        json!({}),
                    )?;
                    assemble(c, &uid, now, sessions)
                })
                .map_err(InternalError::from)
            })
            .await?;
        data.ok_or(AccountError::NoSuchUser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::repo::personal_tokens::PersonalToken;
    use crate::db::repo::sessions;
    use crate::db::repo::webauthn::StoredCredential;

    fn user(id: &str, email: &str) -> users::User {
        users::User {
            id: id.into(),
            email: email.into(),
            email_normalized: email.into(),
            display_name: Some(format!("Name of {id}")),
            password_hash: Some(format!("$argon2id$hash-of-{id}")),
            email_verified: true,
            disabled: false,
            created_at: 1_000,
            updated_at: 1_000,
            name_search: String::new(),
            kind: users::PERSON.into(),
            owner_group_id: None,
        }
    }

    /// Gives `id` one of everything, each secret spelled `secret-…-{id}`.
    fn furnish(c: &mut AnyConnection, id: &str) -> crate::db::QueryResult<SessionRow> {
        users::insert(c, &user(id, &format!("{id}@example.com")))?;
        mfa::insert_totp(c, id, &format!("secret-totp-{id}"), 2_000)?;
        mfa::replace_recovery_codes(c, id, &[format!("secret-rc-{id}")], 2_000)?;
        webauthn::insert(
            c,
            &StoredCredential {
                id: format!("cred-{id}"),
                user_id: id.into(),
                kind: "passkey".into(),
                name: format!("Key of {id}"),
                credential: format!("secret-credential-{id}"),
                created_at: 2_100,
                last_used_at: None,
            },
        )?;
        personal_tokens::insert(
            c,
            &PersonalToken {
                id: format!("tok-{id}"),
                user_id: id.into(),
                name: format!("Script of {id}"),
                token_hash: format!("secret-token-hash-{id}"),
                scopes: "forward".into(),
                created_at: 2_200,
                last_used_at: None,
                expires_at: None,
                revoked_at: None,
            },
        )?;
        let row = SessionRow {
            sid: format!("secret-sid-{id}"),
            user_id: id.into(),
            key_hash: Some(format!("secret-key-hash-{id}")),
            created_at: 2_300,
            last_seen_at: 2_400,
            expires_at: 99_999,
            ip: "192.0.2.7".into(),
            user_agent: format!("Browser of {id}"),
        };
        sessions::insert(c, &row)?;
        let ctx = AuditCtx {
            actor_id: Some(id.into()),
            ..AuditCtx::cli()
        };
        record(
            c,
            &ctx,
            2_500,
            AuditAction::PasswordChanged,
            Outcome::Success,
            Some(id),
            json!({}),
        )?;
        Ok(row)
    }

    #[test]
    fn the_document_holds_the_users_things_and_no_secret_or_other_user() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = crate::db::Db::connect(&url)
            .unwrap()
            .with_chain_key(crate::domain::audit::ChainKey::new(&[7; 32]));
        crate::db::migrate::run(&db).unwrap();
        let doc = db
            .run_sync(|c| -> Result<_, crate::db::DbError> {
                let ann = furnish(c, "ann")?;
                let bob = furnish(c, "bob")?;
                // Bob's session passed in by mistake is still left out.
                Ok(assemble(c, "ann", 3_000, vec![ann, bob])?)
            })
            .unwrap()
            .unwrap();
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains("bob"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("argon2"), "{text}");
        assert_eq!(doc.profile.email, "ann@example.com");
        assert!(doc.profile.has_password);
        assert!(doc.second_factors.totp.enabled);
        assert_eq!(doc.second_factors.recovery_codes_remaining, 1);
        assert_eq!(doc.second_factors.security_keys[0].name, "Key of ann");
        assert_eq!(doc.personal_access_tokens[0].name, "Script of ann");
        assert_eq!(doc.personal_access_tokens[0].scopes, ["forward"]);
        assert_eq!(doc.sessions.len(), 1);
        assert_eq!(doc.sessions[0].user_agent, "Browser of ann");
        let events: Vec<&str> = doc.audit_events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(events, ["password.changed"]);
        assert_eq!(doc.exported_at, "1970-01-01T00:50:00Z");
        let nobody = db.run_sync(|c| -> Result<_, crate::db::DbError> {
            Ok(assemble(c, "nobody", 3_000, vec![])?)
        });
        assert!(nobody.unwrap().is_none());
    }
}
