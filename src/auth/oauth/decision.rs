//! The authorize decision: what `/oauth/authorize` does with a request, given who is
//! signed in. Every rule of the front channel is here (the client and redirect URI
//! checks, response type, scopes, PKCE, `prompt`, `max_age`, `acr_values`, who may
//! use the app (`app_access`: its groups, its second-factor requirement), consent
//! and its audit events, the code); the handler only maps the [`AuthorizeDecision`]
//! to a page or a redirect.
//!
//! An unknown `client_id` or a `redirect_uri` not registered exactly is shown to the
//! user as an error page and never redirected to; every other error goes back to the
//! client per RFC 6749 with `state` and `iss` (RFC 9207).
//!
//! [`OAuthProvider::check_request`] holds the checks that need no user; the PAR
//! endpoint (`pushed`) runs the very same ones when a request is pushed.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record_alone};
use crate::auth::oauth::app_access::{Denial, SecondFactor};
use crate::auth::oauth::authorize::Grant;
use crate::auth::oauth::error::{OAuthError, to_client};
use crate::auth::oauth::{Client, OAuthProvider};
use crate::domain::audit::{AuditAction, Outcome};

/// A few seconds' grace on `max_age`: the redirect after a fresh sign-in takes time
/// too, and `max_age=0` must not send the user round in circles.
const MAX_AGE_GRACE_SECS: i64 = 5;

/// How recent a proof `prompt=login` asks for once the user has signed in again.
pub(crate) const PROMPT_LOGIN_MAX_AGE_SECS: i64 = 60;

/// An authorization request's parameters, as the client sent them (in the query or
/// pushed first; a pushed one is stored as this, serialised).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_type: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<i64>,
    /// `mfa` asks for a second factor.
    pub acr_values: Option<String>,
    /// Read by the login page (it suggests the email address); kept with a pushed
    /// request so that it is not lost.
    #[serde(default)]
    pub login_hint: Option<String>,
    /// The request as it arrived (path and query): where signing in comes back to.
    #[serde(skip)]
    pub path: String,
    /// It came through the PAR endpoint (RFC 9126): its parameters were pushed by the
    /// authenticated client, not read from the browser's query.
    #[serde(skip)]
    pub pushed: bool,
}

impl AuthorizeRequest {
    /// The prompts asked for (`prompt` is a space-separated list).
    fn prompts(&self) -> Vec<&str> {
        self.prompt
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect()
    }

    /// The request without `prompt=login`, once signed in: what `next` becomes for a
    /// request in the query (see [`without_prompt_login`]), for a pushed request held
    /// while the user signs in.
    pub fn without_prompt_login(&self, max_age: Option<i64>) -> AuthorizeRequest {
        let rest: Vec<&str> = self
            .prompts()
            .into_iter()
            .filter(|p| *p != "login")
            .collect();
        AuthorizeRequest {
            prompt: (!rest.is_empty()).then(|| rest.join(" ")),
            max_age: match (self.max_age, max_age) {
                (Some(given), Some(cap)) => Some(given.min(cap)),
                (given, cap) => cap.or(given),
            },
            ..self.clone()
        }
    }

    /// Whether `prompt` asks to sign in again.
    pub fn prompts_login(&self) -> bool {
        self.prompts().contains(&"login")
    }
}

/// Why an authorization request is refused before any user is asked anything.
#[derive(Debug)]
pub enum Refusal {
    /// The redirect URI is not one the client registered exactly: it cannot be
    /// trusted with an answer, so only the user (or the pushing client) hears of it.
    UnregisteredRedirect,
    /// Anything else: the client hears it, at its redirect URI or in the PAR answer.
    ToClient(OAuthError),
}

/// Who is signed in, as far as the decision cares.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user_id: String,
    /// When the user last proved who they are (`auth_time`).
    pub auth_time: i64,
    /// The methods used (`pwd`, `otp`, `hwk`, `mfa`): the ID token's `amr`; `mfa`
    /// when a second factor was used.
    pub amr: Vec<String>,
    /// The session's public id (the ID token's `sid`).
    pub sid: String,
}

impl SignedIn {
    fn used_second_factor(&self) -> bool {
        self.amr.iter().any(|m| m == "mfa")
    }
}

/// The user's answer on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAnswer {
    Allow,
    Deny,
}

