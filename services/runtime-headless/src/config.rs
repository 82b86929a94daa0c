//! runtime-headless configuration, read once at start.

use std::path::PathBuf;
use std::time::Duration;

use cloud_common::Secret;
use cloud_common::config::{COMMON_ENV, CommonConfig, ConfigErrors, Env, EnvVar, Reader};
use url::Url;

use crate::seal::SealKey;
use crate::tools::sandbox::Network;

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
        "CHATONS_RUNTIME_SEALING_KEY",
        "derived from the internal token (development)",
        "Base64 of 32 random bytes: AES-256-GCM key sealing queued turn specs (provider and its secret) in Postgres; the same on every replica, independent of the service token.",
    )
    .required(),
    EnvVar::new(
        "CHATONS_RUNTIME_SEALING_PREVIOUS_KEYS",
        "",
        "Comma-separated base64 sealing keys replaced by a rotation: they still open turn specs sealed before it, until those turns have run (docs/OPERATIONS.md).",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_ROOT_DIR",
        "<tmp>/chatons-cloud-runtime",
        "Conversation workspaces (`conversations/`) and the sandbox's private files; an emptyDir or local volume.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_MAX_STEPS_PER_TURN",
        "50",
        "Model calls one agent run may make; a run still asking for tools after that many steps stops with a notice.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_STREAM_COALESCE_MS",
        "50",
        "Streamed deltas are merged and published at most this often per run (0: every delta).",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_MAX_PROVIDER_OUTPUT_BYTES",
        "16777216",
        "Bytes one streamed provider answer may carry; beyond that the step fails (a hostile endpoint cannot exhaust the worker).",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_TOOL_OUTPUT_BYTES",
        "51200",
        "Bytes of a tool's output given back to the model (longer output is cut and marked truncated).",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_BASH_TIMEOUT_SECONDS",
        "120",
        "Time limit of a `bash` call that names none; the sandbox and everything in it is killed after it.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_BASH_MAX_TIMEOUT_SECONDS",
        "600",
        "Largest time limit a `bash` call may ask for.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_SANDBOX_BWRAP",
        "bwrap",
        "The bubblewrap binary `bash` runs in (a name is looked up on PATH). Without a working sandbox `bash` fails; it never runs unconfined.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_SANDBOX_NETWORK",
        "public",
        "`public`: sandboxed commands reach public internet addresses through the worker's filtering HTTP proxy (never the cluster, the node or loopback); `none`: no network.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_SANDBOX_PROC",
        "true",
        "`true`: sandboxed commands get a /proc of their own PID namespace; `false` where the container runtime forbids mounting one (they then have no /proc, never the worker's).",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_SANDBOX_MEMORY_MB",
        "4096",
        "Address-space limit of each sandboxed process, in MiB.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_SANDBOX_MAX_PROCESSES",
        "512",
        "Processes a sandbox may run at once (effective when the worker does not run as root).",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_CONTEXT_CHAR_BUDGET",
        "400000",
        "Characters of conversation sent to the model per step; beyond it the oldest tool output is elided, then the oldest messages.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_GRANT_CACHE_MS",
        "1000",
        "How long a runtime grant from cloud-api is reused (every call still checks one): a revoked token or removed member is refused within this time. 0: ask cloud-api on every call.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_TOKENLESS_SNAPSHOTS",
        "true",
        "`true`: `GET /v1/runtime/sessions/{id}` without `Authorization` (the shipped desktop sends none) is answered while the session is active and cloud-api confirms its user still sees the conversation, so the session id acts as a read-only capability; `false`: such requests get 401.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_GIT",
        "git",
        "The git binary for repository checkouts and workspace snapshots (a name is looked up on PATH).",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_WORKSPACE_SNAPSHOT_MAX_BYTES",
        "67108864",
        "Largest durable snapshot of a conversation's workspace (compressed); a larger workspace is not saved and the user is told.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_MAX_COMMAND_BYTES",
        "16777216",
        "Largest command body (prompts with images and files); other requests keep CHATONS_CLOUD_MAX_JSON_BODY_BYTES.",
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
    pub sealing_key: Option<SealKey>,
    pub sealing_previous_keys: Vec<SealKey>,
    pub root_dir: PathBuf,
    pub max_steps: u32,
    pub stream_coalesce: Duration,
    pub max_provider_output_bytes: usize,
    pub tool_output_bytes: usize,
    pub bash_timeout: Duration,
    pub bash_max_timeout: Duration,
    pub sandbox_bwrap: PathBuf,
    pub sandbox_network: Network,
    pub sandbox_proc: bool,
    pub sandbox_memory_mb: u64,
    pub sandbox_max_processes: u64,
    pub max_command_bytes: usize,
    pub git_binary: PathBuf,
    pub max_snapshot_bytes: usize,
    pub context_char_budget: usize,
    pub grant_cache: Duration,
    pub tokenless_snapshots: bool,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigErrors> {
        let mut r = Reader::new(env);
        let common = CommonConfig::read(&mut r, DEFAULT_PORT);
        r.require_for_profile(common.profile, &env_vars());
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
            sealing_key: r.string("CHATONS_RUNTIME_SEALING_KEY").and_then(|raw| {
                SealKey::from_base64(&raw)
                    .map_err(|e| r.fail("CHATONS_RUNTIME_SEALING_KEY", e))
                    .ok()
            }),
            sealing_previous_keys: r
                .string("CHATONS_RUNTIME_SEALING_PREVIOUS_KEYS")
                .and_then(|raw| {
                    SealKey::list_from_base64(&raw)
                        .map_err(|e| r.fail("CHATONS_RUNTIME_SEALING_PREVIOUS_KEYS", e))
                        .ok()
                })
                .unwrap_or_default(),
            root_dir: r
                .string("CHATONS_RUNTIME_ROOT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("chatons-cloud-runtime")),
            max_steps: r.int_in("CHATONS_RUNTIME_MAX_STEPS_PER_TURN", 50, 1, 1000) as u32,
            stream_coalesce: Duration::from_millis(r.int_in(
                "CHATONS_RUNTIME_STREAM_COALESCE_MS",
                50,
                0,
                5000,
            )),
            max_provider_output_bytes: r.int_in(
                "CHATONS_RUNTIME_MAX_PROVIDER_OUTPUT_BYTES",
                16 << 20,
                4096,
                1 << 30,
            ) as usize,
            tool_output_bytes: r.int_in("CHATONS_RUNTIME_TOOL_OUTPUT_BYTES", 51_200, 1024, 4 << 20)
                as usize,
            bash_timeout: r.seconds("CHATONS_RUNTIME_BASH_TIMEOUT_SECONDS", 120),
            bash_max_timeout: r.seconds("CHATONS_RUNTIME_BASH_MAX_TIMEOUT_SECONDS", 600),
            sandbox_bwrap: r
                .string("CHATONS_RUNTIME_SANDBOX_BWRAP")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bwrap")),
            sandbox_network: match r.string("CHATONS_RUNTIME_SANDBOX_NETWORK") {
                None => Network::Public,
                Some(v) => match Network::parse(v.trim()) {
                    Some(n) => n,
                    None => {
                        r.fail("CHATONS_RUNTIME_SANDBOX_NETWORK", "must be none or public");
                        Network::None
                    }
                },
            },
            sandbox_proc: r.bool("CHATONS_RUNTIME_SANDBOX_PROC", true),
            tokenless_snapshots: r.bool("CHATONS_RUNTIME_TOKENLESS_SNAPSHOTS", true),
            sandbox_memory_mb: r.int_in("CHATONS_RUNTIME_SANDBOX_MEMORY_MB", 4096, 64, 1 << 20),
            sandbox_max_processes: r.int_in(
                "CHATONS_RUNTIME_SANDBOX_MAX_PROCESSES",
                512,
                8,
                1 << 16,
            ),
            max_command_bytes: r.int_in(
                "CHATONS_RUNTIME_MAX_COMMAND_BYTES",
                16 << 20,
                64 * 1024,
                256 << 20,
            ) as usize,
            context_char_budget: r.int_in(
                "CHATONS_RUNTIME_CONTEXT_CHAR_BUDGET",
                400_000,
                10_000,
                100_000_000,
            ) as usize,
            grant_cache: Duration::from_millis(r.int_in(
                "CHATONS_RUNTIME_GRANT_CACHE_MS",
                1000,
                0,
                5000,
            )),
            git_binary: r
                .string("CHATONS_RUNTIME_GIT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("git")),
            max_snapshot_bytes: r.int_in(
                "CHATONS_RUNTIME_WORKSPACE_SNAPSHOT_MAX_BYTES",
                64 << 20,
                1024,
                1 << 30,
            ) as usize,
            common,
        };
        r.finish()?;
        Ok(config)
    }
}
