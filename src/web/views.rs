//! Page structs, one per template. Rendering goes through `render`, which sets the
//! status and the HTML content type.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

/// What the layout needs on every page.
pub struct Chrome {
    pub csrf: String,
    /// The signed-in user's email, when there is one.
    pub user: Option<String>,
    /// Show the link to /admin (a hint only: every admin route checks permissions).
    pub admin_link: bool,
}

pub fn render<T: Template>(status: StatusCode, page: &T) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong on our side.")
        }
    }
}

#[derive(Template)]
#[template(path = "errors/error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub heading: String,
    pub message: String,
    pub link: Option<(String, String)>,
    pub request_id: String,
}

impl ErrorPage {
    pub fn new(
        heading: &str,
        message: &str,
        link: Option<(String, String)>,
        request_id: &str,
    ) -> Self {
        Self {
            chrome: Chrome {
                csrf: String::new(),
                user: None,
                admin_link: false,
            },
            heading: heading.into(),
            message: message.into(),
            link,
            request_id: request_id.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub chrome: Chrome,
    pub registration_open: bool,
}

#[derive(Template)]
#[template(path = "auth/login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub email: String,
    pub next: String,
    pub error: Option<String>,
    pub notice: Option<String>,
    pub registration_open: bool,
    /// Set when the password was right but the address still needs confirming.
    pub unverified: Option<String>,
}

#[derive(Template)]
#[template(path = "auth/register.html")]
pub struct RegisterPage {
    pub chrome: Chrome,
    pub open: bool,
    pub email: String,
    pub display_name: String,
    pub min_len: usize,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "auth/setup.html")]
pub struct SetupPage {
    pub chrome: Chrome,
    pub usable: bool,
    pub token: String,
    pub email: String,
    pub min_len: usize,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "account/index.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub min_len: usize,
    pub error: Option<String>,
    pub email_error: Option<String>,
    pub notice: Option<String>,
}

pub struct SessionView {
    pub sid: String,
    pub browser: String,
    pub ip: String,
    pub created: String,
    pub last_seen: String,
    pub current: bool,
}

impl SessionView {
    /// A registry row as a list shows it; `current` marks the viewer's own session.
    pub fn of(r: crate::auth::sessions::SessionRow, current: bool) -> Self {
        SessionView {
            current,
            browser: crate::web::caller::describe_browser(&r.user_agent),
            ip: r.ip,
            created: when(r.created_at),
            last_seen: when(r.last_seen_at),
            sid: r.sid,
        }
    }
}

#[derive(Template)]
#[template(path = "account/sessions.html")]
pub struct SessionsPage {
    pub chrome: Chrome,
    pub sessions: Vec<SessionView>,
    /// An app may still hold the user's tokens: "Sign out everywhere else" ends them too.
    pub apps_signed_in: bool,
    pub notice: Option<String>,
}

/// "2026-11-24 19:40 UTC" for a unix time.
pub fn when(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "auth/verify_email.html")]
pub struct VerifyEmailPage {
    pub chrome: Chrome,
    /// Present when the link can be used.
    pub email: Option<String>,
    pub token: String,
    pub change: bool,
    pub problem: Option<String>,
}

#[derive(Template)]
#[template(path = "auth/resend.html")]
pub struct ResendPage {
    pub chrome: Chrome,
    pub email: String,
    pub sent: bool,
}

#[derive(Template)]
#[template(path = "auth/forgot.html")]
pub struct ForgotPage {
    pub chrome: Chrome,
    pub email: String,
    pub sent: bool,
    pub valid_for: String,
}

#[derive(Template)]
#[template(path = "auth/reset.html")]
pub struct ResetPage {
    pub chrome: Chrome,
    pub token: String,
    pub usable: bool,
    pub problem: Option<String>,
    pub error: Option<String>,
    pub min_len: usize,
}

#[derive(Template)]
#[template(path = "auth/mfa.html")]
pub struct MfaPage {
    pub chrome: Chrome,
    pub error: Option<String>,
    /// The account has a security key or passkey: offer it.
    pub webauthn: bool,
}

#[derive(Template)]
#[template(path = "account/security_keys.html")]
pub struct SecurityKeysPage {
    pub chrome: Chrome,
    pub keys: Vec<KeyView>,
    pub error: Option<String>,
    pub notice: Option<String>,
}

pub struct KeyView {
    /// base64url credential id: what rename and remove name.
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "auth/reauth.html")]
pub struct ReauthPage {
    pub chrome: Chrome,
    pub next: String,
    /// The account has an authenticator app: ask for a code too.
    pub code: bool,
    /// The account has a security key or passkey: offer it instead.
    pub webauthn: bool,
    /// The page that sent us wants a second factor proven (not the password alone).
    pub factor: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "account/totp.html")]
