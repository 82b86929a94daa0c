//! The realtime websocket as the desktop reads it: frames are JSON envelopes; for a
//! `conversation.event` of our conversation, `payload.event` is the agent event the renderer
//! applies. This prints the streamed text as it arrives, the tool calls and their results, and
//! checks that the deltas add up to the messages they belong to (the desktop shows `message`,
//! so both must agree).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::report::{Report, clip};

/// What the reader task hands over.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Closed(String),
}

/// An open websocket whose frames are read by a task as they come, so none is missed while
/// the demo makes its HTTP calls.
pub struct Socket {
    rx: mpsc::Receiver<Frame>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Socket {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("websocket handshake")?;
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(async move {
            let (_write, mut read) = ws.split();
            loop {
                let frame = match read.next().await {
                    Some(Ok(Message::Text(t))) => match serde_json::from_str(t.as_str()) {
                        Ok(v) => Frame::Json(v),
                        Err(_) => continue,
                    },
                    Some(Ok(Message::Close(c))) => Frame::Closed(match c {
                        Some(c) => format!("closed by the server: {} {}", c.code, c.reason),
                        None => "closed by the server".into(),
                    }),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => Frame::Closed(format!("websocket error: {e}")),
                    None => Frame::Closed("the connection ended".into()),
                };
                let last = matches!(frame, Frame::Closed(_));
                if tx.send(frame).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Self { rx, task })
    }

    /// The next JSON frame before `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> anyhow::Result<Value> {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Err(_) => bail!("no websocket frame in time"),
            Ok(None) => bail!("the websocket reader stopped"),
            Ok(Some(Frame::Closed(why))) => bail!("the websocket {why}"),
            Ok(Some(Frame::Json(v))) => Ok(v),
        }
    }
}

/// What one turn showed.
#[derive(Debug, Default)]
pub struct Turn {
    pub outcome: String,
    pub text_pieces: usize,
    pub text_chars: usize,
    /// Tool name and whether it succeeded, in order.
    pub tools: Vec<(String, bool)>,
    /// From the prompt's acceptance to the first streamed text.
    pub first_text: Option<Duration>,
    pub runtime_errors: Vec<String>,
    /// Parts whose deltas do not add up to the final message.
    pub mismatches: Vec<String>,
    pub assistant_messages: usize,
    pub usage: Value,
}

#[derive(PartialEq)]
enum Lane {
    Text,
    Thinking,
}

struct View<'a> {
    report: &'a mut Report,
    started: Instant,
    turn: Turn,
    /// The part being streamed on the open line.
    current: Option<(String, u64, &'static str)>,
    deltas: HashMap<(String, u64), String>,
}

