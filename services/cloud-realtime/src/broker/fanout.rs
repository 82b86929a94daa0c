//! This process's instance channels: who listens to which instance, and handing them events.
//!
//! A listener is a [`Subscriber`]. The websocket one (`http::peer`) writes the shared frames
//! straight to its socket from the thread that received the events, so a delivery costs no
//! task wake-up and no queue hop; only a socket that cannot take its frames at once is handed
//! to its own task. Events arrive in runs ([`LocalFanout::send`] takes a slice): a burst read
//! from Redis in one go becomes one write per socket. [`Subscription`] is a plain queue
//! listener (bounded; overflow evicts it) for code that wants to pull events.
//!
//! The member list of an instance is copied on change (sockets come and go far less often than
//! events arrive), so a fan-out holds the lock only to clone one `Arc`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use super::{Live, StoredEvent};

/// What a listener did with a run of events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    /// Frames written or queued for the client.
    pub delivered: usize,
    /// The listener fell too far behind with this run and was cut off (it gets nothing more).
    pub evicted: bool,
}

/// A listener of one instance's live events. Called from the broker's receiving task: it must
/// not block.
pub trait Subscriber: Send + Sync + 'static {
    /// Consecutive events of the instance, oldest first.
    fn offer(&self, events: &[Arc<StoredEvent>]) -> Offered;
    /// Events may have been missed (the Redis subscription was re-established): catch up from
    /// the buffer.
    fn reset(&self);
}

type Members = Arc<Vec<(u64, Arc<dyn Subscriber>)>>;

pub struct LocalFanout {
    capacity: usize,
    next_id: AtomicU64,
    channels: Mutex<HashMap<String, Members>>,
    /// Events that could not be queued for a listener (it was evicted as a slow consumer).
    dropped: Counter,
    /// Frames handed to listeners.
    delivered: Counter,
}

impl std::fmt::Debug for LocalFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFanout")
            .field("capacity", &self.capacity)
            .field("instances", &self.instances())
            .finish()
    }
}

impl LocalFanout {
    pub fn new(capacity: usize) -> Arc<Self> {
        Self::with_counters(capacity, Counter::default(), Counter::default())
    }

    pub fn with_counters(capacity: usize, dropped: Counter, delivered: Counter) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            channels: Mutex::new(HashMap::new()),
            dropped,
            delivered,
        })
    }

    /// How many events a listener may fall behind before it is evicted.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Members>> {
        // A poisoned lock only means another thread panicked while holding it; the map is
        // still consistent (every operation replaces one entry).
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `subscriber` for the instance until the returned [`Attachment`] is dropped.
    pub fn attach(self: &Arc<Self>, instance: &str, subscriber: Arc<dyn Subscriber>) -> Attachment {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut map = self.lock();
        let members = map.entry(instance.to_owned()).or_default();
        let mut next = Vec::with_capacity(members.len() + 1);
        next.extend(members.iter().cloned());
        next.push((id, subscriber));
        *members = Arc::new(next);
        Attachment {
            id,
            fanout: self.clone(),
            instance: instance.into(),
        }
    }

    /// A queue listener of the instance.
    pub fn subscribe(self: &Arc<Self>, instance: &str) -> Subscription {
        let queue = Arc::new(Queue {
            capacity: self.capacity,
            inner: Mutex::new(QueueInner::default()),
            ready: Notify::new(),
        });
        let attachment = self.attach(instance, queue.clone());
        Subscription {
            queue,
            _attachment: attachment,
        }
    }

    /// Whether any local listener follows the instance (lets the Redis subscriber skip parsing
    /// events nobody here wants).
    pub fn has(&self, instance: &str) -> bool {
        self.lock().contains_key(instance)
    }

    /// Hands a run of the instance's events to every listener; returns how many listeners were
    /// evicted because they fell too far behind.
    pub fn send(&self, instance: &str, events: &[Arc<StoredEvent>]) -> usize {
        let Some(members) = self.lock().get(instance).cloned() else {
            return 0;
        };
        let (mut delivered, mut evicted) = (0u64, 0usize);
        for (_, member) in members.iter() {
            let offered = member.offer(events);
            delivered += offered.delivered as u64;
            evicted += usize::from(offered.evicted);
        }
        if delivered > 0 {
            self.delivered.inc_by(delivered);
        }
        if evicted > 0 {
            self.dropped.inc_by(evicted as u64);
        }
        evicted
    }

    /// Tells every local listener to catch up from the buffer.
    pub fn reset_all(&self) {
        let all: Vec<Members> = self.lock().values().cloned().collect();
        for members in all {
            for (_, member) in members.iter() {
                member.reset();
            }
        }
    }

    pub fn instances(&self) -> usize {
        self.lock().len()
    }

    fn detach(&self, instance: &str, id: u64) {
        let mut map = self.lock();
        if let Some(members) = map.get_mut(instance) {
            let next: Vec<_> = members.iter().filter(|(i, _)| *i != id).cloned().collect();
            if next.is_empty() {
                map.remove(instance);
            } else {
                *members = Arc::new(next);
            }
        }
    }
}

