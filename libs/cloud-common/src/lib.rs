//! Shared building blocks of the Chatons Cloud services.
//!
//! Every service is `config -> state -> router(state)`; this crate holds the parts of that
//! chain that would otherwise be written three times: typed environment configuration, the
//! JSON error envelope and extractors that produce it, the standard middleware stack,
//! health/readiness/metrics endpoints, graceful serving, service-to-service authentication and
//! the wire types that cross service boundaries.

pub mod auth;
pub mod cli;
pub mod config;
#[cfg(feature = "postgres")]
pub mod db;
pub mod error;
pub mod extract;
pub mod health;
pub mod http;
pub mod internal;
pub mod limits;
pub mod metrics;
pub mod realtime;
pub mod secret;
pub mod server;
pub mod telemetry;
pub mod time;

pub use error::{ApiError, ApiResult};
pub use secret::Secret;

/// Static facts about a running binary, reported by `/healthz` and in logs.
#[derive(Debug, Clone, Copy)]
pub struct ServiceInfo {
    pub name: &'static str,
    pub version: &'static str,
}
