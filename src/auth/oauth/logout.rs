//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): what a logout request
//! may do. The portcullis session ends at once when the app proves it is this
//! session's (an ID token hint naming this session); otherwise the user confirms, so a
//! third-party page cannot sign anyone out. The user goes back only to a URI the app
//! registered. Ending the session itself is the sessions' business; the handler does
//! it when the decision says so.

use serde_json::Value;

use crate::auth::InternalError;
use crate::auth::oauth::OAuthProvider;

/// A logout request's parameters, as the app sent them.
#[derive(Debug, Clone, Default)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub client_id: Option<String>,
}

/// What to do with a logout request.
#[derive(Debug)]
pub enum LogoutDecision {
    /// The request is not one to act on; nothing changes. `why` is for the user.
    Invalid { why: &'static str },
    /// Ask the signed-in user to confirm (`app` names the app asking, when known);
    /// `destination` is where confirming leads.
    Confirm {
        app: Option<String>,
        destination: Option<String>,
    },
    /// End the session (if any), then go to `then` (the app's address, with `state`)
    /// or, with none, to the sign-in page.
    SignOut { then: Option<String> },
}

impl OAuthProvider {
    /// Decides a logout request. `session` is the signed-in session's id (`sid`), if
    /// any; `confirmed` is true for our confirmation form.
    pub async fn logout(
        &self,
        req: &LogoutRequest,
        session: Option<&str>,
        confirmed: bool,
    ) -> Result<LogoutDecision, InternalError> {
        let invalid = |why| Ok(LogoutDecision::Invalid { why });
        // A hint we cannot verify (say, signed by a key rotated out since) proves
        // nothing: carry on as without one, which means the user confirms.
        let hint = match req.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
            Some(h) => self.id_token_hint(h).await?,
            None => None,
        };
        let hinted_client = hint.as_ref().and_then(|c| match c.get("aud") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
            _ => None,
        });
        let client_id = match (
            hinted_client,
            req.client_id.clone().filter(|c| !c.is_empty()),
        ) {
            (Some(a), Some(b)) if a != b => return invalid("the token and client_id disagree"),
            (a, b) => a.or(b),
        };
        let client = match &client_id {
            Some(id) => self.find_client(id).await?,
            None => None,
        };
        let destination = match req
            .post_logout_redirect_uri
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            Some(uri) => match &client {
                Some(c) if c.post_logout_redirect_uris().iter().any(|r| r == uri) => {
                    Some(uri.to_string())
                }
                _ => return invalid("the app did not register that address to return to"),
            },
            None => None,
        };
        if let Some(sid) = session {
            let same_session = hint
                .as_ref()
                .and_then(|c| c.get("sid"))
                .and_then(Value::as_str)
                == Some(sid);
            if !confirmed && !same_session {
                return Ok(LogoutDecision::Confirm {
                    app: client.map(|c| c.name),
                    destination,
                });
            }
        }
        let then = destination.map(|uri| match (url::Url::parse(&uri), &req.state) {
            (Ok(mut url), Some(s)) => {
                url.query_pairs_mut().append_pair("state", s);
                url.into()
            }
            // Registered addresses are checked when saved, so they parse.
            _ => uri,
        });
        Ok(LogoutDecision::SignOut { then })
    }
}
