//! Shared state of runtime-headless.

use std::sync::Arc;

use anyhow::Context;
use cloud_common::Secret;
use cloud_common::db::{self, PgReady, SchemaReady};
use cloud_common::health::Readiness;
use cloud_common::internal::CloudApiClient;
use cloud_common::metrics::Metrics;
use cloud_common::server::Shutdown;
use sqlx::PgPool;

use crate::Config;
use crate::agent::{AgentConfig, AgentDeps};
use crate::grant::{CachedGrants, CloudApi, GrantClient, TranscriptSink};
use crate::metrics::RuntimeMetrics;
use crate::provider::{Providers, ReadLimits};
use crate::publish::Publisher;
use crate::seal::Sealer;
use crate::store::memory::MemoryStore;
use crate::store::postgres::PgStore;
use crate::store::{MessageStore, Store, WorkspaceStore};
use crate::tools::ToolLimits;
use crate::tools::sandbox::{Sandbox, SandboxConfig};
use crate::worker::{Worker, WorkerConfig};
use crate::workspace::{WorkspaceConfig, WorkspaceManager};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Option<PgPool>,
    pub store: Arc<dyn Store>,
    pub messages: Arc<dyn MessageStore>,
    pub workspaces: Arc<WorkspaceManager>,
    pub grants: Arc<dyn GrantClient>,
    pub publisher: Publisher,
    pub sealer: Sealer,
    pub worker: Worker,
    pub metrics: Metrics,
    pub runtime_metrics: RuntimeMetrics,
    pub readiness: Readiness,
    pub shutdown: Shutdown,
}

impl AppState {
    pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let metrics = Metrics::new(crate::SERVICE);
        let runtime_metrics = RuntimeMetrics::register(&metrics);
        let mut readiness = Readiness::new(shutdown.clone());
        type Stores = (
            Option<PgPool>,
            Arc<dyn Store>,
            Arc<dyn MessageStore>,
            Arc<dyn WorkspaceStore>,
        );
        let (pool, store, messages, workspace_store): Stores = match &config.database_url {
            Some(url) => {
                let pool =
                    db::lazy_pool(url.expose(), config.db_pool_size).context("DATABASE_URL")?;
                readiness = readiness
                    .with_check(PgReady(pool.clone()))
                    .with_check(SchemaReady::new(pool.clone()));
                let pg = Arc::new(PgStore::new(pool.clone()));
                (Some(pool), pg.clone(), pg.clone(), pg)
            }
            None => {
                tracing::warn!(
                    "DATABASE_URL is not set: sessions live in memory (one replica only)."
                );
                let memory = Arc::new(MemoryStore::new());
                (None, memory.clone(), memory.clone(), memory)
            }
        };
        let token = config.common.internal_token.clone();
        if token.is_none() {
            tracing::warn!(
                "CHATONS_INTERNAL_SERVICE_TOKEN is not set: cloud-api and cloud-realtime will refuse this worker."
            );
        }
        let cloud = CloudApi::new(CloudApiClient::new(
            config.cloud_api_url.clone(),
            token.clone().unwrap_or_else(|| Secret::new("")),
        ));
        let grants: Arc<dyn GrantClient> = if config.grant_cache.is_zero() {
            Arc::new(cloud.clone())
        } else {
            Arc::new(CachedGrants::new(
                Arc::new(cloud.clone()),
                config.grant_cache,
            ))
        };
        let transcripts: Arc<dyn TranscriptSink> = Arc::new(cloud);
        let publisher = Publisher::new(config.realtime_publish_url.clone(), token.clone());
        let sealer = Sealer::new(
            config.sealing_key.as_ref(),
            &config.sealing_previous_keys,
            token.as_ref(),
        );
        let sandbox = Arc::new(Sandbox::new(
            SandboxConfig {
                bwrap: config.sandbox_bwrap.clone(),
                network: config.sandbox_network,
                memory_bytes: config.sandbox_memory_mb << 20,
                max_processes: config.sandbox_max_processes,
                proc: config.sandbox_proc,
                ..SandboxConfig::default()
            },
            &config.root_dir.join("sandbox"),
        ));
        let workspaces = Arc::new(WorkspaceManager::new(
            WorkspaceConfig {
                root: config.root_dir.clone(),
                git_binary: config.git_binary.clone(),
                max_snapshot_bytes: config.max_snapshot_bytes,
                allow_private_networks: config.provider_allow_private_networks,
                idle: config.idle_timeout,
            },
            workspace_store,
            sandbox.clone(),
            config.owner_id.clone(),
        ));
        let agent = AgentDeps {
            workspaces: workspaces.clone(),
            store: store.clone(),
            messages: messages.clone(),
            sandbox: sandbox.clone(),
            metrics: runtime_metrics.clone(),
            config: AgentConfig {
                max_steps: config.max_steps,
                coalesce: config.stream_coalesce,
                tool_limits: ToolLimits {
                    max_output_bytes: config.tool_output_bytes,
                    bash_timeout: config.bash_timeout,
                    bash_max_timeout: config.bash_max_timeout.max(config.bash_timeout),
                    ..ToolLimits::default()
                },
                root_dir: config.root_dir.clone(),
                cloud_api_url: config.cloud_api_url.clone(),
                context_char_budget: config.context_char_budget,
            },
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        };
        let probe_dir = config.root_dir.join("sandbox").join("probe");
        let probe_sandbox = sandbox;
        tokio::spawn(async move {
            match probe_sandbox.probe(&probe_dir).await {
                Ok(()) => tracing::info!("The bash sandbox works."),
                Err(e) => tracing::warn!(
                    reason = %e,
                    "The bash sandbox cannot start: bash tool calls will fail until it can."
                ),
            }
        });
        let worker = Worker::new(
            WorkerConfig {
                owner: config.owner_id.clone(),
                lease_ttl: config.lease_ttl,
                idle_timeout: config.idle_timeout,
                max_concurrent_turns: config.max_concurrent_turns,
            },
            store.clone(),
            publisher.clone(),
            transcripts,
            Providers::new(
                ReadLimits::new(config.provider_timeout, config.max_provider_output_bytes),
                config.provider_allow_private_networks,
            ),
            sealer.clone(),
            runtime_metrics.clone(),
            agent,
        );
        Ok(Self {
            config: Arc::new(config),
            pool,
            store,
            messages,
            workspaces,
            grants,
            publisher,
            sealer,
            worker,
            metrics,
            runtime_metrics,
            readiness,
            shutdown,
        })
    }

    pub async fn close(&self) {
        if let Some(pool) = &self.pool {
            pool.close().await;
        }
    }
}
