//! runtime-headless: leased session workers that run agent turns.
//!
//! `Config::from_env` → [`build`] → [`router`]; tests mount the same router on port 0.

pub mod agent;
pub mod config;
pub mod domain;
pub mod grant;
pub mod http;
pub mod metrics;
pub mod provider;
pub mod publish;
pub mod seal;
pub mod state;
pub mod store;
pub mod tools;
pub mod worker;
pub mod workspace;

use std::process::ExitCode;

use axum::Router;
use cloud_common::ServiceInfo;
use cloud_common::cli;
use cloud_common::config::Env;
use cloud_common::server::{self, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

pub const SERVICE: &str = "runtime-headless";

pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<AppState> {
    AppState::build(config, shutdown).await
}

pub fn router(state: AppState) -> Router {
    let info = ServiceInfo {
        name: SERVICE,
        version: Box::leak(state.config.common.version.clone().into_boxed_str()),
    };
    let app = Router::new()
        .merge(cloud_common::health::router(
            info,
            state.readiness.clone(),
            state.metrics.clone(),
        ))
        .merge(http::routes(state.clone()));
    cloud_common::http::finish(
        app,
        &state.config.common.http_options(),
        state.metrics.clone(),
    )
}

pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let serve = config.common.serve_options();
    let state = build(config, shutdown.clone()).await?;
    // The queue, lease and sync loops start once cloud-api has migrated the schema (until then
    // the replica is not ready either and serves no session).
    let starter = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Some(pool) = state.pool.clone() {
                let schema = cloud_common::db::SchemaReady::new(pool);
                tokio::select! {
                    () = schema.wait(std::time::Duration::from_millis(250)) => {}
                    () = shutdown.wait() => return,
                }
            }
            state.worker.start();
        })
    };
    let served = server::serve_with(listener, router(state.clone()), shutdown, serve).await;
    starter.abort();
    let _ = starter.await;
    // Requests are drained: stop the turns this replica runs and hand its leases over.
    state
        .worker
        .shutdown(std::time::Duration::from_secs(3))
        .await;
    state.close().await;
    served?;
    Ok(())
}

impl cli::Service for Config {
    const NAME: &'static str = SERVICE;

    fn env_vars() -> Vec<cloud_common::config::EnvVar> {
        config::env_vars()
    }

    fn from_env(env: &Env) -> Result<Self, cloud_common::config::ConfigErrors> {
        Config::from_env(env)
    }

    fn common(&self) -> &cloud_common::config::CommonConfig {
        &self.common
    }

    async fn serve(self, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
        run(self, listener, shutdown).await
    }
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Inside a `public` sandbox this binary relays the proxy port, then runs the script.
    if let [mode, listen, socket, command @ ..] = args.as_slice()
        && mode == "sandbox-forward"
    {
        return tools::proxy::forward(listen, socket, command);
    }
    cli::main::<Config>(args)
}
