//! Anthropic Messages API: `POST {baseUrl}/messages` with `stream: true`, answered with named
//! server-sent events (`message_start`, `content_block_start/_delta/_stop` carrying `text`,
//! `thinking`, `signature`, `tool_use` and `input_json_delta` pieces, `message_delta` with the
//! stop reason and output tokens, `message_stop`).

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::ProviderClient;
use super::sse::{self, SseEvent, WireParser};
use super::{
    BlockKind, Delta, EventStream, LlmProvider, ModelRequest, PartialUsage, ProviderError,
    StreamEvent,
};
use crate::domain::message::{AgentMessage, AssistantPart, StopReason, UserPart};

pub const API: &str = "anthropic-messages";
const VERSION: &str = "2023-06-01";
/// Output tokens of one step when thinking is off (thinking adds its budget on top).
const MAX_TOKENS: u32 = 8192;

pub struct Anthropic {
    client: ProviderClient,
}

impl Anthropic {
    pub fn new(client: ProviderClient) -> Self {
        Self { client }
    }
}

#[async_trait]
impl LlmProvider for Anthropic {
    fn api(&self) -> &'static str {
        API
    }

    async fn stream(&self, req: ModelRequest) -> Result<EventStream, ProviderError> {
        let body = request_body(&req);
        let reader = self
            .client
            .post_stream(
                &req.base_url,
                "messages",
                &[
                    ("x-api-key", req.secret.expose()),
                    ("anthropic-version", VERSION),
                ],
                &body,
            )
            .await?;
        Ok(sse::events(reader, AnthropicParser::default()))
    }
}

pub fn request_body(req: &ModelRequest) -> Value {
    let mut body = json!({
        "model": req.model,
        "max_tokens": MAX_TOKENS,
        "stream": true,
        "system": req.system,
        "messages": wire_messages(&req.messages),
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    if let Some(budget) = req.thinking.anthropic_budget() {
        body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        body["max_tokens"] = json!(MAX_TOKENS + budget);
    }
    body
}

/// Anthropic wants strictly alternating roles starting with `user`, and tool results inside a
/// user turn: consecutive messages of one role are merged.
fn wire_messages(messages: &[AgentMessage]) -> Vec<Value> {
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for m in messages {
        let (role, parts) = match m {
            AgentMessage::User(u) => (
                "user",
                u.content
                    .iter()
                    .filter_map(|p| match p {
                        UserPart::Text { text } if text.is_empty() => None,
                        UserPart::Text { text } => Some(json!({"type": "text", "text": text})),
                        UserPart::Image { data, mime_type } => Some(json!({
                            "type": "image",
                            "source": {"type": "base64", "media_type": mime_type, "data": data},
                        })),
                    })
                    .collect::<Vec<_>>(),
            ),
            AgentMessage::Assistant(a) => (
                "assistant",
                a.content.iter().filter_map(assistant_part).collect(),
            ),
            AgentMessage::ToolResult(r) => {
                let text: Vec<&str> = r.content.iter().map(|p| p.text()).collect();
                (
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": r.tool_call_id,
                                "content": text.join("\n"), "is_error": r.is_error})],
                )
            }
        };
        if parts.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, content)) if last == role => content.extend(parts),
            _ => out.push((role.to_owned(), parts)),
        }
    }
    if out.first().is_some_and(|(role, _)| role != "user") {
        out.insert(
            0,
            (
                "user".into(),
                vec![json!({"type": "text", "text": "(earlier conversation)"})],
            ),
        );
    }
    out.into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
}

