//! Pushed authorization requests (RFC 9126). An authenticated client posts its
//! authorization request to the PAR endpoint; it is checked exactly as
//! `/oauth/authorize` checks one ([`OAuthProvider::check_request`]) and stored under
//! the SHA-256 of a random `request_uri` (32 bytes from the OS RNG) for
//! [`PUSHED_TTL_SECS`]. The browser then brings only `client_id` and `request_uri`.
//!
//! The first authorization that names it takes the request out of the database (one
//! DELETE … RETURNING: of two racing for it, exactly one gets it), provided the
//! `client_id` matches and it has not expired. Signing in and consenting take more
//! than a minute, and more than one request, so the browser that took it holds it in
//! its session ([`Held`]) until the app gets its answer; no other browser can use it.
//! The rules on the held list are here; the web layer only keeps it in the session.

use serde::{Deserialize, Serialize};

use serde_json::json;

use crate::auth::InternalError;
use crate::auth::audit::{AuditCtx, record};
use crate::auth::oauth::decision::{AuthorizeDecision, AuthorizeRequest, Refusal};
use crate::auth::oauth::{Client, FlowError, OAuthError, OAuthProvider};
use crate::db::AnyConnection;
use crate::db::conn::write_transaction;
use crate::db::repo::pushed_requests::{self as repo, PushedRequest};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::tokens::{generate, hash};

/// What every `request_uri` we issue starts with (RFC 9126 section 2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How long a pushed request waits for its authorization.
pub const PUSHED_TTL_SECS: i64 = 60;

/// How long the browser that took a pushed request may take to sign in and consent.
pub const HELD_SECS: i64 = 15 * 60;

/// `par.refused`'s reasons. A used request is deleted when it is taken, so it cannot
/// be told from one never issued (or expired and pruned since).
const UNKNOWN_OR_USED: &str = "unknown_or_used";
const EXPIRED: &str = "expired";
const CLIENT_MISMATCH: &str = "client_mismatch";
/// Not a `request_uri` this server issues.
const MALFORMED: &str = "malformed";

/// The most of a link's `client_id` an audit event keeps.
const MAX_LOGGED_CHARS: usize = 128;

/// Pushed requests one session holds at once (an app opened in a few tabs); the
/// oldest goes first.
const MAX_HELD: usize = 4;

/// The PAR endpoint's answer (RFC 9126 section 2.2).
#[derive(Debug)]
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: i64,
}

impl OAuthProvider {
    /// Checks and stores a pushed request of the authenticated `client`, with its
    /// `par.pushed` event; `Err` is the error the client is answered (nothing is stored
    /// then).
    pub async fn push(
        &self,
        client: &Client,
        mut req: AuthorizeRequest,
        ctx: &AuditCtx,
    ) -> Result<Pushed, FlowError> {
        req.client_id = client.client_id.clone();
        req.pushed = true;
        match self.check_request(client, &req) {
            Ok(_) => {}
            // RFC 9126 section 2.3: invalid_request where RFC 6749 would not redirect.
            Err(Refusal::UnregisteredRedirect) => {
                return Err(OAuthError::InvalidRequest(
                    "redirect_uri is not one registered for this client",
                )
                .into());
            }
            Err(Refusal::ToClient(e)) => return Err(e.into()),
        }
        let secret = generate();
        let now = self.clock.now();
        let row = PushedRequest {
            request_hash: hash(&secret),
            client_id: client.client_id.clone(),
            params: serde_json::to_string(&req).map_err(InternalError::from)?,
            created_at: now,
            expires_at: now + PUSHED_TTL_SECS,
        };
        // Never the request_uri: until it is used, it is what the browser redeems.
        let details = json!({"client_id": row.client_id, "scope": req.scope});
        let ctx = ctx.clone();
        self.db
            .run(move |c| {
                write_transaction(c, |c| {
                    repo::insert(c, &row)?;
                    let (action, outcome) = (AuditAction::ParPushed, Outcome::Success);
                    record(c, &ctx, now, action, outcome, None, details)
                })
                .map_err(InternalError::from)
            })
            .await?;
        Ok(Pushed {
            request_uri: format!("{REQUEST_URI_PREFIX}{secret}"),
            expires_in: PUSHED_TTL_SECS,
        })
    }

    /// Takes a pushed request out, once: `None` when the `request_uri` is unknown,
    /// expired, already taken, or another client's, which is recorded as `par.refused`
    /// with the reason. The request is `client_id`'s, and its `path` is `path` (where
    /// signing in comes back to).
    pub async fn take_pushed(
        &self,
        client_id: &str,
        request_uri: &str,
        path: &str,
        ctx: &AuditCtx,
    ) -> Result<Option<AuthorizeRequest>, InternalError> {
        let now = self.clock.now();
        let (h, id) = (
            request_uri.strip_prefix(REQUEST_URI_PREFIX).map(hash),
            client_id.to_string(),
        );
        let ctx = ctx.clone();
        let params = self
            .db
            .run(move |c| {
                take_or_refuse(c, h.as_deref(), &id, (&ctx, now)).map_err(InternalError::from)
            })
            .await?;
        Ok(params
            .and_then(|p| serde_json::from_str::<AuthorizeRequest>(&p).ok())
            .map(|r| AuthorizeRequest {
                client_id: client_id.to_string(),
                path: path.to_string(),
                pushed: true,
                ..r
            }))
    }
}

