//! A test-only realtime publish sink: records `POST /v1/realtime/events` bodies in order and
//! answers like cloud-realtime (`202 {"ok":true,"seq":n}`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct EventSink {
    pub url: String,
    events: Arc<Mutex<Vec<Value>>>,
}

#[derive(Clone)]
struct SinkState {
    token: String,
    events: Arc<Mutex<Vec<Value>>>,
}

impl EventSink {
    pub async fn start(token: &str) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/realtime/events", post(publish))
            .with_state(SinkState {
                token: token.to_owned(),
                events: events.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/realtime/events",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, events }
    }

    /// Inner events (`payload.event`) of one conversation, in publish order.
    pub fn conversation(&self, conversation_id: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"]["conversationId"] == conversation_id)
            .map(|e| e["event"]["payload"]["event"].clone())
            .collect()
    }

    /// Waits (bounded) until `pred` holds for the conversation's events; panics with them.
    pub async fn wait_for(
        &self,
        conversation_id: &str,
        within: Duration,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let events = self.conversation(conversation_id);
            if pred(&events) {
                return events;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {within:?} waiting for {what}; events: {:#?}",
                    events
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn publish(
    State(st): State<SinkState>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", st.token) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "unauthorized"})),
        );
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut events = st.events.lock().unwrap();
    events.push(body);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"ok": true, "seq": events.len()})),
    )
}

/// Count of events of one inner type.
pub fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

/// Concatenated text deltas.
pub fn text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| {
            e["type"] == "message_update" && e["assistantMessageEvent"]["type"] == "text_delta"
        })
        .filter_map(|e| e["assistantMessageEvent"]["delta"].as_str())
        .collect()
}
