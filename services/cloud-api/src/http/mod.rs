//! HTTP edge of the JSON API: extract and validate input, call one application function (`app/`),
//! answer its result or its error.

#[macro_use]
mod table;

pub mod accounts;
pub mod admin;
pub mod conversations;
pub mod docs;
pub mod email_links;
pub mod error;
pub mod extract;
pub mod instances;
pub mod internal;
pub mod memory;
pub mod openapi;
pub mod orgs;
pub mod projects;
pub mod providers;
pub mod self_service;
pub mod service;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::AppState;

/// Every control-plane route (health and metrics are added by `crate::router`). The tables
/// bring their own routes; the handlers written out by hand are routed here.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/docs", get(docs::page))
        .route("/assets/redoc.standalone.js", get(docs::redoc))
        .route("/v1/cloud-instances", post(instances::register))
        .route("/v1/cloud-instances/{id}", delete(instances::delete))
        .merge(accounts::routes())
        .merge(self_service::routes())
        .merge(self_service::links::routes())
        .merge(email_links::routes())
        .merge(instances::routes())
        .merge(orgs::routes())
        .merge(memory::routes())
        .merge(admin::routes())
        .merge(providers::routes())
        .merge(projects::routes())
        .merge(conversations::routes())
        .merge(internal::routes())
}
