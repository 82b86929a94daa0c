//! `GET /ws?token=…[&epoch=…&afterSequence=…]` — one instance's live stream.
//!
//! Frames, in order: `hello` (epoch and last assigned sequence), a `cloud.instance.status`
//! "Realtime connected" envelope (what existing desktops expect), then — when the client gave a
//! position — the buffered events after it, or a `resync`; then live events, with no gap and no
//! duplicate: the socket is attached to the fan-out before it reads the buffer, and skips live
//! events it has already replayed. A hole in the live stream (a Redis reconnect, a lost
//! publish) makes the socket catch up from the buffer again, or resync when the buffer no
//! longer covers it.
//!
//! Live events are written by the fan-out itself ([`super::peer`]); this task handles the
//! client's frames, heartbeats, catch-ups, backlogs and the close.
//!
//! Every `CHATONS_REALTIME_ACCESS_RECHECK_SECONDS` the socket asks cloud-api again which
//! organizations its user belongs to (the token's answer is only a snapshot), so a member removed
//! from an organization stops receiving its events; when cloud-api cannot answer, the last
//! answer stands.
//!
//! Close codes: 1008 `invalid_token`, 1013 `instance_capacity_reached`, 1013 `unavailable`
//! (store unreachable; retry), 4003 `access_revoked` (the user no longer holds the instance),
//! 4008 `slow_consumer` (resume from your position), 1001 `server_shutdown`; for what a client sends: 1009 `message_too_big` (over 64 KiB), 1008
//! `message_rate_exceeded` (see `hub::budget`), 1007 `invalid_utf8`, 1002 `protocol_error`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cloud_common::extract::ApiQuery;
use cloud_common::realtime::EventEnvelope;
use hyper::upgrade::OnUpgrade;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::access::{self, Recheck};
use super::peer::{Applied, Peer, Stop};
use super::upgrade::Handshake;
use crate::AppState;
use crate::broker::{Replay, TokenGrant};
use crate::hub::{ClientMessage, Cursor, MessageBudget};
use crate::wire::{self, Decoder, Incoming};

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_INVALID_TOKEN: u16 = 1008;
/// Policy violation (1008 too): a client flooding the socket with frames.
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TRY_LATER: u16 = 1013;
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
pub const CLOSE_ACCESS_REVOKED: u16 = 4003;
pub const CLOSE_GOING_AWAY: u16 = 1001;

const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// How long a close may take (our close frame out, the client's answer in).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

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
    method: Method,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<WsQuery>,
    mut request: axum::extract::Request,
) -> Response {
    let on_upgrade = request.extensions_mut().remove::<OnUpgrade>();
    let handshake = match Handshake::check(&method, &headers, on_upgrade) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let response = handshake.response();
    // Everything the socket's task captures stays in its future for the socket's lifetime:
    // only two pointers go in; the rest is boxed and dropped once the socket is live.
    tokio::spawn(serve_socket(Arc::new(state), Box::new((query, handshake))));
    response
}

/// Why a socket ended.
enum End {
    /// The peer left or the connection broke: nothing to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The client closed: answer with this code and stop.
    Answer(u16),
}

async fn serve_socket(state: Arc<AppState>, pending: Box<(WsQuery, Handshake)>) {
    let _registered = state.sockets.enter();
    let Some((mut session, attachment, opening)) = Box::pin(admit(state.clone(), pending)).await
    else {
        return;
    };
    let end = match Box::pin(session.open(opening)).await {
        Ok(()) => session.live().await,
        Err(end) => end,
    };
    drop(attachment);
    Box::pin(session.finish(end)).await;
}

/// What `open` needs, held only until the socket is live.
struct Opening {
    grant: TokenGrant,
    position: Option<Cursor>,
    /// Client bytes arrived with the upgrade (already fed to the decoder), or they were bad.
    early: Result<bool, wire::DecodeError>,
}

