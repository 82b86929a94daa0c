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
use cloud_common::cli::{self, Command};
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
    state.worker.start();
    let served = server::serve_with(listener, router(state.clone()), shutdown, serve).await;
    // Requests are drained: stop the turns this replica runs and hand its leases over.
    state
        .worker
        .shutdown(std::time::Duration::from_secs(3))
        .await;
    state.close().await;
    served?;
    Ok(())
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Inside a `public` sandbox this binary relays the proxy port, then runs the script.
    if let [mode, listen, socket, command @ ..] = args.as_slice()
        && mode == "sandbox-forward"
    {
        return tools::proxy::forward(listen, socket, command);
    }
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
                let listener = server::bind(config.common.port).await?;
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
