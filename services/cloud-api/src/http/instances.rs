//! Cloud instances: a desktop registers its own instance id, which then binds realtime and
//! runtime grants to that user.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Caller, ListQuery, next_cursor};
use super::views::*;
use crate::AppState;
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RegisterInstanceBody {
    /// The desktop's own instance id (printable ASCII, no slashes).
    #[schema(required = true, pattern = "^[!-.0-\\[\\]-~]{1,200}$")]
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceResponse {
    pub cloud_instance: CloudInstanceView,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceListResponse {
    pub cloud_instances: Vec<CloudInstanceView>,
    pub next_cursor: Option<String>,
}

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
    let id = rules::validate_client_id(body.id.as_deref().unwrap_or(""), "id")?;
    let name = rules::trimmed(body.name.as_deref()).unwrap_or_else(|| "Chatons Desktop".into());
    let name = rules::bounded(name, MAX_NAME, "name")?;
    let canonical = InstanceId::canonical(&caller.user.id);
    if id.starts_with("instance-user-") && id != canonical.0 {
        // Canonical ids of other users are reserved.
        return Err(ApiError::conflict(
            "This instance id is registered by another user",
        ));
    }
    let instance = Instance {
        id: InstanceId(id),
        user_id: caller.user.id.clone(),
        name,
        created_at: now(),
    };
    let (status, inst) = match state.store.register_instance(&instance).await? {
        RegisterOutcome::Created(i) => (StatusCode::CREATED, i),
        RegisterOutcome::Existing(i) => (StatusCode::OK, i),
        RegisterOutcome::Taken => {
            return Err(ApiError::conflict(
                "This instance id is registered by another user",
            ));
        }
    };
    Ok((
        status,
        Json(InstanceResponse {
            cloud_instance: instance_view(
                &state.config,
                inst.id.as_str(),
                &inst.name,
                Some(inst.created_at),
            ),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/cloud-instances", tag = "instances", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = InstanceListResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<InstanceListResponse>, ApiError> {
    let page = state
        .store
        .instances_of(&caller.user.id, &q.page()?)
        .await?;
    Ok(Json(InstanceListResponse {
        cloud_instances: page
            .items
            .iter()
            .map(|i| instance_view(&state.config, i.id.as_str(), &i.name, Some(i.created_at)))
            .collect(),
        next_cursor: next_cursor(&page),
    }))
}

/// Whether `instance` may be used by `user`: registered by them, or their canonical id.
pub async fn instance_allowed(
    state: &AppState,
    user: &UserId,
    instance: &str,
) -> Result<bool, ApiError> {
    if instance == InstanceId::canonical(user).0 {
        return Ok(true);
    }
    Ok(matches!(
        state.store.instance(&InstanceId::from(instance)).await?,
        Some(i) if &i.user_id == user
    ))
}
