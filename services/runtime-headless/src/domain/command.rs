//! The desktop's RPC commands (`POST /v1/runtime/sessions/{id}/commands`) and responses.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{THINKING_LEVELS, TurnKind};

/// The body as the desktop sends it (its RpcCommand). Unknown fields (`images`, `files`,
/// `streamingBehavior`…) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandRequest {
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub level: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `prompt`, `follow_up` and `steer` queue a turn; an empty message queues nothing.
    Turn {
        kind: TurnKind,
        message: Option<String>,
    },
    Abort,
    SetModel {
        provider: Option<String>,
        model_id: Option<String>,
    },
    SetThinkingLevel {
        level: Option<String>,
    },
    GetState,
    GetMessages,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    Unsupported(String),
    InvalidThinkingLevel(String),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsupported(t) => write!(f, "Unsupported command: {t}"),
            Self::InvalidThinkingLevel(l) => write!(
                f,
                "Unknown thinking level: {l} (expected one of {})",
                THINKING_LEVELS.join(", ")
            ),
        }
    }
}

impl CommandRequest {
    pub fn parse(&self) -> Result<Command, CommandError> {
        let message = self
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|_| self.message.clone().unwrap_or_default());
        Ok(match self.kind.as_str() {
            "prompt" | "follow_up" | "steer" => Command::Turn {
                kind: TurnKind::parse(&self.kind).unwrap_or(TurnKind::Prompt),
                message,
            },
            "abort" => Command::Abort,
            "set_model" => Command::SetModel {
                provider: non_blank(&self.provider),
                model_id: non_blank(&self.model_id),
            },
            "set_thinking_level" => {
                let level = non_blank(&self.level);
                if let Some(l) = &level
                    && !THINKING_LEVELS.contains(&l.as_str())
                {
                    return Err(CommandError::InvalidThinkingLevel(l.clone()));
                }
                Command::SetThinkingLevel { level }
            }
            "get_state" => Command::GetState,
            "get_messages" => Command::GetMessages,
            other => return Err(CommandError::Unsupported(other.to_owned())),
        })
    }
}

fn non_blank(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The desktop's RpcResponse: the request id echoed (null when the request had none).
pub fn rpc_response(
    id: &Option<Value>,
    command: &str,
    success: bool,
    error: Option<String>,
    data: Option<Value>,
) -> Value {
    let mut v = json!({
        "id": id.clone().unwrap_or(Value::Null),
        "type": "response",
        "command": command,
        "success": success,
    });
    if let Some(e) = error {
        v["error"] = Value::String(e);
    }
    if let Some(d) = data {
        v["data"] = d;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> CommandRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn parses_desktop_commands() {
        let c = req(json!({"id":"r1","type":"prompt","message":"hi","images":[]}));
        assert_eq!(
            c.parse().unwrap(),
            Command::Turn {
                kind: TurnKind::Prompt,
                message: Some("hi".into())
            }
        );
        let c = req(json!({"type":"follow_up","message":"  "}));
        assert_eq!(
            c.parse().unwrap(),
            Command::Turn {
                kind: TurnKind::FollowUp,
                message: None
            }
        );
        assert_eq!(
            req(json!({"type":"get_available_models"})).parse(),
            Err(CommandError::Unsupported("get_available_models".into()))
        );
        assert!(
            req(json!({"type":"set_thinking_level","level":"huge"}))
                .parse()
                .is_err()
        );
    }

    #[test]
    fn response_echoes_the_request_id() {
        let r = rpc_response(&Some(json!("abc")), "prompt", true, None, None);
        assert_eq!(
            r,
            json!({"id":"abc","type":"response","command":"prompt","success":true})
        );
        let r = rpc_response(&None, "x", false, Some("bad".into()), None);
        assert_eq!(r["id"], Value::Null);
        assert_eq!(r["error"], "bad");
    }
}
