//! HTTP edge: extract and validate, check the grant, call the store and the worker, map
//! errors. No SQL here.

mod commands;
mod sessions;
mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::AppState;

pub fn routes(state: AppState) -> Router {
    // Prompts carry images and files: the commands route takes larger bodies than the rest.
    let command_limit = state.config.max_command_bytes;
    Router::new()
        .route("/v1/runtime/sessions", post(sessions::acquire))
        .route(
            "/v1/runtime/sessions/{id}",
            get(sessions::snapshot).delete(sessions::stop),
        )
        .route(
            "/v1/runtime/sessions/{id}/commands",
            post(commands::command).layer(DefaultBodyLimit::max(command_limit)),
        )
        .with_state(state)
}
