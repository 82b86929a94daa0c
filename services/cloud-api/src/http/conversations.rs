//! Conversations and their transcripts (the rules are in `app::conversations`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};

use super::extract::Caller;
use crate::AppState;
use crate::app::conversations::{self, *};
use crate::views::*;

#[utoipa::path(post, path = "/v1/conversations", tag = "conversations", security(("bearer" = [])),
    request_body = CreateConversationBody,
    responses((status = 201, body = ConversationResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateConversationBody>,
) -> Result<(StatusCode, Json<ConversationResponse>), ApiError> {
    conversations::create(&state, &caller, body)
        .await
        .map(|r| (StatusCode::CREATED, Json(r)))
}

#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", security(("bearer" = [])),
    params(ConversationListQuery),
    responses((status = 200, body = ConversationListResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ConversationListQuery>,
) -> Result<Json<ConversationListResponse>, ApiError> {
    conversations::list(&state, &caller, q).await.map(Json)
}

#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ConversationResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConversationResponse>, ApiError> {
    conversations::get(&state, &caller, &id).await.map(Json)
}

#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateConversationBody,
    responses((status = 200, body = ConversationResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateConversationBody>,
) -> Result<Json<ConversationResponse>, ApiError> {
    conversations::update(&state, &caller, &id, body)
        .await
        .map(Json)
}

#[utoipa::path(delete, path = "/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OkBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, ApiError> {
    conversations::delete(&state, &caller, &id).await.map(Json)
}

#[utoipa::path(get, path = "/v1/conversations/{id}/messages", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path), MessageListQuery),
    responses((status = 200, body = MessagesResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MessageListQuery>,
) -> Result<Json<MessagesResponse>, ApiError> {
    conversations::messages(&state, &caller, &id, q)
        .await
        .map(Json)
}

/// Appends messages (never replaces the transcript); a message id already present is skipped.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = AppendBody,
    responses((status = 200, body = AppendResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn append(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AppendBody>,
) -> Result<Json<AppendResponse>, ApiError> {
    conversations::append(&state, &caller, &id, body)
        .await
        .map(Json)
}
