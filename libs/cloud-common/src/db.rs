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

/// Readiness: the schema holds every migration this binary was built with. runtime-headless
/// does not migrate (cloud-api does, in its init step); until cloud-api has, it stays out of
/// the Service instead of failing requests on missing tables or columns. Once seen, the
/// answer is kept: migrations are never rolled back under a running process.
pub struct SchemaReady {
    pool: PgPool,
    seen: std::sync::atomic::AtomicBool,
}

impl SchemaReady {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            seen: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl SchemaReady {
    /// Waits until the schema holds every migration (checked every `every`), for work that
    /// must not touch tables while cloud-api migrates them: a background query holding a lock
    /// on a half-migrated table can deadlock with the migration's DDL.
    pub async fn wait(&self, every: std::time::Duration) {
        while self.check().await.is_err() {
            tokio::time::sleep(every).await;
        }
    }
}

/// The newest migration embedded in this binary.
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

impl ReadinessCheck for SchemaReady {
    fn name(&self) -> &'static str {
        "schema"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            if self.seen.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(());
            }
            let wanted = latest_migration();
            let applied: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = $1 AND success)",
            )
            .bind(wanted)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                    "the database has no migrations yet (cloud-api migrate has not run)".to_owned()
                }
                _ => e.to_string(),
            })?;
            if applied {
                self.seen.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            } else {
                Err(format!(
                    "migration {wanted} is not applied yet (cloud-api migrate has not run)"
                ))
            }
        }
        .boxed()
    }
}
