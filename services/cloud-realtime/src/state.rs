//! Shared state of cloud-realtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloud_common::Secret;
use cloud_common::auth::ServiceToken;
use cloud_common::health::{Readiness, ReadinessCheck};
use cloud_common::internal::CloudApiClient;
use cloud_common::metrics::Metrics;
use cloud_common::server::Shutdown;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use crate::Config;
use crate::broker::{DynBroker, LocalFanout, MemoryBroker, RedisBroker};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub metrics: Metrics,
    pub realtime: RealtimeMetrics,
    pub readiness: Readiness,
    pub service_token: ServiceToken,
    pub shutdown: Shutdown,
    pub broker: DynBroker,
    pub fanout: Arc<LocalFanout>,
    pub cloud_api: CloudApiClient,
    pub sockets: Arc<SocketRegistry>,
}

impl axum::extract::FromRef<AppState> for ServiceToken {
    fn from_ref(state: &AppState) -> Self {
        state.service_token.clone()
    }
}

impl AppState {
    pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let metrics = Metrics::new(crate::SERVICE);
        let realtime = RealtimeMetrics::register(&metrics);
        let mut readiness = Readiness::new(shutdown.clone());
        let fanout = LocalFanout::with_counters(
            config.socket_queue_size,
            realtime.events_dropped.clone(),
            realtime.events_delivered.clone(),
        );
        let broker: DynBroker = if let Some(url) = &config.redis_url {
            let client = redis::Client::open(url.expose())?;
            readiness = readiness.with_check(RedisReady(client.clone()));
            Arc::new(
                RedisBroker::connect(
                    client,
                    config.channel_prefix.clone(),
                    fanout.clone(),
                    config.replay_buffer_size,
                    config.stream_ttl,
                    shutdown.clone(),
                )
                .await?,
            )
        } else {
            tracing::warn!(
                "REDIS_URL is not set: events fan out in process (single replica only)."
            );
            Arc::new(MemoryBroker::new(
                fanout.clone(),
                config.replay_buffer_size,
                config.stream_ttl,
            ))
        };
        if config.common.internal_token.is_none() {
            tracing::warn!(
                "CHATONS_INTERNAL_SERVICE_TOKEN is not set: publishing is refused and cloud-api access checks will fail."
            );
        }
        let cloud_api = CloudApiClient::new(
            config.cloud_api_url.clone(),
            config
                .common
                .internal_token
                .clone()
                .unwrap_or_else(|| Secret::new("")),
        );
        spawn_sweeper(broker.clone(), shutdown.clone());
        Ok(Self {
            service_token: ServiceToken::new(config.common.internal_token.as_ref()),
            config: Arc::new(config),
            metrics,
            realtime,
            readiness,
            shutdown,
            broker,
            fanout,
            cloud_api,
            sockets: Arc::new(SocketRegistry::default()),
        })
    }
}

/// Expired tokens and idle streams of the in-process store are removed every 30 s (Redis
/// expires its keys itself).
fn spawn_sweeper(broker: DynBroker, shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = tick.tick() => broker.sweep().await,
            }
        }
    });
}

/// The realtime series of `/metrics`.
#[derive(Clone, Default)]
pub struct RealtimeMetrics {
    pub open_websockets: Gauge,
    pub events_published: Counter,
    pub events_delivered: Counter,
    pub events_dropped: Counter,
    pub replays: Counter,
    pub resyncs: Counter,
    pub slow_consumers: Counter,
}

impl RealtimeMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register(
            "realtime_open_websockets",
            "Websockets open on this replica",
            m.open_websockets.clone(),
        );
        metrics.register(
            "realtime_events_published",
            "Events accepted by POST /v1/realtime/events on this replica",
            m.events_published.clone(),
        );
        metrics.register(
            "realtime_events_delivered",
            "Event frames written to websockets (live and replayed)",
            m.events_delivered.clone(),
        );
        metrics.register(
            "realtime_events_dropped",
            "Events that could not be queued for a socket (it fell too far behind and was closed to resume)",
            m.events_dropped.clone(),
        );
        metrics.register(
            "realtime_replays",
            "Catch-ups served from the replay buffer (websocket resume and HTTP replay)",
            m.replays.clone(),
        );
        metrics.register(
            "realtime_resyncs",
            "Resync messages sent (position older than the buffer or epoch changed)",
            m.resyncs.clone(),
        );
        metrics.register(
            "realtime_slow_consumers",
            "Sockets closed because they did not keep up",
            m.slow_consumers.clone(),
        );
        m
    }
}

/// Counts this process's open sockets and closes them at shutdown.
#[derive(Default)]
pub struct SocketRegistry {
    open: AtomicUsize,
    closing: Shutdown,
    idle: Notify,
}

impl SocketRegistry {
    pub fn enter(self: &Arc<Self>) -> SocketGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        SocketGuard(self.clone())
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Fires when sockets must close with 1001.
    pub fn closing(&self) -> &Shutdown {
        &self.closing
    }

    /// Tells every socket to close (1001 `server_shutdown`) and waits up to `within` for them.
    pub async fn close_all(&self, within: Duration) {
        self.closing.trigger();
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.open() == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(within, wait).await.is_err() {
            tracing::warn!(
                open = self.open(),
                "Sockets still open after the close bound."
            );
        }
    }
}

pub struct SocketGuard(Arc<SocketRegistry>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Readiness: Redis answers PING.
pub struct RedisReady(pub redis::Client);

impl ReadinessCheck for RedisReady {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            let mut conn = self
                .0
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        .boxed()
    }
}