impl View<'_> {
    fn stream(&mut self, lane: Lane, message: &str, index: u64, delta: &str) {
        let key = (
            message.to_owned(),
            index,
            if lane == Lane::Text { "t" } else { "k" },
        );
        if self.current.as_ref() != Some(&key) {
            match lane {
                Lane::Text => self.report.stream_start("1;32", "assistant"),
                Lane::Thinking => self.report.stream_start("2", "thinking"),
            }
            self.current = Some(key);
        }
        self.report.stream(delta);
        if lane == Lane::Text {
            self.turn.text_pieces += 1;
            self.turn.text_chars += delta.chars().count();
            self.turn.first_text.get_or_insert(self.started.elapsed());
            self.deltas
                .entry((message.to_owned(), index))
                .or_default()
                .push_str(delta);
        }
    }

    fn line(&mut self, code: &str, label: &str, text: &str) {
        self.current = None;
        self.report.event(code, label, text);
    }

    /// Handles one agent event; true at `agent_end`.
    fn apply(&mut self, event: &Value) -> bool {
        let kind = event["type"].as_str().unwrap_or_default();
        match kind {
            "agent_start" => self.line("2", "agent", "agent_start"),
            "message_start" if event["message"]["role"] == "user" => {
                let m = &event["message"];
                let text = m["content"]
                    .as_array()
                    .and_then(|p| p.iter().find_map(|p| p["text"].as_str()))
                    .or(m["content"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                self.line("1;34", "user", &clip(&text, 100));
            }
            "message_update" => {
                let delta = &event["assistantMessageEvent"];
                let id = event["message"]["id"].as_str().unwrap_or_default();
                let index = delta["contentIndex"].as_u64().unwrap_or_default();
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        let d = delta["delta"].as_str().unwrap_or_default().to_owned();
                        self.stream(Lane::Text, id, index, &d);
                    }
                    Some("thinking_delta") => {
                        let d = delta["delta"].as_str().unwrap_or_default().to_owned();
                        self.stream(Lane::Thinking, id, index, &d);
                    }
                    Some("error") => {
                        let why = event["message"]["errorMessage"].as_str().unwrap_or("error");
                        self.line("31", "assistant", &format!("stopped: {why}"));
                    }
                    _ => {}
                }
            }
            "tool_execution_start" => {
                let name = event["toolName"].as_str().unwrap_or("?");
                let args = clip(&event["args"].to_string(), 110);
                self.line(
                    "36",
                    "tool call",
                    &format!("tool_execution_start {name} {args}"),
                );
            }
            "tool_execution_end" => {
                let name = event["toolName"].as_str().unwrap_or("?").to_owned();
                let failed = event["isError"].as_bool().unwrap_or(true);
                let text = event["result"]["content"]
                    .as_array()
                    .and_then(|p| p.iter().find_map(|p| p["text"].as_str()))
                    .unwrap_or_default();
                let (code, word) = if failed {
                    ("31", "error")
                } else {
                    ("36", "ok")
                };
                let shown = format!("tool_execution_end {name} {word}: {}", clip(text, 100));
                self.line(code, "tool result", &shown);
                self.turn.tools.push((name, !failed));
            }
            "runtime_status" => {
                let s = format!(
                    "{} ({})",
                    event["status"].as_str().unwrap_or("?"),
                    event["message"].as_str().unwrap_or_default()
                );
                self.line("2", "status", &s);
            }
            "runtime_error" => {
                let m = event["message"]
                    .as_str()
                    .unwrap_or("runtime error")
                    .to_owned();
                self.line("31", "error", &m);
                self.turn.runtime_errors.push(m);
            }
            "agent_end" => {
                self.finish(event);
                return true;
            }
            _ => {}
        }
        false
    }

    fn finish(&mut self, event: &Value) {
        self.turn.outcome = event["outcome"].as_str().unwrap_or("?").to_owned();
        self.turn.usage = event["usage"].clone();
        for m in event["messages"].as_array().into_iter().flatten() {
            if m["role"] != "assistant" {
                continue;
            }
            self.turn.assistant_messages += 1;
            let id = m["id"].as_str().unwrap_or_default();
            for (i, part) in m["content"].as_array().into_iter().flatten().enumerate() {
                let Some(text) = part["text"].as_str().filter(|_| part["type"] == "text") else {
                    continue;
                };
                let streamed = self.deltas.remove(&(id.to_owned(), i as u64));
                if streamed.as_deref().unwrap_or_default() != text {
                    self.turn.mismatches.push(format!(
                        "message {id} part {i}: streamed {:?}, final {:?}",
                        clip(streamed.as_deref().unwrap_or_default(), 60),
                        clip(text, 60)
                    ));
                }
            }
        }
        let usage = &event["usage"];
        let detail = format!(
            "agent_end {} ({} model steps, {} tokens in, {} out)",
            self.turn.outcome,
            self.turn.assistant_messages,
            usage["input"].as_u64().unwrap_or_default(),
            usage["output"].as_u64().unwrap_or_default()
        );
        let code = if self.turn.outcome == "succeeded" {
            "2"
        } else {
            "31"
        };
        self.line(code, "agent", &detail);
    }
}

