//! Serving with graceful shutdown: on SIGTERM/SIGINT readiness flips to 503 at once, the
//! listener is closed (new connections are refused), in-flight requests get up to the drain
//! bound to finish, then the caller closes its pools and the process exits 0.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The process-wide "we are stopping" signal. Cloned into everything that must react:
/// readiness, websocket loops, background workers.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self) {
        self.0.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    pub async fn wait(&self) {
        self.0.cancelled().await;
    }

    pub fn token(&self) -> CancellationToken {
        self.0.clone()
    }
}

/// Binds `0.0.0.0:port` (port 0 picks a free one; tests use that).
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await
}

/// Triggers `shutdown` on the first SIGTERM or SIGINT.
pub fn trigger_on_signals(shutdown: Shutdown) {
    // The handlers are installed here, before the caller starts serving: installed inside the
    // task, a SIGTERM arriving before the task first ran would kill the process outright
    // (seen under load), skipping the drain.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (term, int) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::spawn(async move {
                    tokio::select! {
                        _ = int.recv() => tracing::info!("SIGINT received; shutting down."),
                        _ = term.recv() => tracing::info!("SIGTERM received; shutting down."),
                    }
                    shutdown.trigger();
                });
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "Cannot listen for SIGTERM/SIGINT.");
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    shutdown.trigger();
                });
            }
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.trigger();
    });
}

/// Serves `router` until `shutdown` fires, then drains in-flight requests for at most `drain`.
/// Upgraded connections (websockets) are not tracked here: their owners watch `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    drain: Duration,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, "Listening.");
    }
    let signal = shutdown.token().cancelled_owned();
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown.wait() => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(result) => {
            tracing::info!("In-flight requests drained.");
            result
        }
        Err(_) => {
            tracing::warn!(
                seconds = drain.as_secs_f64(),
                "Drain bound reached; dropping remaining connections."
            );
            Ok(())
        }
    }
}
