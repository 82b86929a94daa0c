//! JSON calls with the error text a person can act on: the status and the service's
//! `{"error","message"}`.

use anyhow::{Context as _, bail};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

/// Sends `req` and returns the status and the JSON body (`Null` when there is none).
pub async fn send(req: RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
    let resp = req.send().await.map_err(|e| {
        // Without the URL the message is still clear, and a URL may carry a token.
        anyhow::anyhow!("request failed: {}", e.without_url())
    })?;
    let status = resp.status();
    let text = resp.text().await.context("reading the answer")?;
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, body))
}

/// `send`, failing on a non-2xx status with what the service said.
pub async fn ok(req: RequestBuilder) -> anyhow::Result<Value> {
    let (status, body) = send(req).await?;
    if !status.is_success() {
        bail!("{}", describe(status, &body));
    }
    Ok(body)
}

/// `HTTP 403 forbidden: Realtime access denied`.
pub fn describe(status: StatusCode, body: &Value) -> String {
    let code = body["error"].as_str().unwrap_or_default();
    let message = body["message"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| body.as_str().map(|s| crate::report::clip(s, 160)))
        .unwrap_or_default();
    format!("HTTP {} {code}: {message}", status.as_u16())
        .trim_end_matches([' ', ':'])
        .to_owned()
}

/// `body[path…]` as a string, or an error naming the field.
pub fn field<'a>(body: &'a Value, path: &[&str]) -> anyhow::Result<&'a str> {
    let mut v = body;
    for p in path {
        v = &v[*p];
    }
    v.as_str()
        .with_context(|| format!("the answer has no {}: {}", path.join("."), clip_json(body)))
}

pub fn clip_json(v: &Value) -> String {
    crate::report::clip(&v.to_string(), 200)
}
