//! The desktop's RPC commands (`POST /v1/runtime/sessions/{id}/commands`) and responses.

use serde::Deserialize;
use serde_json::{Value, json};

use super::input::{InputError, RawFile, RawImage, UserInput};
use super::thinking::{self, ThinkingLevel};
use super::{QueueMode, TurnKind};

/// The body as the desktop sends it (its RpcCommand); fields a command does not use are ignored.
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
    pub images: Vec<RawImage>,
    #[serde(default)]
    pub files: Vec<RawFile>,
    /// What a `prompt` should do while a run is active: `steer` or `followUp`.
    #[serde(default)]
    pub streaming_behavior: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `prompt`, `follow_up` and `steer` queue a turn.
    Turn {
        kind: TurnKind,
        input: UserInput,
    },
    /// A blank message with no attachment queues nothing (and succeeds, as the desktop expects).
    EmptyTurn,
    Abort,
    SetModel {
        provider: Option<String>,
        model_id: Option<String>,
    },
    SetThinkingLevel(ThinkingLevel),
    CycleThinkingLevel,
    SetSteeringMode(QueueMode),
    SetFollowUpMode(QueueMode),
    SetAutoCompaction(bool),
    SetAutoRetry(bool),
    GetState,
    GetMessages,
    GetAvailableModels,
    GetAvailableThinkingLevels,
    GetAccessMode,
    GetCommands,
    GetSessionStats,
    GetLastAssistantText,
}

/// The commands this runtime answers (what `get_commands` lists).
pub const SUPPORTED: &[&str] = &[
    "prompt",
    "steer",
    "follow_up",
    "abort",
    "set_model",
    "set_thinking_level",
    "cycle_thinking_level",
    "set_steering_mode",
    "set_follow_up_mode",
    "set_auto_compaction",
    "set_auto_retry",
    "get_state",
    "get_messages",
    "get_available_models",
    "get_available_thinking_levels",
    "get_access_mode",
    "get_commands",
    "get_session_stats",
    "get_last_assistant_text",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("Unsupported command: {0}")]
    Unsupported(String),
    #[error("Unknown thinking level: {0} (expected one of off, minimal, low, medium, high, xhigh)")]
    InvalidThinkingLevel(String),
    #[error("Unknown mode: {0} (expected all or one-at-a-time)")]
    InvalidMode(String),
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("Invalid attachment: {0}")]
    Input(InputError),
}

impl CommandRequest {
    pub fn parse(&self) -> Result<Command, CommandError> {
        Ok(match self.kind.as_str() {
            "prompt" | "follow_up" | "steer" => {
                let kind = match (self.kind.as_str(), self.streaming_behavior.as_deref()) {
                    ("steer", _) | ("prompt", Some("steer")) => TurnKind::Steer,
                    ("follow_up", _) => TurnKind::FollowUp,
                    _ => TurnKind::Prompt,
                };
                match UserInput::parse(self.message.as_deref(), &self.images, &self.files) {
                    Ok(input) => Command::Turn { kind, input },
                    Err(InputError::Empty) => Command::EmptyTurn,
                    Err(e) => return Err(CommandError::Input(e)),
                }
            }
            "abort" => Command::Abort,
            "set_model" => Command::SetModel {
                provider: non_blank(&self.provider),
                model_id: non_blank(&self.model_id),
            },
            "set_thinking_level" => {
                let level = non_blank(&self.level).ok_or(CommandError::Missing("level"))?;
                Command::SetThinkingLevel(
                    ThinkingLevel::parse(&level)
                        .ok_or(CommandError::InvalidThinkingLevel(level))?,
                )
            }
            "cycle_thinking_level" => Command::CycleThinkingLevel,
            "set_steering_mode" => Command::SetSteeringMode(self.queue_mode()?),
            "set_follow_up_mode" => Command::SetFollowUpMode(self.queue_mode()?),
            "set_auto_compaction" => {
                Command::SetAutoCompaction(self.enabled.ok_or(CommandError::Missing("enabled"))?)
            }
            "set_auto_retry" => {
                Command::SetAutoRetry(self.enabled.ok_or(CommandError::Missing("enabled"))?)
            }
            "get_state" => Command::GetState,
            "get_messages" => Command::GetMessages,
            "get_available_models" => Command::GetAvailableModels,
            "get_available_thinking_levels" => Command::GetAvailableThinkingLevels,
            "get_access_mode" => Command::GetAccessMode,
            "get_commands" => Command::GetCommands,
            "get_session_stats" => Command::GetSessionStats,
            "get_last_assistant_text" => Command::GetLastAssistantText,
            other => return Err(CommandError::Unsupported(other.chars().take(64).collect())),
        })
    }

    fn queue_mode(&self) -> Result<QueueMode, CommandError> {
        let mode = non_blank(&self.mode).ok_or(CommandError::Missing("mode"))?;
        QueueMode::parse(&mode).ok_or(CommandError::InvalidMode(mode))
    }

    /// The request id as the turn records it.
    pub fn request_id(&self) -> Option<String> {
        self.id.as_ref().map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

fn non_blank(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `get_available_thinking_levels`.
pub fn thinking_levels() -> Value {
    json!({"levels": thinking::ALL.iter().map(|l| l.as_str()).collect::<Vec<_>>()})
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
        assert!(matches!(
            c.parse().unwrap(),
            Command::Turn { kind: TurnKind::Prompt, input } if input.text == "hi"
        ));
        let c = req(json!({"type":"prompt","message":"now","streamingBehavior":"steer"}));
        assert!(matches!(
            c.parse().unwrap(),
            Command::Turn {
                kind: TurnKind::Steer,
                ..
            }
        ));
        let c = req(json!({"type":"follow_up","message":"  "}));
        assert_eq!(c.parse().unwrap(), Command::EmptyTurn);
        assert_eq!(
            req(json!({"type":"get_available_models"})).parse(),
            Ok(Command::GetAvailableModels)
        );
        assert_eq!(
            req(json!({"type":"set_steering_mode","mode":"one-at-a-time"})).parse(),
            Ok(Command::SetSteeringMode(QueueMode::OneAtATime))
        );
        assert!(
            req(json!({"type":"set_follow_up_mode","mode":"some"}))
                .parse()
                .is_err()
        );
        assert_eq!(
            req(json!({"type":"set_auto_retry","enabled":false})).parse(),
            Ok(Command::SetAutoRetry(false))
        );
        assert!(
            req(json!({"type":"set_thinking_level","level":"huge"}))
                .parse()
                .is_err()
        );
        assert!(matches!(
            req(json!({"type":"rm -rf"})).parse(),
            Err(CommandError::Unsupported(_))
        ));
        for name in SUPPORTED {
            let mut body = json!({"type": name, "message": "m", "level": "low", "mode": "all", "enabled": true});
            if *name == "set_model" {
                body["provider"] = json!("p");
            }
            assert!(req(body).parse().is_ok(), "{name}");
        }
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
