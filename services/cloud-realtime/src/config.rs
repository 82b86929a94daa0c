//! cloud-realtime configuration, read once at start.

use std::time::Duration;

use cloud_common::Secret;
use cloud_common::config::{COMMON_ENV, CommonConfig, ConfigErrors, Env, EnvVar, Reader};
use url::Url;

pub const DEFAULT_PORT: u16 = 4001;

pub const SERVICE_ENV: &[EnvVar] = &[
    EnvVar::new(
        "REDIS_URL",
        "",
        "Redis URL. Unset: fan-out, sequence and replay in process (one replica only).",
    )
    .required(),
    EnvVar::new(
        "CHATONS_REALTIME_PUBLIC_URL",
        "ws://127.0.0.1:<PORT>/ws",
        "Websocket URL returned with each token.",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_CHANNEL_PREFIX",
        "chatons:realtime:instance:",
        "Prefix of every Redis key and channel.",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_TOKEN_TTL_SECONDS",
        "300",
        "Websocket token lifetime.",
    ),
    EnvVar::new(
        "CHATONS_CLOUD_API_URL",
        "http://127.0.0.1:4000",
        "cloud-api base URL (internal realtime access checks).",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_MAX_SOCKETS_PER_INSTANCE",
        "200",
        "Open sockets allowed per cloud instance.",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_REPLAY_BUFFER_SIZE",
        "100",
        "Events kept per instance for resume.",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_STREAM_TTL_SECONDS",
        "86400",
        "An instance stream (epoch, seq, replay buffer) is forgotten after this long without a publish; the next one starts a new epoch.",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_SOCKET_QUEUE_SIZE",
        "1024",
        "Frames a socket may lag behind its instance's live stream before it is closed with 4008 `slow_consumer` (bounds memory per instance).",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_SEND_TIMEOUT_SECONDS",
        "10",
        "A socket that cannot take one frame within this time is closed as a slow consumer.",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_ACCESS_RECHECK_SECONDS",
        "60",
        "How often an open socket asks cloud-api again which organizations its user belongs to: a member removed from one stops getting its events within this time; a user who lost the instance is closed with 4003 `access_revoked`.",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_PING_INTERVAL_SECONDS",
        "15",
        "Websocket ping and `cloud.instance.status` heartbeat period; a peer silent for two periods is dropped.",
    ),
];

pub fn env_vars() -> Vec<EnvVar> {
    COMMON_ENV.iter().chain(SERVICE_ENV).copied().collect()
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub redis_url: Option<Secret>,
    pub public_url: Url,
    pub channel_prefix: String,
    pub token_ttl: Duration,
    pub cloud_api_url: Url,
    pub max_sockets_per_instance: usize,
    pub replay_buffer_size: usize,
    pub stream_ttl: Duration,
    pub socket_queue_size: usize,
    pub send_timeout: Duration,
    pub ping_interval: Duration,
    pub access_recheck: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigErrors> {
        let mut r = Reader::new(env);
        let common = CommonConfig::read(&mut r, DEFAULT_PORT);
        r.require_for_profile(common.profile, &env_vars());
        let config = Self {
            redis_url: r.secret("REDIS_URL"),
            public_url: r.url(
                "CHATONS_REALTIME_PUBLIC_URL",
                &["ws", "wss"],
                &format!("ws://127.0.0.1:{}/ws", common.port),
            ),
            channel_prefix: r.string_or(
                "CHATONS_REALTIME_CHANNEL_PREFIX",
                "chatons:realtime:instance:",
            ),
            token_ttl: r.seconds("CHATONS_REALTIME_TOKEN_TTL_SECONDS", 300),
            cloud_api_url: r.url(
                "CHATONS_CLOUD_API_URL",
                &["http", "https"],
                "http://127.0.0.1:4000",
            ),
            max_sockets_per_instance: r.int_in(
                "CHATONS_REALTIME_MAX_SOCKETS_PER_INSTANCE",
                200,
                1,
                100_000,
            ) as usize,
            replay_buffer_size: r.int_in("CHATONS_REALTIME_REPLAY_BUFFER_SIZE", 100, 1, 100_000)
                as usize,
            stream_ttl: r.seconds("CHATONS_REALTIME_STREAM_TTL_SECONDS", 86_400),
            socket_queue_size: r.int_in("CHATONS_REALTIME_SOCKET_QUEUE_SIZE", 1024, 1, 1_000_000)
                as usize,
            send_timeout: r.seconds("CHATONS_REALTIME_SEND_TIMEOUT_SECONDS", 10),
            ping_interval: r.seconds("CHATONS_REALTIME_PING_INTERVAL_SECONDS", 15),
            access_recheck: r.seconds("CHATONS_REALTIME_ACCESS_RECHECK_SECONDS", 60),
            common,
        };
        r.finish()?;
        Ok(config)
    }
}
