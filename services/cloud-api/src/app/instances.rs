//! Cloud instances: a desktop registers its own instance id, which then binds realtime and
//! runtime grants to that user.

use axum::http::StatusCode;
use cloud_common::internal::validate_instance_id;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::paging::{ListQuery, page_views};
use crate::views::*;
use crate::web::caller::Caller;

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

page_response! { InstanceListResponse { cloud_instances: CloudInstanceView } }

/// A registered instance as the API shows it.
pub fn registered_view(state: &AppState, i: &Instance) -> CloudInstanceView {
    instance_view(&state.config, i.id.as_str(), &i.name, Some(i.created_at))
}

/// Registers the caller's instance: 201 when registered now, 200 when the caller already holds
/// it (see [`claim`]).
pub async fn register(
    state: &AppState,
    caller: &Caller,
    body: RegisterInstanceBody,
) -> Result<(StatusCode, InstanceResponse), DomainError> {
    let name = rules::trimmed(body.name.as_deref()).unwrap_or_else(|| "Chatons Desktop".into());
    let name = rules::bounded(name, MAX_NAME, "name")?;
    let (status, inst) = match claim(state, &caller.user.id, body.id.as_deref(), name).await? {
        Claim::Created(i) => (StatusCode::CREATED, i),
        Claim::Held(i) => (StatusCode::OK, i),
    };
    Ok((
        status,
        InstanceResponse {
            cloud_instance: registered_view(state, &inst),
        },
    ))
}

/// Forgets one of the caller's instances (frees a place under the per-user limit).
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<OkBody, DomainError> {
    // The same alphabet every service accepts for instance ids (so no stored id is refused).
    let id = validate_instance_id(id).map_err(DomainError::invalid)?;
    if state
        .store
        .delete_instance(&caller.user.id, &InstanceId::from(id))
        .await?
    {
        Ok(OkBody { ok: true })
    } else {
        Err(DomainError::NotFound("Cloud instance not found"))
    }
}

pub async fn list(
    state: &AppState,
    caller: &Caller,
    q: ListQuery,
) -> Result<InstanceListResponse, DomainError> {
    let page = state
        .store
        .instances_of(&caller.user.id, &q.page()?)
        .await?;
    Ok(page_views(&page, |i| registered_view(state, i)).into())
}

/// Whether `user` holds `instance` (their canonical `instance-<userId>`, never stored, or one
/// registered to them).
pub async fn holds(state: &AppState, user: &UserId, instance: &str) -> Result<bool, DomainError> {
    Ok(InstanceId::canonical(user).0 == instance
        || state
            .store
            .instance(&InstanceId::from(instance))
            .await?
            .is_some_and(|i| &i.user_id == user))
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
) -> Result<Claim, DomainError> {
    let id = validate_instance_id(raw.unwrap_or("")).map_err(DomainError::invalid)?;
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
        RegisterOutcome::LimitReached => Err(DomainError::Refused {
            code: "instance_limit_reached",
            message: format!(
                "This account already uses {max} desktop instances; remove one (DELETE /v1/cloud-instances/{{id}}) before adding another."
            ),
        }),
    }
}

fn taken() -> DomainError {
    DomainError::conflict("This instance id is registered by another user")
}
