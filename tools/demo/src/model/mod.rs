//! The local stand-in model server (development tooling, never deployed). It speaks the two
//! streaming wires runtime-headless calls — OpenAI-compatible chat completions with tool calls
//! and Anthropic Messages — and answers every prompt the same way ([`script`]): tool calls
//! first, then a text answer in small pieces with a delay between them, so streaming is visible.

mod anthropic;
mod openai;
pub mod script;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The model id the stand-in lists (it answers to any id).
pub const MODEL_ID: &str = "chatons-demo";

/// How the stand-in streams.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Pause between two streamed pieces.
    pub delay: Duration,
    /// Words per streamed text piece.
    pub words_per_piece: usize,
    /// Whether the `bash` tool may be called (the runtime's sandbox needs bubblewrap).
    pub bash: bool,
    /// Print one line per request (the standalone server; the demo keeps its output clean).
    pub log: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(60),
            words_per_piece: 2,
            bash: bwrap_on_path(),
            log: false,
        }
    }
}

/// Whether a `bwrap` executable is on `PATH` (the sandbox of runtime-headless's `bash` tool).
pub fn bwrap_on_path() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join("bwrap");
            p.is_file()
        })
    })
}

/// A running stand-in.
pub struct ModelServer {
    pub addr: SocketAddr,
    /// `http://<addr>/v1`: the provider base URL for either wire.
    pub base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl ModelServer {
    /// Binds `addr` (port 0 picks a free one) and serves until dropped.
    pub async fn start(addr: SocketAddr, config: ModelConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(config);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            base_url: format!("http://{addr}/v1"),
            task,
        })
    }

    /// Serves until the process is stopped.
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(config: ModelConfig) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::completions))
        .route("/chat/completions", post(openai::completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/messages", post(anthropic::messages))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .fallback(|| async { wire_error(StatusCode::NOT_FOUND, "not_found", "No such route") })
        .with_state(config)
}

async fn models() -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "owned_by": "chatons-demo"}]
    }))
    .into_response()
}

/// An error in the shape both wires use (`{"error": {"type", "message"}}`).
fn wire_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response()
}

/// The request body as JSON, or the 400 a real provider would give.
fn parse_body(body: &str) -> Result<Value, Box<Response>> {
    let bad = |m: &str| {
        Box::new(wire_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            m,
        ))
    };
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Err(bad(&format!("malformed JSON: {e}"))),
    };
    if v["stream"] != json!(true) {
        return Err(bad(
            "this stand-in only answers streaming requests (stream: true)",
        ));
    }
    Ok(v)
}

/// A `text/event-stream` answer fed by a channel of ready-made frames.
fn sse_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// The text of a tool result or message content: a string, or the `text` of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Splits JSON arguments into a few pieces, as providers stream them.
fn argument_pieces(args: &Value) -> Vec<String> {
    let text = args.to_string();
    let n = 3.min(text.len().max(1));
    let size = text.len().div_ceil(n);
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(text[start..end].to_owned());
        start = end;
    }
    out
}

/// The request log line: which wire, which model, what the stand-in answers.
fn log_request(config: &ModelConfig, wire: &str, model: &str, next: &script::Next) {
    if !config.log {
        return;
    }
    let what = match next {
        script::Next::Call { name, .. } => format!("tool call {name}"),
        script::Next::Answer(text) => format!("answer, {} chars", text.chars().count()),
    };
    println!("{wire} model={model}: {what}");
}

/// A rough token count for the usage chunk (four bytes a token).
fn tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_pieces_add_up() {
        let args = json!({"path": "chatons-demo/hello.md", "content": "é à ü"});
        let p = argument_pieces(&args);
        assert_eq!(p.concat(), args.to_string());
        assert_eq!(p.len(), 3);
        assert_eq!(argument_pieces(&json!({})).concat(), "{}");
    }
}
