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
pub mod net;
pub mod oidc;
pub mod paging;
pub mod password;
pub mod portal;
pub mod ratelimit;
pub mod reseal;
pub mod sessions;
pub mod state;
pub mod store;
pub mod views;
pub mod web;

use std::process::ExitCode;

use axum::Router;
use cloud_common::ServiceInfo;
use cloud_common::cli::{self, Command};
use cloud_common::config::Env;
use cloud_common::server::{self, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
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
    let drain = config.common.drain;
    let state = build(config, shutdown.clone()).await?;
    let app = router(state.clone());
    server::serve(listener, app, shutdown, drain).await?;
    state.close().await;
    Ok(())
}

/// The version string lives for the whole process; leaking it once keeps `ServiceInfo` `Copy`.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let vars = config::env_vars();
    let command = match cli::parse(&args, &vars) {
        Command::PrintedAndExit(code) => return code,
        other => other,
    };
    let env = Env::from_process();
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => return cli::report_config_errors(SERVICE, &e),
    };
    cloud_common::telemetry::init(config.common.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{SERVICE}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => {
                let shutdown = Shutdown::new();
                server::trigger_on_signals(shutdown.clone());
                let listener = server::bind(config.common.port).await?;
                run(config, listener, shutdown).await
            }
            Command::Other(cmd) if cmd == "migrate" => state::migrate_only(&config).await,
            Command::Other(cmd) if cmd == "reseal-secrets" => reseal::run(&config).await,
            Command::Other(cmd) if cmd == "import-legacy" => {
                legacy::command(&config, &args[1..]).await
            }
            Command::Other(cmd) => anyhow::bail!(
                "unknown command {cmd:?} (commands: serve, env, migrate, reseal-secrets, import-legacy --from <url>)"
            ),
            Command::PrintedAndExit(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Stopped with an error.");
            eprintln!("{SERVICE}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
