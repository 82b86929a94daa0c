//! LLM providers behind one trait. Every kind the organization can configure today speaks the
//! OpenAI-compatible chat completions API; another wire format is one more implementation.

pub mod egress;
pub mod openai;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde::Serialize;

pub use openai::OpenAiCompatible;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// One streamed completion request.
pub struct ChatRequest {
    pub base_url: String,
    pub secret: cloud_common::Secret,
    pub model: String,
    pub messages: Vec<ChatMessage>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("the provider answered HTTP {status}")]
    Status { status: u16, message: String },
    #[error("the provider could not be reached: {0}")]
    Network(String),
    #[error("the provider stream ended before the answer was complete")]
    Incomplete,
    #[error("the provider sent nothing for {0} s")]
    Timeout(u64),
    #[error("the provider sent an unreadable stream: {0}")]
    Protocol(String),
    #[error("provider kind {0:?} cannot run cloud turns")]
    Unsupported(String),
    #[error("the provider address is not allowed: {0}")]
    Forbidden(String),
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
            Self::Unsupported(_) => "provider_unsupported",
            Self::Forbidden(_) => "provider_address_forbidden",
        }
    }
}

/// Text deltas in order; ends after the provider's end-of-stream marker, or with one error.
pub type DeltaStream = BoxStream<'static, Result<String, ProviderError>>;

#[async_trait]
pub trait LlmProvider: Send + Sync + 'static {
    async fn stream(&self, req: ChatRequest) -> Result<DeltaStream, ProviderError>;
}

/// Picks the implementation for a provider kind.
#[derive(Clone)]
pub struct Providers {
    openai: Arc<OpenAiCompatible>,
}

impl Providers {
    pub fn new(idle_timeout: Duration, allow_private_networks: bool) -> Self {
        Self {
            openai: Arc::new(OpenAiCompatible::new(idle_timeout, allow_private_networks)),
        }
    }

    pub fn for_kind(&self, kind: &str) -> Result<Arc<dyn LlmProvider>, ProviderError> {
        match kind {
            // Copilot's API is not open to third-party servers.
            "github-copilot" => Err(ProviderError::Unsupported(kind.to_owned())),
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
