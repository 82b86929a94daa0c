//! Plain types and rules of runtime sessions, leases and turns. No I/O here: the store persists
//! these values, the worker and the HTTP layer decide with these functions.

pub mod command;
pub mod input;
pub mod message;
pub mod thinking;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use command::{Command, CommandRequest};
pub use input::UserInput;

/// What the agent may do in a project's sessions (the project's `workspaceCapability`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Conversation only: no workspace, no file or shell tools.
    #[default]
    ChatOnly,
    /// A workspace with the file tools and a sandboxed shell.
    FullTools,
}

impl Capability {
    /// Anything but `full_tools` is chat only: an unknown value never grants tools.
    pub fn parse(s: &str) -> Self {
        if s == "full_tools" {
            Self::FullTools
        } else {
            Self::ChatOnly
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatOnly => "chat_only",
            Self::FullTools => "full_tools",
        }
    }
}

/// Stored session status (`runtime_sessions.status`). `stopped` and `error` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Starting,
    Ready,
    Streaming,
    Stopped,
    Error,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Streaming => "streaming",
            Self::Stopped => "stopped",
            Self::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "starting" => Self::Starting,
            "ready" => Self::Ready,
            "streaming" => Self::Streaming,
            "stopped" => Self::Stopped,
            "error" => Self::Error,
            _ => return None,
        })
    }

    /// Active sessions count against the parallel-session quota and block a second session
    /// for the same user and conversation.
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Stopped | Self::Error)
    }
}

/// The right to write a session's state: the owner id plus the fencing version it was granted
/// with. Every state write by a worker carries it; a write with a stale version changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub version: i64,
}

/// One message of a conversation transcript (the wire type cloud-api and the runtime share).
pub use cloud_common::internal::TranscriptMessage;

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub organization_id: Option<String>,
    pub conversation_id: String,
    pub project_id: Option<String>,
    pub cloud_instance_id: String,
    pub owner_id: Option<String>,
    pub lease_expires_at: DateTime<Utc>,
    pub lease_version: i64,
    pub status: SessionStatus,
    pub model_provider: Option<String>,
    pub model_id: Option<String>,
    pub thinking_level: Option<String>,
    pub subscription_plan: String,
    pub subscription_label: String,
    pub parallel_sessions_limit: i32,
    pub context: Vec<TranscriptMessage>,
    pub preferences: Preferences,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How queued messages reach a running agent (`set_steering_mode`, `set_follow_up_mode`) and
/// the desktop's compaction/retry switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Preferences {
    pub steering_mode: QueueMode,
    pub follow_up_mode: QueueMode,
    pub auto_compaction: bool,
    pub auto_retry: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            steering_mode: QueueMode::All,
            follow_up_mode: QueueMode::All,
            auto_compaction: false,
            auto_retry: true,
        }
    }
}

/// `all`: every queued message is delivered at the next opportunity; `one-at-a-time`: one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueMode {
    #[serde(rename = "all")]
    All,
    #[serde(rename = "one-at-a-time")]
    OneAtATime,
}

impl QueueMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "one-at-a-time" => Some(Self::OneAtATime),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::OneAtATime => "one-at-a-time",
        }
    }

    /// How many queued messages one delivery takes.
    pub fn batch(self) -> i64 {
        match self {
            Self::All => 1000,
            Self::OneAtATime => 1,
        }
    }
}

impl Session {
    pub fn lease_expired(&self, now: DateTime<Utc>) -> bool {
        self.lease_expires_at <= now
    }

    pub fn lease(&self) -> Option<Lease> {
        self.owner_id.as_ref().map(|owner| Lease {
            owner: owner.clone(),
            version: self.lease_version,
        })
    }

    pub fn is_owned_by(&self, owner: &str, now: DateTime<Utc>) -> bool {
        self.owner_id.as_deref() == Some(owner) && !self.lease_expired(now)
    }
}

/// New session ids keep the first system's format.
pub fn new_session_id() -> String {
    format!("runtime-session-{}", uuid::Uuid::new_v4())
}

/// What an acquire asks for (everything the grant and the body decided).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: String,
    pub organization_id: Option<String>,
    pub conversation_id: String,
    pub project_id: Option<String>,
    pub cloud_instance_id: String,
    pub model_provider: Option<String>,
    pub model_id: Option<String>,
    pub thinking_level: Option<String>,
    pub subscription_plan: String,
    pub subscription_label: String,
    pub parallel_sessions_limit: i32,
    pub context: Vec<TranscriptMessage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub active_parallel_sessions: i64,
    pub parallel_sessions_limit: i64,
    pub remaining_parallel_sessions: i64,
}

