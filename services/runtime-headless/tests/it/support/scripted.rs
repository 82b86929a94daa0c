//! A scripted model server for agent tests (test code only), speaking both real streaming wires:
//! OpenAI-compatible chat completions (`POST /v1/chat/completions`) and Anthropic Messages
//! (`POST /v1/messages`). A test registers a script under a model name; the n-th request for
//! that model streams the n-th step (the last step repeats). Every request body is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One answer.
#[derive(Debug, Clone)]
pub enum Step {
    /// Text in pieces, `delay_ms` apart.
    Text { chunks: Vec<String>, delay_ms: u64 },
    /// Optional thinking (Anthropic only) and text, then tool calls (name, arguments).
    Tools {
        thinking: Option<String>,
        text: Option<String>,
        calls: Vec<(String, Value)>,
    },
    /// An HTTP error with the wire's error body.
    Fail(u16),
}

impl Step {
    pub fn text(chunks: &[&str], delay_ms: u64) -> Self {
        Self::Text {
            chunks: chunks.iter().map(|s| s.to_string()).collect(),
            delay_ms,
        }
    }

    /// A long answer: `n` words, `delay_ms` apart.
    pub fn slow(n: usize, delay_ms: u64) -> Self {
        Self::Text {
            chunks: (0..n).map(|i| format!("w{i} ")).collect(),
            delay_ms,
        }
    }

    pub fn tool(name: &str, args: Value) -> Self {
        Self::Tools {
            thinking: None,
            text: None,
            calls: vec![(name.to_owned(), args)],
        }
    }
}

#[derive(Clone, Default)]
struct Shared {
    scripts: Arc<Mutex<HashMap<String, Vec<Step>>>>,
    served: Arc<Mutex<HashMap<String, usize>>>,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
}

#[derive(Clone)]
pub struct ScriptedProvider {
    pub base: String,
    shared: Shared,
}

impl ScriptedProvider {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, shared }
    }

    pub fn script(&self, model: &str, steps: Vec<Step>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .insert(model.to_owned(), steps);
    }

    /// Request bodies for `model`, in arrival order.
    pub fn requests(&self, model: &str) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == model)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

fn next_step(shared: &Shared, body: &Value) -> Option<Step> {
    let model = body["model"].as_str().unwrap_or("").to_owned();
    shared
        .requests
        .lock()
        .unwrap()
        .push((model.clone(), body.clone()));
    let scripts = shared.scripts.lock().unwrap();
    let steps = scripts.get(&model)?;
    let mut served = shared.served.lock().unwrap();
    let n = served.entry(model).or_insert(0);
    let step = steps.get(*n).or(steps.last()).cloned();
    *n += 1;
    step
}

fn sse_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn failure(status: u16) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"type": "error", "error": {"type": "scripted", "message": format!("scripted failure {status}")}})
                .to_string(),
        ))
        .unwrap()
}

fn split_args(args: &Value) -> Vec<String> {
    let text = args.to_string();
    let mid = text.len() / 2;
    let mut cut = mid;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    vec![text[..cut].to_owned(), text[cut..].to_owned()]
}

async fn openai(State(shared): State<Shared>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let step = next_step(&shared, &body).unwrap_or_else(|| Step::text(&["no script"], 0));
    if let Step::Fail(status) = step {
        return failure(status);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let send = |v: Value| {
            let tx = tx.clone();
            async move { tx.send(Bytes::from(format!("data: {v}\n\n"))).await.is_ok() }
        };
        let finish = match step {
            Step::Text { chunks, delay_ms } => {
                for c in chunks {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    if !send(json!({"choices": [{"index": 0, "delta": {"content": c}}]})).await {
                        return;
                    }
                }
                "stop"
            }
            Step::Tools { text, calls, .. } => {
                if let Some(t) = text {
                    send(json!({"choices": [{"index": 0, "delta": {"content": t}}]})).await;
                }
                for (i, (name, args)) in calls.iter().enumerate() {
                    let id = format!("call_{}", uuid::Uuid::new_v4().simple());
                    send(json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                        {"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}
                    ]}}]}))
                    .await;
                    for piece in split_args(args) {
                        send(json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                            {"index": i, "function": {"arguments": piece}}
                        ]}}]}))
                        .await;
                    }
                }
                "tool_calls"
            }
            Step::Fail(_) => return,
        };
        send(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})).await;
        send(json!({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20}}))
            .await;
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    sse_response(rx)
}

async fn emit(tx: &mpsc::Sender<Bytes>, name: &str, v: Value) -> bool {
    tx.send(Bytes::from(format!("event: {name}\ndata: {v}\n\n")))
        .await
        .is_ok()
}

/// One content block: its start, its deltas (`delay_ms` apart), its stop.
async fn block(
    tx: &mpsc::Sender<Bytes>,
    index: usize,
    content_block: Value,
    deltas: Vec<Value>,
    delay_ms: u64,
) -> bool {
    let start =
        json!({"type": "content_block_start", "index": index, "content_block": content_block});
    if !emit(tx, "content_block_start", start).await {
        return false;
    }
    for delta in deltas {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let d = json!({"type": "content_block_delta", "index": index, "delta": delta});
        if !emit(tx, "content_block_delta", d).await {
            return false;
        }
    }
    emit(
        tx,
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    )
    .await
}

async fn anthropic(State(shared): State<Shared>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let step = next_step(&shared, &body).unwrap_or_else(|| Step::text(&["no script"], 0));
    if let Step::Fail(status) = step {
        return failure(status);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let start = json!({"type": "message_start", "message": {"id": "msg_1", "role": "assistant",
               "content": [], "usage": {"input_tokens": 120, "output_tokens": 1}}});
        emit(&tx, "message_start", start).await;
        let reason = match step {
            Step::Text { chunks, delay_ms } => {
                let deltas = chunks
                    .into_iter()
                    .map(|c| json!({"type": "text_delta", "text": c}))
                    .collect();
                if !block(
                    &tx,
                    0,
                    json!({"type": "text", "text": ""}),
                    deltas,
                    delay_ms,
                )
                .await
                {
                    return;
                }
                "end_turn"
            }
            Step::Tools {
                thinking,
                text,
                calls,
            } => {
                let mut blocks: Vec<(Value, Vec<Value>)> = Vec::new();
                if let Some(t) = thinking {
                    blocks.push((
                        json!({"type": "thinking", "thinking": ""}),
                        vec![
                            json!({"type": "thinking_delta", "thinking": t}),
                            json!({"type": "signature_delta", "signature": "sig-test"}),
                        ],
                    ));
                }
                if let Some(t) = text {
                    blocks.push((
                        json!({"type": "text", "text": ""}),
                        vec![json!({"type": "text_delta", "text": t})],
                    ));
                }
                for (name, args) in calls {
                    let id = format!("toolu_{}", uuid::Uuid::new_v4().simple());
                    blocks.push((
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                        split_args(&args)
                            .into_iter()
                            .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                            .collect(),
                    ));
                }
                for (index, (content, deltas)) in blocks.into_iter().enumerate() {
                    if !block(&tx, index, content, deltas, 0).await {
                        return;
                    }
                }
                "tool_use"
            }
            Step::Fail(_) => return,
        };
        let delta = json!({"type": "message_delta", "delta": {"stop_reason": reason},
            "usage": {"output_tokens": 30}});
        emit(&tx, "message_delta", delta).await;
        emit(&tx, "message_stop", json!({"type": "message_stop"})).await;
    });
    sse_response(rx)
}
