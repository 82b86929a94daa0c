//! Wire types of realtime events, shared by the publisher (runtime-headless) and the fan-out
//! (cloud-realtime). Field names are the first system's, so existing desktops parse them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One event as stored, replayed and delivered. `seq` and `epoch` are assigned by
/// cloud-realtime when the event is published; producers leave them empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub payload: Value,
}

impl EventEnvelope {
    /// A new event with a fresh id and timestamp.
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            kind: kind.into(),
            ts: crate::time::now_iso(),
            seq: None,
            epoch: None,
            organization_id: None,
            project_id: None,
            conversation_id: None,
            payload,
        }
    }
}

/// `POST /v1/realtime/events` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    pub cloud_instance_id: String,
    pub event: EventEnvelope,
}

/// `POST /v1/realtime/events` answer (202).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishResponse {
    pub ok: bool,
    pub seq: u64,
}
