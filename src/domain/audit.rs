//! Audit event names (CONTRACT.md): dotted, lower case, past tense.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    UserRegistered,
    UserCreated,
    LoginSucceeded,
    LoginFailed,
    Logout,
    PasswordChanged,
    SessionRevoked,
    RoleAssigned,
    RoleRemoved,
    RateLimitExceeded,
    SetupCompleted,
    SetupLinkIssued,
    EmailVerified,
    PasswordResetRequested,
    PasswordReset,
    EmailChangeRequested,
    EmailChanged,
    MailFailed,
    MfaSucceeded,
    MfaFailed,
    TotpEnabled,
    TotpDisabled,
    RecoveryCodesGenerated,
    RecoveryCodeUsed,
    StepUpSucceeded,
    StepUpFailed,
    WebauthnAdded,
    WebauthnRemoved,
    WebauthnRenamed,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    MfaReset,
    RoleCreated,
    RoleUpdated,
    RoleDeleted,
    SettingsChanged,
    AuditVerified,
    AuditPruned,
    ClientCreated,
    ConsentGranted,
    TokenIssued,
    ClientUpdated,
    ClientDeleted,
    ConsentRevoked,
    TokenRevoked,
    RefreshTokenReused,
    ConsentDenied,
    ChainKeyed,
    AccessDenied,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    PersonalTokenCreated,
    PersonalTokenRevoked,
    ServiceAccountCreated,
    ServiceAccountDeleted,
    AccessRuleCreated,
    AccessRuleDeleted,
    DeviceApproved,
    DeviceDenied,
    AccountDataExported,
    DeviceAuthorizationStarted,
    ParPushed,
    ParRefused,
    ClientAssertionReplayed,
    ClientAuthenticationFailed,
}

