//! A fake OpenAI-compatible streaming server (test code only). The model name is the script:
//! `chunks=N,delay=MS,first=MS,fail=STATUS,drop=K` — N deltas `tok0 `, `tok1 `… every MS
//! milliseconds (the first after `first` ms), or an HTTP error, or the connection cut after K
//! deltas. Every request body is recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

#[derive(Clone, Default)]
pub struct FakeProvider {
    pub base: String,
    pub requests: Arc<Mutex<Vec<Value>>>,
}

#[derive(Debug, Clone)]
struct Script {
    chunks: usize,
    delay: u64,
    first: u64,
    fail: Option<u16>,
    drop_after: Option<usize>,
}

fn script(model: &str) -> Script {
    let mut s = Script {
        chunks: 5,
        delay: 10,
        first: 0,
        fail: None,
        drop_after: None,
    };
    for part in model.split(',') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let n: u64 = v.parse().unwrap_or(0);
        match k {
            "chunks" => s.chunks = n as usize,
            "delay" => s.delay = n,
            "first" => s.first = n,
            "fail" => s.fail = Some(n as u16),
            "drop" => s.drop_after = Some(n as usize),
            _ => {}
        }
    }
    s
}

impl FakeProvider {
    pub async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, requests }
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

fn sse(v: Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

async fn completions(
    State(requests): State<Arc<Mutex<Vec<Value>>>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    requests.lock().unwrap().push(json!({
        "body": body,
        "authorization": headers.get("authorization").and_then(|v| v.to_str().ok()),
    }));
    let s = script(body["model"].as_str().unwrap_or(""));
    if let Some(status) = s.fail {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(json!({"error": {"message": "fake provider failure"}})),
        )
            .into_response();
    }
    let stream = async_stream(s);
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn async_stream(s: Script) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        if s.first > 0 {
            tokio::time::sleep(Duration::from_millis(s.first)).await;
        }
        for i in 0..s.chunks {
            if s.drop_after == Some(i) {
                let _ = tx
                    .send(Err(std::io::Error::other("connection dropped")))
                    .await;
                return;
            }
            if i > 0 || s.first == 0 {
                tokio::time::sleep(Duration::from_millis(s.delay)).await;
            }
            let chunk = json!({"choices": [{"index": 0, "delta": {"content": format!("tok{i} ")}, "finish_reason": null}]});
            if tx.send(Ok(sse(chunk))).await.is_err() {
                return;
            }
        }
        let end = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        let _ = tx.send(Ok(sse(end))).await;
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) })
}
