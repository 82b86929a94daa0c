//! `GET /ws?token=…[&epoch=…&afterSequence=…]` — one instance's live stream.
//!
//! Frames, in order: `hello` (epoch and last assigned sequence), a `cloud.instance.status`
//! "Realtime connected" envelope (what existing desktops expect), then — when the client gave a
//! position — the buffered events after it, or a `resync`; then live events, with no gap and no
//! duplicate: the socket subscribes before it reads the buffer, and skips live events it has
//! already replayed. A hole in the live stream (a Redis reconnect, a lost publish) makes the
//! socket catch up from the buffer again, or resync when the buffer no longer covers it.
//!
//! Close codes: 1008 `invalid_token`, 1013 `instance_capacity_reached`, 1013 `unavailable`
//! (store unreachable; retry), 4008 `slow_consumer` (resume from your position), 1001
//! `server_shutdown`; for what a client sends: 1009 `message_too_big` (over 64 KiB), 1008
//! `message_rate_exceeded` (see `hub::budget`), 1007 `invalid_utf8`, 1002 `protocol_error`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cloud_common::ApiError;
use cloud_common::extract::ApiQuery;
use cloud_common::realtime::EventEnvelope;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::broker::{Live, Recv, Replay, Subscription, TokenGrant};
use crate::hub::{Audience, ClientMessage, Cursor, LiveStep, MessageBudget, StreamPlan};

pub const CLOSE_INVALID_TOKEN: u16 = 1008;
pub const CLOSE_TRY_LATER: u16 = 1013;
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;

/// Small buffers: an idle socket should cost a few KB, not the 128 KiB default.
const READ_BUFFER: usize = 512;
/// Frames are written out once this much is queued, or when the socket's queue runs dry.
const WRITE_BUFFER: usize = 16 * 1024;
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsQuery {
    pub token: Option<String>,
    pub epoch: Option<String>,
    pub after_sequence: Option<String>,
}

impl WsQuery {
    fn position(&self) -> Option<Cursor> {
        let epoch = self.epoch.as_deref()?.trim();
        let seq = self.after_sequence.as_deref()?.trim().parse().ok()?;
        (!epoch.is_empty()).then(|| Cursor {
            epoch: epoch.to_owned(),
            seq,
        })
    }
}

pub async fn ws(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return ApiError::bad_request(format!("Expected a websocket upgrade: {e}"))
                .into_response();
        }
    };
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve_socket(state, query, socket))
}

/// Why a socket ended.
enum End {
    /// The peer left or the connection broke: nothing to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

struct Conn {
    socket: WebSocket,
    send_timeout: Duration,
}

/// A socket write bounded by the send timeout: a peer that does not take its frames in time is
/// a slow consumer and is told to resume elsewhere.
async fn bounded(
    limit: Duration,
    write: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), End> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Gone),
        Err(_) => Err(End::Close(CLOSE_SLOW_CONSUMER, "slow_consumer")),
    }
}

impl Conn {
    async fn send(&mut self, message: Message) -> Result<(), End> {
        bounded(self.send_timeout, self.socket.send(message)).await
    }

    async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), End> {
        self.send(Message::Text(text.into())).await
    }

    /// Queues a frame in the socket's write buffer (written once [`WRITE_BUFFER`] fills up or at
    /// the next [`Conn::flush`]): a burst of events costs a few writes, not one per event.
    async fn feed_text(&mut self, text: Utf8Bytes) -> Result<(), End> {
        bounded(
            self.send_timeout,
            SinkExt::feed(&mut self.socket, Message::Text(text)),
        )
        .await
    }

    /// Writes out what [`Conn::feed_text`] queued (nothing to do when the buffer is empty).
    async fn flush(&mut self) -> Result<(), End> {
        bounded(self.send_timeout, SinkExt::flush(&mut self.socket)).await
    }

    async fn close(mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(frame)).await;
        // Wait briefly for the client's close (RFC 6455 §7.1.1), discarding what it still
        // sends: closing with unread bytes would reset the connection and lose our close frame.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(message)) = self.socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

