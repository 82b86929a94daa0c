//! One websocket's shared half: its TCP stream, its stream position and its unsent frames.
//!
//! The fan-out calls [`Peer::offer`] on the thread that received the events and, while the
//! socket keeps up, writes the shared event frames straight to the kernel (one vectored write
//! for a whole run of events); the socket's task is not woken. The task is woken only when
//! there is something it alone can do: wait for the socket to drain a backlog, catch up from
//! the buffer after a hole, or close a socket that fell too far behind.
//!
//! While the task is busy with the buffer (opening, catching up, answering `resume`) the peer
//! *holds*: live events are kept, not written, and the task releases them through the same
//! cursor rules once its frames are out, so the stream has no gap and no duplicate.

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::broker::{Offered, Replay, StoredEvent, Subscriber};
use crate::hub::{Audience, Cursor, LiveStep, StreamPlan};

/// Frames written per system call at most.
const MAX_IOV: usize = 64;

/// Why a peer stopped taking frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The connection broke.
    Gone,
    /// It fell too far behind (queue bound or send timeout): close with 4008.
    Slow,
}

pub struct Peer {
    stream: TcpStream,
    /// Frames or held events a socket may lag behind before it is cut off.
    limit: usize,
    state: Mutex<PeerState>,
    /// Work for the socket's task: a backlog to drain, a catch-up, a stop.
    wake: Notify,
}

#[derive(Default)]
struct PeerState {
    /// Who may see what; replaced when the socket re-checks its access with cloud-api.
    audience: Audience,
    cursor: Cursor,
    /// Live events are kept in `held` instead of written (the task is using the buffer).
    holding: bool,
    held: Vec<Arc<StoredEvent>>,
    /// A hole was seen in the live stream (or Redis was resubscribed): catch up.
    catch_up: bool,
    /// Frames not yet written; the first one may be partly written (`front_started`).
    out: VecDeque<Bytes>,
    front_started: bool,
    /// Bytes written so far (the task's send timeout watches it move).
    written: u64,
    delivered_live: bool,
    stop: Option<Stop>,
    /// A close frame is queued: nothing more is written after it.
    closed: bool,
}

/// What the socket's task has to do, read under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub stop: Option<Stop>,
    pub catch_up: bool,
    pub backlog: bool,
    pub written: u64,
}

/// Counts of what applying a replay did, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub delivered: usize,
    pub replayed: bool,
    pub resynced: bool,
}

impl Peer {
    /// A peer that holds live events until the task has sent its opening frames.
    pub fn new(stream: TcpStream, audience: Audience, limit: usize) -> Arc<Self> {
        Arc::new(Self {
            stream,
            limit: limit.max(1),
            state: Mutex::new(PeerState {
                audience,
                holding: true,
                ..PeerState::default()
            }),
            wake: Notify::new(),
        })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn audience(&self) -> Audience {
        self.lock().audience.clone()
    }

    /// From now on, live and replayed events are filtered by `audience`.
    pub fn set_audience(&self, audience: Audience) {
        self.lock().audience = audience;
    }

    /// Resolves when the fan-out left work for the task (a stored permit counts).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, PeerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn work(&self) -> Work {
        let st = self.lock();
        Work {
            stop: st.stop,
            catch_up: st.catch_up,
            backlog: !st.out.is_empty(),
            written: st.written,
        }
    }

    pub fn cursor(&self) -> Cursor {
        self.lock().cursor.clone()
    }

    pub fn delivered_live(&self) -> bool {
        self.lock().delivered_live
    }

    /// Starts holding live events (the task is about to read the buffer); clears the catch-up
    /// flag, since the read about to happen serves it.
    pub fn hold(&self) {
        let mut st = self.lock();
        st.holding = true;
        st.catch_up = false;
    }

    /// Queues frames the task sends itself (hello, status, ping, pong, resync…) and writes
    /// what it can.
    pub fn send(&self, frames: impl IntoIterator<Item = Bytes>) {
        let mut st = self.lock();
        if st.stop.is_some() || st.closed {
            return;
        }
        let idle = st.out.is_empty();
        st.out.extend(frames);
        if idle {
            self.write_out(&mut st);
        }
    }

    /// Applies a buffer read for a client position (see [`apply`]), then releases the held
    /// live events and stops holding, all under one lock so no live event slips between.
    /// `keep_cursor` restores the live cursor afterwards (a `resume` replay on a live socket).
    pub fn apply_and_release(
        &self,
        position: &Cursor,
        replay: Replay,
        keep_cursor: Option<Cursor>,
    ) -> Applied {
        let mut st = self.lock();
        let applied = apply(&mut st, position, &replay);
        if let Some(head) = keep_cursor
            && head.epoch == st.cursor.epoch
            && !applied.resynced
        {
            st.cursor = head;
        }
        let mut applied = applied;
        applied.delivered += self.release(&mut st);
        applied
    }

    /// Sets the cursor (opening without a position) and releases the held events.
    pub fn start_at(&self, cursor: Cursor) -> usize {
        let mut st = self.lock();
        st.cursor = cursor;
        self.release(&mut st)
    }

    fn release(&self, st: &mut PeerState) -> usize {
        st.holding = false;
        let held = std::mem::take(&mut st.held);
        let delivered = take_live(st, &held);
        self.write_out(st);
        delivered
    }

