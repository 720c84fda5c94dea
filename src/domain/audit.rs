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
}

impl AuditAction {
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
