//! `POST /v1/realtime/events` (internal callers only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cloud_common::auth::InternalCaller;
use cloud_common::extract::ApiJson;
use cloud_common::realtime::{EventEnvelope, PublishResponse};
use cloud_common::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::Value;

use super::{broker_error, instance_param};
use crate::AppState;
use crate::hub::validate_envelope;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishBody {
    pub cloud_instance_id: Option<String>,
    pub event: Option<Value>,
}

pub async fn publish(
    _: InternalCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PublishBody>,
) -> ApiResult<(StatusCode, Json<PublishResponse>)> {
    let instance = instance_param(body.cloud_instance_id.as_deref())?;
    let mut event = match body.event {
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::bad_request("event must be a JSON object")),
        None => return Err(ApiError::bad_request("Missing event")),
    };
    event
        .entry("ts")
        .or_insert_with(|| Value::String(String::new()));
    let event: EventEnvelope = serde_json::from_value(Value::Object(event))
        .map_err(|e| ApiError::bad_request(format!("Invalid event: {e}")))?;
    let event = validate_envelope(event).map_err(ApiError::bad_request)?;
    let published = state
        .broker
        .publish(&instance, &event)
        .await
        .map_err(broker_error)?;
    state.realtime.events_published.inc();
    Ok((
        StatusCode::ACCEPTED,
        Json(PublishResponse {
            ok: true,
            seq: published.seq,
        }),
    ))
}