impl AuditAction {
    /// Every name, for the audit viewer's event filter.
    pub const ALL: &'static [AuditAction] = &[
        Self::UserRegistered,
        Self::UserCreated,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::Logout,
        Self::PasswordChanged,
        Self::SessionRevoked,
        Self::RoleAssigned,
        Self::RoleRemoved,
        Self::RateLimitExceeded,
        Self::SetupCompleted,
        Self::SetupLinkIssued,
        Self::EmailVerified,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::MailFailed,
        Self::MfaSucceeded,
        Self::MfaFailed,
        Self::TotpEnabled,
        Self::TotpDisabled,
        Self::RecoveryCodesGenerated,
        Self::RecoveryCodeUsed,
        Self::StepUpSucceeded,
        Self::StepUpFailed,
        Self::WebauthnAdded,
        Self::WebauthnRemoved,
        Self::WebauthnRenamed,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::MfaReset,
        Self::RoleCreated,
        Self::RoleUpdated,
        Self::RoleDeleted,
        Self::SettingsChanged,
        Self::AuditVerified,
        Self::AuditPruned,
        Self::ClientCreated,
        Self::ConsentGranted,
        Self::TokenIssued,
        Self::ClientUpdated,
        Self::ClientDeleted,
        Self::ConsentRevoked,
        Self::TokenRevoked,
        Self::RefreshTokenReused,
        Self::ConsentDenied,
        Self::ChainKeyed,
        Self::AccessDenied,
        Self::GroupCreated,
        Self::GroupUpdated,
        Self::GroupDeleted,
        Self::GroupMemberAdded,
        Self::GroupMemberRemoved,
        Self::PersonalTokenCreated,
        Self::PersonalTokenRevoked,
        Self::ServiceAccountCreated,
        Self::ServiceAccountDeleted,
        Self::AccessRuleCreated,
        Self::AccessRuleDeleted,
        Self::DeviceApproved,
        Self::DeviceDenied,
        Self::AccountDataExported,
        Self::DeviceAuthorizationStarted,
        Self::ParPushed,
        Self::ParRefused,
        Self::ClientAssertionReplayed,
        Self::ClientAuthenticationFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::UserRegistered => "user.registered",
            Self::UserCreated => "user.created",
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::Logout => "logout",
            Self::PasswordChanged => "password.changed",
            Self::SessionRevoked => "session.revoked",
            Self::RoleAssigned => "role.assigned",
            Self::RoleRemoved => "role.removed",
            Self::RateLimitExceeded => "rate_limit.exceeded",
            Self::SetupCompleted => "setup.completed",
            Self::SetupLinkIssued => "setup.link_issued",
            Self::EmailVerified => "user.email_verified",
            Self::PasswordResetRequested => "password.reset_requested",
            Self::PasswordReset => "password.reset",
            Self::EmailChangeRequested => "email.change_requested",
            Self::EmailChanged => "email.changed",
            Self::MailFailed => "mail.failed",
            Self::MfaSucceeded => "mfa.succeeded",
            Self::MfaFailed => "mfa.failed",
            Self::TotpEnabled => "totp.enabled",
            Self::TotpDisabled => "totp.disabled",
            Self::RecoveryCodesGenerated => "recovery_codes.generated",
            Self::RecoveryCodeUsed => "recovery_code.used",
            Self::StepUpSucceeded => "reauth.succeeded",
            Self::StepUpFailed => "reauth.failed",
            Self::WebauthnAdded => "webauthn.added",
            Self::WebauthnRemoved => "webauthn.removed",
            Self::WebauthnRenamed => "webauthn.renamed",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserDeleted => "user.deleted",
            Self::MfaReset => "mfa.reset",
            Self::RoleCreated => "role.created",
            Self::RoleUpdated => "role.updated",
            Self::RoleDeleted => "role.deleted",
            Self::SettingsChanged => "settings.changed",
            Self::AuditVerified => "audit.verified",
            Self::AuditPruned => "audit.pruned",
            Self::ClientCreated => "client.created",
            Self::ConsentGranted => "consent.granted",
            Self::TokenIssued => "token.issued",
            Self::ClientUpdated => "client.updated",
            Self::ClientDeleted => "client.deleted",
            Self::ConsentRevoked => "consent.revoked",
            Self::TokenRevoked => "token.revoked",
            Self::RefreshTokenReused => "refresh_token.reused",
            Self::ConsentDenied => "consent.denied",
            Self::AccessDenied => "access.denied",
            Self::GroupCreated => "group.created",
            Self::GroupUpdated => "group.updated",
            Self::GroupDeleted => "group.deleted",
            Self::GroupMemberAdded => "group.member_added",
            Self::GroupMemberRemoved => "group.member_removed",
            Self::ChainKeyed => "audit.chain_keyed",
            Self::PersonalTokenCreated => "personal_token.created",
            Self::PersonalTokenRevoked => "personal_token.revoked",
            Self::ServiceAccountCreated => "service_account.created",
            Self::ServiceAccountDeleted => "service_account.deleted",
            Self::AccessRuleCreated => "access_rule.created",
            Self::AccessRuleDeleted => "access_rule.deleted",
            Self::DeviceApproved => "device.approved",
            Self::DeviceDenied => "device.denied",
            Self::AccountDataExported => "account.data_exported",
            Self::DeviceAuthorizationStarted => "device.authorization_started",
            Self::ParPushed => "par.pushed",
            Self::ParRefused => "par.refused",
            Self::ClientAssertionReplayed => "client_assertion.replayed",
            Self::ClientAuthenticationFailed => "client.authentication_failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// The content of an audit event that its chain hash covers.
pub struct ChainFields<'a> {
    pub created_at: i64,
    pub event: &'a str,
    pub outcome: &'a str,
    pub actor_id: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub details: &'a str,
}

/// The encoding both link kinds cover: the previous event's hash and this event's
/// content as a JSON array, so that no two different contents encode the same.
fn encode(prev_hash: &str, f: &ChainFields<'_>) -> String {
    serde_json::json!([
        prev_hash,
        f.created_at,
        f.event,
        f.outcome,
        f.actor_id,
        f.target_id,
        f.ip,
        f.user_agent,
        f.request_id,
        f.details,
    ])
    .to_string()
}

