//! `/admin/audit` (filter, page, verify the chain), its exports, and `/account/activity`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::access::permissions::Permission;
use crate::auth::audit::{ChainVerdict, Filter};
use crate::domain::audit::AuditAction;
use crate::domain::export;
use crate::web::ctx::Ctx;
use crate::web::error::AppError;
use crate::web::handlers::admin::users::event_rows;
use crate::web::url_encode as enc;
use crate::web::views::{ActivityPage, AdminAuditPage, render};

const PAGE_SIZE: i64 = 50;
/// Rows per database round trip while exporting: memory stays flat however many match.
const EXPORT_BATCH: i64 = 500;

#[derive(Deserialize, Default, Clone)]
pub struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before: Option<i64>,
    #[serde(default)]
    format: String,
}

/// Midnight UTC of a `YYYY-MM-DD` date.
fn day(s: &str) -> Option<i64> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

impl AuditQuery {
    fn query_string(&self) -> String {
        format!(
            "user={}&event={}&outcome={}&ip={}&from={}&to={}",
            enc(&self.user),
            enc(&self.event),
            enc(&self.outcome),
            enc(&self.ip),
            enc(&self.from),
            enc(&self.to)
        )
    }

    /// The filter but for the user (given as typed: the audit log resolves an email).
    fn filter(&self) -> Filter {
        let nonempty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Filter {
            user_id: None,
            event: nonempty(&self.event),
            outcome: nonempty(&self.outcome),
            ip: nonempty(&self.ip),
            from: day(&self.from),
            to: day(&self.to).map(|t| t + 86_400),
        }
    }
}

async fn audit_page(
    ctx: &Ctx,
    q: &AuditQuery,
    verdict: Option<(String, bool)>,
) -> Result<HttpResponse, AppError> {
    let page = ctx
        .state
        .audit_log
        .search(&q.user, q.filter(), q.before, PAGE_SIZE)
        .await?;
    let next = page
        .next_before
        .map(|id| format!("{}&before={id}", q.query_string()));
    let events = event_rows(page.events);
    let (verdict, verdict_ok) = match verdict {
        Some((v, ok)) => (Some(v), ok),
        None => (None, true),
    };
    Ok(render(
        StatusCode::OK,
        &AdminAuditPage {
            chrome: ctx.chrome(),
            user: q.user.clone(),
            event: q.event.clone(),
            outcome: q.outcome.clone(),
            ip: q.ip.clone(),
            from: q.from.clone(),
            to: q.to.clone(),
            events,
            event_names: AuditAction::ALL.iter().map(|a| a.name()).collect(),
            filters: q.query_string(),
            next,
            verdict,
            verdict_ok,
        },
    ))
}

pub async fn show(ctx: Ctx, q: web::Query<AuditQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::AuditRead).await?;
    audit_page(&ctx, &q, None).await
}

pub async fn verify(ctx: Ctx) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::AuditRead).await?;
    let verdict = ctx.state.audit_log.verify().await?;
    let v = match verdict {
        ChainVerdict::Intact { events } => (
            format!("The audit log is intact: {events} events verified."),
            true,
        ),
        ChainVerdict::Broken { id, problem } => (
            format!("The audit log was altered at event {id}: {problem}."),
            false,
        ),
    };
    audit_page(&ctx, &AuditQuery::default(), Some(v)).await
}

/// The filtered events as CSV or JSON lines, newest first, streamed in batches.
pub async fn export(ctx: Ctx, q: web::Query<AuditQuery>) -> Result<HttpResponse, AppError> {
    ctx.require_permission(Permission::AuditRead).await?;
    let csv = match q.format.as_str() {
        "csv" => true,
        "jsonl" => false,
        _ => {
            return Err(AppError::BadRequest(
                "Choose an export format: csv or jsonl.".into(),
            ));
        }
    };
    let log = ctx.state.audit_log.clone();
    let filter = log.for_user(&q.user, q.filter()).await?;
    // State: (cursor, first batch?, finished?).
    let stream =
        futures_util::stream::unfold((None::<i64>, true, false), move |(before, first, done)| {
            let (log, filter) = (log.clone(), filter.clone());
            async move {
                if done {
                    return None;
                }
                let batch = match log.export_batch(filter, before, EXPORT_BATCH).await {
                    Ok(b) => b,
                    // Headers are gone already: end the body; the log has the cause.
                    Err(e) => {
                        tracing::error!(error = %e, "audit export failed");
                        return None;
                    }
                };
                let mut out = String::new();
                if first && csv {
                    out.push_str(&export::csv_header());
                }
                for e in &batch {
                    out.push_str(&if csv {
                        export::csv_row(&e.exported())
                    } else {
                        export::json_line(&e.exported())
                    });
                }
                let last = batch.last().map(|e| e.id);
                let finished = (batch.len() as i64) < EXPORT_BATCH;
                Some((
                    Ok::<_, actix_web::Error>(web::Bytes::from(out)),
                    (last.or(before), false, finished),
                ))
            }
        });
    let (mime, name) = if csv {
        ("text/csv; charset=utf-8", "audit.csv")
    } else {
        ("application/x-ndjson", "audit.jsonl")
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, mime))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .streaming(stream))
}

#[derive(Deserialize)]
pub struct ActivityQuery {
    before: Option<i64>,
}

/// `/account/activity`: the signed-in user's own events.
pub async fn activity(ctx: Ctx, q: web::Query<ActivityQuery>) -> Result<HttpResponse, AppError> {
    let u = ctx.require_user()?;
    let page = ctx
        .state
        .audit_log
        .activity(&u.uid, q.before, PAGE_SIZE)
        .await?;
    let next = page.next_before.map(|id| format!("before={id}"));
    let events = event_rows(page.events);
    Ok(render(
        StatusCode::OK,
        &ActivityPage {
            chrome: ctx.chrome(),
            events,
            next,
        },
    ))
}
