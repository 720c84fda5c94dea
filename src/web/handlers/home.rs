use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use crate::web::ctx::Ctx;
use crate::web::handlers::see_other;
use crate::web::views::{HomePage, render};

pub async fn get(ctx: Ctx) -> HttpResponse {
    if ctx.user.is_some() {
        return see_other("/account");
    }
    render(
        StatusCode::OK,
        &HomePage {
            chrome: ctx.chrome(),
            registration_open: ctx.state.sign_in.registration_open().await,
        },
    )
}
