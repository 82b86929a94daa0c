//! OpenAI-compatible streaming chat completions: `POST {baseUrl}/chat/completions` with
//! `stream: true`, answered with server-sent events whose `data:` lines carry
//! `choices[0].delta.content`, ended by `data: [DONE]`.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};

use super::{ChatRequest, DeltaStream, LlmProvider, ProviderError, egress};

pub struct OpenAiCompatible {
    http: reqwest::Client,
    idle_timeout: Duration,
    allow_private_networks: bool,
}

impl OpenAiCompatible {
    /// `allow_private_networks`: see [`super::egress`]; off in production.
    pub fn new(idle_timeout: Duration, allow_private_networks: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none());
        if !allow_private_networks {
            builder = builder.dns_resolver(std::sync::Arc::new(egress::PublicOnlyResolver));
        }
        Self {
            http: builder.build().unwrap_or_default(),
            idle_timeout,
            allow_private_networks,
        }
    }
}

fn network(e: reqwest::Error) -> ProviderError {
    // `without_url`: a base URL may carry credentials.
    ProviderError::Network(e.without_url().to_string())
}

#[async_trait]
impl LlmProvider for OpenAiCompatible {
    async fn stream(&self, req: ChatRequest) -> Result<DeltaStream, ProviderError> {
        let url = format!("{}/chat/completions", req.base_url.trim_end_matches('/'));
        let parsed = url::Url::parse(&url)
            .map_err(|_| ProviderError::Forbidden("the provider base URL is not a URL".into()))?;
        if !self.allow_private_networks {
            egress::check_url(&parsed)
                .await
                .map_err(|refused| ProviderError::Forbidden(refused.0))?;
        }
        let body = json!({
            "model": req.model,
            "messages": req.messages,
            "stream": true,
        });
        let send = self
            .http
            .post(parsed)
            .bearer_auth(req.secret.expose())
            .json(&body)
            .send();
        let resp = tokio::time::timeout(self.idle_timeout, send)
            .await
            .map_err(|_| ProviderError::Timeout(self.idle_timeout.as_secs()))?
            .map_err(network)?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(ProviderError::Status {
                status: status.as_u16(),
                message: message.chars().take(300).collect(),
            });
        }
        let state = SseState {
            bytes: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            pending: VecDeque::new(),
            finished: false,
            ended: false,
            idle: self.idle_timeout,
        };
        Ok(futures_util::stream::unfold(state, next_delta).boxed())
    }
}

struct SseState {
    bytes: BoxStream<'static, reqwest::Result<Bytes>>,
    buf: Vec<u8>,
    pending: VecDeque<Result<String, ProviderError>>,
    /// `[DONE]` (or a finish reason) was seen: the answer is complete.
    finished: bool,
    /// Nothing more will be yielded after `pending`.
    ended: bool,
    idle: Duration,
}

async fn next_delta(mut st: SseState) -> Option<(Result<String, ProviderError>, SseState)> {
    loop {
        if let Some(item) = st.pending.pop_front() {
            return Some((item, st));
        }
        if st.ended {
            return None;
        }
        match tokio::time::timeout(st.idle, st.bytes.next()).await {
            Err(_) => {
                st.ended = true;
                return Some((Err(ProviderError::Timeout(st.idle.as_secs())), st));
            }
            Ok(None) => {
                st.ended = true;
                if !st.buf.is_empty() {
                    let line = std::mem::take(&mut st.buf);
                    parse_line(&mut st, &line);
                }
                if !st.finished {
                    st.pending.push_back(Err(ProviderError::Incomplete));
                }
            }
            Ok(Some(Err(e))) => {
                st.ended = true;
                if !st.finished {
                    st.pending.push_back(Err(network(e)));
                }
            }
            Ok(Some(Ok(chunk))) => {
                st.buf.extend_from_slice(&chunk);
                while let Some(pos) = st.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = st.buf.drain(..=pos).collect();
                    parse_line(&mut st, &line);
                    if st.ended {
                        break;
                    }
                }
            }
        }
    }
}

fn parse_line(st: &mut SseState, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    let Some(data) = line.strip_prefix("data:") else {
        return;
    };
    let data = data.trim();
    if data == "[DONE]" {
        st.finished = true;
        st.ended = true;
        return;
    }
    let value: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => {
            st.pending
                .push_back(Err(ProviderError::Protocol(e.to_string())));
            st.ended = true;
            return;
        }
    };
    if let Some(err) = value.get("error").filter(|e| !e.is_null()) {
        let message = err["message"].as_str().unwrap_or("provider error");
        st.pending.push_back(Err(ProviderError::Protocol(
            message.chars().take(300).collect(),
        )));
        st.ended = true;
        return;
    }
    let choice = &value["choices"][0];
    if let Some(delta) = choice["delta"]["content"].as_str()
        && !delta.is_empty()
    {
        st.pending.push_back(Ok(delta.to_owned()));
    }
    if choice["finish_reason"].is_string() {
        st.finished = true;
    }
}
