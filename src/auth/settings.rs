//! Settings an administrator changes at runtime (`/admin/settings`). Stored in the
//! database, so every instance sees a change at once; without a stored value the
//! configuration file's value holds.

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::db::repo::settings as repo;
use crate::domain::audit::{AuditAction, Outcome};

const REGISTRATION_ENABLED: &str = "registration_enabled";
const ALLOWED_DOMAINS: &str = "registration_allowed_domains";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub enabled: bool,
    /// Empty: any domain.
    pub allowed_domains: Vec<String>,
}

/// The registration settings in effect now.
pub async fn registration(db: &Db, config: &Config) -> Result<Registration, InternalError> {
    read_registration(
        db,
        config.registration_enabled,
        config.registration_allowed_domains.clone(),
    )
    .await
}

/// The stored values, or the configuration's where none is stored.
async fn read_registration(
    db: &Db,
    default_enabled: bool,
    default_domains: Vec<String>,
) -> Result<Registration, InternalError> {
    let (enabled, domains) = db
        .run(|c| {
            Ok::<_, InternalError>((
                repo::get(c, REGISTRATION_ENABLED)?,
                repo::get(c, ALLOWED_DOMAINS)?,
            ))
        })
        .await?;
    Ok(Registration {
        enabled: enabled.map(|v| v == "true").unwrap_or(default_enabled),
        allowed_domains: domains
            .map(|v| parse_domains(&v).unwrap_or_default())
            .unwrap_or(default_domains),
    })
}

/// The runtime settings as a service (`/admin/settings`), with the configuration's
/// values that hold until an administrator stores others.
#[derive(Clone)]
pub struct Settings {
    db: Db,
    clock: Clock,
    registration_enabled: bool,
    registration_allowed_domains: Vec<String>,
}

impl Settings {
    pub fn new(db: Db, clock: Clock, config: &Config) -> Self {
        Self {
            db,
            clock,
            registration_enabled: config.registration_enabled,
            registration_allowed_domains: config.registration_allowed_domains.clone(),
        }
    }

    /// The registration settings in effect now.
    pub async fn registration(&self) -> Result<Registration, InternalError> {
        read_registration(
            &self.db,
            self.registration_enabled,
            self.registration_allowed_domains.clone(),
        )
        .await
    }

    /// Stores new registration settings (every instance sees them at once), audited.
    pub async fn set_registration(
        &self,
        new: Registration,
        ctx: &AuditCtx,
    ) -> Result<(), InternalError> {
        set_registration(&self.db, &self.clock, new, ctx).await
    }
}

/// A comma- or line-separated list of domains, lower-cased; an error names a bad one.
pub fn parse_domains(input: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for d in input
        .split([',', '\n', ' '])
        .map(|d| d.trim().to_lowercase())
    {
        if d.is_empty() {
            continue;
        }
        let ok = d.len() <= 253
            && d.contains('.')
            && !d.starts_with(['.', '-'])
            && !d.ends_with(['.', '-'])
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !ok {
            return Err(format!("\u{201c}{d}\u{201d} is not a domain name."));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

async fn set_registration(
    db: &Db,
    clock: &Clock,
    new: Registration,
    ctx: &AuditCtx,
) -> Result<(), InternalError> {
    let (ctx, now) = (ctx.clone(), clock.now());
    db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            repo::put(c, REGISTRATION_ENABLED, if new.enabled { "true" } else { "false" }, now)?;
            repo::put(c, ALLOWED_DOMAINS, &new.allowed_domains.join(","), now)?;
            record(
                c,
                &ctx,
                now,
                AuditAction::SettingsChanged,
                Outcome::Success,
                None,
                json!({"registration_enabled": new.enabled, "registration_allowed_domains": new.allowed_domains}),
            )
        })
        .map_err(InternalError::from)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::parse_domains;

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(
            parse_domains(" Example.com, corp.example.org\nexample.com ").unwrap(),
            vec!["example.com", "corp.example.org"]
        );
        assert_eq!(parse_domains("").unwrap(), Vec::<String>::new());
        assert!(parse_domains("not a domain!").is_err());
        assert!(parse_domains("localhost").is_err());
        assert!(parse_domains("-bad.com").is_err());
    }
}
