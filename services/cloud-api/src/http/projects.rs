//! Projects of the caller's organizations (the rules are in `app::projects`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};

use super::extract::Caller;
use crate::AppState;
use crate::app::projects::{self, *};
use crate::views::*;

#[utoipa::path(post, path = "/v1/projects", tag = "projects", security(("bearer" = [])),
    request_body = CreateProjectBody,
    responses((status = 201, body = ProjectResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateProjectBody>,
) -> Result<(StatusCode, Json<ProjectResponse>), ApiError> {
    projects::create(&state, &caller, body)
        .await
        .map(|r| (StatusCode::CREATED, Json(r)))
}

#[utoipa::path(get, path = "/v1/projects", tag = "projects", security(("bearer" = [])),
    params(ProjectListQuery),
    responses((status = 200, body = ProjectListResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ProjectListQuery>,
) -> Result<Json<ProjectListResponse>, ApiError> {
    projects::list(&state, &caller, q).await.map(Json)
}

#[utoipa::path(get, path = "/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ProjectResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProjectResponse>, ApiError> {
    projects::get(&state, &caller, &id).await.map(Json)
}

#[utoipa::path(patch, path = "/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateProjectBody,
    responses((status = 200, body = ProjectResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 403, description = "A member (not owner or admin) changing `workspaceCapability`", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateProjectBody>,
) -> Result<Json<ProjectResponse>, ApiError> {
    projects::update(&state, &caller, &id, body).await.map(Json)
}

/// Deletes a project with its conversations. Its creator or an owner/admin of the organization.
#[utoipa::path(delete, path = "/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OkBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, ApiError> {
    projects::delete(&state, &caller, &id).await.map(Json)
}