/// What to do with an authorization request.
#[derive(Debug)]
pub enum AuthorizeDecision {
    /// A code was issued: send the user back to the client with it.
    Permitted { redirect: String },
    /// Nobody is signed in: sign in, then continue at `next`.
    NeedsSignIn { next: String },
    /// The user must prove who they are again (`prompt=login`, `max_age`) or, with
    /// `second_factor`, with the account's second factor (`acr_values=mfa`); then
    /// continue at `next`.
    NeedsStepUp { next: String, second_factor: bool },
    /// Ask the user whether `app` may have `scopes`.
    NeedsConsent { app: String, scopes: Vec<String> },
    /// An error for the client, at its redirect URI (`redirect`, built).
    ErrorToClient { redirect: String, error: OAuthError },
    /// An error for the user only: the request cannot be trusted to redirect.
    ErrorPage { message: String },
}

impl OAuthProvider {
    /// Decides an authorization request. `answer` is the consent form's (a POST); the
    /// request it repeats was settled on the GET, so sign-in freshness is not checked
    /// again.
    pub async fn authorize(
        &self,
        req: &AuthorizeRequest,
        user: Option<&SignedIn>,
        answer: Option<ConsentAnswer>,
        ctx: &AuditCtx,
    ) -> Result<AuthorizeDecision, InternalError> {
        // Only a known client's registered URI is ever redirected to.
        let Some(client) = self.find_client(&req.client_id).await? else {
            return Ok(AuthorizeDecision::ErrorPage {
                message:
                    "This sign-in link names an application this sign-in service does not know."
                        .into(),
            });
        };
        let refuse = |error: OAuthError| self.to_client_error(req, error);
        let scope = match self.check_request(&client, req) {
            Ok(s) => s,
            Err(Refusal::UnregisteredRedirect) => {
                return Ok(AuthorizeDecision::ErrorPage {
                    message: "This sign-in link would send you to an address the application did not register. Nothing was sent.".into(),
                });
            }
            Err(Refusal::ToClient(e)) => return Ok(refuse(e)),
        };
        let prompts = req.prompts();
        let silent = prompts.contains(&"none");
        let Some(user) = user else {
            if silent {
                return Ok(refuse(OAuthError::LoginRequired));
            }
            // A fresh sign-in satisfies prompt=login: do not ask twice.
            return Ok(AuthorizeDecision::NeedsSignIn {
                next: without_prompt_login(&req.path, None),
            });
        };
        // Who may use the app comes first: someone outside its groups (or its
        // networks) is neither sent to sign in again nor asked to consent.
        let browser = ctx.ip.as_deref().and_then(|ip| ip.parse().ok());
        if let Some(why) = self.app_admits(&client, &user.user_id, browser).await? {
            return self.app_denied(req, user, &client, why, ctx).await;
        }
        if answer.is_none() {
            let too_old = req
                .max_age
                .is_some_and(|m| self.clock.now() - user.auth_time > m.max(0) + MAX_AGE_GRACE_SECS);
            if too_old && silent {
                return Ok(refuse(OAuthError::LoginRequired));
            }
            if prompts.contains(&"login") {
                // Authenticate again, then continue with a max_age the fresh proof meets.
                return Ok(AuthorizeDecision::NeedsStepUp {
                    next: without_prompt_login(&req.path, Some(PROMPT_LOGIN_MAX_AGE_SECS)),
                    second_factor: false,
                });
            }
            if too_old {
                return Ok(AuthorizeDecision::NeedsStepUp {
                    next: req.path.clone(),
                    second_factor: false,
                });
            }
            // acr_values=mfa: a session proven by the password alone is stepped up with
            // the account's second factor. An account without one cannot give more; the
            // ID token's `acr` then says `pwd` (acr_values is a voluntary request, and
            // the relying party decides what `pwd` is worth).
            let wants_mfa = req
                .acr_values
                .as_deref()
                .is_some_and(|v| v.split_whitespace().any(|a| a == "mfa"));
            if wants_mfa
                && !user.used_second_factor()
                && crate::auth::mfa::status(&self.db, &user.user_id)
                    .await?
                    .any()
            {
                if silent {
                    return Ok(refuse(OAuthError::InteractionRequired));
                }
                return Ok(AuthorizeDecision::NeedsStepUp {
                    next: req.path.clone(),
                    second_factor: true,
                });
            }
        }
        // An app that requires a second factor gets a code only for a session proven
        // with one: a password-only session steps up (as for acr_values=mfa); an
        // account without a second factor is refused and told to add one. The consent
        // form's answer is held to it too, so posting the form cannot skip the step.
        match self
            .second_factor(&client, &user.user_id, &user.amr)
            .await?
        {
            SecondFactor::Satisfied => {}
            SecondFactor::Missing => {
                return self
                    .app_denied(req, user, &client, Denial::NoSecondFactor, ctx)
                    .await;
            }
            SecondFactor::StepUp if silent || answer.is_some() => {
                return Ok(refuse(OAuthError::InteractionRequired));
            }
            SecondFactor::StepUp => {
                return Ok(AuthorizeDecision::NeedsStepUp {
                    next: req.path.clone(),
                    second_factor: true,
                });
            }
        }
        let has = self
            .has_consent(&user.user_id, &client.client_id, &scope)
            .await?;
        if client.skip_consent && !has {
            // First-party: no page, but recorded, so the user sees (and can revoke) it
            // on /account/apps like any other.
            self.record_consent(&user.user_id, &client.client_id, &scope, ctx)
                .await?;
        }
        let consented = client.skip_consent || has;
        match answer {
            Some(ConsentAnswer::Deny) => {
                self.consent_denied(&user.user_id, &client.client_id, ctx)
                    .await?;
                return Ok(refuse(OAuthError::AccessDenied));
            }
            Some(ConsentAnswer::Allow) if !consented => {
                self.record_consent(&user.user_id, &client.client_id, &scope, ctx)
                    .await?;
            }
            None if !consented || prompts.contains(&"consent") => {
                if silent {
                    return Ok(refuse(OAuthError::ConsentRequired));
                }
                return Ok(AuthorizeDecision::NeedsConsent {
                    app: client.name.clone(),
                    scopes: scope.split_whitespace().map(str::to_string).collect(),
                });
            }
            Some(ConsentAnswer::Allow) | None => {}
        }
        let code = self
            .issue_code(Grant {
                client_id: client.client_id.clone(),
                user_id: user.user_id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                scope,
                nonce: req.nonce.clone(),
                code_challenge: req.code_challenge.clone(),
                auth_time: user.auth_time,
                amr: user.amr.clone(),
                sid: user.sid.clone(),
            })
            .await?;
        Ok(
            match to_client(
                &req.redirect_uri,
                &[("code", &code)],
                req.state.as_deref(),
                &self.issuer,
            ) {
                Some(redirect) => AuthorizeDecision::Permitted { redirect },
                None => unparsable_redirect(),
            },
        )
    }