async fn serve_socket(state: AppState, query: WsQuery, socket: WebSocket) {
    // One shared copy of the state per socket, not one per helper.
    let state = Arc::new(state);
    let position = query.position();
    let token = query.token.unwrap_or_default();
    let _registered = state.sockets.enter();
    let conn = Conn {
        socket,
        send_timeout: state.config.send_timeout,
    };
    let token = token.trim();
    let grant = if token.is_empty() {
        None
    } else {
        match state.broker.take_token(token).await {
            Ok(grant) => grant,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot check a websocket token.");
                return conn.close(CLOSE_TRY_LATER, "unavailable").await;
            }
        }
    };
    let Some(grant) = grant else {
        return conn.close(CLOSE_INVALID_TOKEN, "invalid_token").await;
    };
    let instance = grant.cloud_instance_id.clone();
    let socket_id = uuid::Uuid::new_v4().simple().to_string();
    let lease = state.config.ping_interval * 4;
    match state
        .broker
        .acquire_slot(
            &instance,
            &socket_id,
            state.config.max_sockets_per_instance,
            lease,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return conn
                .close(CLOSE_TRY_LATER, "instance_capacity_reached")
                .await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cannot count the instance's sockets.");
            return conn.close(CLOSE_TRY_LATER, "unavailable").await;
        }
    }
    state.realtime.open_websockets.inc();
    let mut session = Session {
        state: state.clone(),
        conn,
        audience: grant.audience.clone(),
        instance: instance.clone(),
        socket_id: socket_id.clone(),
        cursor: Cursor {
            epoch: String::new(),
            seq: 0,
        },
        hello_seq: 0,
        delivered_live: false,
        budget: MessageBudget::for_clients(Instant::now()),
    };
    let subscription = state.broker.subscribe(&instance);
    let end = session.run(subscription, &grant, position).await;
    let Session { conn, .. } = session;
    match end {
        End::Gone => {}
        End::Close(code, reason) => conn.close(code, reason).await,
    }
    state.realtime.open_websockets.dec();
    if let Err(e) = state.broker.release_slot(&instance, &socket_id).await {
        tracing::debug!(error = %e, "Socket slot not released; it lapses with its lease.");
    }
}

struct Session {
    state: Arc<AppState>,
    conn: Conn,
    audience: Audience,
    instance: String,
    socket_id: String,
    cursor: Cursor,
    hello_seq: u64,
    delivered_live: bool,
    budget: MessageBudget,
}

impl Session {
    /// The opening frames (boxed: that future is large and short-lived), then the live loop,
    /// whose future is what an idle socket keeps in memory.
    async fn run(
        &mut self,
        mut live: Subscription,
        grant: &TokenGrant,
        position: Option<Cursor>,
    ) -> End {
        if let Err(end) = Box::pin(self.open(grant, position)).await {
            return end;
        }
        self.live_loop(&mut live).await
    }

    async fn open(&mut self, grant: &TokenGrant, position: Option<Cursor>) -> Result<(), End> {
        // Subscribed above, before this read: nothing published from here on can be missed.
        let after = position.as_ref().map_or(u64::MAX, |p| p.seq);
        let replay = self.read(after).await?;
        self.cursor = replay.snapshot.head();
        self.hello_seq = replay.snapshot.last_seq;
        let hello = json!({
            "type": "hello",
            "epoch": replay.snapshot.epoch,
            "sequence": replay.snapshot.last_seq,
            "cloudInstanceId": grant.cloud_instance_id,
        });
        self.conn.send_text(hello.to_string()).await?;
        self.status("Realtime connected").await?;
        if let Some(position) = position {
            self.apply(&position, replay).await?;
        }
        Ok(())
    }

    async fn live_loop(&mut self, live: &mut Subscription) -> End {
        let interval = self.state.config.ping_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut last_heard = Instant::now();
        let closing = self.state.sockets.closing().clone();
        loop {
            tokio::select! {
                () = closing.wait() => return End::Close(CLOSE_GOING_AWAY, "server_shutdown"),
                msg = live.recv() => {
                    let step = match msg {
                        Recv::Live(Live::Event(event)) => {
                            match self.cursor.step(&event.epoch, event.seq) {
                                LiveStep::Deliver => {
                                    self.cursor.seq = event.seq;
                                    if self.audience.admits(event.organization_id.as_deref()) {
                                        self.delivered_live = true;
                                        self.deliver(event.text.clone()).await
                                    } else {
                                        Ok(())
                                    }
                                }
                                LiveStep::Duplicate => Ok(()),
                                LiveStep::Gap => Box::pin(self.catch_up()).await,
                            }
                        }
                        Recv::Live(Live::Reset) => Box::pin(self.catch_up()).await,
                        Recv::Lagged => {
                            tracing::info!(instance = %self.instance, "Slow consumer closed.");
                            Err(End::Close(CLOSE_SLOW_CONSUMER, "slow_consumer"))
                        }
                    };
                    // Whatever this burst queued goes out once nothing else is waiting.
                    let step = match step {
                        Ok(()) if live.is_empty() => self.conn.flush().await,
                        other => other,
                    };
                    if let Err(end) = step {
                        if matches!(end, End::Close(CLOSE_SLOW_CONSUMER, _)) {
                            self.state.realtime.slow_consumers.inc();
                        }
                        return end;
                    }
                }
                incoming = self.conn.socket.recv() => {
                    last_heard = Instant::now();
                    if !self.budget.take(last_heard) {
                        tracing::info!(instance = %self.instance, "Client frame flood; closed.");
                        return End::Close(CLOSE_POLICY, "message_rate_exceeded");
                    }
                    match incoming {
                        Some(Err(e)) => return refused_frame(e),
                        None | Some(Ok(Message::Close(_))) => return End::Gone,
                        Some(Ok(Message::Text(text))) => {
                            if let Err(end) = Box::pin(self.client_message(text.as_str())).await {
                                return end;
                            }
                        }
                        Some(Ok(_)) => {}
                    }
                }
                _ = tick.tick() => {
                    if last_heard.elapsed() > interval * 2 {
                        tracing::info!(instance = %self.instance, "Peer silent for two ping periods; dropped.");
                        return End::Gone;
                    }
                    if let Err(end) = self.conn.send(Message::Ping(Bytes::new())).await {
                        return end;
                    }
                    let message = if self.state.config.redis_url.is_some() { "Heartbeat ok (redis)" } else { "Heartbeat ok" };
                    if let Err(end) = Box::pin(self.status(message)).await {
                        return end;
                    }
                    let lease = interval * 4;
                    if let Err(e) = self.state.broker.refresh_slot(&self.instance, &self.socket_id, lease).await {
                        tracing::debug!(error = %e, "Socket slot not refreshed.");
                    }
                }
            }
        }
    }

