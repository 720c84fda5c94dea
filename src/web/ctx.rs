//! `Ctx`: what every page handler extracts once — state, session, who is signed in,
//! client IP and agent, request id, CSRF seed. A handler states its requirement on its
//! first line (`ctx.require_user()?`).

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use super::csrf::{self, Seed};
use super::error::AppError;
use super::request_id::RequestId;
use super::session::{self, SignedIn};
use super::state::AppState;
use super::views::Chrome;
use crate::auth::access::Admission;
use crate::auth::access::permissions::Permission;
use crate::auth::audit::AuditCtx;

/// A user allowed into an admin page, with every permission they hold.
pub struct Admin {
    pub user: SignedIn,
    pub perms: std::collections::BTreeSet<Permission>,
}

pub struct Ctx {
    pub state: web::Data<AppState>,
    pub session: Session,
    pub user: Option<SignedIn>,
    pub ip: IpAddr,
    pub user_agent: String,
    pub request_id: String,
    /// Path and query of this request, to come back to after signing in.
    pub path: String,
    seed: String,
    /// The CSRF token of a script's request (JSON bodies carry it in a header).
    csrf_header: String,
}

impl FromRequest for Ctx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ctx::build(req))
    }
}

impl Ctx {
    fn build(req: &HttpRequest) -> Result<Self, actix_web::Error> {
        let state = req
            .app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| actix_web::error::ErrorInternalServerError("state missing"))?;
        let session = req.get_session();
        if session.contains_key(super::session_store::STORE_DOWN_KEY) {
            return Err(AppError::Unavailable("session store".into()).into());
        }
        let now = state.clock.now();
        let mut user = session::signed_in(&session);
        // The absolute lifetime holds however active the session is.
        if user
            .as_ref()
            .is_some_and(|u| u.auth_at + state.sessions.lifetime_secs <= now)
        {
            session.remove(session::AUTH_KEY);
            user = None;
        }
        if let Some(u) = &user {
            state.sessions.touch(&u.sid, u.auth_at);
        }
        let ext = req.extensions();
        let request_id = ext
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let seed = ext.get::<Seed>().map(|s| s.0.clone()).unwrap_or_default();
        let csrf_header = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        drop(ext);
        let path = match req.uri().path_and_query() {
            Some(pq) => pq.as_str().to_string(),
            None => req.path().to_string(),
        };
        Ok(Ctx {
            ip: crate::web::caller::client_ip(req, &state.config),
            user_agent: crate::web::caller::user_agent(req),
            state,
            session,
            user,
            request_id,
            path,
            seed,
            csrf_header,
        })
    }

    /// The signed-in user, or a redirect to sign in and come back here.
    pub fn require_user(&self) -> Result<&SignedIn, AppError> {
        self.user.as_ref().ok_or_else(|| AppError::SignInRequired {
            next: if self.path.len() <= 2048 {
                self.path.clone()
            } else {
                "/account".into()
            },
        })
    }

    /// The signed-in user, who must also have authenticated within the step-up window
    /// (sensitive changes). `back_to` is where to return after confirming.
    pub fn require_recent_auth(&self, back_to: &str) -> Result<&SignedIn, AppError> {
        let u = self.require_user()?;
        if self.state.clock.now() - u.auth_at > self.state.config.step_up_window_secs {
            return Err(AppError::StepUpRequired {
                next: back_to.to_string(),
            });
        }
        Ok(u)
    }

    /// The signed-in user holding permission `p`, read fresh from the database. Deny by
    /// default: anonymous → sign in; without `p` → 403; an administrator without a
    /// second factor (when the config asks for one) → the enrolment page first.
    pub async fn require_permission(&self, p: Permission) -> Result<Admin, AppError> {
        let user = self.require_user()?.clone();
        match self.state.access.admission(&user.uid, p).await? {
            Admission::Granted(perms) => Ok(Admin { user, perms }),
            Admission::Denied => Err(AppError::Forbidden(
                "You do not have access to this page.".into(),
            )),
            Admission::NeedsSecondFactor => Err(AppError::Redirect("/account/totp?admin=1".into())),
        }
    }

    /// `require_permission`, for a change: also a sign-in within the step-up window.
    pub async fn require_permission_recent(
        &self,
        p: Permission,
        back_to: &str,
    ) -> Result<Admin, AppError> {
        let admin = self.require_permission(p).await?;
        self.require_recent_auth(back_to)?;
        Ok(admin)
    }

    pub fn sid(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.sid.as_str())
    }

    /// This browser's CSRF seed (empty before the browser has one): what anonymous
    /// state sealed into a cookie is bound to.
    pub fn browser_seed(&self) -> &str {
        &self.seed
    }

    pub fn csrf_token(&self) -> String {
        csrf::token(&self.state.csrf_key, &self.seed, self.sid())
    }

    /// Refuses a form whose token does not belong to this browser and session.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), AppError> {
        if self.seed.is_empty()
            || !csrf::verify(&self.state.csrf_key, &self.seed, self.sid(), submitted)
        {
            return Err(AppError::Forbidden(
                "This form has expired or was not sent from this site. Go back, reload the page and try again.".into(),
            ));
        }
        Ok(())
    }

    /// `check_csrf` for a script's JSON request: the token is in `x-csrf-token`.
    pub fn check_csrf_header(&self) -> Result<(), AppError> {
        self.check_csrf(&self.csrf_header)
    }

    pub fn audit(&self) -> AuditCtx {
        AuditCtx {
            actor_id: self.user.as_ref().map(|u| u.uid.clone()),
            ip: Some(self.ip.to_string()),
            user_agent: Some(self.user_agent.clone()),
            request_id: Some(self.request_id.clone()),
        }
    }

    pub fn chrome(&self) -> Chrome {
        Chrome {
            csrf: self.csrf_token(),
            user: self.user.as_ref().map(|u| u.email.clone()),
            admin_link: self
                .user
                .as_ref()
                .is_some_and(|u| u.roles.iter().any(|r| r != "user")),
            path: self.path.clone(),
            brand: self.state.brand.clone(),
        }
    }
}