pub struct TotpPage {
    pub chrome: Chrome,
    pub enabled: bool,
    /// Inline SVG rendered by the server from our own data.
    pub qr_svg: String,
    pub manual_key: String,
    pub recovery_left: i64,
    pub error: Option<String>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "account/recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub chrome: Chrome,
    /// Freshly generated codes, shown this once; empty otherwise.
    pub codes: Vec<String>,
    pub left: i64,
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "admin/index.html")]
pub struct AdminHomePage {
    pub chrome: Chrome,
    /// Names of the permissions held, for which sections to show.
    pub perms: Vec<&'static str>,
}

pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub status: &'static str,
    pub created: String,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
pub struct AdminUsersPage {
    pub chrome: Chrome,
    pub q: String,
    pub role: String,
    pub status: String,
    pub mfa: String,
    pub roles: Vec<String>,
    pub users: Vec<UserRow>,
    /// The query string of the next page, when there is one.
    pub next: Option<String>,
}

pub struct EventRow {
    pub id: i64,
    pub time: String,
    pub event: String,
    pub outcome: String,
    pub actor: String,
    pub target: String,
    pub ip: String,
    pub details: String,
}

pub struct KeyRow {
    pub name: String,
    pub kind: &'static str,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
pub struct AdminUserPage {
    pub chrome: Chrome,
    pub id: String,
    pub email: String,
    pub name: String,
    pub verified: bool,
    pub disabled: bool,
    pub created: String,
    pub roles: Vec<String>,
    /// Roles that can still be assigned.
    pub other_roles: Vec<String>,
    /// Groups the user is a direct member of.
    pub groups: Vec<String>,
    /// Groups the user is in through a group inside them (not directly).
    pub inherited_groups: Vec<String>,
    /// Groups the user can still be added to.
    pub other_groups: Vec<String>,
    /// The viewer may change groups.
    pub can_groups: bool,
    pub totp: bool,
    pub keys: Vec<KeyRow>,
    pub recovery_codes_left: i64,
    pub sessions: Vec<SessionView>,
    pub events: Vec<EventRow>,
    pub can_write: bool,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
pub struct AdminAuditPage {
    pub chrome: Chrome,
    pub user: String,
    pub event: String,
    pub outcome: String,
    pub ip: String,
    pub from: String,
    pub to: String,
    pub events: Vec<EventRow>,
    pub event_names: Vec<&'static str>,
    /// Query string of the current filters (for export links and paging).
    pub filters: String,
    pub next: Option<String>,
    pub verdict: Option<String>,
    pub verdict_ok: bool,
}

#[derive(Template)]
#[template(path = "account/activity.html")]
pub struct ActivityPage {
    pub chrome: Chrome,
    pub events: Vec<EventRow>,
    pub next: Option<String>,
}

pub struct PermissionView {
    pub name: &'static str,
    pub describe: &'static str,
    pub held: bool,
}

pub struct RoleView {
    pub name: String,
    pub description: String,
    pub builtin: bool,
    pub holders: i64,
    pub permissions: Vec<PermissionView>,
}

#[derive(Template)]
#[template(path = "admin/roles.html")]
pub struct AdminRolesPage {
    pub chrome: Chrome,
    pub roles: Vec<RoleView>,
    /// Every permission, for the "new role" form.
    pub all: Vec<PermissionView>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub struct GroupView {
    pub name: String,
    pub description: String,
    pub parent: String,
    pub members: i64,
}

pub struct RuleView {
    pub position: usize,
    pub name: String,
    /// What the rule matches, in words.
    pub matches: String,
    pub policy: &'static str,
    /// Set for a rule stored from this page (it can be deleted here).
    pub id: Option<String>,
}

/// The "add a rule" form, as sent (echoed back after an error).
#[derive(Default)]
pub struct NewRuleView {
    pub name: String,
    pub domain: String,
    pub path: String,
    pub path_regex: String,
    pub method: String,
    pub network: String,
    pub subject: String,
    pub policy: String,
}

/// The "test a request" form, as sent (echoed back filled in).
pub struct PolicyTestView {
    pub email: String,
    pub url: String,
    pub method: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "admin/policies.html")]
pub struct AdminPoliciesPage {
    pub chrome: Chrome,
    pub default_policy: &'static str,
    pub rules: Vec<RuleView>,
    pub form: PolicyTestView,
    pub result: Option<crate::auth::access::policy::Explanation>,
    pub error: Option<String>,
    pub can_write: bool,
    pub new_rule: NewRuleView,
    pub notice: Option<String>,
    pub add_error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/groups.html")]
pub struct AdminGroupsPage {
    pub chrome: Chrome,
    pub groups: Vec<GroupView>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub struct MemberView {
    pub id: String,
    pub email: String,
}

#[derive(Template)]
#[template(path = "admin/group.html")]
pub struct AdminGroupPage {
    pub chrome: Chrome,
    pub name: String,
    pub description: String,
    /// The parent group's name, or "" at the top level.
    pub parent: String,
    pub children: Vec<String>,
    pub members: Vec<MemberView>,
    /// Groups this one may be moved inside (all but itself).
    pub others: Vec<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/settings.html")]
pub struct AdminSettingsPage {
    pub chrome: Chrome,
    pub registration_enabled: bool,
    pub domains: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "auth/logout.html")]
pub struct LogoutPage {
    pub chrome: Chrome,
    /// The app asking, when it named itself.
    pub app: Option<String>,
    pub hidden: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "auth/consent.html")]
pub struct ConsentPage {
    pub chrome: Chrome,
    pub app: String,
    pub scopes: Vec<String>,
    /// The authorization request, carried through the form unchanged.
    pub hidden: Vec<(String, String)>,
}

pub struct AppView {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub granted: String,
}

#[derive(Template)]
#[template(path = "account/apps.html")]
pub struct AppsPage {
    pub chrome: Chrome,
    pub apps: Vec<AppView>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "account/tokens.html")]
pub struct TokensPage {
    pub chrome: Chrome,
    pub tokens: Vec<TokenView>,
    /// The secret of the token just made: shown this once.
    pub created: Option<String>,
    pub error: Option<String>,
    pub notice: Option<String>,
    /// The create form, filled again after a refusal.
    pub name: String,
    pub scopes: Vec<ScopeChoice>,
    pub expiries: Vec<ExpiryChoice>,
}

impl TokensPage {
    /// Where the token table's Revoke posts (`_token_table.html`).
    pub fn revoke_action(&self) -> String {
        "/account/tokens/revoke".to_string()
    }
}

impl AdminServiceAccountPage {
    /// Where the token table's Revoke posts (`_token_table.html`).
    pub fn revoke_action(&self) -> String {
        format!("/admin/service-accounts/{}/tokens/revoke", self.account.id)
    }
}

pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
}

pub struct ScopeChoice {
    pub id: String,
    pub value: &'static str,
    pub what: &'static str,
    pub checked: bool,
}

pub struct ExpiryChoice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub kind: &'static str,
    pub grants: String,
    pub redirect_uris: Vec<String>,
    /// "Everyone", or the allowed groups; with "(second factor)" when required.
    pub access: String,
}