impl Usage {
    pub fn new(active: i64, limit: i64) -> Self {
        Self {
            active_parallel_sessions: active,
            parallel_sessions_limit: limit,
            remaining_parallel_sessions: (limit - active).max(0),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AcquireOutcome {
    /// The conversation's active session. `taken_over` when its lease had expired and this
    /// worker became the owner (the caller then recovers its interrupted turns).
    Reused {
        session: Session,
        taken_over: bool,
        usage: Usage,
    },
    Created {
        session: Session,
        usage: Usage,
    },
    QuotaExceeded {
        usage: Usage,
    },
}

/// Admission rule, evaluated under the per-user lock: another session may start only while the
/// user's active sessions are below the plan's limit.
pub fn admits(active: i64, limit: i64) -> bool {
    active < limit
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnKind {
    Prompt,
    FollowUp,
    Steer,
}

impl TurnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::FollowUp => "follow_up",
            Self::Steer => "steer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "prompt" => Self::Prompt,
            "follow_up" => Self::FollowUp,
            "steer" => Self::Steer,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Aborted,
}

impl TurnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "aborted" => Self::Aborted,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Aborted)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub id: i64,
    pub session_id: String,
    pub kind: TurnKind,
    pub message: String,
    /// The whole input (images, files); `None` for turns queued before inputs were stored.
    pub input: Option<UserInput>,
    /// Set when this steering or follow-up message was delivered inside that turn's run.
    pub merged_into: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub steps: i32,
    pub request_id: Option<String>,
    pub status: TurnStatus,
    pub attempts: i32,
    pub claimed_by: Option<String>,
    pub lease_version: Option<i64>,
    pub output_started: bool,
    pub output: String,
    pub error: Option<String>,
    pub spec_sealed: Option<Vec<u8>>,
    pub abort_requested: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Turn {
    /// Transcript ids are derived from the turn, so re-sending an append is idempotent.
    pub fn user_message_id(&self) -> String {
        format!("{}-turn-{}-user", self.session_id, self.id)
    }

    pub fn assistant_message_id(&self) -> String {
        format!("{}-turn-{}-assistant", self.session_id, self.id)
    }

    /// The user's input (turns queued before inputs were stored carry only their text).
    pub fn user_input(&self) -> UserInput {
        self.input.clone().unwrap_or_else(|| UserInput {
            text: self.message.clone(),
            ..UserInput::default()
        })
    }
}

/// How many times a turn may be started before a lost worker makes it fail instead of retry.
pub const MAX_TURN_ATTEMPTS: i32 = 3;

/// What the next owner does with a turn that was running when its worker lost the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing reached the client yet: run it again from the start.
    Retry,
    /// Output was already streamed (re-running would duplicate it) or attempts are exhausted.
    Fail,
}

pub fn recovery_for(output_started: bool, attempts: i32) -> Recovery {
    if output_started || attempts >= MAX_TURN_ATTEMPTS {
        Recovery::Fail
    } else {
        Recovery::Retry
    }
}

/// Thinking levels the desktop's agent library knows.
pub const THINKING_LEVELS: &[&str] = &["off", "minimal", "low", "medium", "high", "xhigh"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_retries_only_unstarted_turns() {
        assert_eq!(recovery_for(false, 1), Recovery::Retry);
        assert_eq!(recovery_for(true, 1), Recovery::Fail);
        assert_eq!(recovery_for(false, MAX_TURN_ATTEMPTS), Recovery::Fail);
    }

    #[test]
    fn quota_admission() {
        assert!(admits(0, 1));
        assert!(!admits(1, 1));
        assert!(!admits(0, 0));
        assert_eq!(Usage::new(4, 3).remaining_parallel_sessions, 0);
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["starting", "ready", "streaming", "stopped", "error"] {
            assert_eq!(SessionStatus::parse(s).map(|x| x.as_str()), Some(s));
        }
        for s in ["queued", "running", "succeeded", "failed", "aborted"] {
            assert_eq!(TurnStatus::parse(s).map(|x| x.as_str()), Some(s));
        }
        assert!(!SessionStatus::Stopped.is_active());
        assert_eq!(
            QueueMode::parse("one-at-a-time"),
            Some(QueueMode::OneAtATime)
        );
        let p: Preferences = serde_json::from_str(r#"{"steeringMode":"one-at-a-time"}"#).unwrap();
        assert_eq!(p.steering_mode, QueueMode::OneAtATime);
        assert_eq!(p.follow_up_mode, QueueMode::All);
        assert!(SessionStatus::Streaming.is_active());
    }
}
