//! HTTP edge: extract and validate input, call the store through the domain rules, map errors.

pub mod accounts;
pub mod admin;
pub mod conversations;
pub mod docs;
pub mod error;
pub mod extract;
pub mod instances;
pub mod internal;
pub mod memory;
pub mod openapi;
pub mod orgs;
pub mod projects;
pub mod providers;
pub mod service;

use axum::Router;
use axum::routing::{delete, get, patch, post};

use crate::AppState;

/// Every control-plane route (health and metrics are added by `crate::router`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/docs", get(docs::page))
        .route("/assets/redoc.standalone.js", get(docs::redoc))
        .route("/v1/web/logout", post(accounts::logout))
        .route("/v1/account", get(accounts::account))
        .route("/v1/bootstrap", get(accounts::bootstrap))
        .route(
            "/v1/cloud-instances",
            post(instances::register).get(instances::list),
        )
        .route("/v1/cloud-instances/{id}", delete(instances::delete))
        .route("/v1/organizations", post(orgs::create).get(orgs::list))
        .route("/v1/organization", patch(orgs::update))
        .route("/v1/organization/active", post(orgs::set_active))
        .route("/v1/organization/members", get(orgs::members))
        .route(
            "/v1/organization/members/{user_id}",
            patch(orgs::update_member).delete(orgs::remove_member),
        )
        .route(
            "/v1/organization/invites",
            post(orgs::create_invite).get(orgs::invites),
        )
        .route("/v1/organization/invites/accept", post(orgs::accept_invite))
        .route(
            "/v1/organization/invites/{invite_id}",
            delete(orgs::revoke_invite),
        )
        .route("/v1/memory", get(memory::list).post(memory::create))
        .route("/v1/memory/search", get(memory::search))
        .route("/v1/memory/stats", get(memory::stats))
        .route(
            "/v1/memory/{id}",
            get(memory::get)
                .patch(memory::update)
                .delete(memory::delete),
        )
        .route("/v1/admin/users", get(admin::users))
        .route("/v1/admin/plans/{plan_id}", patch(admin::update_plan))
        .route("/v1/admin/users/{user_id}", patch(admin::update_user))
        .route(
            "/v1/admin/users/{user_id}/grant-subscription",
            post(admin::grant).delete(admin::revoke_grant),
        )
        .route(
            "/v1/organization/providers",
            post(providers::create).get(providers::list),
        )
        .route(
            "/v1/organization/providers/{id}",
            patch(providers::update).delete(providers::delete),
        )
        .route("/v1/projects", post(projects::create).get(projects::list))
        .route(
            "/v1/projects/{id}",
            get(projects::get)
                .patch(projects::update)
                .delete(projects::delete),
        )
        .route(
            "/v1/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route(
            "/v1/conversations/{id}",
            get(conversations::get)
                .patch(conversations::update)
                .delete(conversations::delete),
        )
        .route(
            "/v1/conversations/{id}/messages",
            get(conversations::messages).post(conversations::append),
        )
        .route(
            "/v1/internal/realtime/access",
            post(internal::realtime_access),
        )
        .route(
            "/v1/internal/realtime/audience",
            post(internal::realtime_audience),
        )
        .route(
            "/v1/internal/runtime/access",
            post(internal::runtime_access),
        )
        .route(
            "/v1/internal/runtime/session-access",
            post(internal::runtime_session_access),
        )
        .route("/v1/internal/memory/upsert", post(internal::memory_upsert))
        .route(
            "/v1/internal/conversations/{id}/messages",
            post(internal::append_transcript),
        )
}
