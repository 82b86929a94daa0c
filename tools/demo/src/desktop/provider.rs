//! The model the organization's provider points at: the local stand-in (started here, on a
//! free port) or a real endpoint whose key comes from the environment only.

use anyhow::Context as _;

use super::{Failure, step};
use crate::cli::{PROVIDER_KEY_ENV, RunOptions};
use crate::model::{self, ModelConfig, ModelServer};
use crate::report::Report;

/// The provider registered for the organization.
pub struct Provider {
    pub kind: String,
    pub base_url: String,
    pub model: String,
    pub secret: String,
    /// The stand-in, kept alive for the run.
    _server: Option<ModelServer>,
}

/// Starts the stand-in, or reads the real provider's key.
pub async fn choose(opts: &RunOptions, report: &mut Report) -> Result<Provider, Failure> {
    Ok(match &opts.provider {
        None => {
            let config = ModelConfig {
                delay: opts.delay,
                ..ModelConfig::default()
            };
            step(report, "stand-in model", async {
                let bash = config.bash;
                let server = ModelServer::start(([127, 0, 0, 1], 0).into(), config)
                    .await
                    .context("binding 127.0.0.1")?;
                let detail = format!(
                    "OpenAI-compatible streaming at {} (bash tool: {})",
                    server.base_url,
                    if bash {
                        "on, bwrap found"
                    } else {
                        "off, no bwrap"
                    }
                );
                Ok((
                    Provider {
                        kind: "openai".into(),
                        base_url: server.base_url.clone(),
                        model: model::MODEL_ID.into(),
                        secret: "sk-demo-placeholder".into(),
                        _server: Some(server),
                    },
                    detail,
                ))
            })
            .await?
        }
        Some(real) => {
            step(report, "provider key", async {
                let secret = std::env::var(PROVIDER_KEY_ENV)
                    .ok()
                    .filter(|k| !k.trim().is_empty())
                    .with_context(|| format!("set {PROVIDER_KEY_ENV} to the provider's API key"))?;
                let detail = format!(
                    "{} at {}, model {} (key from {PROVIDER_KEY_ENV}, {} chars, not shown)",
                    real.kind,
                    real.url,
                    real.model,
                    secret.len()
                );
                Ok((
                    Provider {
                        kind: real.kind.clone(),
                        base_url: real.url.clone(),
                        model: real.model.clone(),
                        secret: secret.trim().to_owned(),
                        _server: None,
                    },
                    detail,
                ))
            })
            .await?
        }
    })
}
