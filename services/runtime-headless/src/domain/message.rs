//! The agent's messages, in the shape the desktop renders (its agent library's message model):
//! what `get_messages`, the snapshot, `message_update.message` and `agent_end.messages` carry,
//! and what the runtime stores after every step so a restart or a takeover keeps them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TranscriptMessage;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role")]
pub enum AgentMessage {
    #[serde(rename = "user")]
    User(UserMessage),
    #[serde(rename = "assistant")]
    Assistant(AssistantMessage),
    #[serde(rename = "toolResult")]
    ToolResult(ToolResultMessage),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserMessage {
    pub id: String,
    pub content: Vec<UserPart>,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UserPart {
    Text {
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    Image {
        data: String,
        mime_type: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssistantMessage {
    pub id: String,
    pub content: Vec<AssistantPart>,
    /// The wire the answer came over: `openai-completions` or `anthropic-messages`.
    pub api: String,
    pub provider: String,
    pub model: String,
    pub usage: TokenUsage,
    pub stop_reason: StopReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AssistantPart {
    Text {
        text: String,
    },
    /// `thinking_signature` / `redacted` are what Anthropic needs back with a tool result
    /// when extended thinking is on.
    #[serde(rename_all = "camelCase")]
    Thinking {
        thinking: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thinking_signature: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redacted: Option<String>,
    },
    /// `arguments` is the parsed JSON object, or the raw text when the model sent invalid JSON.
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub total_tokens: u64,
}

impl TokenUsage {
    pub fn new(input: u64, output: u64) -> Self {
        Self {
            input,
            output,
            total_tokens: input + output,
        }
    }

    pub fn add(&mut self, other: TokenUsage) {
        self.input += other.input;
        self.output += other.output;
        self.total_tokens = self.input + self.output;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    Stop,
    Length,
    ToolUse,
    Error,
    Aborted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultMessage {
    pub id: String,
    pub tool_call_id: String,
    pub tool_name: String,
    pub content: Vec<TextPart>,
    pub is_error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ToolDetails>,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TextPart {
    Text { text: String },
}

impl TextPart {
    pub fn text(&self) -> &str {
        match self {
            Self::Text { text } => text,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<Truncation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// What the desktop shows as "output truncated" (`details.truncation.truncated`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Truncation {
    pub truncated: bool,
    pub total_bytes: u64,
    pub total_lines: u64,
    pub output_bytes: u64,
    pub output_lines: u64,
}

impl AgentMessage {
    pub fn id(&self) -> &str {
        match self {
            Self::User(m) => &m.id,
            Self::Assistant(m) => &m.id,
            Self::ToolResult(m) => &m.id,
        }
    }

    pub fn role(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Assistant(_) => "assistant",
            Self::ToolResult(_) => "toolResult",
        }
    }

    /// The plain text a transcript keeps: user text, assistant text parts (thinking and tool
    /// calls are runtime detail). `None` for tool results and text-less messages.
    pub fn transcript_text(&self) -> Option<String> {
        let text = match self {
            Self::User(m) => join(m.content.iter().filter_map(|p| match p {
                UserPart::Text { text } => Some(text.as_str()),
                UserPart::Image { .. } => None,
            })),
            Self::Assistant(m) => join(m.content.iter().filter_map(|p| match p {
                AssistantPart::Text { text } => Some(text.as_str()),
                _ => None,
            })),
            Self::ToolResult(_) => return None,
        };
        (!text.trim().is_empty()).then_some(text)
    }

    /// The desktop's view of a stored message (what `get_messages` returns).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A message of an earlier conversation transcript (text only) as agent context.
    pub fn from_transcript(m: &TranscriptMessage) -> Option<Self> {
        let text = m.content.clone();
        match m.role.as_str() {
            "user" => Some(Self::User(UserMessage {
                id: m.id.clone(),
                content: vec![UserPart::Text { text }],
                timestamp: m.timestamp,
            })),
            "assistant" => Some(Self::Assistant(AssistantMessage {
                id: m.id.clone(),
                content: vec![AssistantPart::Text { text }],
                api: String::new(),
                provider: String::new(),
                model: String::new(),
                usage: TokenUsage::default(),
                stop_reason: StopReason::Stop,
                error_message: None,
                timestamp: m.timestamp,
            })),
            _ => None,
        }
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

impl AssistantMessage {
    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|p| match p {
            AssistantPart::ToolCall {
                id,
                name,
                arguments,
            } => Some((id.as_str(), name.as_str(), arguments)),
            _ => None,
        })
    }
}

/// Makes a message list safe to send to a provider: every tool call gets a result (a run cut
/// short by an abort or a lost worker may have left calls without one; both wire formats refuse
/// that), and results without their call are dropped.
pub fn repair_tool_pairs(messages: Vec<AgentMessage>) -> Vec<AgentMessage> {
    let mut out: Vec<AgentMessage> = Vec::with_capacity(messages.len());
    let mut pending: Vec<(String, String)> = Vec::new();
    let close_pending = |out: &mut Vec<AgentMessage>, pending: &mut Vec<(String, String)>| {
        for (id, name) in pending.drain(..) {
            out.push(AgentMessage::ToolResult(ToolResultMessage {
                id: format!("{id}-missing-result"),
                tool_call_id: id,
                tool_name: name,
                content: vec![TextPart::Text {
                    text: "No result: the run was interrupted before this tool finished.".into(),
                }],
                is_error: true,
                details: None,
                timestamp: 0,
            }));
        }
    };
    for m in messages {
        match &m {
            AgentMessage::ToolResult(r) => {
                if let Some(pos) = pending.iter().position(|(id, _)| *id == r.tool_call_id) {
                    pending.remove(pos);
                    out.push(m);
                }
            }
            AgentMessage::Assistant(a) => {
                close_pending(&mut out, &mut pending);
                pending.extend(
                    a.tool_calls()
                        .map(|(id, name, _)| (id.to_owned(), name.to_owned())),
                );
                out.push(m);
            }
            AgentMessage::User(_) => {
                close_pending(&mut out, &mut pending);
                out.push(m);
            }
        }
    }
    close_pending(&mut out, &mut pending);
    out
}

fn size(m: &AgentMessage) -> usize {
    match m {
        AgentMessage::User(u) => u
            .content
            .iter()
            .map(|p| match p {
                UserPart::Text { text } => text.len(),
                UserPart::Image { data, .. } => data.len() / 4,
            })
            .sum(),
        AgentMessage::Assistant(a) => a
            .content
            .iter()
            .map(|p| match p {
                AssistantPart::Text { text } => text.len(),
                AssistantPart::Thinking { thinking, .. } => thinking.len(),
                AssistantPart::ToolCall { arguments, .. } => arguments.to_string().len(),
            })
            .sum(),
        AgentMessage::ToolResult(r) => r.content.iter().map(|p| p.text().len()).sum(),
    }
}

/// Keeps a long conversation within the model's context: past `budget` characters, the
/// output of the oldest tool calls is replaced by a note (the calls stay, so the model knows
/// what it did), then the oldest messages are dropped. The last few messages are never
/// touched. What is stored is unchanged; only the request is fitted.
pub fn fit_to_budget(mut messages: Vec<AgentMessage>, budget: usize) -> Vec<AgentMessage> {
    const KEEP: usize = 6;
    let mut total: usize = messages.iter().map(size).sum();
    if total <= budget {
        return messages;
    }
    let protected = messages.len().saturating_sub(KEEP);
    for m in messages.iter_mut().take(protected) {
        if total <= budget {
            break;
        }
        if let AgentMessage::ToolResult(r) = m {
            let before: usize = r.content.iter().map(|p| p.text().len()).sum();
            r.content = vec![TextPart::Text {
                text: "[Older tool output omitted to fit the context window.]".into(),
            }];
            total = total.saturating_sub(before);
        }
    }
    let mut drop = 0;
    while total > budget && drop < protected {
        total = total.saturating_sub(size(&messages[drop]));
        drop += 1;
    }
    messages.drain(..drop);
    repair_tool_pairs(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assistant(parts: Vec<AssistantPart>) -> AgentMessage {
        AgentMessage::Assistant(AssistantMessage {
            id: "a".into(),
            content: parts,
            api: "openai-completions".into(),
            provider: "openai".into(),
            model: "m".into(),
            usage: TokenUsage::new(3, 4),
            stop_reason: StopReason::ToolUse,
            error_message: None,
            timestamp: 1,
        })
    }

    #[test]
    fn serialises_in_the_desktop_shape() {
        let m = assistant(vec![
            AssistantPart::Thinking {
                thinking: "hmm".into(),
                thinking_signature: None,
                redacted: None,
            },
            AssistantPart::Text { text: "hi".into() },
            AssistantPart::ToolCall {
                id: "c1".into(),
                name: "read".into(),
                arguments: json!({"path": "a.txt"}),
            },
        ]);
        let v = m.to_json();
        assert_eq!(v["role"], "assistant");
        assert_eq!(
            v["content"][0],
            json!({"type": "thinking", "thinking": "hmm"})
        );
        assert_eq!(
            v["content"][2],
            json!({"type": "toolCall", "id": "c1", "name": "read", "arguments": {"path": "a.txt"}})
        );
        assert_eq!(v["stopReason"], "toolUse");
        assert_eq!(v["usage"]["totalTokens"], 7);
        let back: AgentMessage = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);

        let r = AgentMessage::ToolResult(ToolResultMessage {
            id: "r".into(),
            tool_call_id: "c1".into(),
            tool_name: "read".into(),
            content: vec![TextPart::Text { text: "x".into() }],
            is_error: false,
            details: Some(ToolDetails {
                truncation: Some(Truncation {
                    truncated: true,
                    ..Default::default()
                }),
                exit_code: None,
            }),
            timestamp: 2,
        });
        let v = r.to_json();
        assert_eq!(v["role"], "toolResult");
        assert_eq!(v["toolCallId"], "c1");
        assert_eq!(v["content"], json!([{"type": "text", "text": "x"}]));
        assert_eq!(v["details"]["truncation"]["truncated"], true);
    }

    #[test]
    fn transcript_text_keeps_only_what_people_read() {
        let m = assistant(vec![
            AssistantPart::Text { text: "one".into() },
            AssistantPart::ToolCall {
                id: "c".into(),
                name: "ls".into(),
                arguments: json!({}),
            },
            AssistantPart::Text { text: "two".into() },
        ]);
        assert_eq!(m.transcript_text().as_deref(), Some("one\n\ntwo"));
        assert_eq!(assistant(vec![]).transcript_text(), None);
    }

    #[test]
    fn long_histories_are_fitted_oldest_tool_output_first() {
        let mut msgs = Vec::new();
        for i in 0..10 {
            msgs.push(assistant(vec![AssistantPart::ToolCall {
                id: format!("c{i}"),
                name: "read".into(),
                arguments: json!({}),
            }]));
            msgs.push(AgentMessage::ToolResult(ToolResultMessage {
                id: format!("r{i}"),
                tool_call_id: format!("c{i}"),
                tool_name: "read".into(),
                content: vec![TextPart::Text {
                    text: "x".repeat(1000),
                }],
                is_error: false,
                details: None,
                timestamp: 0,
            }));
        }
        let fitted = fit_to_budget(msgs.clone(), 5000);
        assert_eq!(fitted.len(), msgs.len(), "eliding output was enough");
        let omitted = fitted
            .iter()
            .filter(|m| matches!(m, AgentMessage::ToolResult(r) if r.content[0].text().starts_with("[Older")))
            .count();
        assert!(omitted >= 5, "{omitted}");
        match fitted.last().unwrap() {
            AgentMessage::ToolResult(r) => assert_eq!(r.content[0].text().len(), 1000),
            other => panic!("{other:?}"),
        }
        let tiny = fit_to_budget(msgs.clone(), 10);
        assert!(tiny.len() < msgs.len());
        assert_eq!(fit_to_budget(msgs.clone(), usize::MAX), msgs);
    }

    #[test]
    fn repair_closes_dangling_tool_calls_and_drops_orphans() {
        let call = assistant(vec![AssistantPart::ToolCall {
            id: "c1".into(),
            name: "bash".into(),
            arguments: json!({"command": "sleep 9"}),
        }]);
        let orphan = AgentMessage::ToolResult(ToolResultMessage {
            id: "o".into(),
            tool_call_id: "nope".into(),
            tool_name: "ls".into(),
            content: vec![],
            is_error: false,
            details: None,
            timestamp: 0,
        });
        let user = AgentMessage::User(UserMessage {
            id: "u".into(),
            content: vec![UserPart::Text { text: "go".into() }],
            timestamp: 0,
        });
        let fixed = repair_tool_pairs(vec![call, orphan, user]);
        let roles: Vec<&str> = fixed.iter().map(|m| m.role()).collect();
        assert_eq!(roles, vec!["assistant", "toolResult", "user"]);
        match &fixed[1] {
            AgentMessage::ToolResult(r) => {
                assert_eq!(r.tool_call_id, "c1");
                assert!(r.is_error);
            }
            other => panic!("{other:?}"),
        }
    }
}