/// Checks the token and the instance's socket cap; on success the socket is attached to the
/// fan-out (before the buffer is read: nothing published from here on can be missed).
async fn admit(
    state: Arc<AppState>,
    pending: Box<(WsQuery, Handshake)>,
) -> Option<(Session, crate::broker::Attachment, Opening)> {
    let (query, handshake) = *pending;
    let (stream, leftover) = match handshake.stream().await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::warn!(error = %e, "Websocket upgrade failed.");
            return None;
        }
    };
    let position = query.position();
    let token = query.token.unwrap_or_default();
    let token = token.trim();
    let grant = if token.is_empty() {
        None
    } else {
        match state.broker.take_token(token).await {
            Ok(grant) => grant,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot check a websocket token.");
                refuse(stream, CLOSE_TRY_LATER, "unavailable").await;
                return None;
            }
        }
    };
    let Some(grant) = grant else {
        refuse(stream, CLOSE_INVALID_TOKEN, "invalid_token").await;
        return None;
    };
    let instance = grant.cloud_instance_id.clone();
    let socket_id = uuid::Uuid::new_v4().simple().to_string();
    let lease = state.config.ping_interval * 4;
    let cap = state.config.max_sockets_per_instance;
    match state
        .broker
        .acquire_slot(&instance, &socket_id, cap, lease)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            refuse(stream, CLOSE_TRY_LATER, "instance_capacity_reached").await;
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cannot count the instance's sockets.");
            refuse(stream, CLOSE_TRY_LATER, "unavailable").await;
            return None;
        }
    }
    state.realtime.open_websockets.inc();
    let peer = Peer::new(
        stream,
        grant.audience.clone(),
        state.config.socket_queue_size,
    );
    // Attached before the buffer is read: nothing published from here on can be missed.
    let attachment = state.broker.attach(&instance, peer.clone());
    let mut decoder = Decoder::new(MAX_CLIENT_MESSAGE);
    // Bytes the client sent right after its request; fed now so the (possibly large) read
    // buffer they point into is not kept for the socket's lifetime.
    let early = decoder.feed(&leftover).map(|()| !leftover.is_empty());
    drop(leftover);
    let session = Session {
        state,
        peer,
        instance,
        socket_id,
        hello_seq: 0,
        decoder,
        last_heard: Instant::now(),
        budget: MessageBudget::for_clients(std::time::Instant::now()),
    };
    let opening = Opening {
        grant,
        position,
        early,
    };
    Some((session, attachment, opening))
}

/// Closes a socket that never went live (bad token, capacity, store down).
async fn refuse(stream: TcpStream, code: u16, reason: &'static str) {
    let peer = Peer::new(stream, crate::hub::Audience::default(), 1);
    let mut decoder = Decoder::new(MAX_CLIENT_MESSAGE);
    finish_close(&peer, wire::close(code, reason), true, &mut decoder).await;
}

/// Sends `frame` (a close) and, when we started the close, waits briefly for the client's
/// answer, so the connection ends with a FIN after everything was read, not a reset.
async fn finish_close(peer: &Peer, frame: Bytes, await_answer: bool, decoder: &mut Decoder) {
    let deadline = Instant::now() + CLOSE_GRACE;
    let mut pending = peer.close_with(frame);
    while pending {
        match tokio::time::timeout_at(deadline, peer.stream().writable()).await {
            Ok(Ok(())) => {
                peer.flush();
                pending = peer.work().backlog && peer.work().stop != Some(Stop::Gone);
            }
            _ => return,
        }
    }
    if !await_answer {
        return;
    }
    loop {
        match tokio::time::timeout_at(deadline, peer.stream().readable()).await {
            Ok(Ok(())) => match read_some(peer.stream(), decoder) {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            },
            _ => return,
        }
        loop {
            match decoder.next_message() {
                Ok(Some(Incoming::Close(_))) | Err(_) => return,
                Ok(Some(_)) => {}
                Ok(None) => break,
            }
        }
    }
}

/// Reads what the socket has into the decoder: `Ok(true)` when bytes came (or none were ready),
/// `Ok(false)` at end of stream.
fn read_some(stream: &TcpStream, decoder: &mut Decoder) -> Result<bool, End> {
    let mut buf = [0u8; 2048];
    loop {
        match stream.try_read(&mut buf) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                decoder
                    .feed(&buf[..n])
                    .map_err(|e| End::Close(e.code(), e.reason()))?;
                if n < buf.len() {
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(End::Gone),
        }
    }
}

struct Session {
    state: Arc<AppState>,
    peer: Arc<Peer>,
    instance: String,
    socket_id: String,
    hello_seq: u64,
    decoder: Decoder,
    last_heard: Instant,
    /// Frames the client may still send (a flood is closed, not served).
    budget: MessageBudget,
}

impl Session {
    /// The opening frames, then what the client sent along with its upgrade. (The caller
    /// boxes this future: it is large and short-lived; the live loop's future is what an idle
    /// socket keeps in memory.)
    async fn open(&mut self, opening: Opening) -> Result<(), End> {
        let early = opening
            .early
            .map_err(|e| End::Close(e.code(), e.reason()))?;
        self.open_frames(&opening.grant, opening.position).await?;
        if early {
            self.client_messages().await?;
        }
        Ok(())
    }

