//! The HTTP side shared by both wires: the egress guard, the request, and a capped read of
//! error answers.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use super::sse::SseReader;
use super::{ProviderError, ReadLimits, egress};

#[derive(Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    pub limits: ReadLimits,
    allow_private_networks: bool,
}

impl ProviderClient {
    /// `allow_private_networks`: see [`egress`]; off in production.
    pub fn new(limits: ReadLimits, allow_private_networks: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none());
        if !allow_private_networks {
            builder = builder.dns_resolver(std::sync::Arc::new(egress::PublicOnlyResolver));
        }
        Self {
            http: builder.build().unwrap_or_default(),
            limits,
            allow_private_networks,
        }
    }

    /// POSTs `body` to `base_url` + `path` and returns the event stream of a 2xx answer.
    pub async fn post_stream(
        &self,
        base_url: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<SseReader, ProviderError> {
        let url = format!("{}/{path}", base_url.trim_end_matches('/'));
        let parsed = url::Url::parse(&url)
            .map_err(|_| ProviderError::Forbidden("the provider base URL is not a URL".into()))?;
        if !self.allow_private_networks {
            egress::check_url(&parsed)
                .await
                .map_err(|refused| ProviderError::Forbidden(refused.0))?;
        }
        let mut req = self.http.post(parsed).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = tokio::time::timeout(self.limits.idle, req.send())
            .await
            .map_err(|_| ProviderError::Timeout(self.limits.idle.as_secs()))?
            .map_err(network)?;
        let status = resp.status();
        if !status.is_success() {
            let text = read_capped(resp, self.limits.max_error_bytes, self.limits.idle).await;
            return Err(ProviderError::Status {
                status: status.as_u16(),
                message: error_message(&text),
            });
        }
        Ok(SseReader::new(resp, self.limits))
    }
}

pub fn network(e: reqwest::Error) -> ProviderError {
    // `without_url`: a base URL may carry credentials.
    ProviderError::Network(e.without_url().to_string())
}

/// At most `cap` bytes of an answer; the rest is never read.
async fn read_capped(resp: reqwest::Response, cap: usize, idle: Duration) -> String {
    let mut body = resp.bytes_stream();
    let mut out = Vec::new();
    while out.len() < cap {
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(chunk))) => {
                let take = chunk.len().min(cap - out.len());
                out.extend_from_slice(&chunk[..take]);
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The provider's own error text (`error.message`, or a plain `message`), shortened.
fn error_message(body: &str) -> String {
    let value: Option<Value> = serde_json::from_str(body).ok();
    let text = value
        .as_ref()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or_else(|| v["message"].as_str())
                .or_else(|| v["error"].as_str())
        })
        .unwrap_or_default();
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_short_and_plain() {
        assert_eq!(
            error_message(r#"{"error":{"message":"Incorrect API key provided"}}"#),
            "Incorrect API key provided"
        );
        assert_eq!(
            error_message(r#"{"type":"error","error":{"type":"x","message":"bad"}}"#),
            "bad"
        );
        assert_eq!(error_message("<html>oops</html>"), "");
        let long = format!(r#"{{"message":"{}"}}"#, "a".repeat(1000));
        assert_eq!(error_message(&long).len(), 300);
    }
}
