//! The HTTP edge: extract, validate, map errors. Domain rules live in `hub`, storage and
//! fan-out in `broker`.

pub mod access;
pub mod peer;
pub mod publish;
pub mod replay;
pub mod token;
pub mod upgrade;
pub mod ws;

use axum::Router;
use axum::routing::{get, post};
use cloud_common::ApiError;
use cloud_common::auth::BearerToken;
use cloud_common::internal::{InternalCallError, RealtimeAccess, RealtimeAccessRequest};

use crate::AppState;
use crate::broker::BrokerError;
use crate::hub::validate_instance_id;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/realtime/token", get(token::token))
        .route("/v1/realtime/replay", get(replay::replay))
        .route("/v1/realtime/events", post(publish::publish))
        .route("/ws", get(ws::ws))
        .with_state(state)
}

/// The `cloudInstanceId` query parameter, checked.
pub(crate) fn instance_param(raw: Option<&str>) -> Result<String, ApiError> {
    validate_instance_id(raw.unwrap_or(""))
        .map(str::to_owned)
        .map_err(ApiError::bad_request)
}

/// Asks cloud-api whether the bearer's user may watch the instance.
pub(crate) async fn check_access(
    state: &AppState,
    bearer: &BearerToken,
    instance: &str,
) -> Result<RealtimeAccess, ApiError> {
    let request = RealtimeAccessRequest {
        access_token: bearer.0.expose().to_owned(),
        cloud_instance_id: instance.to_owned(),
    };
    match state.cloud_api.realtime_access(&request).await {
        Ok(Some(access)) if access.cloud_instance_id == instance => Ok(access),
        Ok(Some(access)) => {
            tracing::warn!(
                asked = %instance,
                granted = %access.cloud_instance_id,
                "cloud-api granted another instance than the one asked; denied."
            );
            Err(denied())
        }
        Ok(None) => Err(denied()),
        Err(InternalCallError::Unreachable(e)) => {
            tracing::warn!(error = %e, "cloud-api is unreachable.");
            Err(ApiError::unavailable(
                "The access service is unavailable; retry later.",
            ))
        }
        Err(InternalCallError::Status { status, body }) => {
            tracing::warn!(status, %body, "cloud-api failed the realtime access check.");
            Err(ApiError::unavailable(
                "The access service is unavailable; retry later.",
            ))
        }
        Err(e @ InternalCallError::Decode(_)) => Err(ApiError::internal(e)),
    }
}

fn denied() -> ApiError {
    ApiError::forbidden("Realtime access denied")
}

pub(crate) fn broker_error(e: BrokerError) -> ApiError {
    match e {
        BrokerError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "Realtime store unavailable.");
            ApiError::unavailable("The realtime store is unavailable; retry later.")
                .with_field("retryable", true)
        }
        other => ApiError::internal(other),
    }
}
