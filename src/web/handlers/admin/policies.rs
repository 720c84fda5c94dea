//! `/admin/policies`: the access rules forward auth runs, in the order they are tried,
//! a form that tries a request against them ("would Ann reach this address?"), and,
//! with `policies.write`, rules added after the configured ones and deleted again.
//! Reading needs `users.read`: the answer tells who may reach what. The test changes
//! nothing, so it is a GET; adding and deleting need a recent sign-in and CSRF, and
//! deleting asks first.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::access::permissions::Permission;
use crate::auth::access::policy::{RuleError, TestError};
use crate::domain::access::RuleSpec;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::form::{Pairs, field};
use crate::web::handlers::confirm::{self, Ask};
use crate::web::handlers::see_other;
use crate::web::views::{AdminPoliciesPage, NewRuleView, PolicyTestView, RuleView, render};

#[derive(Deserialize, Default)]
pub struct TestQuery {
    email: Option<String>,
    url: Option<String>,
    method: Option<String>,
    ip: Option<String>,
    done: Option<String>,
}

pub async fn show(ctx: Ctx, q: web::Query<TestQuery>) -> Result<HttpResponse, AppError> {
    let notice = match q.done.as_deref() {
        Some("added") => Some("The rule was added. It applies from the next request.".to_string()),
        Some("deleted") => Some("The rule was deleted.".to_string()),
        _ => None,
    };
    page(&ctx, q.into_inner(), NewRuleView::default(), notice, None).await
}

async fn page(
    ctx: &Ctx,
    q: TestQuery,
    new_rule: NewRuleView,
    notice: Option<String>,
    add_error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let admin = ctx.require_permission(Permission::UsersRead).await?;
    let policies = &ctx.state.forward.policies;
    policies.refresh().await?;
    let compiled = policies.current();
    let ids = policies.stored_ids();
    let first_stored = compiled.rules().len().saturating_sub(ids.len());
    let rules = compiled
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| RuleView {
            position: i + 1,
            name: r.name.clone(),
            matches: r.describe(),
            policy: r.policy.as_str(),
            id: i
                .checked_sub(first_stored)
                .and_then(|k| ids.get(k).cloned()),
        })
        .collect();
    let form = PolicyTestView {
        email: q.email.clone().unwrap_or_default(),
        url: q.url.clone().unwrap_or_default(),
        method: q.method.clone().unwrap_or_else(|| "GET".into()),
        ip: q.ip.clone().unwrap_or_default(),
    };
    let (mut status, mut result, mut error) = (StatusCode::OK, None, None);
    if add_error.is_some() {
        status = StatusCode::UNPROCESSABLE_ENTITY;
    }
    if !form.url.trim().is_empty() {
        let ip = match form.ip.trim() {
            "" => Ok(ctx.ip),
            s => s.parse().map_err(|_| format!("{s} is not an IP address.")),
        };
        let tried = match ip {
            Ok(ip) => policies
                .test(
                    &ctx.state.access,
                    Some(form.email.as_str()),
                    &form.url,
                    &form.method,
                    ip,
                )
                .await
                .map_err(|e| match e {
                    TestError::Internal(e) => Err(e),
                    e => Ok(e.to_string()),
                }),
            Err(m) => Err(Ok(m)),
        };
        match tried {
            Ok(e) => result = Some(e),
            Err(Ok(message)) => {
                status = StatusCode::UNPROCESSABLE_ENTITY;
                error = Some(message);
            }
            Err(Err(e)) => return Err(e.into()),
        }
    }
    Ok(render(
        status,
        &AdminPoliciesPage {
            chrome: ctx.chrome(),
            default_policy: compiled.default_policy().as_str(),
            rules,
            form,
            result,
            error,
            can_write: admin.perms.contains(&Permission::PoliciesWrite),
            new_rule,
            notice,
            add_error,
        },
    ))
}

/// A comma-separated field as a list (blank entries dropped).
fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

pub async fn add(ctx: Ctx, form: Pairs) -> Result<HttpResponse, AppError> {
    ctx.require_permission_recent(Permission::PoliciesWrite, "/admin/policies")
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let echo = NewRuleView {
        name: field(&form, "name").to_string(),
        domain: field(&form, "domain").to_string(),
        path: field(&form, "path").to_string(),
        path_regex: field(&form, "path_regex").to_string(),
        method: field(&form, "method").to_string(),
        network: field(&form, "network").to_string(),
        subject: field(&form, "subject").to_string(),
        policy: field(&form, "policy").to_string(),
    };
    let spec = RuleSpec {
        name: Some(echo.name.trim().to_string()).filter(|n| !n.is_empty()),
        domain: list(&echo.domain),
        path: list(&echo.path),
        // One expression: a regular expression may hold a comma.
        path_regex: Some(echo.path_regex.trim().to_string())
            .filter(|r| !r.is_empty())
            .into_iter()
            .collect(),
        method: list(&echo.method),
        network: list(&echo.network),
        subject: list(&echo.subject),
        policy: echo.policy.trim().to_string(),
    };
    match ctx.state.forward.policies.add(spec, &ctx.audit()).await {
        Ok(()) => Ok(see_other("/admin/policies?done=added")),
        Err(RuleError::Internal(e)) => Err(e.into()),
        Err(e) => page(&ctx, TestQuery::default(), echo, None, Some(e.to_string())).await,
    }
}

pub async fn delete(
    ctx: Ctx,
    path: web::Path<String>,
    form: Pairs,
) -> Result<HttpResponse, AppError> {
    ctx.require_permission_recent(Permission::PoliciesWrite, "/admin/policies")
        .await?;
    ctx.check_csrf(field(&form, "csrf_token"))?;
    let id = path.into_inner();
    let policies = &ctx.state.forward.policies;
    let Some(rule) = policies.stored_rule(&id).await? else {
        return Err(AppError::NotFound);
    };
    let message = format!(
        "The rule \"{}\" ({}; policy {}) stops applying from the next request: what it matched falls to the rules after it, or to the default.",
        rule.name,
        rule.describe(),
        rule.policy.as_str()
    );
    let ask = Ask {
        heading: "Delete this access rule?",
        message: &message,
        yes: "Yes, delete",
        fields: &[],
        cancel: "/admin/policies",
    };
    if let Some(page) = confirm::ask(&ctx, field(&form, "confirm"), ask) {
        return Ok(page);
    }
    match policies.delete(&id, &ctx.audit()).await {
        Ok(()) => Ok(see_other("/admin/policies?done=deleted")),
        Err(RuleError::Internal(e)) => Err(e.into()),
        Err(_) => Err(AppError::NotFound),
    }
}
