//! Everything a request handler may need, built once at start.

use std::sync::Arc;

use anyhow::Context;
use cloud_common::auth::ServiceToken;
use cloud_common::db::{self, PgReady};
use cloud_common::health::Readiness;
use cloud_common::metrics::Metrics;
use cloud_common::server::Shutdown;
use sqlx::PgPool;

use crate::Config;
use crate::crypto::SecretBox;
use crate::password::Hasher;
use crate::ratelimit::{self, Limiter};
use crate::store::DynStore;
use crate::store::memory::MemoryStore;
use crate::store::postgres::PgStore;

/// Login/signup throttles (see `ratelimit` for the numbers).
pub struct Limiters {
    pub per_ip: Limiter,
    pub per_account: Limiter,
    /// Token endpoint, keyed by client IP and by user.
    pub token: Limiter,
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Option<PgPool>,
    pub store: DynStore,
    pub secrets: SecretBox,
    pub hasher: Hasher,
    pub limiters: Arc<Limiters>,
    pub plan_cache: Arc<crate::store::plan_cache::PlanCache>,
    pub oidc: Arc<crate::issuer::Oidc>,
    /// TOTP secrets, recovery codes and passkeys.
    pub factors: Arc<dyn crate::mfa::FactorStore>,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub service_token: ServiceToken,
    pub shutdown: Shutdown,
    /// Outgoing mail (outbox + delivery worker, see `crate::mail`).
    pub mailer: crate::mail::Mailer,
}

impl axum::extract::FromRef<AppState> for ServiceToken {
    fn from_ref(state: &AppState) -> Self {
        state.service_token.clone()
    }
}

impl AppState {
    pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let metrics = Metrics::new(crate::SERVICE);
        let mut readiness = Readiness::new(shutdown.clone());
        let pool = match &config.database_url {
            Some(url) => {
                let pool =
                    db::lazy_pool(url.expose(), config.db_pool_size).context("DATABASE_URL")?;
                db::MIGRATOR
                    .run(&pool)
                    .await
                    .context("applying migrations")?;
                readiness = readiness.with_check(PgReady(pool.clone()));
                Some(pool)
            }
            None => {
                tracing::warn!(
                    "DATABASE_URL is not set: using the in-memory store (data is lost on restart)."
                );
                None
            }
        };
        let service_token = ServiceToken::new(config.common.internal_token.as_ref());
        if !service_token.is_configured() {
            tracing::warn!(
                "CHATONS_INTERNAL_SERVICE_TOKEN is not set: internal endpoints refuse every call."
            );
        }
        let store: DynStore = match &pool {
            Some(pool) => Arc::new(PgStore::new(pool.clone())),
            None => Arc::new(MemoryStore::new()),
        };
        let secrets = secret_box(&config)?;
        let oidc = Arc::new(crate::issuer::Oidc::build(&config, pool.as_ref())?);
        let factors: Arc<dyn crate::mfa::FactorStore> = match &pool {
            Some(pool) => Arc::new(crate::mfa::PgFactors(pool.clone())),
            None => Arc::new(crate::mfa::MemoryFactors::default()),
        };
        let token_rate = config.token_rate_per_second as f64;
        let mailer = crate::mail::Mailer::new(match &pool {
            Some(pool) => Arc::new(crate::mail::PgOutbox::new(pool.clone())),
            None => Arc::new(crate::mail::MemoryOutbox::new()),
        });
        let backlog = prometheus_client::metrics::gauge::Gauge::<i64>::default();
        metrics.register(
            "mail_outbox_backlog",
            "Mails queued and not yet delivered",
            backlog.clone(),
        );
        if config.smtp.is_none()
            && !config.admin_emails.is_empty()
            && !config.dev_auto_verify_emails
        {
            tracing::warn!(
                "CHATONS_ADMIN_EMAILS is set and SMTP_HOST is not: an admin proves the address by opening the verification link written to this log."
            );
        }
        crate::mail::spawn_worker(
            mailer.clone(),
            config.smtp.clone(),
            !config.common.profile.is_production(),
            backlog,
            shutdown.clone(),
        );
        Ok(Self {
            config: Arc::new(config),
            pool,
            store,
            secrets,
            hasher: Hasher::new(),
            plan_cache: Arc::default(),
            limiters: Arc::new(Limiters {
                per_ip: Limiter::new(ratelimit::PER_IP),
                per_account: Limiter::new(ratelimit::PER_ACCOUNT),
                token: Limiter::new(ratelimit::Rate {
                    burst: token_rate * 5.0,
                    per_second: token_rate,
                }),
            }),
            oidc,
            factors,
            metrics,
            readiness,
            service_token,
            shutdown,
            mailer,
        })
    }

    /// Closes pools after the server has drained.
    pub async fn close(&self) {
        if let Some(pool) = &self.pool {
            pool.close().await;
        }
    }
}

/// The secrets box of `CHATONS_SECRETS_ENCRYPTION_KEY` (or the development key) and the
/// previous keys still accepted for opening.
pub fn secret_box(config: &Config) -> anyhow::Result<SecretBox> {
    let current = match &config.secrets_key {
        Some(key) => SecretBox::from_base64(key.expose())?,
        None => SecretBox::load_or_create_dev(&config.data_dir)?,
    };
    match &config.secrets_previous_keys {
        Some(list) => current.with_previous(list.expose()),
        None => Ok(current),
    }
}

/// `cloud-api migrate`: apply migrations and exit (Kubernetes init step).
pub async fn migrate_only(config: &Config) -> anyhow::Result<()> {
    let url = config
        .database_url
        .as_ref()
        .context("DATABASE_URL is required for `migrate`")?;
    let pool = db::lazy_pool(url.expose(), 2).context("DATABASE_URL")?;
    db::MIGRATOR
        .run(&pool)
        .await
        .context("applying migrations")?;
    tracing::info!(count = db::MIGRATOR.iter().count(), "Migrations applied.");
    pool.close().await;
    Ok(())
}
