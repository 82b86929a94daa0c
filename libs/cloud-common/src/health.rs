//! `/healthz` (the process is alive), `/readyz` (its dependencies answer and it is not
//! stopping) and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::BoxFuture;

use crate::ServiceInfo;
use crate::metrics::Metrics;
use crate::server::Shutdown;

/// One dependency that must answer for the service to be ready.
pub trait ReadinessCheck: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

#[derive(Clone)]
pub struct Readiness {
    shutdown: Shutdown,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    timeout: Duration,
    /// The last answer, so a change (and only a change) is logged where operators look.
    was_ready: Arc<std::sync::atomic::AtomicBool>,
}

impl Readiness {
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            shutdown,
            checks: Vec::new(),
            timeout: Duration::from_secs(2),
            was_ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    pub fn with_check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// `Ok` when every check answers within the timeout and shutdown has not begun.
    pub async fn evaluate(&self) -> Result<(), String> {
        if self.shutdown.is_triggered() {
            return Err("shutting down".into());
        }
        let checks = self.checks.iter().map(|c| async move {
            match tokio::time::timeout(self.timeout, c.check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{}: {e}", c.name())),
                Err(_) => Err(format!("{}: timed out", c.name())),
            }
        });
        futures_util::future::join_all(checks)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(())
    }
}

#[derive(Clone)]
struct HealthState {
    info: ServiceInfo,
    readiness: Readiness,
    metrics: Metrics,
}

/// Routes for `/healthz`, `/readyz` and `/metrics`, with their own state so any service can
/// merge them.
pub fn router(info: ServiceInfo, readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(HealthState {
            info,
            readiness,
            metrics,
        })
}

async fn healthz(State(s): State<HealthState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "ok": true,
        "service": s.info.name,
        "version": s.info.version,
        "timestamp": crate::time::now_iso(),
    }))
    .into_response()
}

/// The reason stays in the log: probes only need the status, and dependency errors name
/// internal hosts that a public `/readyz` should not reveal.
async fn readyz(State(s): State<HealthState>) -> StatusCode {
    use std::sync::atomic::Ordering;
    let result = s.readiness.evaluate().await;
    let ready = result.is_ok();
    let changed = s.readiness.was_ready.swap(ready, Ordering::Relaxed) != ready;
    match result {
        Ok(()) => {
            if changed {
                tracing::info!("Ready again.");
            }
            StatusCode::NO_CONTENT
        }
        Err(reason) => {
            if changed && !s.readiness.shutdown.is_triggered() {
                tracing::warn!(%reason, "Not ready.");
            } else {
                tracing::debug!(%reason, "Not ready.");
            }
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

async fn metrics_handler(State(s): State<HealthState>) -> Response {
    crate::metrics::render(&s.metrics)
}
