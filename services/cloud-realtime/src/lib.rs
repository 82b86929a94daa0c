//! cloud-realtime: websocket fan-out of per-instance event streams.
//!
//! `Config::from_env` → [`build`] → [`router`]; tests mount the same router on port 0.

pub mod broker;
pub mod config;
pub mod http;
pub mod hub;
pub mod state;
pub mod wire;

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use cloud_common::ServiceInfo;
use cloud_common::cli;
use cloud_common::config::Env;
use cloud_common::server::{self, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

pub const SERVICE: &str = "cloud-realtime";

pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<AppState> {
    AppState::build(config, shutdown).await
}

pub fn router(state: AppState) -> Router {
    let info = ServiceInfo {
        name: SERVICE,
        version: Box::leak(state.config.common.version.clone().into_boxed_str()),
    };
    let app = Router::new()
        .merge(http::routes(state.clone()))
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

pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let serve = config.common.serve_options();
    let state = build(config, shutdown.clone()).await?;
    let served = server::serve_with(listener, router(state.clone()), shutdown, serve).await;
    // HTTP is drained: websockets close with 1001 `server_shutdown` (clients resume elsewhere).
    state.sockets.close_all(Duration::from_secs(3)).await;
    served?;
    Ok(())
}

/// Binds `0.0.0.0:port` with `TCP_NODELAY` on the listening socket, which accepted connections
/// inherit (Linux): small websocket frames leave at once instead of waiting for an ACK.
pub fn bind(port: u16) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(std::net::SocketAddr::from(([0, 0, 0, 0], port)))?;
    socket.listen(1024)
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

    async fn bind(&self) -> std::io::Result<TcpListener> {
        bind(self.common.port)
    }

    async fn serve(self, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
        run(self, listener, shutdown).await
    }
}

pub fn main() -> ExitCode {
    cli::main::<Config>(std::env::args().skip(1).collect())
}
