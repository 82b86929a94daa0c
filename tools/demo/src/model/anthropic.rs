//! Anthropic Messages streaming: `message_start`, `content_block_start/_delta/_stop` (text
//! deltas, `tool_use` with `input_json_delta` pieces), `message_delta` with the stop reason and
//! usage, `message_stop`.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::script::{self, Next, ToolDone, TurnSoFar};
use super::{ModelConfig, argument_pieces, content_text, parse_body, sse_response, tokens};

pub async fn messages(
    State(config): State<ModelConfig>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let has_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.is_empty())
        || headers.contains_key("authorization");
    if !has_key {
        return super::wire_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
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
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    let next = script::next(&turn_so_far(&request["messages"]), &offered, config.bash);
    let model = request["model"]
        .as_str()
        .unwrap_or(super::MODEL_ID)
        .to_owned();
    super::log_request(&config, "POST /v1/messages", &model, &next);
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    tokio::spawn(stream(config, model, next, tokens(body.len()), tx));
    sse_response(rx)
}

fn is_tool_results(m: &Value) -> bool {
    m["content"]
        .as_array()
        .is_some_and(|parts| !parts.is_empty() && parts.iter().all(|p| p["type"] == "tool_result"))
}

/// The turn since the last user message that is not only tool results.
pub fn turn_so_far(messages: &Value) -> TurnSoFar {
    let list = messages.as_array().cloned().unwrap_or_default();
    let Some(start) = list
        .iter()
        .rposition(|m| m["role"] == "user" && !is_tool_results(m))
    else {
        return TurnSoFar::default();
    };
    let mut names: HashMap<String, String> = HashMap::new();
    let mut done = Vec::new();
    for m in &list[start + 1..] {
        for part in m["content"].as_array().into_iter().flatten() {
            match part["type"].as_str() {
                Some("tool_use") => {
                    if let (Some(id), Some(name)) = (part["id"].as_str(), part["name"].as_str()) {
                        names.insert(id.to_owned(), name.to_owned());
                    }
                }
                Some("tool_result") => {
                    let id = part["tool_use_id"].as_str().unwrap_or_default();
                    done.push(ToolDone {
                        name: names.get(id).cloned().unwrap_or_default(),
                        result: content_text(&part["content"]),
                    });
                }
                _ => {}
            }
        }
    }
    TurnSoFar {
        prompt: content_text(&list[start]["content"]),
        done,
    }
}

fn frame(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn text_block(index: usize, text: &str, words: usize, frames: &mut Vec<Bytes>) {
    frames.push(frame(
        "content_block_start",
        json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "text", "text": ""}}),
    ));
    for piece in script::pieces(text, words) {
        frames.push(frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    frames.push(frame(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    ));
}

async fn stream(
    config: ModelConfig,
    model: String,
    next: Next,
    input_tokens: u64,
    tx: mpsc::Sender<Bytes>,
) {
    let mut frames = vec![frame(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": format!("msg_{}", uuid::Uuid::new_v4().simple()), "type": "message",
            "role": "assistant", "model": model, "content": [],
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
    )];
    let mut out_bytes = 0usize;
    let reason = match next {
        Next::Answer(text) => {
            out_bytes += text.len();
            text_block(0, &text, config.words_per_piece, &mut frames);
            "end_turn"
        }
        Next::Call { text, name, args } => {
            let mut index = 0;
            if let Some(text) = text {
                out_bytes += text.len();
                text_block(index, &text, config.words_per_piece, &mut frames);
                index += 1;
            }
            frames.push(frame(
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": format!("toolu_{}", uuid::Uuid::new_v4().simple()),
                    "name": name, "input": {}}}),
            ));
            for piece in argument_pieces(&args) {
                out_bytes += piece.len();
                frames.push(frame(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
            frames.push(frame(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
            "tool_use"
        }
    };
    frames.push(frame(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null},
            "usage": {"output_tokens": tokens(out_bytes)}}),
    ));
    frames.push(frame("message_stop", json!({"type": "message_stop"})));
    for (i, f) in frames.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(config.delay).await;
        }
        if tx.send(f).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_do_not_count_as_the_prompt() {
        let messages = json!([
            {"role": "user", "content": "prompt"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll write"},
                {"type": "tool_use", "id": "t1", "name": "write", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "Wrote"}]}]}
        ]);
        let turn = turn_so_far(&messages);
        assert_eq!(turn.prompt, "prompt");
        assert_eq!(turn.done.len(), 1);
        assert_eq!(turn.done[0].name, "write");
        assert_eq!(turn.done[0].result, "Wrote");
    }
}