fn assistant_part(p: &AssistantPart) -> Option<Value> {
    match p {
        AssistantPart::Text { text } if text.is_empty() => None,
        AssistantPart::Text { text } => Some(json!({"type": "text", "text": text})),
        AssistantPart::Thinking {
            redacted: Some(data),
            ..
        } => Some(json!({"type": "redacted_thinking", "data": data})),
        // Thinking is only accepted back with its signature (thinking from another wire has none).
        AssistantPart::Thinking {
            thinking,
            thinking_signature: Some(sig),
            ..
        } => Some(json!({"type": "thinking", "thinking": thinking, "signature": sig})),
        AssistantPart::Thinking { .. } => None,
        AssistantPart::ToolCall {
            id,
            name,
            arguments,
        } => {
            let input = match arguments {
                Value::Object(_) => arguments.clone(),
                Value::String(s) => serde_json::from_str::<Value>(s)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({})),
                _ => json!({}),
            };
            Some(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
        }
    }
}

#[derive(Debug, Default)]
pub struct AnthropicParser {
    open: Vec<usize>,
    stop: Option<StopReason>,
    done: bool,
}

fn stop_reason(s: &str) -> StopReason {
    match s {
        "max_tokens" => StopReason::Length,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::Error,
        _ => StopReason::Stop,
    }
}

fn index_of(v: &Value) -> Result<usize, ProviderError> {
    v["index"]
        .as_u64()
        .map(|i| i as usize)
        .ok_or_else(|| ProviderError::Protocol("a content block event has no index".into()))
}