/// One choice in a list of checkboxes.
pub struct Choice {
    pub value: &'static str,
    pub checked: bool,
}

/// The client form, empty for a new client or filled for an existing one.
pub struct ClientForm {
    pub client_id: Option<String>,
    pub name: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub public: bool,
    pub scopes: Vec<Choice>,
    pub grants: Vec<Choice>,
    pub skip_consent: bool,
    pub algs: Vec<Choice>,
    /// Comma-separated group names.
    pub allowed_groups: String,
    pub require_two_factor: bool,
    /// Comma-separated networks.
    pub allowed_networks: String,
    /// The groups that exist, offered for `allowed_groups`.
    pub known_groups: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin/clients.html")]
pub struct AdminClientsPage {
    pub chrome: Chrome,
    pub clients: Vec<ClientRow>,
    pub form: ClientForm,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/client.html")]
pub struct AdminClientPage {
    pub chrome: Chrome,
    pub form: ClientForm,
    /// A secret just generated: shown this once.
    pub secret: Option<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// `/admin/service-accounts`.
#[derive(Template)]
#[template(path = "admin/service_accounts.html")]
pub struct AdminServiceAccountsPage {
    pub chrome: Chrome,
    pub accounts: Vec<ServiceAccountView>,
    /// Every group's name, for the owner choice.
    pub groups: Vec<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub struct ServiceAccountView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub group: String,
    pub tokens: usize,
}

/// `/admin/service-accounts/{id}`: its tokens, a new one (secret shown once), delete.
#[derive(Template)]
#[template(path = "admin/service_account.html")]
pub struct AdminServiceAccountPage {
    pub chrome: Chrome,
    pub account: ServiceAccountView,
    pub tokens: Vec<TokenView>,
    /// The secret of the token just made: shown this once.
    pub created: Option<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub scopes: Vec<ScopeChoice>,
    pub expiries: Vec<ExpiryChoice>,
    /// Client credentials: id and creation time.
    pub clients: Vec<(String, String)>,
    /// The id and secret of the client just made: shown this once.
    pub new_client: Option<(String, String)>,
}
