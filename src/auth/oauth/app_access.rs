//! Who may use an app: the one check behind every way a user gets a code or a token
//! for a client. The rule itself is `domain::access::app` (the client's allowed groups
//! against the user's effective groups); here it meets the records. In the browser
//! (the authorize decision and a device's approval at `/device`), once a user is signed
//! in, [`OAuthProvider::app_admits`] (groups, networks) is asked before anything else
//! and [`OAuthProvider::second_factor`] before a code or an approval is given; the
//! user-bound grants ask [`judge`] again (with the grant's `amr`) before they sign, so a
//! user taken out of the groups, or a client that starts asking for a second factor,
//! ends the grant at its next refresh. `client_credentials` has no user and is not
//! asked.

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record, record_alone};
use crate::auth::oauth::{Client, OAuthProvider};
use crate::db::AnyConnection;
use crate::db::repo::groups;
use crate::domain::access::app::may_use;
use crate::domain::audit::{AuditAction, Outcome};

/// `error_description` when the account is in none of the app's groups.
pub const NOT_IN_GROUPS: &str = "This account has no access to this app. Ask an administrator to add it to a group that may use the app.";

/// `error_description` when the app asks for a second factor the account lacks.
pub const NO_SECOND_FACTOR: &str = "This app requires a second factor. Add an authenticator app or a security key to your account, then try again.";

/// `error_description` when the browser is outside the app's networks.
pub const OUTSIDE_NETWORKS: &str =
    "This app can only be used from certain networks, and this request comes from outside them.";

/// Why a user may not use an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// In none of the client's allowed groups.
    NotInGroups,
    /// The client requires a second factor and the session (or grant) was proven
    /// without one.
    NoSecondFactor,
    /// The browser's address is outside the client's allowed networks.
    OutsideNetworks,
}

impl Denial {
    /// The audit event's `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotInGroups => "not_in_allowed_groups",
            Self::NoSecondFactor => "second_factor_required",
            Self::OutsideNetworks => "network_not_allowed",
        }
    }

    /// What the user and the app are told (`error_description`).
    pub fn description(self) -> &'static str {
        match self {
            Self::NotInGroups => NOT_IN_GROUPS,
            Self::NoSecondFactor => NO_SECOND_FACTOR,
            Self::OutsideNetworks => OUTSIDE_NETWORKS,
        }
    }
}

/// Whether a user with these effective groups is in the client's allowed groups.
pub fn in_groups(client: &Client, effective: &[String]) -> bool {
    may_use(&client.allowed_groups(), effective)
}

/// Whether a browser at `ip` (unknown: refused when the client names networks) is
/// in the client's allowed networks. Asked at authorize, where the browser is; the
/// token endpoint hears from the app's server, whose address says nothing of the user.
pub fn in_networks(client: &Client, ip: Option<std::net::IpAddr>) -> bool {
    let allowed = client.allowed_networks();
    allowed.is_empty()
        || ip.is_some_and(|ip| crate::domain::access::app::from_allowed_network(&allowed, ip))
}

/// The check for a grant already proven with `amr`: `None` when the user may use the
/// client, else why not. Reads the user's effective groups only when the client
/// limits them.
pub fn denial(
    c: &mut AnyConnection,
    client: &Client,
    user_id: &str,
    amr: &[&str],
) -> crate::db::QueryResult<Option<Denial>> {
    let effective = if client.allowed_groups().is_empty() {
        Vec::new()
    } else {
        groups::effective_of_user(c, user_id)?
    };
    Ok(judge(client, &effective, amr))
}

/// [`denial`] with the user's effective groups at hand.
pub fn judge(client: &Client, effective: &[String], amr: &[&str]) -> Option<Denial> {
    if !in_groups(client, effective) {
        return Some(Denial::NotInGroups);
    }
    if client.require_two_factor && !amr.contains(&"mfa") {
        return Some(Denial::NoSecondFactor);
    }
    None
}

/// Records `access.denied` (client id, reason, and `via`: `authorize` or the grant
/// type) in the caller's transaction.
pub fn record_denied(
    c: &mut AnyConnection,
    ctx: &AuditCtx,
    now: i64,
    user_id: &str,
    client_id: &str,
    why: Denial,
    via: &str,
) -> crate::db::QueryResult<()> {
    let details = denied_details(client_id, why, via);
    let (action, outcome) = (AuditAction::AccessDenied, Outcome::Denied);
    record(c, ctx, now, action, outcome, Some(user_id), details)
}

/// `access.denied`'s details.
fn denied_details(client_id: &str, why: Denial, via: &str) -> serde_json::Value {
    json!({"client_id": client_id, "reason": why.reason(), "via": via})
}

/// The app's second-factor rule for a signed-in session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// The app does not ask for one, or the session was proven with one.
    Satisfied,
    /// The session was proven without one, and the account has one: prove it again.
    StepUp,
    /// The account has none: refused ([`Denial::NoSecondFactor`]).
    Missing,
}

impl OAuthProvider {
    /// The app's groups and networks for a signed-in user whose browser is at
    /// `browser`: `Some(why)` when refused (record it with [`Self::app_denied_by`]).
    pub async fn app_admits(
        &self,
        client: &Client,
        user_id: &str,
        browser: Option<std::net::IpAddr>,
    ) -> Result<Option<Denial>, InternalError> {
        if !client.allowed_groups().is_empty() {
            let uid = user_id.to_string();
            let effective = self
                .db
                .run(move |c| groups::effective_of_user(c, &uid).map_err(InternalError::from))
                .await?;
            if !in_groups(client, &effective) {
                return Ok(Some(Denial::NotInGroups));
            }
        }
        if !in_networks(client, browser) {
            return Ok(Some(Denial::OutsideNetworks));
        }
        Ok(None)
    }

    /// The app's second-factor requirement for a session proven with `amr`.
    pub async fn second_factor(
        &self,
        client: &Client,
        user_id: &str,
        amr: &[String],
    ) -> Result<SecondFactor, InternalError> {
        if !client.require_two_factor || amr.iter().any(|m| m == "mfa") {
            return Ok(SecondFactor::Satisfied);
        }
        Ok(
            if crate::auth::mfa::status(&self.db, user_id).await?.any() {
                SecondFactor::StepUp
            } else {
                SecondFactor::Missing
            },
        )
    }

    /// Records `access.denied` for a user refused by an app's rules, from `via`
    /// (`authorize`, `device`).
    pub async fn app_denied_by(
        &self,
        (user_id, client_id): (&str, &str),
        why: Denial,
        via: &'static str,
        ctx: &AuditCtx,
    ) -> Result<(), InternalError> {
        let (action, outcome) = (AuditAction::AccessDenied, Outcome::Denied);
        let details = denied_details(client_id, why, via);
        let (db, now, target) = (&self.db, self.clock.now(), Some(user_id.to_string()));
        record_alone(db, now, ctx, action, outcome, target, details).await
    }
}
