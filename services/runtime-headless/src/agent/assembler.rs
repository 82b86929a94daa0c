//! Builds the assistant message of one step from the provider's [`StreamEvent`]s, and says
//! what changed in the desktop's terms (`text_delta`, `toolcall_end`…).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::domain::message::{AssistantMessage, AssistantPart, StopReason, TokenUsage};
use crate::provider::{BlockKind, Delta, StreamEvent};

/// One change of the message, as the desktop's `assistantMessageEvent` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Start(PartKind, usize),
    Delta(PartKind, usize, String),
    End(PartKind, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Text,
    Thinking,
    ToolCall,
}

impl PartKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Thinking => "thinking",
            Self::ToolCall => "toolcall",
        }
    }
}

impl Piece {
    /// The desktop's `assistantMessageEvent` for this piece.
    pub fn to_json(&self, message: &AssistantMessage) -> Value {
        match self {
            Self::Start(k, i) => {
                json!({"type": format!("{}_start", k.prefix()), "contentIndex": i})
            }
            Self::Delta(k, i, d) => {
                json!({"type": format!("{}_delta", k.prefix()), "contentIndex": i, "delta": d})
            }
            Self::End(k, i) => {
                let mut v = json!({"type": format!("{}_end", k.prefix()), "contentIndex": i});
                match message.content.get(*i) {
                    Some(AssistantPart::Text { text }) => v["content"] = json!(text),
                    Some(AssistantPart::Thinking { thinking, .. }) => {
                        v["content"] = json!(thinking)
                    }
                    Some(part @ AssistantPart::ToolCall { .. }) => {
                        v["toolCall"] = serde_json::to_value(part).unwrap_or(Value::Null)
                    }
                    None => {}
                }
                v
            }
        }
    }

    /// Whether `next` continues this piece (same delta stream), so both can be sent as one.
    pub fn merge(&mut self, next: &Piece) -> bool {
        match (self, next) {
            (Self::Delta(k, i, d), Self::Delta(k2, i2, d2)) if k == k2 && i == i2 => {
                d.push_str(d2);
                true
            }
            _ => false,
        }
    }
}

pub struct Assembler {
    message: AssistantMessage,
    /// Provider block index → content index.
    slots: HashMap<usize, usize>,
    /// Raw JSON arguments of tool calls being streamed, by content index.
    args: HashMap<usize, String>,
    stop: Option<StopReason>,
}

impl Assembler {
    pub fn new(id: String, api: &str, provider: &str, model: &str, timestamp: i64) -> Self {
        Self {
            message: AssistantMessage {
                id,
                content: Vec::new(),
                api: api.to_owned(),
                provider: provider.to_owned(),
                model: model.to_owned(),
                usage: TokenUsage::default(),
                stop_reason: StopReason::Stop,
                error_message: None,
                timestamp,
            },
            slots: HashMap::new(),
            args: HashMap::new(),
            stop: None,
        }
    }

    pub fn message(&self) -> &AssistantMessage {
        &self.message
    }

    pub fn has_content(&self) -> bool {
        !self.message.content.is_empty()
    }

    pub fn apply(&mut self, event: StreamEvent) -> Option<Piece> {
        match event {
            StreamEvent::BlockStart { index, kind } => {
                let ci = self.message.content.len();
                let (part, kind) = match kind {
                    BlockKind::Text => (
                        AssistantPart::Text {
                            text: String::new(),
                        },
                        PartKind::Text,
                    ),
                    BlockKind::Thinking => (
                        AssistantPart::Thinking {
                            thinking: String::new(),
                            thinking_signature: None,
                            redacted: None,
                        },
                        PartKind::Thinking,
                    ),
                    BlockKind::ToolCall { id, name } => {
                        let id = if id.is_empty() {
                            format!("call_{}_{ci}", self.message.id)
                        } else {
                            id
                        };
                        self.args.insert(ci, String::new());
                        (
                            AssistantPart::ToolCall {
                                id,
                                name,
                                arguments: json!({}),
                            },
                            PartKind::ToolCall,
                        )
                    }
                };
                self.message.content.push(part);
                self.slots.insert(index, ci);
                Some(Piece::Start(kind, ci))
            }
            StreamEvent::Delta { index, delta } => {
                let ci = *self.slots.get(&index)?;
                let part = self.message.content.get_mut(ci)?;
                match (part, delta) {
                    (AssistantPart::Text { text }, Delta::Text(d)) => {
                        text.push_str(&d);
                        Some(Piece::Delta(PartKind::Text, ci, d))
                    }
                    (AssistantPart::Thinking { thinking, .. }, Delta::Thinking(d)) => {
                        thinking.push_str(&d);
                        Some(Piece::Delta(PartKind::Thinking, ci, d))
                    }
                    (
                        AssistantPart::Thinking {
                            thinking_signature, ..
                        },
                        Delta::Signature(s),
                    ) => {
                        thinking_signature
                            .get_or_insert_with(String::new)
                            .push_str(&s);
                        None
                    }
                    (AssistantPart::Thinking { redacted, .. }, Delta::Redacted(d)) => {
                        redacted.get_or_insert_with(String::new).push_str(&d);
                        None
                    }
                    (AssistantPart::ToolCall { .. }, Delta::ToolArgs(d)) => {
                        self.args.entry(ci).or_default().push_str(&d);
                        Some(Piece::Delta(PartKind::ToolCall, ci, d))
                    }
                    _ => None,
                }
            }
            StreamEvent::BlockEnd { index } => {
                let ci = *self.slots.get(&index)?;
                let kind = match self.message.content.get(ci)? {
                    AssistantPart::Text { .. } => PartKind::Text,
                    AssistantPart::Thinking { .. } => PartKind::Thinking,
                    AssistantPart::ToolCall { .. } => {
                        self.settle_args(ci);
                        PartKind::ToolCall
                    }
                };
                Some(Piece::End(kind, ci))
            }
            StreamEvent::Usage(u) => {
                u.merge_into(&mut self.message.usage);
                None
            }
            StreamEvent::Stop(reason) => {
                self.stop = Some(reason);
                None
            }
        }
    }

