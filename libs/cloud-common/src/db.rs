//! Postgres: the one migration set and pool construction.

use std::str::FromStr;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::health::ReadinessCheck;

/// Every table of the one database, in order. cloud-api applies them at start and with
/// `cloud-api migrate`; tests apply them to their own schema.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// A pool that connects lazily, so a briefly unavailable database makes requests fail with 503
/// (and `/readyz` report it) instead of crashing the process.
pub fn lazy_pool(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("chatons-cloud");
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(options))
}

/// Readiness: `SELECT 1` answers.
pub struct PgReady(pub PgPool);

impl ReadinessCheck for PgReady {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            sqlx::query("SELECT 1")
                .execute(&self.0)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        .boxed()
    }
}
