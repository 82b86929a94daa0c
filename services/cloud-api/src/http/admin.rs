//! Global administration: users, plans and complimentary grants (the rules are in
//! `app::admin`).

use axum::Json;
use axum::extract::{Path, State};
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};

use super::extract::{Caller, ListQuery};
use crate::AppState;
use crate::app::admin::{self, *};
use crate::views::*;

#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = AdminUsersResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<AdminUsersResponse>, ApiError> {
    admin::users(&state, &caller, q).await.map(Json)
}

#[utoipa::path(patch, path = "/v1/admin/plans/{planId}", tag = "admin", security(("bearer" = [])),
    params(("planId" = String, Path)), request_body = PlanPatchBody,
    responses((status = 200, body = AdminPlansResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(plan_id): Path<String>,
    ApiJson(body): ApiJson<PlanPatchBody>,
) -> Result<Json<AdminPlansResponse>, ApiError> {
    admin::update_plan(&state, &caller, &plan_id, body)
        .await
        .map(Json)
}

#[utoipa::path(patch, path = "/v1/admin/users/{userId}", tag = "admin", security(("bearer" = [])),
    params(("userId" = String, Path)), request_body = UserPatchBody,
    responses((status = 200, body = AdminUserResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<UserPatchBody>,
) -> Result<Json<AdminUserResponse>, ApiError> {
    admin::update_user(&state, &caller, &user_id, body)
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/admin/users/{userId}/grant-subscription", tag = "admin",
    security(("bearer" = [])), params(("userId" = String, Path)), request_body = GrantBody,
    responses((status = 200, body = AdminUserResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<Json<AdminUserResponse>, ApiError> {
    admin::grant(&state, &caller, &user_id, body)
        .await
        .map(Json)
}

/// Revokes the complimentary grant (the first system had no way to).
#[utoipa::path(delete, path = "/v1/admin/users/{userId}/grant-subscription", tag = "admin",
    security(("bearer" = [])), params(("userId" = String, Path)),
    responses((status = 200, body = AdminUserResponse), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn revoke_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<AdminUserResponse>, ApiError> {
    admin::revoke_grant(&state, &caller, &user_id)
        .await
        .map(Json)
}
