//! `/admin/policies`: the access rules forward auth runs, in the order they are tried,
//! and a form that tries a request against them ("would Ann reach this address?").
//! Reading them needs `users.read`: the answer tells who may reach what. The form
//! changes nothing, so it is a GET.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::access::permissions::Permission;
use crate::auth::access::policy::TestError;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::views::{AdminPoliciesPage, PolicyTestView, RuleView, render};

#[derive(Deserialize)]
pub struct TestQuery {
    email: Option<String>,
    url: Option<String>,
    method: Option<String>,
    ip: Option<String>,
}

pub async fn show(ctx: Ctx, q: web::Query<TestQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::UsersRead).await?;
    let policies = &ctx.state.forward.policies;
    let compiled = policies.current();
    let rules = compiled
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| RuleView {
            position: i + 1,
            name: r.name.clone(),
            matches: r.describe(),
            policy: r.policy.as_str(),
        })
        .collect();
    let form = PolicyTestView {
        email: q.email.clone().unwrap_or_default(),
        url: q.url.clone().unwrap_or_default(),
        method: q.method.clone().unwrap_or_else(|| "GET".into()),
        ip: q.ip.clone().unwrap_or_default(),
    };
    let (mut status, mut result, mut error) = (StatusCode::OK, None, None);
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
        },
    ))
}
