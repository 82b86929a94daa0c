//! Cloud instances: a desktop registers its own instance id, which then binds realtime and
//! runtime grants to that user.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};
use cloud_common::internal::validate_instance_id;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Caller, ListQuery, next_cursor};
use crate::AppState;
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::views::*;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RegisterInstanceBody {
    /// The desktop's own instance id: ASCII letters, digits, `-`, `_` and `.`.
    #[schema(required = true, nullable = false, pattern = "^[A-Za-z0-9._-]{1,200}$")]
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
    let name = rules::trimmed(body.name.as_deref()).unwrap_or_else(|| "Chatons Desktop".into());
    let name = rules::bounded(name, MAX_NAME, "name")?;
    let (status, inst) = match claim(&state, &caller.user.id, body.id.as_deref(), name).await? {
        Claim::Created(i) => (StatusCode::CREATED, i),
        Claim::Held(i) => (StatusCode::OK, i),
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
    // The same alphabet every service accepts for instance ids (so no stored id is refused).
    let id = cloud_common::internal::validate_instance_id(&id).map_err(ApiError::bad_request)?;
    if state
        .store
        .delete_instance(&caller.user.id, &InstanceId::from(id))
        .await?
    {
        Ok(Json(OkBody { ok: true }))
    } else {
        Err(ApiError::not_found("Cloud instance not found"))
    }
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

/// An instance the user may use.
#[derive(Debug)]
pub enum Claim {
    /// Registered to the user by this call.
    Created(Instance),
    /// Already theirs (registered before, or their canonical `instance-<userId>`).
    Held(Instance),
}

/// Registers the instance id `raw` to `user`, or confirms it is already theirs: what
/// `POST /v1/cloud-instances` does, and what a realtime or runtime grant does for an id it has
/// not seen (the shipped desktop never registers its locally generated id). 400 for an id
/// outside the safe alphabet, 409 when another user holds it (the canonical id of another user
/// included), 409 `instance_limit_reached` beyond `CHATONS_MAX_INSTANCES_PER_USER`.
pub async fn claim(
    state: &AppState,
    user: &UserId,
    raw: Option<&str>,
    name: String,
) -> Result<Claim, ApiError> {
    let id = validate_instance_id(raw.unwrap_or("")).map_err(ApiError::bad_request)?;
    let canonical = InstanceId::canonical(user);
    if id == canonical.0 {
        return Ok(Claim::Held(Instance {
            id: canonical,
            user_id: user.clone(),
            name: "Chatons Cloud".into(),
            created_at: now(),
        }));
    }
    if id.starts_with("instance-user-") {
        // Canonical ids of other users are reserved.
        return Err(taken());
    }
    let instance = Instance {
        id: InstanceId::from(id),
        user_id: user.clone(),
        name,
        created_at: now(),
    };
    if let Some(found) = state.store.instance(&instance.id).await? {
        // The common case of every later call: one lookup, no write.
        return if &found.user_id == user {
            Ok(Claim::Held(found))
        } else {
            Err(taken())
        };
    }
    let max = state.config.max_instances_per_user;
    match state.store.register_instance(&instance, max).await? {
        RegisterOutcome::Created(i) => {
            tracing::info!(instance = %i.id, user = %user, "Cloud instance registered.");
            Ok(Claim::Created(i))
        }
        RegisterOutcome::Existing(i) => Ok(Claim::Held(i)),
        RegisterOutcome::Taken => Err(taken()),
        RegisterOutcome::LimitReached => Err(ApiError::new(
            StatusCode::CONFLICT,
            "instance_limit_reached",
            format!(
                "This account already uses {max} desktop instances; remove one (DELETE /v1/cloud-instances/{{id}}) before adding another."
            ),
        )),
    }
}

fn taken() -> ApiError {
    ApiError::conflict("This instance id is registered by another user")
}
