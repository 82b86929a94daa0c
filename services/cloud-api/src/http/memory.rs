//! Memories (the rules are in `app::memory`).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};

use super::extract::Caller;
use crate::AppState;
use crate::app::memory::{self, *};
use crate::views::*;

#[utoipa::path(post, path = "/v1/memory", tag = "memory", security(("bearer" = [])),
    request_body = MemoryInput,
    responses((status = 201, body = MemoryItemResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<MemoryInput>,
) -> Result<(StatusCode, Json<MemoryItemResponse>), ApiError> {
    memory::create(&state, &caller, input)
        .await
        .map(|r| (StatusCode::CREATED, Json(r)))
}

#[utoipa::path(get, path = "/v1/memory", tag = "memory", security(("bearer" = [])),
    params(MemoryListQuery),
    responses((status = 200, body = MemoryListResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<MemoryListQuery>,
) -> Result<Json<MemoryListResponse>, ApiError> {
    memory::list(&state, &caller, q).await.map(Json)
}

#[utoipa::path(get, path = "/v1/memory/search", tag = "memory", security(("bearer" = [])),
    params(MemorySearchQuery),
    responses((status = 200, body = MemorySearchResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<MemorySearchResponse>, ApiError> {
    memory::search(&state, &caller, raw.as_deref())
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/memory/stats", tag = "memory", security(("bearer" = [])),
    params(MemoryListQuery),
    responses((status = 200, body = MemoryStatsResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<MemoryListQuery>,
) -> Result<Json<MemoryStatsResponse>, ApiError> {
    memory::stats(&state, &caller, q).await.map(Json)
}

/// Reads a memory and counts the use (`timesUsed`, `lastUsedAt`).
#[utoipa::path(get, path = "/v1/memory/{id}", tag = "memory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = MemoryItemResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MemoryItemResponse>, ApiError> {
    memory::get(&state, &caller, &id).await.map(Json)
}

#[utoipa::path(patch, path = "/v1/memory/{id}", tag = "memory", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = MemoryPatch,
    responses((status = 200, body = MemoryItemResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(p): ApiJson<MemoryPatch>,
) -> Result<Json<MemoryItemResponse>, ApiError> {
    memory::update(&state, &caller, &id, p).await.map(Json)
}

#[utoipa::path(delete, path = "/v1/memory/{id}", tag = "memory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OkBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, ApiError> {
    memory::delete(&state, &caller, &id).await.map(Json)
}
