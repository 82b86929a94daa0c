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
use cloud_common::cli::{self, Command};
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

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let vars = config::env_vars();
    let command = match cli::parse(&args, &vars) {
        Command::PrintedAndExit(code) => return code,
        other => other,
    };
    let config = match Config::from_env(&Env::from_process()) {
        Ok(c) => c,
        Err(e) => return cli::report_config_errors(SERVICE, &e),
    };
    cloud_common::telemetry::init(config.common.log_format);
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("{SERVICE}: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => {
                let shutdown = Shutdown::new();
                server::trigger_on_signals(shutdown.clone());
                let listener = bind(config.common.port)?;
                run(config, listener, shutdown).await
            }
            Command::Other(cmd) => anyhow::bail!("unknown command {cmd:?} (try --help)"),
            Command::PrintedAndExit(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{SERVICE}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
