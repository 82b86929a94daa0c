//! runtime-headless configuration, read once at start.

use std::path::PathBuf;
use std::time::Duration;

use cloud_common::Secret;
use cloud_common::config::{COMMON_ENV, CommonConfig, ConfigErrors, Env, EnvVar, Reader};
use url::Url;

pub const DEFAULT_PORT: u16 = 4002;

pub const SERVICE_ENV: &[EnvVar] = &[
    EnvVar::new(
        "DATABASE_URL",
        "",
        "Postgres URL (same database as cloud-api). Unset: in-memory store, one replica.",
    )
    .required(),
    EnvVar::new(
        "CHATONS_CLOUD_API_URL",
        "http://127.0.0.1:4000",
        "cloud-api base URL (grants, transcripts).",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_PUBLISH_URL",
        "http://127.0.0.1:4001/v1/realtime/events",
        "cloud-realtime internal publish endpoint.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_OWNER_ID",
        "runtime-<uuid>",
        "This worker's lease owner id (unique per replica).",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_LEASE_TTL_SECONDS",
        "60",
        "Session lease length; heartbeats renew it at a third of that.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_IDLE_TIMEOUT_SECONDS",
        "1800",
        "A session with no command or turn for this long is stopped and frees its quota slot.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_PROVIDER_TIMEOUT_SECONDS",
        "120",
        "A provider stream that sends nothing for this long fails the turn.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_PROVIDER_ALLOW_PRIVATE_NETWORKS",
        "false",
        "`true` lets provider base URLs reach loopback, private and link-local addresses (local models in development); otherwise only public addresses are dialled and redirects are not followed.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_MAX_CONCURRENT_TURNS",
        "64",
        "Turns one replica streams at the same time (more wait in the queue).",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_DB_POOL_SIZE",
        "10",
        "Postgres connections per replica.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_ROOT_DIR",
        "<tmp>/chatons-cloud-runtime",
        "Per-session work directories.",
    ),
];

pub fn env_vars() -> Vec<EnvVar> {
    COMMON_ENV.iter().chain(SERVICE_ENV).copied().collect()
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub database_url: Option<Secret>,
    pub cloud_api_url: Url,
    pub realtime_publish_url: Url,
    pub owner_id: String,
    pub lease_ttl: Duration,
    pub idle_timeout: Duration,
    pub provider_timeout: Duration,
    pub provider_allow_private_networks: bool,
    pub max_concurrent_turns: usize,
    pub db_pool_size: u32,
    pub root_dir: PathBuf,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigErrors> {
        let mut r = Reader::new(env);
        let common = CommonConfig::read(&mut r, DEFAULT_PORT);
        let config = Self {
            database_url: r.secret("DATABASE_URL"),
            cloud_api_url: r.url(
                "CHATONS_CLOUD_API_URL",
                &["http", "https"],
                "http://127.0.0.1:4000",
            ),
            realtime_publish_url: r.url(
                "CHATONS_REALTIME_PUBLISH_URL",
                &["http", "https"],
                "http://127.0.0.1:4001/v1/realtime/events",
            ),
            owner_id: r
                .string("CHATONS_RUNTIME_OWNER_ID")
                .unwrap_or_else(|| format!("runtime-{}", uuid::Uuid::new_v4())),
            lease_ttl: r.seconds("CHATONS_RUNTIME_LEASE_TTL_SECONDS", 60),
            idle_timeout: r.seconds("CHATONS_RUNTIME_IDLE_TIMEOUT_SECONDS", 1800),
            provider_timeout: r.seconds("CHATONS_RUNTIME_PROVIDER_TIMEOUT_SECONDS", 120),
            provider_allow_private_networks: r
                .bool("CHATONS_RUNTIME_PROVIDER_ALLOW_PRIVATE_NETWORKS", false),
            max_concurrent_turns: r.int_in("CHATONS_RUNTIME_MAX_CONCURRENT_TURNS", 64, 1, 10_000)
                as usize,
            db_pool_size: r.int_in("CHATONS_RUNTIME_DB_POOL_SIZE", 10, 1, 200) as u32,
            root_dir: r
                .string("CHATONS_RUNTIME_ROOT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("chatons-cloud-runtime")),
            common,
        };
        r.finish()?;
        Ok(config)
    }
}
