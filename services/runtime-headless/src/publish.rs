//! Publishing `conversation.event` envelopes to cloud-realtime
//! (`POST {CHATONS_REALTIME_PUBLISH_URL}`, internal token). A failed publish is logged and
//! dropped after a retry: it never fails a turn or crashes the process.

use std::time::Duration;

use cloud_common::Secret;
use cloud_common::realtime::{EventEnvelope, PublishRequest};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use url::Url;

use crate::domain::Session;

/// Inner event names (`payload.event.type`) published by this service.
pub mod names {
    pub const RUNTIME_STATUS: &str = "runtime_status";
    pub const MESSAGE_UPDATE: &str = "message_update";
    pub const AGENT_END: &str = "agent_end";
    pub const RUNTIME_ERROR: &str = "runtime_error";
    pub const TURN_FAILED: &str = "turn_failed";
    pub const TURN_RETRIED: &str = "turn_retried";
    pub const TURN_QUEUED: &str = "turn_queued";
}

#[derive(Clone)]
pub struct Publisher {
    url: Url,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl Publisher {
    pub fn new(url: Url, token: Option<Secret>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { url, token, http }
    }

    /// One publish, retried once; errors are logged.
    pub async fn publish(&self, cloud_instance_id: &str, event: EventEnvelope) -> bool {
        let body = PublishRequest {
            cloud_instance_id: cloud_instance_id.to_owned(),
            event,
        };
        for attempt in 0..2 {
            let mut req = self.http.post(self.url.clone()).json(&body);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t.expose());
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return true,
                Ok(r) => {
                    tracing::warn!(
                        status = r.status().as_u16(),
                        attempt,
                        "Realtime publish refused."
                    );
                    if r.status().is_client_error() {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e.without_url(), attempt, "Realtime publish failed.")
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Publishes a session event in the background (status changes outside a turn).
    pub fn spawn_event(&self, session: &Session, event: Value) {
        let this = self.clone();
        let envelope = conversation_event(session, event);
        let instance = session.cloud_instance_id.clone();
        tokio::spawn(async move {
            this.publish(&instance, envelope).await;
        });
    }

    /// An ordered lane for one turn: events leave in the order they were queued.
    pub fn lane(&self, cloud_instance_id: String) -> Lane {
        let (tx, mut rx) = mpsc::channel::<EventEnvelope>(4096);
        let this = self.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                this.publish(&cloud_instance_id, event).await;
            }
        });
        Lane { tx, task }
    }
}

pub struct Lane {
    tx: mpsc::Sender<EventEnvelope>,
    task: tokio::task::JoinHandle<()>,
}

impl Lane {
    pub async fn send(&self, event: EventEnvelope) {
        if self.tx.send(event).await.is_err() {
            tracing::warn!("Realtime lane closed; event dropped.");
        }
    }

    /// Waits (bounded) until everything queued was published.
    pub async fn finish(self) {
        drop(self.tx);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// The reference's envelope: `conversation.event` with the session's audience and the inner
/// event under `payload.event`.
pub fn conversation_event(session: &Session, event: Value) -> EventEnvelope {
    let mut e = EventEnvelope::new("conversation.event", json!({ "event": event }));
    e.organization_id = session.organization_id.clone();
    e.project_id = session.project_id.clone();
    e.conversation_id = Some(session.conversation_id.clone());
    e
}

pub fn runtime_status(status: &str, message: &str, session_id: &str) -> Value {
    json!({
        "type": names::RUNTIME_STATUS,
        "status": status,
        "message": message,
        "sessionId": session_id,
    })
}
