//! OpenAI-compatible streaming chat completions: `data:` chunks with `choices[0].delta`
//! (`role`, `content`, `tool_calls[]` pieces), a `finish_reason` chunk, a usage chunk with empty
//! `choices`, then `data: [DONE]`.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::script::{self, Next, ToolDone, TurnSoFar};
use super::{ModelConfig, argument_pieces, content_text, parse_body, sse_response, tokens};

pub async fn completions(
    State(config): State<ModelConfig>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > "Bearer ".len() && v.starts_with("Bearer "));
    if !authorized {
        return super::wire_error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Missing bearer API key",
        );
    }
    let request = match parse_body(&body) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let offered: Vec<String> = request["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
        .collect();
    let next = script::next(&turn_so_far(&request["messages"]), &offered, config.bash);
    let model = request["model"]
        .as_str()
        .unwrap_or(super::MODEL_ID)
        .to_owned();
    let prompt_tokens = tokens(body.len());
    super::log_request(&config, "POST /v1/chat/completions", &model, &next);
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    tokio::spawn(stream(config, model, next, prompt_tokens, tx));
    sse_response(rx)
}

/// The turn since the last user message: its text and the tool calls answered since.
pub fn turn_so_far(messages: &Value) -> TurnSoFar {
    let list = messages.as_array().cloned().unwrap_or_default();
    let start = list.iter().rposition(|m| m["role"] == "user");
    let Some(start) = start else {
        return TurnSoFar::default();
    };
    let mut names: HashMap<String, String> = HashMap::new();
    let mut done = Vec::new();
    for m in &list[start + 1..] {
        match m["role"].as_str() {
            Some("assistant") => {
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    if let (Some(id), Some(name)) =
                        (call["id"].as_str(), call["function"]["name"].as_str())
                    {
                        names.insert(id.to_owned(), name.to_owned());
                    }
                }
            }
            Some("tool") => {
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                done.push(ToolDone {
                    name: names.get(id).cloned().unwrap_or_default(),
                    result: content_text(&m["content"]),
                });
            }
            _ => {}
        }
    }
    TurnSoFar {
        prompt: content_text(&list[start]["content"]),
        done,
    }
}

async fn stream(
    config: ModelConfig,
    model: String,
    next: Next,
    prompt_tokens: u64,
    tx: mpsc::Sender<Bytes>,
) {
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut v = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        Bytes::from(format!("data: {v}\n\n"))
    };
    let delta = |d: Value, finish: Option<&str>| {
        chunk(
            json!([{"index": 0, "delta": d, "finish_reason": finish}]),
            None,
        )
    };
    let mut out_bytes = 0usize;
    let mut frames = vec![delta(json!({"role": "assistant", "content": ""}), None)];
    let finish = match next {
        Next::Answer(text) => {
            out_bytes += text.len();
            for piece in script::pieces(&text, config.words_per_piece) {
                frames.push(delta(json!({"content": piece}), None));
            }
            "stop"
        }
        Next::Call { text, name, args } => {
            if let Some(text) = text {
                out_bytes += text.len();
                for piece in script::pieces(&text, config.words_per_piece) {
                    frames.push(delta(json!({"content": piece}), None));
                }
            }
            let call_id = format!("call_{}", uuid::Uuid::new_v4().simple());
            frames.push(delta(
                json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]}),
                None,
            ));
            for piece in argument_pieces(&args) {
                out_bytes += piece.len();
                frames.push(delta(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    None,
                ));
            }
            "tool_calls"
        }
    };
    frames.push(delta(json!({}), Some(finish)));
    let completion = tokens(out_bytes);
    frames.push(chunk(
        json!([]),
        Some(
            json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion}),
        ),
    ));
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(config.delay).await;
        }
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_turn_after_the_last_user_message() {
        let messages = json!([
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "old"},
            {"role": "assistant", "content": "old answer"},
            {"role": "user", "content": [{"type": "text", "text": "new prompt"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "write", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "Wrote 10 bytes"}
        ]);
        let turn = turn_so_far(&messages);
        assert_eq!(turn.prompt, "new prompt");
        assert_eq!(
            turn.done,
            vec![ToolDone {
                name: "write".into(),
                result: "Wrote 10 bytes".into()
            }]
        );
    }
}
