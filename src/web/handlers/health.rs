use actix_web::{HttpResponse, web};

use crate::web::state::AppState;

/// 200 while the process runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// 200 only when the database (and Redis, when configured) answer.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.health.database_ready().await;
    let redis = state.sessions.state.ping().await;
    let body = format!(
        "database: {}\nredis: {}\n",
        if db { "ok" } else { "unavailable" },
        if !state.sessions.state.is_redis() {
            "not configured"
        } else if redis {
            "ok"
        } else {
            "unavailable"
        }
    );
    if db && redis {
        HttpResponse::Ok().content_type("text/plain").body(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(body)
    }
}
