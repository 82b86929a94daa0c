//! OpenAI-compatible streaming chat completions: `POST {baseUrl}/chat/completions` with
//! `stream: true` and `tools`, answered with server-sent events whose `data:` lines carry
//! `choices[0].delta` (`content`, `reasoning_content`, `tool_calls[]` pieces), a final usage
//! chunk (`stream_options.include_usage`) and `data: [DONE]`.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::ProviderClient;
use super::sse::{self, SseEvent, WireParser};
use super::{
    BlockKind, Delta, EventStream, LlmProvider, ModelRequest, PartialUsage, ProviderError,
    StreamEvent,
};
use crate::domain::message::{AgentMessage, AssistantPart, StopReason, UserPart};

pub const API: &str = "openai-completions";

pub struct OpenAiCompatible {
    client: ProviderClient,
}

impl OpenAiCompatible {
    pub fn new(client: ProviderClient) -> Self {
        Self { client }
    }
}

#[async_trait]
impl LlmProvider for OpenAiCompatible {
    fn api(&self) -> &'static str {
        API
    }

    async fn stream(&self, req: ModelRequest) -> Result<EventStream, ProviderError> {
        let body = request_body(&req);
        let auth = format!("Bearer {}", req.secret.expose());
        let reader = self
            .client
            .post_stream(
                &req.base_url,
                "chat/completions",
                &[("authorization", &auth)],
                &body,
            )
            .await?;
        Ok(sse::events(reader, OpenAiParser::default()))
    }
}