    /// The checks that need no user, the same for a request in the query and for one
    /// pushed to the PAR endpoint (RFC 9126 section 4 asks that a pushed request be
    /// validated as any other): the redirect URI registered exactly, PAR when the
    /// client or the server requires it, the response type, scopes, PKCE, `prompt`.
    /// Returns the scopes asked for and allowed.
    pub fn check_request(
        &self,
        client: &Client,
        req: &AuthorizeRequest,
    ) -> Result<String, Refusal> {
        if !client.redirect_uris().contains(&req.redirect_uri) {
            return Err(Refusal::UnregisteredRedirect);
        }
        if !req.pushed && (self.require_par || client.require_par) {
            return Err(Refusal::ToClient(OAuthError::InvalidRequest(
                "this application must push its authorization requests to the PAR endpoint first",
            )));
        }
        let scope = checked(client, req).map_err(Refusal::ToClient)?;
        let prompts = req.prompts();
        if prompts.contains(&"none") && prompts.len() > 1 {
            return Err(Refusal::ToClient(OAuthError::InvalidRequest(
                "prompt=none stands alone",
            )));
        }
        Ok(scope)
    }

    /// The user may not use the app: `access.denied` is recorded and the client told
    /// `access_denied`, with a description the user can act on.
    async fn app_denied(
        &self,
        req: &AuthorizeRequest,
        user: &SignedIn,
        client: &Client,
        why: Denial,
        ctx: &AuditCtx,
    ) -> Result<AuthorizeDecision, InternalError> {
        self.app_denied_by((&user.user_id, &client.client_id), why, "authorize", ctx)
            .await?;
        Ok(self.to_client_error(req, OAuthError::NoAccess(why.description())))
    }

    fn to_client_error(&self, req: &AuthorizeRequest, error: OAuthError) -> AuthorizeDecision {
        match error.redirect(&req.redirect_uri, req.state.as_deref(), &self.issuer) {
            Some(redirect) => AuthorizeDecision::ErrorToClient { redirect, error },
            None => unparsable_redirect(),
        }
    }

    async fn consent_denied(
        &self,
        user_id: &str,
        client_id: &str,
        ctx: &AuditCtx,
    ) -> Result<(), InternalError> {
        let (action, outcome) = (AuditAction::ConsentDenied, Outcome::Denied);
        let (now, target) = (self.clock.now(), Some(user_id.to_string()));
        let details = json!({"client_id": client_id});
        record_alone(&self.db, now, ctx, action, outcome, target, details).await
    }