/// The legacy link: plain SHA-256 (hex), which anyone who can write the database can
/// recompute. Events written before the chain was keyed keep it and verify with it.
pub fn chain_hash(prev_hash: &str, f: &ChainFields<'_>) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(encode(prev_hash, f).as_bytes()))
}

/// The keyed link: HMAC-SHA256 (hex) with a key derived from the master key, so a
/// database writer without that key cannot make a link that verifies. Same cost as the
/// SHA-256 link: the key's inner and outer blocks are computed once, here.
#[derive(Clone)]
pub struct ChainKey(hmac::Hmac<sha2::Sha256>);

impl ChainKey {
    pub fn new(key: &[u8; 32]) -> Self {
        use hmac::Mac;
        Self(
            hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        )
    }

    pub fn link(&self, prev_hash: &str, f: &ChainFields<'_>) -> String {
        use hmac::Mac;
        let mut mac = self.0.clone();
        mac.update(encode(prev_hash, f).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `hash` is this key's link for the content (constant time).
    pub fn verifies(&self, prev_hash: &str, f: &ChainFields<'_>, hash: &str) -> bool {
        use hmac::Mac;
        let Ok(tag) = hex::decode(hash) else {
            return false;
        };
        let mut mac = self.0.clone();
        mac.update(encode(prev_hash, f).as_bytes());
        mac.verify_slice(&tag).is_ok()
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

#[cfg(test)]
mod name_tests {
    use super::AuditAction;

    #[test]
    fn every_event_is_listed_once_and_named_in_the_contracts_style() {
        // `ALL` feeds the audit viewer's event filter: it is the declaration order, so a
        // variant added in the middle without a place in `ALL` shows here. (README's
        // list is checked by the `audit` API tests.)
        for (i, a) in AuditAction::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i, "{} out of place in ALL", a.name());
        }
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            let name = a.name();
            assert!(seen.insert(name), "{name} twice");
            // Dotted, lower case, past tense (`logout` is the contract's one exception).
            let (subject, verb) = name.split_once('.').unwrap_or(("", name));
            assert!(
                name == "logout"
                    || (!subject.is_empty()
                        && !verb.contains('.')
                        && name
                            .chars()
                            .all(|ch| ch.is_ascii_lowercase() || ch == '.' || ch == '_')),
                "{name}"
            );
        }
    }
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    fn fields(details: &str) -> ChainFields<'_> {
        ChainFields {
            created_at: 1,
            event: "login.succeeded",
            outcome: "success",
            actor_id: Some("u"),
            target_id: None,
            ip: None,
            user_agent: None,
            request_id: None,
            details,
        }
    }

    #[test]
    fn the_hash_covers_content_and_the_previous_hash() {
        let a = chain_hash("", &fields("{}"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, chain_hash("", &fields("{\"x\":1}")));
        assert_ne!(a, chain_hash("00", &fields("{}")));
        // None and the string "null" differ, as do field boundaries.
        let mut f = fields("{}");
        f.target_id = Some("null");
        assert_ne!(a, chain_hash("", &f));
    }

    #[test]
    fn a_keyed_link_differs_from_the_plain_one_and_needs_the_key() {
        let k = ChainKey::new(&[1; 32]);
        let l = k.link("", &fields("{}"));
        assert_eq!(l.len(), 64);
        assert_ne!(l, chain_hash("", &fields("{}")));
        assert!(k.verifies("", &fields("{}"), &l));
        assert!(!ChainKey::new(&[2; 32]).verifies("", &fields("{}"), &l));
        assert!(!k.verifies("", &fields("{\"x\":1}"), &l));
        assert!(!k.verifies("", &fields("{}"), "not hex"));
    }
}