    /// Parsed arguments; invalid JSON is kept as text (the tool then reports the error).
    fn settle_args(&mut self, ci: usize) {
        let Some(raw) = self.args.remove(&ci) else {
            return;
        };
        if let Some(AssistantPart::ToolCall { arguments, .. }) = self.message.content.get_mut(ci) {
            *arguments = if raw.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(&raw).unwrap_or(Value::String(raw))
            };
        }
    }

    /// The finished message. `outcome`: `None` when the stream ended normally, else why it
    /// stopped (`Aborted` or `Error` with the message).
    pub fn finish(mut self, outcome: Option<(StopReason, Option<String>)>) -> AssistantMessage {
        let pending: Vec<usize> = self.args.keys().copied().collect();
        for ci in pending {
            self.settle_args(ci);
        }
        // Empty text blocks carry nothing for the desktop or the next request.
        self.message
            .content
            .retain(|p| !matches!(p, AssistantPart::Text { text } if text.is_empty()));
        match outcome {
            Some((reason, error)) => {
                self.message.stop_reason = reason;
                self.message.error_message = error;
            }
            None => {
                let has_calls = self.message.tool_calls().next().is_some();
                self.message.stop_reason = match self.stop {
                    _ if has_calls => StopReason::ToolUse,
                    Some(r) => r,
                    None => StopReason::Stop,
                };
            }
        }
        self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(index: usize, kind: BlockKind) -> StreamEvent {
        StreamEvent::BlockStart { index, kind }
    }

    #[test]
    fn builds_text_and_tool_calls() {
        let mut a = Assembler::new("m1".into(), "openai-completions", "openai", "gpt", 5);
        assert_eq!(
            a.apply(start(0, BlockKind::Text)),
            Some(Piece::Start(PartKind::Text, 0))
        );
        assert_eq!(
            a.apply(StreamEvent::Delta {
                index: 0,
                delta: Delta::Text("Hel".into())
            }),
            Some(Piece::Delta(PartKind::Text, 0, "Hel".into()))
        );
        a.apply(StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("lo".into()),
        });
        a.apply(StreamEvent::BlockEnd { index: 0 });
        a.apply(start(
            1,
            BlockKind::ToolCall {
                id: "c1".into(),
                name: "read".into(),
            },
        ));
        a.apply(StreamEvent::Delta {
            index: 1,
            delta: Delta::ToolArgs("{\"path\":".into()),
        });
        a.apply(StreamEvent::Delta {
            index: 1,
            delta: Delta::ToolArgs("\"x\"}".into()),
        });
        let end = a.apply(StreamEvent::BlockEnd { index: 1 }).unwrap();
        assert_eq!(
            end.to_json(a.message())["toolCall"]["arguments"],
            json!({"path": "x"})
        );
        a.apply(StreamEvent::Usage(crate::provider::PartialUsage {
            input: Some(10),
            output: Some(3),
        }));
        a.apply(StreamEvent::Stop(StopReason::Stop));
        let m = a.finish(None);
        assert_eq!(m.stop_reason, StopReason::ToolUse);
        assert_eq!(m.usage.total_tokens, 13);
        assert_eq!(
            m.content[0],
            AssistantPart::Text {
                text: "Hello".into()
            }
        );
    }

    #[test]
    fn invalid_arguments_stay_text_and_aborts_are_marked() {
        let mut a = Assembler::new("m".into(), "x", "p", "m", 0);
        a.apply(start(
            0,
            BlockKind::ToolCall {
                id: String::new(),
                name: "bash".into(),
            },
        ));
        a.apply(StreamEvent::Delta {
            index: 0,
            delta: Delta::ToolArgs("{oops".into()),
        });
        let m = a.finish(Some((StopReason::Aborted, None)));
        assert_eq!(m.stop_reason, StopReason::Aborted);
        match &m.content[0] {
            AssistantPart::ToolCall { id, arguments, .. } => {
                assert_eq!(arguments, &Value::String("{oops".into()));
                assert!(!id.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deltas_of_one_part_merge() {
        let mut p = Piece::Delta(PartKind::Text, 0, "a".into());
        assert!(p.merge(&Piece::Delta(PartKind::Text, 0, "b".into())));
        assert!(!p.merge(&Piece::Delta(PartKind::Text, 1, "c".into())));
        assert!(!p.merge(&Piece::End(PartKind::Text, 0)));
        assert_eq!(p, Piece::Delta(PartKind::Text, 0, "ab".into()));
    }
}