/// Reads frames until the turn's `agent_end` (or the deadline), printing as it goes.
pub async fn watch_turn(
    socket: &mut Socket,
    conversation_id: &str,
    report: &mut Report,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<Turn> {
    let deadline = started + timeout;
    let mut view = View {
        report,
        started,
        turn: Turn::default(),
        current: None,
        deltas: HashMap::new(),
    };
    loop {
        let frame = match socket.next(deadline).await {
            Ok(f) => f,
            Err(e) => {
                view.report.close_line();
                return Err(e.context(format!(
                    "waiting for agent_end ({} s allowed)",
                    timeout.as_secs()
                )));
            }
        };
        let ours =
            frame["type"] == "conversation.event" && frame["conversationId"] == conversation_id;
        if ours && view.apply(&frame["payload"]["event"]) {
            return Ok(view.turn);
        }
        if frame["type"] == "resync" {
            view.line("33", "realtime", "resync: the server lost our position");
        }
    }
}

/// Whether the turn did what the demo shows; the step's detail line.
pub fn judge(turn: Turn, stand_in: bool) -> anyhow::Result<(Turn, String)> {
    if turn.outcome != "succeeded" {
        bail!(
            "the turn ended {}: {}",
            turn.outcome,
            turn.runtime_errors.join("; ")
        );
    }
    if turn.text_chars == 0 {
        bail!("no text was streamed");
    }
    if let Some(m) = turn.mismatches.first() {
        bail!("the streamed deltas do not add up to the final message: {m}");
    }
    if stand_in {
        // The stand-in always writes then reads (or lists) its note; a failure there is the
        // stack's, not the model's.
        for want in ["write", "read"] {
            let ok = turn
                .tools
                .iter()
                .any(|(n, ok)| *ok && (n == want || (want == "read" && n == "ls")));
            if !ok {
                bail!("the {want} tool did not succeed: {:?}", turn.tools);
            }
        }
    }
    let tools: Vec<String> = turn
        .tools
        .iter()
        .map(|(n, ok)| format!("{n} {}", if *ok { "ok" } else { "error" }))
        .collect();
    let detail = format!(
        "{} chars streamed in {} pieces, first text after {} ms; tools: {}",
        turn.text_chars,
        turn.text_pieces,
        turn.first_text.unwrap_or_default().as_millis(),
        if tools.is_empty() {
            "none".into()
        } else {
            tools.join(", ")
        }
    );
    Ok((turn, detail))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn update(id: &str, index: u64, delta: &str) -> Value {
        json!({"type": "message_update", "message": {"id": id, "role": "assistant"},
            "assistantMessageEvent": {"type": "text_delta", "contentIndex": index, "delta": delta}})
    }

    #[test]
    fn deltas_are_checked_against_the_final_messages() {
        let mut report = Report::new();
        let mut view = View {
            report: &mut report,
            started: Instant::now(),
            turn: Turn::default(),
            current: None,
            deltas: HashMap::new(),
        };
        assert!(!view.apply(&update("a1", 0, "Hel")));
        assert!(!view.apply(&update("a1", 0, "lo")));
        assert!(
            !view.apply(&json!({"type": "tool_execution_end", "toolName": "read",
            "isError": false, "result": {"content": [{"type": "text", "text": "x"}]}}))
        );
        assert!(!view.apply(&update("a2", 0, "Bye")));
        let end = json!({"type": "agent_end", "outcome": "succeeded", "usage": {"input": 1, "output": 2},
            "messages": [
                {"id": "a1", "role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                {"id": "a2", "role": "assistant", "content": [{"type": "text", "text": "Bye now"}]}]});
        assert!(view.apply(&end));
        let turn = view.turn;
        assert_eq!(turn.outcome, "succeeded");
        assert_eq!((turn.text_pieces, turn.text_chars), (3, 8));
        assert_eq!(turn.tools, vec![("read".to_owned(), true)]);
        assert_eq!(turn.assistant_messages, 2);
        assert_eq!(turn.mismatches.len(), 1, "{:?}", turn.mismatches);
        assert!(turn.mismatches[0].contains("a2"));
    }

    fn turn(outcome: &str, tools: &[(&str, bool)], chars: usize) -> Turn {
        Turn {
            outcome: outcome.into(),
            text_chars: chars,
            text_pieces: chars.min(3),
            tools: tools.iter().map(|(n, ok)| (n.to_string(), *ok)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn judges_what_the_turn_showed() {
        assert!(
            judge(
                turn("succeeded", &[("write", true), ("read", true)], 10),
                true
            )
            .is_ok()
        );
        assert!(
            judge(
                turn("succeeded", &[("write", true), ("ls", true)], 10),
                true
            )
            .is_ok()
        );
        assert!(
            judge(
                turn("succeeded", &[("write", true), ("read", false)], 10),
                true
            )
            .is_err()
        );
        assert!(judge(turn("succeeded", &[], 10), true).is_err());
        assert!(judge(turn("succeeded", &[], 10), false).is_ok());
        assert!(judge(turn("failed", &[("write", true), ("read", true)], 10), true).is_err());
        assert!(
            judge(
                turn("succeeded", &[("write", true), ("read", true)], 0),
                true
            )
            .is_err()
        );
    }
}
