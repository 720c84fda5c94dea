//! The protocol's errors, once: [`OAuthError`]'s variants are the RFC 6749 (section
//! 4.1.2.1 and 5.2), RFC 6750, RFC 8628 and OpenID Connect Core error codes; `code()`
//! is the wire string. The web layer turns one into a back-channel answer (status,
//! JSON, `WWW-Authenticate`) in one place; [`OAuthError::redirect`] is the front
//! channel's form (the client's redirect URI with `error`, `error_description`,
//! `state` and `iss`).

use crate::auth::InternalError;

/// An error the provider reports to a client, with the description it is given
/// (`error_description`), when it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Client authentication failed (401, `WWW-Authenticate: Basic`).
    #[error("client authentication failed")]
    InvalidClient,
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    #[error("unauthorized client: {0}")]
    UnauthorizedClient(&'static str),
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    #[error("invalid scope: {0}")]
    InvalidScope(&'static str),
    /// The user said no.
    #[error("access denied")]
    AccessDenied,
    /// `access_denied` for a reason the user cannot answer on the spot: the account
    /// may not use this app (its groups), or the app asks for a second factor the
    /// account does not have. The description says which.
    #[error("access denied: {0}")]
    NoAccess(&'static str),
    #[error("unsupported response type")]
    UnsupportedResponseType,
    #[error("server error")]
    ServerError,
    #[error("temporarily unavailable")]
    TemporarilyUnavailable,
    /// `prompt=none`, but the user must sign in.
    #[error("login required")]
    LoginRequired,
    /// `prompt=none`, but the user must consent.
    #[error("consent required")]
    ConsentRequired,
    /// `prompt=none`, but the user must do something else (a second factor).
    #[error("interaction required")]
    InteractionRequired,
    /// A Bearer token that is not (or no longer) good (RFC 6750: 401 with
    /// `WWW-Authenticate: Bearer error="invalid_token"`).
    #[error("invalid token")]
    InvalidToken,
    /// Too many requests (RFC 8628's code, with `Retry-After`).
    #[error("too many requests; retry after {retry_after} s")]
    SlowDown { retry_after: u64 },
    /// RFC 8628: the user has not answered yet; poll again after the interval.
    #[error("authorization pending")]
    AuthorizationPending,
    /// RFC 8628: polled before the interval was up; the interval grew by 5 s. (400,
    /// unlike [`Self::SlowDown`]: a polling client's pace, not a rate limit.)
    #[error("polling too fast")]
    PollingTooFast,
    /// RFC 8628: the device code expired before it was approved and exchanged.
    #[error("expired token")]
    ExpiredToken,
}

impl OAuthError {
    /// The error code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::AccessDenied | Self::NoAccess(_) => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::InvalidToken => "invalid_token",
            Self::SlowDown { .. } | Self::PollingTooFast => "slow_down",
            Self::AuthorizationPending => "authorization_pending",
            Self::ExpiredToken => "expired_token",
        }
    }

    /// `error_description`, when there is one.
    pub fn description(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest(why)
            | Self::InvalidGrant(why)
            | Self::UnauthorizedClient(why)
            | Self::InvalidScope(why)
            | Self::NoAccess(why) => Some(why),
            Self::InvalidClient => Some("client authentication failed"),
            Self::UnsupportedGrantType => Some(
                "grant_type must be authorization_code, refresh_token, client_credentials or urn:ietf:params:oauth:grant-type:device_code",
            ),
            Self::UnsupportedResponseType => Some("only response_type=code"),
            Self::SlowDown { .. } => Some("too many requests; retry later"),
            Self::AuthorizationPending => Some("the user has not answered yet"),
            Self::PollingTooFast => Some("poll less often: the interval grew by 5 seconds"),
            Self::ExpiredToken => Some("the device code expired; start again"),
            Self::AccessDenied
            | Self::ServerError
            | Self::TemporarilyUnavailable
            | Self::LoginRequired
            | Self::ConsentRequired
            | Self::InteractionRequired
            | Self::InvalidToken => None,
        }
    }

    /// The front channel's answer: the client's registered redirect URI with `error`,
    /// `error_description`, `state` and `iss` (RFC 9207). `None` if the URI does not
    /// parse (registered URIs are checked when saved, so it does).
    pub fn redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        issuer: &str,
    ) -> Option<String> {
        let mut params = vec![("error", self.code())];
        if let Some(d) = self.description() {
            params.push(("error_description", d));
        }
        to_client(redirect_uri, &params, state, issuer)
    }
}

/// The registered redirect URI with `params`, then `state` (when the request had one)
/// and `iss`: where codes and errors go.
pub(crate) fn to_client(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> Option<String> {
    let mut url = url::Url::parse(redirect_uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    Some(url.into())
}

/// What a protocol step ends with when it does not succeed: an error for the client, or
/// a failure of ours (logged with its cause chain, answered as a server error).
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<crate::db::QueryError> for FlowError {
    fn from(e: crate::db::QueryError) -> Self {
        Self::Internal(e.into())
    }
}

/// Why a client's settings were not saved.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Settings an operator must correct; the message says what is wrong.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_channel_errors_carry_state_and_issuer() {
        let to = OAuthError::InvalidScope("a scope is unknown")
            .redirect(
                "https://app.example/cb?x=1",
                Some("s 1"),
                "https://id.example",
            )
            .unwrap();
        assert_eq!(
            to,
            "https://app.example/cb?x=1&error=invalid_scope&error_description=a+scope+is+unknown&state=s+1&iss=https%3A%2F%2Fid.example"
        );
        let to = OAuthError::LoginRequired
            .redirect("https://app.example/cb", None, "https://id.example")
            .unwrap();
        assert_eq!(
            to,
            "https://app.example/cb?error=login_required&iss=https%3A%2F%2Fid.example"
        );
    }
}
