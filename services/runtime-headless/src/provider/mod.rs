//! LLM providers behind one trait. The organization's provider `kind` picks the wire:
//! Anthropic's Messages API for `anthropic`, OpenAI-compatible chat completions for the rest.
//! Both stream the same [`StreamEvent`]s, so the agent loop knows nothing of either wire.

pub mod anthropic;
pub mod egress;
mod http;
pub mod openai;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde_json::Value;

use crate::domain::message::{AgentMessage, StopReason, TokenUsage};
use crate::domain::thinking::ThinkingLevel;

pub use anthropic::Anthropic;
pub use openai::OpenAiCompatible;

/// A tool as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// One streamed model call: the whole context of a step.
pub struct ModelRequest {
    pub base_url: String,
    pub secret: cloud_common::Secret,
    pub model: String,
    pub system: String,
    pub messages: Vec<AgentMessage>,
    pub tools: Vec<ToolSpec>,
    pub thinking: ThinkingLevel,
}

/// What the model is producing, block by block. `index` is the provider's block index within
/// the answer (a block is one text, one thinking or one tool call).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    BlockStart {
        index: usize,
        kind: BlockKind,
    },
    Delta {
        index: usize,
        delta: Delta,
    },
    BlockEnd {
        index: usize,
    },
    /// Token counts seen so far (either may be missing until the end of the stream).
    Usage(PartialUsage),
    Stop(StopReason),
}

#[derive(Debug, Clone, PartialEq)]
pub enum BlockKind {
    Text,
    Thinking,
    ToolCall { id: String, name: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    Thinking(String),
    /// Anthropic's signature of a thinking block (sent back with tool results).
    Signature(String),
    /// A redacted thinking block's opaque data.
    Redacted(String),
    /// A piece of a tool call's JSON arguments.
    ToolArgs(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartialUsage {
    pub input: Option<u64>,
    pub output: Option<u64>,
}

impl PartialUsage {
    pub fn merge_into(self, usage: &mut TokenUsage) {
        if let Some(i) = self.input {
            usage.input = i;
        }
        if let Some(o) = self.output {
            usage.output = o;
        }
        usage.total_tokens = usage.input + usage.output;
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// The message keeps the status number and the provider's own words, so an authentication
    /// failure reads like one on the desktop (it opens its credentials sheet for those).
    #[error("the provider answered HTTP {status}{}", fmt_message(message))]
    Status { status: u16, message: String },
    #[error("the provider could not be reached: {0}")]
    Network(String),
    #[error("the provider stream ended before the answer was complete")]
    Incomplete,
    #[error("the provider sent nothing for {0} s")]
    Timeout(u64),
    #[error("the provider sent an unreadable stream: {0}")]
    Protocol(String),
    #[error("the provider's answer is larger than this runtime accepts ({0})")]
    TooLarge(String),
    #[error("provider kind {0:?} cannot run cloud turns")]
    Unsupported(String),
    #[error("the provider address is not allowed: {0}")]
    Forbidden(String),
}

fn fmt_message(m: &str) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(": {m}")
    }
}

impl ProviderError {
    /// Short machine-readable code for events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Status { .. } => "provider_http_error",
            Self::Network(_) => "provider_unreachable",
            Self::Incomplete => "provider_stream_dropped",
            Self::Timeout(_) => "provider_timeout",
            Self::Protocol(_) => "provider_protocol_error",
            Self::TooLarge(_) => "provider_output_too_large",
            Self::Unsupported(_) => "provider_unsupported",
            Self::Forbidden(_) => "provider_address_forbidden",
        }
    }
}

/// Events in order; ends after the provider's end of answer, or with one error.
pub type EventStream = BoxStream<'static, Result<StreamEvent, ProviderError>>;

#[async_trait]
pub trait LlmProvider: Send + Sync + 'static {
    /// The `api` label the desktop shows on assistant messages.
    fn api(&self) -> &'static str;

    async fn stream(&self, req: ModelRequest) -> Result<EventStream, ProviderError>;
}

/// Bounds on everything read from a provider: a hostile or broken endpoint can neither stall a
/// turn forever nor make the worker buffer without limit.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// A stream that sends nothing for this long fails the step.
    pub idle: Duration,
    /// Longest line of a server-sent-event stream.
    pub max_line_bytes: usize,
    /// Bytes one streamed answer may carry in all.
    pub max_stream_bytes: usize,
    /// Bytes of an error answer that are read (the rest is dropped unread).
    pub max_error_bytes: usize,
}

impl ReadLimits {
    pub fn new(idle: Duration, max_stream_bytes: usize) -> Self {
        Self {
            idle,
            max_line_bytes: 1024 * 1024,
            max_stream_bytes,
            max_error_bytes: 64 * 1024,
        }
    }
}

/// Picks the implementation for a provider kind.
#[derive(Clone)]
pub struct Providers {
    openai: Arc<OpenAiCompatible>,
    anthropic: Arc<Anthropic>,
}

impl Providers {
    pub fn new(limits: ReadLimits, allow_private_networks: bool) -> Self {
        let client = http::ProviderClient::new(limits, allow_private_networks);
        Self {
            openai: Arc::new(OpenAiCompatible::new(client.clone())),
            anthropic: Arc::new(Anthropic::new(client)),
        }
    }

    pub fn for_kind(&self, kind: &str) -> Result<Arc<dyn LlmProvider>, ProviderError> {
        match kind {
            // Copilot's API is not open to third-party servers.
            "github-copilot" => Err(ProviderError::Unsupported(kind.to_owned())),
            "anthropic" => Ok(self.anthropic.clone()),
            _ => Ok(self.openai.clone()),
        }
    }

    /// The base URL to use when the organization left it empty.
    pub fn default_base_url(kind: &str) -> Option<&'static str> {
        match kind {
            "openai" => Some("https://api.openai.com/v1"),
            "anthropic" => Some("https://api.anthropic.com/v1"),
            "google" => Some("https://generativelanguage.googleapis.com/v1beta/openai"),
            "groq" => Some("https://api.groq.com/openai/v1"),
            "mistral" => Some("https://api.mistral.ai/v1"),
            "openrouter" => Some("https://openrouter.ai/api/v1"),
            _ => None,
        }
    }
}