/// The request body of one step.
pub fn request_body(req: &ModelRequest) -> Value {
    let mut messages = vec![json!({"role": "system", "content": req.system})];
    messages.extend(req.messages.iter().filter_map(wire_message));
    let mut body = json!({
        "model": req.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect();
    }
    if let Some(effort) = req.thinking.openai_effort() {
        body["reasoning_effort"] = json!(effort);
    }
    body
}

fn wire_message(m: &AgentMessage) -> Option<Value> {
    Some(match m {
        AgentMessage::User(u) => {
            let has_image = u
                .content
                .iter()
                .any(|p| matches!(p, UserPart::Image { .. }));
            if has_image {
                let parts: Vec<Value> = u
                    .content
                    .iter()
                    .map(|p| match p {
                        UserPart::Text { text } => json!({"type": "text", "text": text}),
                        UserPart::Image { data, mime_type } => json!({
                            "type": "image_url",
                            "image_url": {"url": format!("data:{mime_type};base64,{data}")},
                        }),
                    })
                    .collect();
                json!({"role": "user", "content": parts})
            } else {
                json!({"role": "user", "content": m.transcript_text().unwrap_or_default()})
            }
        }
        AgentMessage::Assistant(a) => {
            let text: Vec<&str> = a
                .content
                .iter()
                .filter_map(|p| match p {
                    AssistantPart::Text { text } if !text.is_empty() => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            let calls: Vec<Value> = a
                .tool_calls()
                .map(|(id, name, args)| {
                    let arguments = match args {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    json!({"id": id, "type": "function",
                           "function": {"name": name, "arguments": arguments}})
                })
                .collect();
            if text.is_empty() && calls.is_empty() {
                return None;
            }
            let mut v = json!({"role": "assistant",
                "content": if text.is_empty() { Value::Null } else { json!(text.join("\n\n")) }});
            if !calls.is_empty() {
                v["tool_calls"] = Value::Array(calls);
            }
            v
        }
        AgentMessage::ToolResult(r) => {
            let text: Vec<&str> = r.content.iter().map(|p| p.text()).collect();
            json!({"role": "tool", "tool_call_id": r.tool_call_id, "content": text.join("\n")})
        }
    })
}

/// Stream state: which blocks are open (text, thinking, one per tool-call index).
#[derive(Debug, Default)]
pub struct OpenAiParser {
    next_block: usize,
    text: Option<usize>,
    thinking: Option<usize>,
    tools: HashMap<u64, usize>,
    open: Vec<usize>,
    stop: Option<StopReason>,
    done: bool,
}

impl OpenAiParser {
    fn start(&mut self, kind: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        let index = self.next_block;
        self.next_block += 1;
        self.open.push(index);
        out.push(StreamEvent::BlockStart { index, kind });
        index
    }

    fn end(&mut self, index: usize, out: &mut Vec<StreamEvent>) {
        if let Some(pos) = self.open.iter().position(|i| *i == index) {
            self.open.remove(pos);
            out.push(StreamEvent::BlockEnd { index });
        }
    }

    fn thinking_delta(&mut self, text: &str, out: &mut Vec<StreamEvent>) {
        let index = match self.thinking {
            Some(i) => i,
            None => {
                let i = self.start(BlockKind::Thinking, out);
                self.thinking = Some(i);
                i
            }
        };
        out.push(StreamEvent::Delta {
            index,
            delta: Delta::Thinking(text.to_owned()),
        });
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<StreamEvent>) {
        if let Some(t) = self.thinking.take() {
            self.end(t, out);
        }
        let index = match self.text {
            Some(i) => i,
            None => {
                let i = self.start(BlockKind::Text, out);
                self.text = Some(i);
                i
            }
        };
        out.push(StreamEvent::Delta {
            index,
            delta: Delta::Text(text.to_owned()),
        });
    }

    fn tool_delta(&mut self, position: usize, call: &Value, out: &mut Vec<StreamEvent>) {
        let key = call["index"].as_u64().unwrap_or(position as u64);
        let index = match self.tools.get(&key) {
            Some(i) => *i,
            None => {
                for open in [self.thinking.take(), self.text.take()]
                    .into_iter()
                    .flatten()
                {
                    self.end(open, out);
                }
                let id = call["id"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("call_{}", self.next_block));
                let name = call["function"]["name"].as_str().unwrap_or("").to_owned();
                let i = self.start(BlockKind::ToolCall { id, name }, out);
                self.tools.insert(key, i);
                i
            }
        };
        if let Some(args) = call["function"]["arguments"].as_str()
            && !args.is_empty()
        {
            out.push(StreamEvent::Delta {
                index,
                delta: Delta::ToolArgs(args.to_owned()),
            });
        }
    }

    fn close(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        for index in std::mem::take(&mut self.open) {
            out.push(StreamEvent::BlockEnd { index });
        }
        let reason = match self.stop {
            Some(StopReason::Stop) | None if !self.tools.is_empty() => StopReason::ToolUse,
            Some(r) => r,
            None => StopReason::Stop,
        };
        out.push(StreamEvent::Stop(reason));
        out
    }
}

fn stop_reason(s: &str) -> StopReason {
    match s {
        "length" => StopReason::Length,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        _ => StopReason::Stop,
    }
}

impl WireParser for OpenAiParser {
    fn feed(&mut self, event: &SseEvent) -> Result<Vec<StreamEvent>, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        let value: Value =
            serde_json::from_str(data).map_err(|e| ProviderError::Protocol(e.to_string()))?;
        if let Some(err) = value.get("error").filter(|e| !e.is_null()) {
            let message = err["message"].as_str().unwrap_or("provider error");
            return Err(ProviderError::Protocol(message.chars().take(300).collect()));
        }
        let mut out = Vec::new();
        if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
            out.push(StreamEvent::Usage(PartialUsage {
                input: usage["prompt_tokens"].as_u64(),
                output: usage["completion_tokens"].as_u64(),
            }));
        }
        let choice = &value["choices"][0];
        let delta = &choice["delta"];
        for key in ["reasoning_content", "reasoning"] {
            if let Some(t) = delta[key].as_str().filter(|t| !t.is_empty()) {
                self.thinking_delta(t, &mut out);
            }
        }
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text_delta(t, &mut out);
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for (position, call) in calls.iter().enumerate() {
                self.tool_delta(position, call, &mut out);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.stop = Some(stop_reason(reason));
        }
        Ok(out)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        // Some compatible servers end the body after the finish reason without `[DONE]`.
        if !self.done && self.stop.is_none() {
            return Err(ProviderError::Incomplete);
        }
        Ok(self.close())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(lines: &[&str]) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut p = OpenAiParser::default();
        let mut out = Vec::new();
        for l in lines {
            out.extend(p.feed(&SseEvent {
                event: None,
                data: (*l).to_owned(),
            })?);
            if p.is_done() {
                break;
            }
        }
        out.extend(p.finish()?);
        Ok(out)
    }

    #[test]
    fn text_then_tool_calls_with_usage() {
        let events = feed_all(&[
            r#"{"choices":[{"delta":{"role":"assistant","content":"Let me "}}]}"#,
            r#"{"choices":[{"delta":{"content":"look."}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"read","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"a.txt\"}"}},{"index":1,"id":"call_b","function":{"name":"ls","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7}}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events[0],
            StreamEvent::BlockStart {
                index: 0,
                kind: BlockKind::Text
            }
        );
        assert!(events.contains(&StreamEvent::BlockEnd { index: 0 }));
        assert!(events.contains(&StreamEvent::BlockStart {
            index: 1,
            kind: BlockKind::ToolCall {
                id: "call_a".into(),
                name: "read".into()
            }
        }));
        let args: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Delta {
                    index: 1,
                    delta: Delta::ToolArgs(a),
                } => Some(a.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(args, r#"{"path":"a.txt"}"#);
        assert!(events.contains(&StreamEvent::Usage(PartialUsage {
            input: Some(11),
            output: Some(7)
        })));
        assert_eq!(events.last(), Some(&StreamEvent::Stop(StopReason::ToolUse)));
    }

    #[test]
    fn reasoning_comes_out_as_thinking() {
        let events = feed_all(&[
            r#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#,
            r#"{"choices":[{"delta":{"content":"ok"},"finish_reason":"stop"}]}"#,
        ])
        .unwrap();
        assert_eq!(
            events[..3],
            [
                StreamEvent::BlockStart {
                    index: 0,
                    kind: BlockKind::Thinking
                },
                StreamEvent::Delta {
                    index: 0,
                    delta: Delta::Thinking("hmm".into())
                },
                StreamEvent::BlockEnd { index: 0 },
            ]
        );
        assert_eq!(events.last(), Some(&StreamEvent::Stop(StopReason::Stop)));
    }

    #[test]
    fn cut_streams_and_errors_fail() {
        assert_eq!(
            feed_all(&[r#"{"choices":[{"delta":{"content":"par"}}]}"#]),
            Err(ProviderError::Incomplete)
        );
        assert!(matches!(
            feed_all(&[r#"{"error":{"message":"overloaded"}}"#]),
            Err(ProviderError::Protocol(m)) if m == "overloaded"
        ));
        assert!(matches!(
            feed_all(&["{not json"]),
            Err(ProviderError::Protocol(_))
        ));
    }
}
