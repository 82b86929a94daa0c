//! Internal endpoints for cloud-realtime and runtime-headless (service token, constant-time;
//! the grants are in `app::grants`).

use axum::Json;
use axum::extract::{Path, State};
use cloud_common::ApiError;
use cloud_common::auth::InternalCaller;
use cloud_common::extract::ApiJson;
use cloud_common::internal::*;

use crate::AppState;
use crate::app::grants::{self, TranscriptBody};
use crate::app::memory::{self, MemoryItemResponse, MemoryUpsertBody};

#[tracing::instrument(skip_all)]
pub async fn realtime_access(
    _: InternalCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RealtimeAccessRequest>,
) -> Result<Json<RealtimeAccess>, ApiError> {
    grants::realtime_access(&state, body).await.map(Json)
}

/// cloud-realtime re-checks each open socket with this (it holds no access token).
#[tracing::instrument(skip_all)]
pub async fn realtime_audience(
    _: InternalCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RealtimeAudienceRequest>,
) -> Result<Json<RealtimeAccess>, ApiError> {
    grants::realtime_audience(&state, body).await.map(Json)
}

/// runtime-headless asks this before it serves a snapshot without an access token.
#[tracing::instrument(skip_all)]
pub async fn runtime_session_access(
    _: InternalCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RuntimeSessionAccessRequest>,
) -> Result<Json<RuntimeSessionAccess>, ApiError> {
    grants::runtime_session_access(&state, body).await.map(Json)
}

#[tracing::instrument(skip_all)]
pub async fn runtime_access(
    _: InternalCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RuntimeAccessRequest>,
) -> Result<Json<RuntimeGrant>, ApiError> {
    grants::runtime_access(&state, body).await.map(Json)
}

/// Appends to a transcript on behalf of `userId` (who must see the conversation).
#[tracing::instrument(skip_all)]
pub async fn append_transcript(
    _: InternalCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TranscriptBody>,
) -> Result<Json<TranscriptAppendResponse>, ApiError> {
    grants::append_transcript(&state, &id, body).await.map(Json)
}

/// Upserts a memory as `userId`, who must be a member of `organizationId`.
#[tracing::instrument(skip_all)]
pub async fn memory_upsert(
    _: InternalCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MemoryUpsertBody>,
) -> Result<Json<MemoryItemResponse>, ApiError> {
    memory::upsert_for(&state, body).await.map(Json)
}
