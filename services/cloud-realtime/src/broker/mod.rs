//! Where events live and how they move: sequence assignment, the bounded replay buffer, fan-out
//! to this process's sockets, websocket tokens and the per-instance socket count. One trait,
//! two implementations — Redis (any number of replicas) and in process (one replica) — checked
//! by one contract test suite (`tests/it/broker_contract.rs`).

pub mod fanout;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use cloud_common::realtime::EventEnvelope;
use serde::{Deserialize, Serialize};

use crate::hub::{Audience, Snapshot};

pub use fanout::{Attachment, LocalFanout, Offered, Recv, Subscriber, Subscription};
pub use memory::MemoryBroker;
pub use redis::RedisBroker;

/// One stored event: its stream position, its audience and its websocket frame — a text frame
/// holding the exact stored JSON, built once per process and written as is to every socket that
/// receives it (server frames are unmasked, so the bytes are the same for all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub epoch: Arc<str>,
    pub organization_id: Option<String>,
    frame: Bytes,
    /// Where the JSON starts in `frame` (after the frame header).
    json_at: u8,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventHead {
    seq: u64,
    epoch: String,
    #[serde(default)]
    organization_id: Option<String>,
}

impl StoredEvent {
    /// Parses the fields the fan-out needs from a stored JSON text and frames it.
    pub fn from_json(json: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(json).ok()?;
        let head: EventHead = serde_json::from_str(text).ok()?;
        let json_at = crate::wire::header_len(json.len());
        let mut frame = BytesMut::with_capacity(json_at + json.len());
        crate::wire::put_header(&mut frame, crate::wire::OP_TEXT, json.len());
        frame.put_slice(json);
        Some(Self {
            seq: head.seq,
            epoch: head.epoch.into(),
            organization_id: head.organization_id,
            frame: frame.freeze(),
            json_at: json_at as u8,
        })
    }

    pub fn from_text(text: String) -> Option<Self> {
        Self::from_json(text.as_bytes())
    }

    /// The stored JSON text.
    pub fn json(&self) -> &[u8] {
        &self.frame[usize::from(self.json_at)..]
    }

    /// The websocket text frame carrying [`Self::json`].
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The stored text of `event` at `(epoch, seq)`: `seq` and `epoch` first, then the
    /// envelope's own fields (the Redis script builds the same text).
    pub fn render(event: &EventEnvelope, epoch: &str, seq: u64) -> Option<String> {
        let body = envelope_body(event)?;
        Some(format!(r#"{{"seq":{seq},"epoch":"{epoch}",{body}"#))
    }
}

/// The envelope serialised without its opening brace (`"id":…}`), ready to follow the
/// `seq`/`epoch` prefix.
pub(crate) fn envelope_body(event: &EventEnvelope) -> Option<String> {
    let mut clean = event.clone();
    clean.seq = None;
    clean.epoch = None;
    let json = serde_json::to_string(&clean).ok()?;
    json.strip_prefix('{').map(str::to_owned)
}

/// What travels on a process-local instance channel.
#[derive(Debug, Clone)]
pub enum Live {
    Event(Arc<StoredEvent>),
    /// Events may have been missed (the Redis subscription was re-established): every socket
    /// catches up from the buffer.
    Reset,
}

/// Result of a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub seq: u64,
    pub epoch: String,
}

/// A stream snapshot plus the buffered events after the requested position (in the snapshot's
/// epoch), oldest first.
#[derive(Debug, Clone)]
pub struct Replay {
    pub snapshot: Snapshot,
    pub events: Vec<Arc<StoredEvent>>,
}

/// What a websocket token grants, stored until the token is used or expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenGrant {
    pub cloud_instance_id: String,
    pub audience: Audience,
    pub expires_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The backing store did not answer (retryable).
    #[error("realtime store unavailable: {0}")]
    Unavailable(String),
    #[error("realtime store answered unexpectedly: {0}")]
    Corrupt(String),
}

pub type BrokerResult<T> = Result<T, BrokerError>;

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Assigns the next `seq` of the instance's stream, appends the event to the bounded buffer
    /// and fans it out, atomically (every replica sees one order). Publishing the same event
    /// `id` again while the first copy is remembered returns the first `seq` and publishes
    /// nothing (a retried request after a lost answer does not duplicate).
    async fn publish(&self, instance: &str, event: &EventEnvelope) -> BrokerResult<Published>;

    /// The stream's snapshot (created, with a fresh epoch, if it does not exist) and the
    /// buffered events with `seq > after_seq`.
    async fn read(&self, instance: &str, after_seq: u64) -> BrokerResult<Replay>;

    /// This process's listeners.
    fn fanout(&self) -> &Arc<LocalFanout>;

    /// A queue listener of the instance on this process. Subscribe before [`Broker::read`] so
    /// no event falls between the two.
    fn subscribe(&self, instance: &str) -> Subscription {
        self.fanout().subscribe(instance)
    }

    /// Registers a listener of the instance on this process (same ordering rule as
    /// [`Broker::subscribe`]).
    fn attach(&self, instance: &str, subscriber: Arc<dyn Subscriber>) -> Attachment {
        self.fanout().attach(instance, subscriber)
    }

    async fn put_token(&self, token: &str, grant: &TokenGrant, ttl: Duration) -> BrokerResult<()>;

    /// Returns and deletes the grant (single use), `None` when unknown or expired.
    async fn take_token(&self, token: &str) -> BrokerResult<Option<TokenGrant>>;

    /// Registers socket `socket_id` of the instance unless `cap` sockets are already open
    /// (across every replica sharing the store). A registration lapses after `lease` unless
    /// refreshed, so a crashed replica's sockets stop counting.
    async fn acquire_slot(
        &self,
        instance: &str,
        socket_id: &str,
        cap: usize,
        lease: Duration,
    ) -> BrokerResult<bool>;

    async fn refresh_slot(
        &self,
        instance: &str,
        socket_id: &str,
        lease: Duration,
    ) -> BrokerResult<()>;

    async fn release_slot(&self, instance: &str, socket_id: &str) -> BrokerResult<()>;

    /// Removes expired tokens and idle streams that the store does not expire by itself.
    async fn sweep(&self) {}
}

pub type DynBroker = Arc<dyn Broker>;

/// Whether `token` has the shape of a minted websocket token (64 lowercase hex characters, see
/// `http::token::new_token`). Anything else is unknown without asking the store, so a
/// client-chosen string never names a store key.
pub fn token_is_well_formed(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A random epoch: 16 hex characters.
pub fn new_epoch() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_owned()
}
