//! What the desktop reads back: the session state (`get_state`, snapshot `state`) and the agent
//! messages (`get_messages`, snapshot `messages`), built from the stored session, its turns and
//! its messages — so they are the same on every replica and after a takeover.

use std::collections::HashSet;

use cloud_common::ApiResult;
use serde_json::{Value, json};

use crate::AppState;
use crate::domain::message::{AgentMessage, TokenUsage};
use crate::domain::{Session, SessionStatus};

pub struct SessionView<'a> {
    session: &'a Session,
    pending: usize,
    messages: Vec<AgentMessage>,
}

/// The transcript context as agent messages (the conversation as of session creation).
fn context_messages(session: &Session) -> impl Iterator<Item = AgentMessage> + '_ {
    session
        .context
        .iter()
        .filter_map(AgentMessage::from_transcript)
}

/// `get_state`: what the desktop polls. Built from counts and sums, never from the decoded
/// messages, so its cost does not grow with the conversation.
pub async fn session_state(st: &AppState, session: &Session) -> ApiResult<Value> {
    let (pending, tally) = tokio::try_join!(
        st.store.queued_turns(&session.id),
        st.messages.session_tally(&session.id),
    )?;
    let context: Vec<AgentMessage> = context_messages(session).collect();
    let seen: HashSet<&str> = context.iter().map(AgentMessage::id).collect();
    let own = tally
        .ids
        .iter()
        .filter(|id| !seen.contains(id.as_str()))
        .count();
    // Context messages carry no token counts (the transcript has none).
    Ok(state_json(
        session,
        context.len() + own,
        pending,
        tally.usage,
    ))
}

fn state_json(session: &Session, message_count: usize, pending: usize, usage: TokenUsage) -> Value {
    let s = session;
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
        "messageCount": message_count,
        "pendingMessageCount": pending,
        "tokenUsage": usage,
    })
}

impl<'a> SessionView<'a> {
    pub async fn load(st: &AppState, session: &'a Session) -> ApiResult<Self> {
        let (pending, stored) = tokio::try_join!(
            st.store.queued_turns(&session.id),
            st.messages.session_messages(&session.id),
        )?;
        // The conversation's transcript as of session creation, then this session's messages.
        let mut messages: Vec<AgentMessage> = context_messages(session).collect();
        let mut seen: HashSet<String> = messages.iter().map(|m| m.id().to_owned()).collect();
        for m in stored {
            if seen.insert(m.message.id().to_owned()) {
                messages.push(m.message);
            }
        }
        Ok(Self {
            session,
            pending,
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
        state_json(
            self.session,
            self.messages.len(),
            self.pending,
            self.token_usage(),
        )
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