    /// Queues one event; the caller flushes when no more are waiting.
    async fn deliver(&mut self, text: Utf8Bytes) -> Result<(), End> {
        self.conn.feed_text(text).await?;
        self.state.realtime.events_delivered.inc();
        Ok(())
    }

    async fn status(&mut self, message: &str) -> Result<(), End> {
        let mut event = EventEnvelope::new(
            "cloud.instance.status",
            json!({"cloudInstanceId": self.instance, "status": "connected", "message": message}),
        );
        event.organization_id = Some(self.audience.organization_id.clone());
        let text = serde_json::to_string(&event).unwrap_or_default();
        self.conn.send_text(text).await
    }

    /// See [`read_buffer`] (owned arguments keep the future `Send`: the socket is not `Sync`).
    fn read(&self, after: u64) -> impl Future<Output = Result<Replay, End>> + Send + 'static {
        read_buffer(self.state.clone(), self.instance.clone(), after)
    }

    /// Brings the cursor to the stream's head: the buffered events after it, or a resync.
    async fn catch_up(&mut self) -> Result<(), End> {
        let replay = self.read(self.cursor.seq).await?;
        let position = self.cursor.clone();
        self.apply(&position, replay).await
    }

    async fn apply(&mut self, position: &Cursor, replay: Replay) -> Result<(), End> {
        match replay.snapshot.plan(position) {
            StreamPlan::Replay => {
                if !replay.events.is_empty() {
                    self.state.realtime.replays.inc();
                }
                for event in replay.events.iter().filter(|e| e.seq > position.seq) {
                    if self.audience.admits(event.organization_id.as_deref()) {
                        self.deliver(event.text.clone()).await?;
                    }
                }
                self.conn.flush().await?;
            }
            StreamPlan::Resync => {
                self.state.realtime.resyncs.inc();
                let resync = json!({
                    "type": "resync",
                    "epoch": replay.snapshot.epoch,
                    "sequence": replay.snapshot.last_seq,
                });
                self.conn.send_text(resync.to_string()).await?;
            }
        }
        self.cursor = replay.snapshot.head();
        Ok(())
    }

    /// `{"type":"resume","epoch","afterSequence"}`: honoured while no live event has been
    /// delivered since `hello` (anything else would reorder the stream); later, a resync.
    async fn client_message(&mut self, text: &str) -> Result<(), End> {
        let Some(ClientMessage::Resume(position)) = ClientMessage::parse(text) else {
            return Ok(());
        };
        if self.delivered_live || position.seq > self.hello_seq {
            let replay = self.read(u64::MAX).await?;
            let forced = Cursor {
                epoch: String::new(),
                seq: 0,
            };
            return self.apply(&forced, replay).await;
        }
        // Only events up to the hello's sequence may be replayed; later ones come live.
        let mut replay = self.read(position.seq).await?;
        let limit = self.cursor.seq;
        replay.events.retain(|e| e.seq <= limit);
        let plan = replay.snapshot.plan(&position);
        let head = self.cursor.clone();
        self.apply(&position, replay).await?;
        if plan == StreamPlan::Replay && head.epoch == self.cursor.epoch {
            // Keep the live cursor where it was: events after it are still to come live.
            self.cursor = head;
        }
        Ok(())
    }
}

/// What a read error means for the peer: a frame this server refuses is answered with its close
/// code; a broken connection needs no answer.
fn refused_frame(e: axum::Error) -> End {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e.into_inner().downcast_ref::<WsError>() {
        Some(WsError::Capacity(_)) => End::Close(CLOSE_TOO_BIG, "message_too_big"),
        Some(WsError::Utf8(_)) => End::Close(CLOSE_INVALID_DATA, "invalid_utf8"),
        Some(WsError::Protocol(_)) => End::Close(CLOSE_PROTOCOL, "protocol_error"),
        _ => End::Gone,
    }
}

/// Reads the buffer, retrying briefly through a store hiccup (e.g. right after Redis came back)
/// before giving up with 1013.
async fn read_buffer(state: Arc<AppState>, instance: String, after: u64) -> Result<Replay, End> {
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0;
    loop {
        match state.broker.read(&instance, after).await {
            Ok(replay) => return Ok(replay),
            Err(e) if attempts >= 6 => {
                tracing::warn!(error = %e, "Cannot read the replay buffer; closing the socket.");
                return Err(End::Close(CLOSE_TRY_LATER, "unavailable"));
            }
            Err(_) => {
                attempts += 1;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
