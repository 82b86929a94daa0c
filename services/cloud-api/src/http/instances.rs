//! Cloud instances (the rules are in `app::instances`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloud_common::ApiError;
use cloud_common::extract::ApiJson;

use super::extract::{Caller, ListQuery};
use crate::AppState;
use crate::app::instances::{self, *};
use crate::views::*;

/// 201 when registered now, 200 when the caller already holds it, 409 when another user does.
#[utoipa::path(post, path = "/v1/cloud-instances", tag = "instances", security(("bearer" = [])),
    request_body = RegisterInstanceBody,
    responses((status = 201, body = InstanceResponse), (status = 200, body = InstanceResponse),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterInstanceBody>,
) -> Result<(StatusCode, Json<InstanceResponse>), ApiError> {
    instances::register(&state, &caller, body)
        .await
        .map(|(status, r)| (status, Json(r)))
        .map_err(ApiError::from)
}

/// Forgets one of the caller's instances (frees a place under the per-user limit).
#[utoipa::path(delete, path = "/v1/cloud-instances/{id}", tag = "instances",
    security(("bearer" = [])),
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._-]{1,200}$", max_length = 200,
            description = "The desktop's instance id: letters, digits, `-`, `_`, `.`")),
    responses((status = 200, body = OkBody), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, ApiError> {
    instances::delete(&state, &caller, &id)
        .await
        .map(Json)
        .map_err(ApiError::from)
}

json_routes! { tag = "instances";
    list: get "/v1/cloud-instances" [query ListQuery;]
        -> 200 InstanceListResponse [400, 401] => instances::list;
}