/// A registration; dropping it unregisters the listener.
pub struct Attachment {
    id: u64,
    fanout: Arc<LocalFanout>,
    instance: Box<str>,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.fanout.detach(&self.instance, self.id);
    }
}

/// What a queue listener's receiver yields.
#[derive(Debug)]
pub enum Recv {
    Live(Live),
    /// The queue overflowed: the listener was evicted and gets nothing more.
    Lagged,
}

#[derive(Default)]
struct QueueInner {
    items: VecDeque<Live>,
    lagged: bool,
}

struct Queue {
    capacity: usize,
    inner: Mutex<QueueInner>,
    ready: Notify,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, items: impl ExactSizeIterator<Item = Live>) -> Offered {
        let mut q = self.lock();
        if q.lagged {
            return Offered::default();
        }
        let n = items.len();
        if q.items.len() + n > self.capacity {
            q.lagged = true;
            drop(q);
            self.ready.notify_one();
            return Offered {
                delivered: 0,
                evicted: true,
            };
        }
        q.items.extend(items);
        drop(q);
        self.ready.notify_one();
        Offered {
            delivered: n,
            evicted: false,
        }
    }
}

impl Subscriber for Queue {
    fn offer(&self, events: &[Arc<StoredEvent>]) -> Offered {
        self.push(events.iter().map(|e| Live::Event(e.clone())))
    }

    fn reset(&self) {
        self.push(std::iter::once(Live::Reset));
    }
}

/// A queue listener of one instance; dropping it unregisters it.
pub struct Subscription {
    queue: Arc<Queue>,
    _attachment: Attachment,
}

impl Subscription {
    pub async fn recv(&mut self) -> Recv {
        loop {
            if let Some(recv) = self.try_recv() {
                return recv;
            }
            self.queue.ready.notified().await;
        }
    }

    /// Whether nothing is queued right now.
    pub fn is_empty(&self) -> bool {
        self.queue.lock().items.is_empty()
    }

    /// Non-blocking receive: `None` when nothing is queued; after the queued items of an
    /// evicted listener, [`Recv::Lagged`].
    pub fn try_recv(&mut self) -> Option<Recv> {
        let mut q = self.queue.lock();
        match q.items.pop_front() {
            Some(live) => Some(Recv::Live(live)),
            None if q.lagged => Some(Recv::Lagged),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> Arc<StoredEvent> {
        Arc::new(
            StoredEvent::from_text(format!(
                r#"{{"seq":{seq},"epoch":"e","organizationId":"o"}}"#
            ))
            .unwrap(),
        )
    }

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
    fn a_full_queue_evicts_only_that_listener() {
        let f = LocalFanout::new(2);
        let mut slow = f.subscribe("i1");
        let mut fast = f.subscribe("i1");
        let mut evicted = 0;
        for seq in 1..=5 {
            evicted += f.send("i1", &[ev(seq)]);
            assert!(matches!(fast.try_recv(), Some(Recv::Live(Live::Event(e))) if e.seq == seq));
        }
        assert_eq!(evicted, 1);
        assert!(matches!(slow.try_recv(), Some(Recv::Live(_))));
        assert!(matches!(slow.try_recv(), Some(Recv::Live(_))));
        assert!(matches!(slow.try_recv(), Some(Recv::Lagged)));
        assert!(fast.try_recv().is_none());
        assert!(f.has("i1"));
    }

    #[test]
    fn runs_arrive_in_order_and_resets_reach_everyone() {
        let f = LocalFanout::new(16);
        let mut a = f.subscribe("i1");
        let mut b = f.subscribe("i2");
        f.send("i1", &[ev(1), ev(2), ev(3)]);
        f.reset_all();
        let seqs: Vec<u64> = std::iter::from_fn(|| match a.try_recv() {
            Some(Recv::Live(Live::Event(e))) => Some(e.seq),
            Some(Recv::Live(Live::Reset)) => Some(0),
            _ => None,
        })
        .collect();
        assert_eq!(seqs, [1, 2, 3, 0]);
        assert!(matches!(b.try_recv(), Some(Recv::Live(Live::Reset))));
        assert!(b.is_empty());
    }
}
