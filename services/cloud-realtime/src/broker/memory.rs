//! In-process broker (no REDIS_URL): the same semantics for a single replica.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cloud_common::realtime::EventEnvelope;

use super::{
    Broker, BrokerError, BrokerResult, LocalFanout, Published, Replay, StoredEvent, TokenGrant,
    new_epoch,
};
use crate::hub::Snapshot;

struct Stream {
    epoch: Arc<str>,
    seq: u64,
    buffer: VecDeque<(String, Arc<StoredEvent>)>,
    touched: Instant,
}

impl Stream {
    fn new() -> Self {
        Self {
            epoch: new_epoch().into(),
            seq: 0,
            buffer: VecDeque::new(),
            touched: Instant::now(),
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            epoch: self.epoch.to_string(),
            last_seq: self.seq,
            first_seq: self.buffer.front().map_or(self.seq + 1, |(_, e)| e.seq),
        }
    }
}

#[derive(Default)]
struct Inner {
    streams: HashMap<String, Stream>,
    tokens: HashMap<String, (TokenGrant, Instant)>,
    slots: HashMap<String, HashSet<String>>,
}

pub struct MemoryBroker {
    inner: Mutex<Inner>,
    fanout: Arc<LocalFanout>,
    buffer_size: usize,
    stream_ttl: Duration,
}

impl MemoryBroker {
    pub fn new(fanout: Arc<LocalFanout>, buffer_size: usize, stream_ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            fanout,
            buffer_size: buffer_size.max(1),
            stream_ttl,
        }
    }

    /// Drops an instance's stream as if its history were lost (tests of epoch changes).
    pub fn forget(&self, instance: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.streams.remove(instance);
        }
    }

    fn lock(&self) -> BrokerResult<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| BrokerError::Corrupt("in-process store lock poisoned".into()))
    }

    /// The instance's stream, recreated (new epoch) when it was idle longer than the TTL.
    fn stream<'a>(&self, inner: &'a mut Inner, instance: &str) -> &'a mut Stream {
        let ttl = self.stream_ttl;
        let stream = inner
            .streams
            .entry(instance.to_owned())
            .or_insert_with(Stream::new);
        if stream.touched.elapsed() > ttl {
            *stream = Stream::new();
        }
        stream
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, instance: &str, event: &EventEnvelope) -> BrokerResult<Published> {
        let mut inner = self.lock()?;
        let stream = self.stream(&mut inner, instance);
        stream.touched = Instant::now();
        if let Some((_, prior)) = stream.buffer.iter().find(|(id, _)| *id == event.id) {
            return Ok(Published {
                seq: prior.seq,
                epoch: prior.epoch.to_string(),
            });
        }
        let seq = stream.seq + 1;
        let text = StoredEvent::render(event, &stream.epoch, seq)
            .ok_or_else(|| BrokerError::Corrupt("event does not serialise".into()))?;
        let stored = Arc::new(
            StoredEvent::from_text(text)
                .ok_or_else(|| BrokerError::Corrupt("event does not parse back".into()))?,
        );
        stream.seq = seq;
        stream.buffer.push_back((event.id.clone(), stored.clone()));
        while stream.buffer.len() > self.buffer_size {
            stream.buffer.pop_front();
        }
        let epoch = stream.epoch.to_string();
        // Sent under the lock, so local order is seq order.
        let evicted = self.fanout.send(instance, std::slice::from_ref(&stored));
        if evicted > 0 {
            tracing::debug!(%instance, evicted, "Slow sockets evicted.");
        }
        Ok(Published { seq, epoch })
    }

    async fn read(&self, instance: &str, after_seq: u64) -> BrokerResult<Replay> {
        let mut inner = self.lock()?;
        let stream = self.stream(&mut inner, instance);
        let events = stream
            .buffer
            .iter()
            .filter(|(_, e)| e.seq > after_seq)
            .map(|(_, e)| e.clone())
            .collect();
        Ok(Replay {
            snapshot: stream.snapshot(),
            events,
        })
    }

    fn fanout(&self) -> &Arc<LocalFanout> {
        &self.fanout
    }

    async fn put_token(&self, token: &str, grant: &TokenGrant, ttl: Duration) -> BrokerResult<()> {
        let mut inner = self.lock()?;
        inner
            .tokens
            .insert(token.to_owned(), (grant.clone(), Instant::now() + ttl));
        Ok(())
    }

    async fn take_token(&self, token: &str) -> BrokerResult<Option<TokenGrant>> {
        if !super::token_is_well_formed(token) {
            return Ok(None);
        }
        let mut inner = self.lock()?;
        Ok(inner
            .tokens
            .remove(token)
            .filter(|(_, expires)| Instant::now() < *expires)
            .map(|(grant, _)| grant))
    }

    async fn acquire_slot(
        &self,
        instance: &str,
        socket_id: &str,
        cap: usize,
        _lease: Duration,
    ) -> BrokerResult<bool> {
        let mut inner = self.lock()?;
        let set = inner.slots.entry(instance.to_owned()).or_default();
        if set.len() >= cap {
            return Ok(false);
        }
        set.insert(socket_id.to_owned());
        Ok(true)
    }

    async fn refresh_slot(&self, _: &str, _: &str, _: Duration) -> BrokerResult<()> {
        Ok(())
    }

    async fn release_slot(&self, instance: &str, socket_id: &str) -> BrokerResult<()> {
        let mut inner = self.lock()?;
        if let Some(set) = inner.slots.get_mut(instance) {
            set.remove(socket_id);
            if set.is_empty() {
                inner.slots.remove(instance);
            }
        }
        Ok(())
    }

    async fn sweep(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            let now = Instant::now();
            inner.tokens.retain(|_, (_, expires)| now < *expires);
            let ttl = self.stream_ttl;
            inner.streams.retain(|_, s| s.touched.elapsed() <= ttl);
        }
    }
}