    /// Writes queued frames until done or the kernel buffer is full (called with the lock, so
    /// frames of concurrent writers never interleave).
    fn write_out(&self, st: &mut PeerState) {
        while !st.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = st.out.len().min(MAX_IOV);
            for (slot, frame) in slices.iter_mut().zip(st.out.iter()) {
                *slot = IoSlice::new(frame);
            }
            match self.stream.try_write_vectored(&slices[..n]) {
                Ok(0) => {
                    st.stop = Some(Stop::Gone);
                    break;
                }
                Ok(mut wrote) => {
                    st.written += wrote as u64;
                    while wrote > 0 {
                        let Some(front) = st.out.front_mut() else {
                            break;
                        };
                        if wrote >= front.len() {
                            wrote -= front.len();
                            st.out.pop_front();
                            st.front_started = false;
                        } else {
                            front.advance(wrote);
                            st.front_started = true;
                            wrote = 0;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    st.stop = Some(Stop::Gone);
                    break;
                }
            }
        }
        if st.stop == Some(Stop::Gone) {
            st.out.clear();
        }
    }

    /// Writes as much of the backlog as the socket takes now (the task calls this when the
    /// socket became writable).
    pub fn flush(&self) {
        let mut st = self.lock();
        self.write_out(&mut st);
    }

    /// Marks the peer stopped (send timeout) unless it already is.
    pub fn stop(&self, why: Stop) {
        let mut st = self.lock();
        st.stop.get_or_insert(why);
    }

    /// Replaces the backlog with a close frame, keeping a partly written frame so the stream
    /// stays well-formed; returns whether anything is left to write.
    pub fn close_with(&self, frame: Bytes) -> bool {
        let mut st = self.lock();
        if st.stop == Some(Stop::Gone) {
            return false;
        }
        let keep = usize::from(st.front_started);
        st.out.truncate(keep);
        st.out.push_back(frame);
        st.held.clear();
        st.closed = true;
        st.stop = None;
        self.write_out(&mut st);
        !st.out.is_empty() && st.stop != Some(Stop::Gone)
    }
}

impl Subscriber for Peer {
    fn offer(&self, events: &[Arc<StoredEvent>]) -> Offered {
        let mut st = self.lock();
        if st.stop.is_some() || st.closed {
            return Offered::default();
        }
        if st.holding {
            st.held.extend(events.iter().cloned());
            return if st.held.len() > self.limit {
                self.evict(&mut st)
            } else {
                Offered::default()
            };
        }
        let idle = st.out.is_empty();
        let delivered = take_live(&mut st, events);
        if idle && !st.out.is_empty() {
            self.write_out(&mut st);
            if !st.out.is_empty() {
                self.wake.notify_one();
            }
        }
        if st.out.len() > self.limit {
            return self.evict(&mut st);
        }
        if st.catch_up || st.stop.is_some() {
            self.wake.notify_one();
        }
        Offered {
            delivered,
            evicted: false,
        }
    }

    fn reset(&self) {
        let mut st = self.lock();
        if st.stop.is_none() {
            st.holding = true;
            st.catch_up = true;
            self.wake.notify_one();
        }
    }
}

impl Peer {
    fn evict(&self, st: &mut PeerState) -> Offered {
        st.stop = Some(Stop::Slow);
        st.held.clear();
        self.wake.notify_one();
        Offered {
            delivered: 0,
            evicted: true,
        }
    }
}

/// Live events through the cursor rules: the next one is framed (when the audience admits
/// it), duplicates are skipped, and a hole makes the peer hold the rest and ask for a
/// catch-up. Returns the frames queued.
fn take_live(st: &mut PeerState, events: &[Arc<StoredEvent>]) -> usize {
    let mut delivered = 0;
    for (i, event) in events.iter().enumerate() {
        match st.cursor.step(&event.epoch, event.seq) {
            LiveStep::Deliver => {
                st.cursor.seq = event.seq;
                if st.audience.admits(event.organization_id.as_deref()) {
                    st.out.push_back(event.frame().clone());
                    st.delivered_live = true;
                    delivered += 1;
                }
            }
            LiveStep::Duplicate => {}
            LiveStep::Gap => {
                st.holding = true;
                st.catch_up = true;
                st.held.extend(events[i..].iter().cloned());
                break;
            }
        }
    }
    delivered
}

/// Brings the cursor from `position` to the buffer's head: the buffered events after it that
/// the audience admits, or a `resync` frame when the buffer cannot honour it.
fn apply(st: &mut PeerState, position: &Cursor, replay: &Replay) -> Applied {
    let mut applied = Applied::default();
    match replay.snapshot.plan(position) {
        StreamPlan::Replay => {
            applied.replayed = !replay.events.is_empty();
            for event in replay.events.iter().filter(|e| e.seq > position.seq) {
                if st.audience.admits(event.organization_id.as_deref()) {
                    st.out.push_back(event.frame().clone());
                    applied.delivered += 1;
                }
            }
        }
        StreamPlan::Resync => {
            applied.resynced = true;
            let resync = serde_json::json!({
                "type": "resync",
                "epoch": replay.snapshot.epoch,
                "sequence": replay.snapshot.last_seq,
            });
            st.out.push_back(crate::wire::text(&resync.to_string()));
        }
    }
    st.cursor = replay.snapshot.head();
    applied
}
