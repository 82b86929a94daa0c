//! `GET /` for browsers (chosen by `crate::dispatch`): what this server is, sign in / create an
//! account, and the links to discovery and the API reference. API clients get JSON instead.

use axum::http::header::{self, HeaderValue};

use super::*;

#[derive(Template)]
#[template(path = "portal/home.html")]
struct HomePage {
    signed_in: bool,
    csrf_token: String,
    version: String,
}

pub async fn home(state: &AppState, headers: &HeaderMap) -> Response {
    let ctx = Ctx::load(state, headers).await;
    let mut r = ctx.page(
        StatusCode::OK,
        &HomePage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            version: state.config.common.version.clone(),
        },
    );
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    r
}
