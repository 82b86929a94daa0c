//! Per-instance streams: an `epoch` (random, chosen when the stream is created, different
//! whenever its history was lost) and a `seq` (1, 2, 3… per instance). A client position is an
//! `(epoch, seq)` cursor. These rules decide, for a cursor, whether the buffered history can
//! bring it up to date (replay) or whether the client must reload (resync), and how a live
//! event relates to it (deliver, duplicate, or a hole to fill first).

/// A position in one instance's stream: the last event seen (`seq` 0 = none yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: String,
    pub seq: u64,
}

/// The state of a stream at one instant, as read together with the buffered events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub epoch: String,
    /// Last assigned sequence number (0: nothing published in this epoch).
    pub last_seq: u64,
    /// Sequence number of the oldest buffered event (`last_seq + 1` when the buffer is empty).
    pub first_seq: u64,
}

/// What to do with a client position against a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPlan {
    /// Every event after the position is buffered: send those with `seq > position.seq`.
    Replay,
    /// The position cannot be honoured (other epoch, older than the buffer, or ahead of the
    /// stream): tell the client to resynchronise, then continue from the snapshot's head.
    Resync,
}

impl Snapshot {
    /// An empty stream of a new epoch.
    pub fn empty(epoch: impl Into<String>) -> Self {
        Self {
            epoch: epoch.into(),
            last_seq: 0,
            first_seq: 1,
        }
    }

    /// Whether events after `after_seq` (in this epoch) are missing from the buffer.
    pub fn truncated_after(&self, after_seq: u64) -> bool {
        after_seq < self.last_seq && after_seq.saturating_add(1) < self.first_seq
    }

    pub fn plan(&self, position: &Cursor) -> StreamPlan {
        if position.epoch != self.epoch
            || position.seq > self.last_seq
            || self.truncated_after(position.seq)
        {
            StreamPlan::Resync
        } else {
            StreamPlan::Replay
        }
    }

    pub fn head(&self) -> Cursor {
        Cursor {
            epoch: self.epoch.clone(),
            seq: self.last_seq,
        }
    }
}

/// How a live event relates to a socket's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveStep {
    /// The next event: deliver it (if the audience admits it) and advance.
    Deliver,
    /// Already seen (replayed, or delivered twice by a reconnecting subscriber): skip.
    Duplicate,
    /// Events are missing before it, or the epoch changed: catch up from the buffer first.
    Gap,
}

impl Cursor {
    pub fn step(&self, epoch: &str, seq: u64) -> LiveStep {
        if epoch != self.epoch {
            LiveStep::Gap
        } else if seq <= self.seq {
            LiveStep::Duplicate
        } else if seq == self.seq + 1 {
            LiveStep::Deliver
        } else {
            LiveStep::Gap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(last: u64, first: u64) -> Snapshot {
        Snapshot {
            epoch: "e1".into(),
            last_seq: last,
            first_seq: first,
        }
    }

    fn at(seq: u64) -> Cursor {
        Cursor {
            epoch: "e1".into(),
            seq,
        }
    }

    #[test]
    fn replays_when_everything_after_the_position_is_buffered() {
        // buffer holds 11..=20
        let s = snap(20, 11);
        assert_eq!(s.plan(&at(10)), StreamPlan::Replay);
        assert_eq!(s.plan(&at(15)), StreamPlan::Replay);
        assert_eq!(s.plan(&at(20)), StreamPlan::Replay);
        assert!(!s.truncated_after(10));
    }

    #[test]
    fn resyncs_when_the_position_cannot_be_honoured() {
        let s = snap(20, 11);
        assert_eq!(s.plan(&at(9)), StreamPlan::Resync, "older than the buffer");
        assert!(s.truncated_after(9));
        assert_eq!(s.plan(&at(21)), StreamPlan::Resync, "ahead of the stream");
        let other = Cursor {
            epoch: "e0".into(),
            seq: 15,
        };
        assert_eq!(s.plan(&other), StreamPlan::Resync, "other epoch");
    }

    #[test]
    fn empty_streams_accept_position_zero() {
        let s = Snapshot::empty("e1");
        assert_eq!(s.plan(&at(0)), StreamPlan::Replay);
        assert!(!s.truncated_after(0));
        assert_eq!(s.plan(&at(3)), StreamPlan::Resync);
    }

    #[test]
    fn live_steps() {
        let c = at(5);
        assert_eq!(c.step("e1", 6), LiveStep::Deliver);
        assert_eq!(c.step("e1", 5), LiveStep::Duplicate);
        assert_eq!(c.step("e1", 1), LiveStep::Duplicate);
        assert_eq!(c.step("e1", 8), LiveStep::Gap);
        assert_eq!(c.step("e2", 6), LiveStep::Gap);
    }
}
