//! LLM provider configurations of an organization. Secrets are sealed with AES-256-GCM before

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};

use super::extract::Caller;
use crate::AppState;
use crate::app::providers::{self, *};
use crate::views::*;

#[utoipa::path(post, path = "/v1/organization/providers", tag = "providers", security(("bearer" = [])),
    request_body = CreateProviderBody,
    responses((status = 201, body = ProviderCreatedResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateProviderBody>,
) -> Result<(StatusCode, Json<ProviderCreatedResponse>), ApiError> {
    providers::create(&state, &caller, body)
        .await
        .map(|r| (StatusCode::CREATED, Json(r)))
}

#[utoipa::path(get, path = "/v1/organization/providers", tag = "providers", security(("bearer" = [])),
    params(OrgListQuery),
    responses((status = 200, body = ProviderListResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OrgListQuery>,
) -> Result<Json<ProviderListResponse>, ApiError> {
    providers::list(&state, &caller, q).await.map(Json)
}

#[utoipa::path(patch, path = "/v1/organization/providers/{id}", tag = "providers",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateProviderBody,
    responses((status = 200, body = ProviderResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateProviderBody>,
) -> Result<Json<ProviderResponse>, ApiError> {
    providers::update(&state, &caller, id, body).await.map(Json)
}

#[utoipa::path(delete, path = "/v1/organization/providers/{id}", tag = "providers",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OkBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, ApiError> {
    providers::delete(&state, &caller, id).await.map(Json)
}
