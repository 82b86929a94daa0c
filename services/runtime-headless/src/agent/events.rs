//! The desktop's events (`payload.event` of `conversation.event` envelopes) and the coalescing
//! of streamed deltas: a fast model would otherwise produce one event per token, while the
//! desktop renders at most one update per animation frame.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::assembler::Piece;
use crate::domain::message::{AgentMessage, AssistantMessage, TokenUsage};

pub fn agent_start(session_id: &str, turn_id: i64, request_id: &Option<String>) -> Value {
    json!({"type": "agent_start", "sessionId": session_id, "turnId": turn_id, "requestId": request_id})
}

pub fn message_start(message: &AgentMessage) -> Value {
    json!({"type": "message_start", "message": message.to_json()})
}

pub fn message_end(message: &AgentMessage) -> Value {
    json!({"type": "message_end", "message": message.to_json()})
}

/// `message` is the whole partial message: the desktop upserts it (without it, nothing shows).
pub fn message_update(message: &AssistantMessage, piece: &Piece) -> Value {
    json!({
        "type": "message_update",
        "message": serde_json::to_value(AgentMessage::Assistant(message.clone())).unwrap_or(Value::Null),
        "assistantMessageEvent": piece.to_json(message),
    })
}

/// The last update of a step: the finished message, `done` (or `error`) with its stop reason.
pub fn message_done(message: &AssistantMessage) -> Value {
    let kind = match message.stop_reason {
        crate::domain::message::StopReason::Error | crate::domain::message::StopReason::Aborted => {
            "error"
        }
        _ => "done",
    };
    json!({
        "type": "message_update",
        "message": serde_json::to_value(AgentMessage::Assistant(message.clone())).unwrap_or(Value::Null),
        "assistantMessageEvent": {"type": kind, "reason": message.stop_reason},
    })
}

pub fn tool_start(id: &str, name: &str, args: &Value) -> Value {
    json!({"type": "tool_execution_start", "toolCallId": id, "toolName": name, "args": args})
}

pub fn tool_update(id: &str, name: &str, args: &Value, partial: &str) -> Value {
    json!({
        "type": "tool_execution_update", "toolCallId": id, "toolName": name, "args": args,
        "partialResult": {"content": [{"type": "text", "text": partial}]},
    })
}

pub fn tool_end(id: &str, name: &str, result: Value, is_error: bool) -> Value {
    json!({"type": "tool_execution_end", "toolCallId": id, "toolName": name, "result": result, "isError": is_error})
}

pub fn agent_end(
    session_id: &str,
    turn_id: i64,
    outcome: &str,
    messages: &[AgentMessage],
    usage: TokenUsage,
) -> Value {
    json!({
        "type": "agent_end",
        "sessionId": session_id,
        "turnId": turn_id,
        "outcome": outcome,
        "messages": messages.iter().map(AgentMessage::to_json).collect::<Vec<_>>(),
        "usage": usage,
    })
}

/// `workspace` events: `cloned`, `restored`, `snapshot_too_large`, `snapshot_failed`.
pub fn workspace(phase: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({"type": "workspace", "phase": phase, "message": message});
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

pub fn auto_retry_start(attempt: u32, max: u32, delay: Duration, error: &str) -> Value {
    json!({"type": "auto_retry_start", "attempt": attempt, "maxAttempts": max,
           "delayMs": delay.as_millis() as u64, "errorMessage": error})
}

pub fn auto_retry_end(success: bool, attempt: u32, final_error: Option<String>) -> Value {
    json!({"type": "auto_retry_end", "success": success, "attempt": attempt, "finalError": final_error})
}

pub fn runtime_error(session_id: &str, turn_id: i64, code: &str, message: &str) -> Value {
    json!({"type": "runtime_error", "sessionId": session_id, "turnId": turn_id, "error": code, "message": message})
}

/// Decides when a streamed change is published.
///
/// Deltas of one part are merged and sent at most once per `interval`; the end of a part is
/// sent at once (the desktop then shows the finished text or tool call); a delta of another
/// part, or an end, first sends what was pending, so the deltas add up to the whole answer.
/// Starts are folded into the next update.
pub struct Coalescer {
    interval: Duration,
    pending: Option<Piece>,
    last_sent: Option<Instant>,
}

impl Coalescer {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            pending: None,
            last_sent: None,
        }
    }

    /// The pieces to publish now (each with the message as it is now).
    pub fn push(&mut self, piece: Piece, now: Instant) -> Vec<Piece> {
        let mut out = Vec::new();
        match piece {
            Piece::Start(..) => return out,
            Piece::End(..) => {
                // Pending deltas go first, so the deltas always add up to the whole text.
                out.extend(self.pending.take());
                out.push(piece);
            }
            Piece::Delta(..) => {
                let merged = self.pending.as_mut().is_some_and(|p| p.merge(&piece));
                if !merged {
                    out.extend(self.pending.take());
                    self.pending = Some(piece);
                }
                let due = self
                    .last_sent
                    .is_none_or(|t| now.duration_since(t) >= self.interval);
                if due {
                    out.extend(self.pending.take());
                }
            }
        }
        if !out.is_empty() {
            self.last_sent = Some(now);
        }
        out
    }

    /// When the pending delta must go out even if nothing else arrives.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref()?;
        Some(
            self.last_sent
                .map_or_else(Instant::now, |t| t + self.interval),
        )
    }

    pub fn flush(&mut self, now: Instant) -> Option<Piece> {
        let p = self.pending.take()?;
        self.last_sent = Some(now);
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::super::assembler::PartKind;
    use super::*;

    fn d(s: &str) -> Piece {
        Piece::Delta(PartKind::Text, 0, s.into())
    }

    #[test]
    fn merges_fast_deltas_and_sends_ends_at_once() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::from_millis(50));
        assert_eq!(c.push(Piece::Start(PartKind::Text, 0), t0), vec![]);
        assert_eq!(c.push(d("a"), t0), vec![d("a")]);
        assert_eq!(c.push(d("b"), t0 + Duration::from_millis(10)), vec![]);
        assert_eq!(c.push(d("c"), t0 + Duration::from_millis(20)), vec![]);
        assert_eq!(c.deadline(), Some(t0 + Duration::from_millis(50)));
        assert_eq!(
            c.push(d("d"), t0 + Duration::from_millis(60)),
            vec![d("bcd")]
        );
        assert_eq!(c.deadline(), None);
        c.push(d("e"), t0 + Duration::from_millis(70));
        assert_eq!(c.flush(t0 + Duration::from_millis(110)), Some(d("e")));
        c.push(d("f"), t0 + Duration::from_millis(120));
        assert_eq!(
            c.push(
                Piece::End(PartKind::Text, 0),
                t0 + Duration::from_millis(121)
            ),
            vec![d("f"), Piece::End(PartKind::Text, 0)]
        );
        let other = Piece::Delta(PartKind::ToolCall, 1, "{".into());
        c.push(d("g"), t0 + Duration::from_millis(130));
        assert_eq!(c.push(other, t0 + Duration::from_millis(131)), vec![d("g")]);
    }
}
