//! This process's instance channels. Every local socket has its own bounded queue (allocated
//! lazily, so an idle socket costs a few hundred bytes); the publishing side never blocks: a
//! socket whose queue is full is evicted (its receiver reports [`Recv::Lagged`] and the handler
//! closes it as a slow consumer, which then resumes from its position). Events are shared
//! (`Arc`), so a queued event costs one pointer per socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::Live;

type Senders = Vec<(u64, mpsc::Sender<Live>)>;

#[derive(Debug)]
pub struct LocalFanout {
    capacity: usize,
    next_id: AtomicU64,
    channels: Mutex<HashMap<String, Senders>>,
    /// Events that could not be queued for a socket (it was evicted as a slow consumer).
    dropped: Counter,
}

/// What a socket's receiver yields.
#[derive(Debug)]
pub enum Recv {
    Live(Live),
    /// The queue overflowed: the socket was evicted and gets nothing more.
    Lagged,
}

impl LocalFanout {
    pub fn new(capacity: usize) -> Arc<Self> {
        Self::with_dropped_counter(capacity, Counter::default())
    }

    pub fn with_dropped_counter(capacity: usize, dropped: Counter) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            channels: Mutex::new(HashMap::new()),
            dropped,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Senders>> {
        // A poisoned lock only means another thread panicked while holding it; the map is
        // still consistent (every operation is a single insert/remove/retain).
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn subscribe(self: &Arc<Self>, instance: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(self.capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(instance.to_owned())
            .or_default()
            .push((id, tx));
        Subscription {
            rx,
            id,
            fanout: self.clone(),
            instance: instance.to_owned(),
        }
    }

    /// Whether any local socket listens to the instance (lets the Redis subscriber skip parsing
    /// events nobody here wants).
    pub fn has(&self, instance: &str) -> bool {
        self.lock().contains_key(instance)
    }

    /// Queues `live` for every socket of the instance; returns how many sockets were evicted
    /// because their queue was full.
    pub fn send(&self, instance: &str, live: Live) -> usize {
        let mut map = self.lock();
        let Some(senders) = map.get_mut(instance) else {
            return 0;
        };
        let before = senders.len();
        senders.retain(|(_, tx)| tx.try_send(live.clone()).is_ok());
        let evicted = before - senders.len();
        if evicted > 0 {
            self.dropped.inc_by(evicted as u64);
        }
        if senders.is_empty() {
            map.remove(instance);
        }
        evicted
    }

    /// Tells every local socket to catch up from the buffer.
    pub fn reset_all(&self) {
        let mut map = self.lock();
        for senders in map.values_mut() {
            senders.retain(|(_, tx)| tx.try_send(Live::Reset).is_ok());
        }
        map.retain(|_, s| !s.is_empty());
    }

    pub fn instances(&self) -> usize {
        self.lock().len()
    }

    fn release(&self, instance: &str, id: u64) {
        let mut map = self.lock();
        if let Some(senders) = map.get_mut(instance) {
            senders.retain(|(i, _)| *i != id);
            if senders.is_empty() {
                map.remove(instance);
            }
        }
    }
}

/// A socket's queue; dropping it unregisters the socket.
pub struct Subscription {
    rx: mpsc::Receiver<Live>,
    id: u64,
    fanout: Arc<LocalFanout>,
    instance: String,
}

impl Subscription {
    pub async fn recv(&mut self) -> Recv {
        match self.rx.recv().await {
            Some(live) => Recv::Live(live),
            None => Recv::Lagged,
        }
    }

    /// Whether nothing is queued right now (the socket then flushes what it has written).
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Non-blocking receive (tests): `None` when nothing is queued.
    pub fn try_recv(&mut self) -> Option<Recv> {
        match self.rx.try_recv() {
            Ok(live) => Some(Recv::Live(live)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Recv::Lagged),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.fanout.release(&self.instance, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_exist_while_someone_listens() {
        let f = LocalFanout::new(4);
        let a = f.subscribe("i1");
        let b = f.subscribe("i1");
        assert!(f.has("i1"));
        drop(a);
        assert!(f.has("i1"));
        drop(b);
        assert!(!f.has("i1"));
        assert_eq!(f.instances(), 0);
    }

    #[test]
    fn a_full_queue_evicts_only_that_socket() {
        let f = LocalFanout::new(2);
        let mut slow = f.subscribe("i1");
        let mut fast = f.subscribe("i1");
        let mut evicted = 0;
        for _ in 0..5 {
            evicted += f.send("i1", Live::Reset);
            assert!(matches!(fast.try_recv(), Some(Recv::Live(Live::Reset))));
        }
        assert_eq!(evicted, 1);
        assert!(matches!(slow.try_recv(), Some(Recv::Live(_))));
        assert!(matches!(slow.try_recv(), Some(Recv::Live(_))));
        assert!(matches!(slow.try_recv(), Some(Recv::Lagged)));
        assert!(fast.try_recv().is_none());
        assert!(f.has("i1"));
    }
}