    /// If `next` continues an authorization request of a known client with one of its
    /// registered redirect URIs, that URI's origin (for a page's `form-action`).
    pub async fn return_origin(&self, next: &str) -> Vec<String> {
        let Some(query) = next.strip_prefix("/oauth/authorize?") else {
            return Vec::new();
        };
        let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if let (Some(client_id), Some(_)) = (get("client_id"), get("request_uri")) {
            // A pushed request: its redirect URI is not in the link, but it is one the
            // client registered (checked when it was pushed), so any of those.
            return match self.find_client(&client_id).await {
                Ok(Some(c)) => {
                    let mut origins: Vec<String> = c
                        .redirect_uris()
                        .iter()
                        .filter_map(|u| origin_of(u))
                        .collect();
                    origins.sort();
                    origins.dedup();
                    origins
                }
                _ => Vec::new(),
            };
        }
        let (Some(client_id), Some(uri)) = (get("client_id"), get("redirect_uri")) else {
            return Vec::new();
        };
        match self.find_client(&client_id).await {
            Ok(Some(c)) if c.redirect_uris().contains(&uri) => {
                origin_of(&uri).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }
}

/// A registered redirect URI always parses (it is checked when saved); were one not
/// to, the user is told, and nothing is sent.
fn unparsable_redirect() -> AuthorizeDecision {
    AuthorizeDecision::ErrorPage {
        message: "The application's registered address is not valid. Nothing was sent.".into(),
    }
}

/// A URI's origin, if it has one that can be named.
pub fn origin_of(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(u.origin().ascii_serialization()).filter(|o| o != "null")
}

/// The scopes asked for and allowed, or the error for the client.
fn checked(client: &Client, p: &AuthorizeRequest) -> Result<String, OAuthError> {
    if p.response_type != "code" {
        return Err(OAuthError::UnsupportedResponseType);
    }
    let scope = allowed_scope(client, &p.scope)?;
    match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (Some(_), Some("S256")) => {}
        (Some(_), _) => {
            return Err(OAuthError::InvalidRequest(
                "code_challenge_method must be S256",
            ));
        }
        (None, _) if client.is_public() => {
            return Err(OAuthError::InvalidRequest(
                "PKCE (S256) is required for public clients",
            ));
        }
        (None, _) => {}
    }
    Ok(scope)
}

/// The scopes asked for, when there are some and the client may have each (the
/// authorization request's and a device request's rule), space-separated.
pub(crate) fn allowed_scope(client: &Client, scope: &str) -> Result<String, OAuthError> {
    let allowed = client.scopes();
    let asked: Vec<&str> = scope.split_whitespace().collect();
    if asked.is_empty() || asked.iter().any(|s| !allowed.iter().any(|a| a == s)) {
        return Err(OAuthError::InvalidScope(
            "a scope is unknown or not allowed for this client",
        ));
    }
    Ok(asked.join(" "))
}

/// The authorization request again, without `prompt=login` (so that signing in once
/// satisfies it) and, when given, with `max_age` capped so an old session cannot pass.
fn without_prompt_login(path: &str, max_age: Option<i64>) -> String {
    let Some((route, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    let mut capped = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match (k.as_ref(), max_age) {
            ("prompt", _) => {
                let rest: Vec<&str> = v.split_whitespace().filter(|p| *p != "login").collect();
                if !rest.is_empty() {
                    out.append_pair("prompt", &rest.join(" "));
                }
            }
            ("max_age", Some(cap)) => {
                let given = v.parse::<i64>().unwrap_or(cap);
                out.append_pair("max_age", &given.min(cap).to_string());
                capped = true;
            }
            _ => {
                out.append_pair(&k, &v);
            }
        }
    }
    if let (Some(cap), false) = (max_age, capped) {
        out.append_pair("max_age", &cap.to_string());
    }
    format!("{route}?{}", out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_login_is_dropped_and_max_age_capped() {
        assert_eq!(
            without_prompt_login(
                "/oauth/authorize?prompt=login+consent&max_age=600",
                Some(60)
            ),
            "/oauth/authorize?prompt=consent&max_age=60"
        );
        assert_eq!(
            without_prompt_login("/oauth/authorize?prompt=login&client_id=a", Some(60)),
            "/oauth/authorize?client_id=a&max_age=60"
        );
        assert_eq!(
            without_prompt_login("/oauth/authorize?prompt=login&max_age=5", None),
            "/oauth/authorize?max_age=5"
        );
    }
}
