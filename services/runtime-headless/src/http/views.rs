//! What the desktop reads back: the session state (`get_state`, snapshot `state`) and the agent
//! messages (`get_messages`, snapshot `messages`), built from the stored session, its turns and
//! its messages — so they are the same on every replica and after a takeover.

use cloud_common::ApiResult;
use serde_json::{Value, json};

use crate::AppState;
use crate::domain::message::{AgentMessage, TokenUsage};
use crate::domain::{Session, SessionStatus, Turn, TurnStatus};

pub struct SessionView<'a> {
    session: &'a Session,
    turns: Vec<Turn>,
    messages: Vec<AgentMessage>,
}

impl<'a> SessionView<'a> {
    pub async fn load(st: &AppState, session: &'a Session) -> ApiResult<Self> {
        let turns = st.store.turns_of(&session.id).await?;
        let stored = st.messages.session_messages(&session.id).await?;
        // The conversation's transcript as of session creation, then this session's messages.
        let mut messages: Vec<AgentMessage> = session
            .context
            .iter()
            .filter_map(AgentMessage::from_transcript)
            .collect();
        for m in stored {
            if !messages.iter().any(|x| x.id() == m.message.id()) {
                messages.push(m.message);
            }
        }
        Ok(Self {
            session,
            turns,
            messages,
        })
    }

    pub fn messages_json(&self) -> Vec<Value> {
        self.messages.iter().map(AgentMessage::to_json).collect()
    }

    /// Tokens of every step of this session.
    pub fn token_usage(&self) -> TokenUsage {
        let mut usage = TokenUsage::default();
        for m in &self.messages {
            if let AgentMessage::Assistant(a) = m {
                usage.add(a.usage);
            }
        }
        usage
    }

    pub fn state(&self) -> Value {
        let s = self.session;
        let model = match (&s.model_provider, &s.model_id) {
            (Some(p), Some(m)) => json!({"provider": p, "id": m}),
            _ => Value::Null,
        };
        json!({
            "model": model,
            "thinkingLevel": s.thinking_level.clone().unwrap_or_else(|| "off".into()),
            "isStreaming": s.status == SessionStatus::Streaming,
            "isCompacting": false,
            "steeringMode": s.preferences.steering_mode.as_str(),
            "followUpMode": s.preferences.follow_up_mode.as_str(),
            "sessionFile": s.id,
            "sessionId": s.id,
            "autoCompactionEnabled": s.preferences.auto_compaction,
            "autoRetryEnabled": s.preferences.auto_retry,
            "messageCount": self.messages.len(),
            "pendingMessageCount": self.turns.iter().filter(|t| t.status == TurnStatus::Queued).count(),
            "tokenUsage": self.token_usage(),
        })
    }

    /// `get_session_stats`.
    pub fn stats(&self) -> Value {
        let count = |role: &str| self.messages.iter().filter(|m| m.role() == role).count();
        let tool_calls: usize = self
            .messages
            .iter()
            .map(|m| match m {
                AgentMessage::Assistant(a) => a.tool_calls().count(),
                _ => 0,
            })
            .sum();
        let usage = self.token_usage();
        json!({
            "sessionId": self.session.id,
            "userMessages": count("user"),
            "assistantMessages": count("assistant"),
            "toolCalls": tool_calls,
            "toolResults": count("toolResult"),
            "totalMessages": self.messages.len(),
            "tokens": {"input": usage.input, "output": usage.output, "total": usage.total_tokens},
        })
    }

    /// `get_last_assistant_text`.
    pub fn last_assistant_text(&self) -> Option<String> {
        self.messages
            .iter()
            .rev()
            .filter(|m| matches!(m, AgentMessage::Assistant(_)))
            .find_map(AgentMessage::transcript_text)
    }
}