/// Takes the request stored under `request_hash` (`None`: not one of ours) for
/// `client_id`, or records why it was refused (`par.refused`).
fn take_or_refuse(
    c: &mut AnyConnection,
    request_hash: Option<&str>,
    client_id: &str,
    (ctx, now): (&AuditCtx, i64),
) -> crate::db::QueryResult<Option<String>> {
    let reason = match request_hash {
        None => MALFORMED,
        Some(h) => match repo::take(c, h, client_id, now)? {
            Some(params) => return Ok(Some(params)),
            // Why: a row left behind tells expired from another client's; a used one
            // was deleted when it was taken.
            None => match repo::find(c, h)? {
                None => UNKNOWN_OR_USED,
                Some(row) if row.client_id == client_id => EXPIRED,
                Some(_) => CLIENT_MISMATCH,
            },
        },
    };
    // The link's client_id, bounded so that a long one cannot fill the log.
    let cid: String = client_id.chars().take(MAX_LOGGED_CHARS).collect();
    let details = json!({"client_id": cid, "reason": reason});
    let (action, outcome) = (AuditAction::ParRefused, Outcome::Failure);
    record(c, ctx, now, action, outcome, None, details)?;
    Ok(None)
}

/// A pushed request a browser took, kept in its session until the app is answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The SHA-256 of the `request_uri` (the session store holds no usable secret).
    request_hash: String,
    client_id: String,
    request: AuthorizeRequest,
    at: i64,
}

/// The held request for `request_uri` of `client_id`, if this session holds it and it
/// is not too old.
pub fn held(
    list: &[Held],
    client_id: &str,
    request_uri: &str,
    path: &str,
    now: i64,
) -> Option<AuthorizeRequest> {
    let h = hash(request_uri);
    list.iter()
        .find(|x| x.request_hash == h && x.client_id == client_id && now - x.at < HELD_SECS)
        .map(|x| AuthorizeRequest {
            path: path.to_string(),
            pushed: true,
            ..x.request.clone()
        })
}

/// The held list after `decision` on the pushed `req` (named by `request_uri`): kept
/// while the user still has to sign in, prove a factor or consent; dropped once the
/// app has its answer or the request is refused, so it cannot be used again. Signing
/// in satisfies `prompt=login`, as a request in the query loses it from `next`.
pub fn after(
    mut list: Vec<Held>,
    request_uri: &str,
    req: &AuthorizeRequest,
    decision: &AuthorizeDecision,
    now: i64,
) -> Vec<Held> {
    let h = hash(request_uri);
    let at = list
        .iter()
        .find(|x| x.request_hash == h)
        .map_or(now, |x| x.at);
    list.retain(|x| x.request_hash != h && now - x.at < HELD_SECS);
    let continued = match decision {
        AuthorizeDecision::NeedsSignIn { .. } if req.prompts_login() => {
            req.without_prompt_login(None)
        }
        AuthorizeDecision::NeedsStepUp {
            second_factor: false,
            ..
        } if req.prompts_login() => req.without_prompt_login(Some(
            crate::auth::oauth::decision::PROMPT_LOGIN_MAX_AGE_SECS,
        )),
        AuthorizeDecision::NeedsSignIn { .. }
        | AuthorizeDecision::NeedsStepUp { .. }
        | AuthorizeDecision::NeedsConsent { .. } => req.clone(),
        AuthorizeDecision::Permitted { .. }
        | AuthorizeDecision::ErrorToClient { .. }
        | AuthorizeDecision::ErrorPage { .. } => return list,
    };
    if list.len() >= MAX_HELD {
        list.remove(0);
    }
    list.push(Held {
        request_hash: h,
        client_id: req.client_id.clone(),
        request: AuthorizeRequest {
            path: String::new(),
            ..continued
        },
        at,
    });
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(prompt: Option<&str>) -> AuthorizeRequest {
        AuthorizeRequest {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            response_type: "code".into(),
            scope: "openid".into(),
            prompt: prompt.map(str::to_string),
            max_age: Some(600),
            pushed: true,
            ..Default::default()
        }
    }

    const URI: &str = "urn:ietf:params:oauth:request_uri:abc";

    #[test]
    fn held_until_answered_and_only_for_its_client() {
        let consent = AuthorizeDecision::NeedsConsent {
            app: "App".into(),
            scopes: vec![],
        };
        let list = after(Vec::new(), URI, &req(None), &consent, 100);
        assert!(held(&list, "app", URI, "/p", 101).is_some());
        assert!(held(&list, "other", URI, "/p", 101).is_none());
        assert!(
            held(
                &list,
                "app",
                "urn:ietf:params:oauth:request_uri:x",
                "/p",
                101
            )
            .is_none()
        );
        assert!(held(&list, "app", URI, "/p", 100 + HELD_SECS).is_none());
        let done = AuthorizeDecision::Permitted {
            redirect: "https://app.example/cb?code=x".into(),
        };
        let list = after(list, URI, &req(None), &done, 102);
        assert!(held(&list, "app", URI, "/p", 103).is_none());
    }

    #[test]
    fn signing_in_satisfies_prompt_login() {
        let step_up = AuthorizeDecision::NeedsStepUp {
            next: "/p".into(),
            second_factor: false,
        };
        let list = after(Vec::new(), URI, &req(Some("login consent")), &step_up, 100);
        let r = held(&list, "app", URI, "/p", 101).unwrap();
        assert_eq!(r.prompt.as_deref(), Some("consent"));
        assert_eq!(r.max_age, Some(60));
        assert!(r.pushed);
    }

    #[test]
    fn a_session_holds_a_few_at_most() {
        let consent = AuthorizeDecision::NeedsConsent {
            app: "App".into(),
            scopes: vec![],
        };
        let mut list = Vec::new();
        for i in 0..6 {
            list = after(list, &format!("{URI}{i}"), &req(None), &consent, 100);
        }
        assert_eq!(list.len(), MAX_HELD);
        assert!(held(&list, "app", &format!("{URI}0"), "/p", 101).is_none());
        assert!(held(&list, "app", &format!("{URI}5"), "/p", 101).is_some());
    }
}
