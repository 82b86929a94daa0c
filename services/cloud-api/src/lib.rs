//! cloud-api: the control plane of Chatons Cloud.
//!
//! `Config::from_env` → [`build`] (state: stores, keys, workers) → [`router`]. Tests mount the
//! same router on port 0; `main` adds signals and the listener.

// Library code never unwraps: a failure is an error for the caller (unit tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod config;
pub mod crypto;
pub mod dispatch;
pub mod domain;
pub mod http;
pub mod issuer;
pub mod legacy;
pub mod mail;
pub mod mfa;
pub mod net;
pub mod oidc;
pub mod paging;
pub mod password;
pub mod portal;
pub mod ratelimit;
pub mod reseal;
pub mod schema;
pub mod sessions;
pub mod state;
pub mod store;
pub mod views;
pub mod web;

use std::process::ExitCode;

use axum::Router;
use cloud_common::ServiceInfo;
use cloud_common::cli;
use cloud_common::config::Env;
use cloud_common::server::{self, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
pub use oidc::token_request::{TokenRequest, parse_token_request};
pub use state::AppState;

pub const SERVICE: &str = "cloud-api";

/// Builds the state: connects (lazily) to Postgres and applies migrations.
pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<AppState> {
    let state = AppState::build(config, shutdown).await?;
    app::housekeeping::spawn(state.clone(), state.config.housekeeping_interval);
    Ok(state)
}

/// Every route of cloud-api, finished with the standard layers.
pub fn router(state: AppState) -> Router {
    let info = ServiceInfo {
        name: SERVICE,
        version: leak(state.config.common.version.clone()),
    };
    let app = Router::new()
        .merge(http::routes().with_state(state.clone()))
        .merge(dispatch::routes().with_state(state.clone()))
        .merge(oidc::router().with_state(state.clone()))
        .merge(portal::router().with_state(state.clone()))
        .merge(cloud_common::health::router(
            info,
            state.readiness.clone(),
            state.metrics.clone(),
        ));
    cloud_common::http::finish(
        app,
        &state.config.common.http_options(),
        state.metrics.clone(),
    )
}

/// Serves on `listener` until `shutdown`, then drains and closes the pool.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let serve = config.common.serve_options();
    let state = build(config, shutdown.clone()).await?;
    let app = router(state.clone());
    server::serve_with(listener, app, shutdown, serve).await?;
    state.close().await;
    Ok(())
}

/// The version string lives for the whole process; leaking it once keeps `ServiceInfo` `Copy`.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
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

    async fn command(self, name: String, args: Vec<String>) -> anyhow::Result<()> {
        match name.as_str() {
            "migrate" => state::migrate_only(&self).await,
            "reseal-secrets" => reseal::run(&self).await,
            "import-legacy" => legacy::command(&self, &args).await,
            _ => anyhow::bail!(
                "unknown command {name:?} (commands: serve, env, migrate, reseal-secrets, import-legacy --from <url>)"
            ),
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    cli::main::<Config>(std::env::args().skip(1).collect())
}
