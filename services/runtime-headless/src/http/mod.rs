//! HTTP edge: extract and validate, check the grant, call the store and the worker, map
//! errors. No SQL here.

mod sessions;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/runtime/sessions", post(sessions::acquire))
        .route(
            "/v1/runtime/sessions/{id}",
            get(sessions::snapshot).delete(sessions::stop),
        )
        .route(
            "/v1/runtime/sessions/{id}/commands",
            post(sessions::command),
        )
        .with_state(state)
}