    async fn open_frames(
        &mut self,
        grant: &TokenGrant,
        position: Option<Cursor>,
    ) -> Result<(), End> {
        let after = position.as_ref().map_or(u64::MAX, |p| p.seq);
        let replay = self.read(after).await?;
        self.hello_seq = replay.snapshot.last_seq;
        let hello = json!({
            "type": "hello",
            "epoch": replay.snapshot.epoch,
            "sequence": replay.snapshot.last_seq,
            "cloudInstanceId": grant.cloud_instance_id,
        });
        self.peer.send([
            wire::text(&hello.to_string()),
            self.status("Realtime connected"),
        ]);
        match position {
            Some(position) => {
                let applied = self.peer.apply_and_release(&position, replay, None);
                self.count(applied);
            }
            None => {
                let delivered = self.peer.start_at(replay.snapshot.head());
                self.state
                    .realtime
                    .events_delivered
                    .inc_by(delivered as u64);
            }
        }
        Ok(())
    }

    async fn live(&mut self) -> End {
        let interval = self.state.config.ping_interval;
        let send_timeout = self.state.config.send_timeout;
        let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
        let closing = self.state.sockets.closing().clone();
        let every = self.state.config.access_recheck;
        let mut recheck = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            let work = self.peer.work();
            match work.stop {
                Some(Stop::Gone) => return End::Gone,
                Some(Stop::Slow) => return self.slow(),
                None => {}
            }
            if work.catch_up {
                if let Err(end) = Box::pin(self.catch_up()).await {
                    return end;
                }
                continue;
            }
            if work.backlog {
                if let Err(end) = Box::pin(self.drain(send_timeout)).await {
                    return end;
                }
                continue;
            }
            tokio::select! {
                () = closing.wait() => return End::Close(CLOSE_GOING_AWAY, "server_shutdown"),
                () = self.peer.woken() => {}
                _ = recheck.tick() => {
                    let current = self.peer.audience();
                    match Box::pin(access::recheck(&self.state, &current, &self.instance)).await {
                        Recheck::Now(audience) => self.peer.set_audience(audience),
                        Recheck::Revoked => return End::Close(CLOSE_ACCESS_REVOKED, "access_revoked"),
                        Recheck::Keep => {}
                    }
                }
                ready = self.peer.stream().readable() => {
                    if ready.is_err() {
                        return End::Gone;
                    }
                    if let Err(end) = Box::pin(self.client_frames()).await {
                        return end;
                    }
                }
                _ = tick.tick() => {
                    if self.last_heard.elapsed() > interval * 2 {
                        tracing::info!(instance = %self.instance, "Peer silent for two ping periods; dropped.");
                        return End::Gone;
                    }
                    let message = if self.state.config.redis_url.is_some() { "Heartbeat ok (redis)" } else { "Heartbeat ok" };
                    self.peer.send([wire::frame(wire::OP_PING, &[]), self.status(message)]);
                    let lease = interval * 4;
                    if let Err(e) = self.state.broker.refresh_slot(&self.instance, &self.socket_id, lease).await {
                        tracing::debug!(error = %e, "Socket slot not refreshed.");
                    }
                }
            }
        }
    }

    fn slow(&self) -> End {
        tracing::info!(instance = %self.instance, "Slow consumer closed.");
        self.state.realtime.slow_consumers.inc();
        End::Close(CLOSE_SLOW_CONSUMER, "slow_consumer")
    }

    /// Reads and answers what the client sent.
    async fn client_frames(&mut self) -> Result<(), End> {
        if !read_some(self.peer.stream(), &mut self.decoder)? {
            return Err(End::Gone);
        }
        self.last_heard = Instant::now();
        self.client_messages().await
    }

    /// Answers the complete messages the decoder holds.
    async fn client_messages(&mut self) -> Result<(), End> {
        loop {
            let message = self
                .decoder
                .next_message()
                .map_err(|e| End::Close(e.code(), e.reason()))?;
            if message.is_some() && !self.budget.take(std::time::Instant::now()) {
                return Err(End::Close(CLOSE_POLICY, "message_rate_exceeded"));
            }
            match message {
                None => return Ok(()),
                Some(Incoming::Text(text)) => self.client_message(&text).await?,
                Some(Incoming::Ping(payload)) => {
                    self.peer.send([wire::frame(wire::OP_PONG, &payload)]);
                }
                Some(Incoming::Binary | Incoming::Pong) => {}
                Some(Incoming::Close(code)) => {
                    let code = match code {
                        Some(c @ (1000..=1003 | 1007..=1011 | 3000..=4999)) => c,
                        _ => CLOSE_NORMAL,
                    };
                    return Err(End::Answer(code));
                }
            }
        }
    }

    fn status(&self, message: &str) -> Bytes {
        let mut event = EventEnvelope::new(
            "cloud.instance.status",
            json!({"cloudInstanceId": self.instance, "status": "connected", "message": message}),
        );
        event.organization_id = Some(self.peer.audience().organization_id);
        wire::text(&serde_json::to_string(&event).unwrap_or_default())
    }

    fn count(&self, applied: Applied) {
        let m = &self.state.realtime;
        m.events_delivered.inc_by(applied.delivered as u64);
        if applied.replayed {
            m.replays.inc();
        }
        if applied.resynced {
            m.resyncs.inc();
        }
    }

    /// See [`read_buffer`] (owned arguments keep the future `Send`).
    fn read(&self, after: u64) -> impl Future<Output = Result<Replay, End>> + Send + 'static {
        read_buffer(self.state.clone(), self.instance.clone(), after)
    }

    /// Brings the cursor to the stream's head: the buffered events after it, or a resync.
    async fn catch_up(&mut self) -> Result<(), End> {
        self.peer.hold();
        let position = self.peer.cursor();
        let replay = self.read(position.seq).await?;
        let applied = self.peer.apply_and_release(&position, replay, None);
        self.count(applied);
        Ok(())
    }

    /// `{"type":"resume","epoch","afterSequence"}`: honoured while no live event has been
    /// delivered since `hello` (anything else would reorder the stream); later, a resync.
    async fn client_message(&mut self, text: &str) -> Result<(), End> {
        let Some(ClientMessage::Resume(position)) = ClientMessage::parse(text) else {
            return Ok(());
        };
        self.peer.hold();
        if self.peer.delivered_live() || position.seq > self.hello_seq {
            let replay = self.read(u64::MAX).await?;
            let applied = self
                .peer
                .apply_and_release(&Cursor::default(), replay, None);
            self.count(applied);
            return Ok(());
        }
        // Only events up to the live cursor may be replayed; later ones come live.
        let mut replay = self.read(position.seq).await?;
        let head = self.peer.cursor();
        replay.events.retain(|e| e.seq <= head.seq);
        let applied = self.peer.apply_and_release(&position, replay, Some(head));
        self.count(applied);
        Ok(())
    }

    /// Closes as `end` says, then gives the instance slot back.
    async fn finish(mut self, end: End) {
        match end {
            End::Gone => {}
            End::Close(code, reason) => {
                finish_close(
                    &self.peer,
                    wire::close(code, reason),
                    true,
                    &mut self.decoder,
                )
                .await;
            }
            End::Answer(code) => {
                finish_close(&self.peer, wire::close(code, ""), false, &mut self.decoder).await;
            }
        }
        self.state.realtime.open_websockets.dec();
        if let Err(e) = self
            .state
            .broker
            .release_slot(&self.instance, &self.socket_id)
            .await
        {
            tracing::debug!(error = %e, "Socket slot not released; it lapses with its lease.");
        }
    }

    /// Waits for the socket to take its backlog, for at most the send timeout without progress.
    async fn drain(&mut self, send_timeout: Duration) -> Result<(), End> {
        let closing = self.state.sockets.closing().clone();
        let mut seen = self.peer.work().written;
        let mut deadline = Instant::now() + send_timeout;
        loop {
            let work = self.peer.work();
            match work.stop {
                Some(Stop::Gone) => return Err(End::Gone),
                Some(Stop::Slow) => return Err(self.slow()),
                None if !work.backlog => return Ok(()),
                None => {}
            }
            if work.written != seen {
                seen = work.written;
                deadline = Instant::now() + send_timeout;
            }
            tokio::select! {
                () = closing.wait() => return Err(End::Close(CLOSE_GOING_AWAY, "server_shutdown")),
                () = self.peer.woken() => {}
                ready = self.peer.stream().writable() => {
                    if ready.is_err() {
                        return Err(End::Gone);
                    }
                    self.peer.flush();
                }
                () = tokio::time::sleep_until(deadline) => {
                    if self.peer.work().written == seen {
                        tracing::info!(instance = %self.instance, "Socket took nothing within the send timeout.");
                        return Err(self.slow());
                    }
                }
            }
        }
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
