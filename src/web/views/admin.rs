//! The pages under /admin: users, audit, roles, groups, access rules, settings, OAuth
//! clients and service accounts.

use askama::Template;

use super::{Chrome, EventRow, ExpiryChoice, ScopeChoice, SessionView, TokenView};

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

impl AdminServiceAccountPage {
    /// Where the token table's Revoke posts (`_token_table.html`).
    pub fn revoke_action(&self) -> String {
        format!("/admin/service-accounts/{}/tokens/revoke", self.account.id)
    }
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
    pub require_par: bool,
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