impl WireParser for AnthropicParser {
    fn feed(&mut self, event: &SseEvent) -> Result<Vec<StreamEvent>, ProviderError> {
        let v: Value = serde_json::from_str(&event.data)
            .map_err(|e| ProviderError::Protocol(e.to_string()))?;
        let kind = event
            .event
            .as_deref()
            .or_else(|| v["type"].as_str())
            .unwrap_or("");
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                let u = &v["message"]["usage"];
                let input = [
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ]
                .iter()
                .filter_map(|k| u[*k].as_u64())
                .reduce(|a, b| a + b);
                out.push(StreamEvent::Usage(PartialUsage {
                    input,
                    output: u["output_tokens"].as_u64(),
                }));
            }
            "content_block_start" => {
                let index = index_of(&v)?;
                let block = &v["content_block"];
                let kind = match block["type"].as_str().unwrap_or("") {
                    "tool_use" | "server_tool_use" => BlockKind::ToolCall {
                        id: block["id"].as_str().unwrap_or("").to_owned(),
                        name: block["name"].as_str().unwrap_or("").to_owned(),
                    },
                    "thinking" | "redacted_thinking" => BlockKind::Thinking,
                    _ => BlockKind::Text,
                };
                self.open.push(index);
                out.push(StreamEvent::BlockStart { index, kind });
                let initial = match block["type"].as_str() {
                    Some("text") => block["text"].as_str().map(|t| Delta::Text(t.to_owned())),
                    Some("redacted_thinking") => block["data"]
                        .as_str()
                        .map(|d| Delta::Redacted(d.to_owned())),
                    _ => None,
                };
                if let Some(delta) =
                    initial.filter(|d| !matches!(d, Delta::Text(t) if t.is_empty()))
                {
                    out.push(StreamEvent::Delta { index, delta });
                }
            }
            "content_block_delta" => {
                let index = index_of(&v)?;
                let d = &v["delta"];
                let text = |k: &str| d[k].as_str().unwrap_or("").to_owned();
                let delta = match d["type"].as_str().unwrap_or("") {
                    "text_delta" => Delta::Text(text("text")),
                    "thinking_delta" => Delta::Thinking(text("thinking")),
                    "signature_delta" => Delta::Signature(text("signature")),
                    "input_json_delta" => Delta::ToolArgs(text("partial_json")),
                    _ => return Ok(out),
                };
                out.push(StreamEvent::Delta { index, delta });
            }
            "content_block_stop" => {
                let index = index_of(&v)?;
                self.open.retain(|i| *i != index);
                out.push(StreamEvent::BlockEnd { index });
            }
            "message_delta" => {
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    self.stop = Some(stop_reason(r));
                }
                if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                    out.push(StreamEvent::Usage(PartialUsage {
                        input: None,
                        output: Some(o),
                    }));
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let message = v["error"]["message"].as_str().unwrap_or("provider error");
                return Err(ProviderError::Protocol(message.chars().take(300).collect()));
            }
            _ => {}
        }
        Ok(out)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        if !self.done {
            return Err(ProviderError::Incomplete);
        }
        let mut out: Vec<StreamEvent> = std::mem::take(&mut self.open)
            .into_iter()
            .map(|index| StreamEvent::BlockEnd { index })
            .collect();
        out.push(StreamEvent::Stop(self.stop.unwrap_or(StopReason::Stop)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::{TextPart, ToolResultMessage, UserMessage};

    fn ev(name: &str, data: Value) -> SseEvent {
        SseEvent {
            event: Some(name.into()),
            data: data.to_string(),
        }
    }

    #[test]
    fn thinking_text_and_tool_use() {
        let mut p = AnthropicParser::default();
        let mut out = Vec::new();
        for e in [
            ev(
                "message_start",
                json!({"message": {"usage": {"input_tokens": 20, "output_tokens": 1}}}),
            ),
            ev(
                "content_block_start",
                json!({"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            ),
            ev(
                "content_block_delta",
                json!({"index": 0, "delta": {"type": "thinking_delta", "thinking": "plan"}}),
            ),
            ev(
                "content_block_delta",
                json!({"index": 0, "delta": {"type": "signature_delta", "signature": "sig"}}),
            ),
            ev("content_block_stop", json!({"index": 0})),
            ev(
                "content_block_start",
                json!({"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}}}),
            ),
            ev(
                "content_block_delta",
                json!({"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"command\":\"ls\"}"}}),
            ),
            ev("content_block_stop", json!({"index": 1})),
            ev(
                "message_delta",
                json!({"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
            ),
            ev("message_stop", json!({})),
        ] {
            out.extend(p.feed(&e).unwrap());
        }
        assert!(p.is_done());
        out.extend(p.finish().unwrap());
        assert!(out.contains(&StreamEvent::Delta {
            index: 0,
            delta: Delta::Signature("sig".into())
        }));
        assert!(out.contains(&StreamEvent::BlockStart {
            index: 1,
            kind: BlockKind::ToolCall {
                id: "toolu_1".into(),
                name: "bash".into()
            }
        }));
        assert_eq!(out.last(), Some(&StreamEvent::Stop(StopReason::ToolUse)));
    }

    #[test]
    fn incomplete_and_error_streams_fail() {
        let mut p = AnthropicParser::default();
        p.feed(&ev(
            "content_block_start",
            json!({"index": 0, "content_block": {"type": "text", "text": ""}}),
        ))
        .unwrap();
        assert_eq!(p.finish(), Err(ProviderError::Incomplete));
        let mut p = AnthropicParser::default();
        let err = p
            .feed(&ev("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})))
            .unwrap_err();
        assert_eq!(err, ProviderError::Protocol("Overloaded".into()));
    }

    #[test]
    fn tool_results_join_the_user_turn() {
        let msgs = vec![
            AgentMessage::ToolResult(ToolResultMessage {
                id: "r1".into(),
                tool_call_id: "t1".into(),
                tool_name: "ls".into(),
                content: vec![TextPart::Text { text: "a".into() }],
                is_error: false,
                details: None,
                timestamp: 0,
            }),
            AgentMessage::User(UserMessage {
                id: "u".into(),
                content: vec![UserPart::Text {
                    text: "steer".into(),
                }],
                timestamp: 0,
            }),
        ];
        let wire = wire_messages(&msgs);
        assert_eq!(wire.len(), 1);
        assert_eq!(wire[0]["role"], "user");
        assert_eq!(wire[0]["content"][0]["type"], "tool_result");
        assert_eq!(wire[0]["content"][1]["text"], "steer");
    }
}
