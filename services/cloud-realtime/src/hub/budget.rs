//! How many frames a client may send: a burst, refilled at a steady rate. The desktop sends a
//! `resume` now and then and answers pings; a client that sends hundreds of frames a second is
//! not a desktop, and each `resume` costs a buffer read, so a flood is closed instead of served.

use std::time::Instant;

/// Frames a client may send at once.
pub const CLIENT_BURST: u32 = 60;
/// Frames a client may send per second, sustained.
pub const CLIENT_PER_SECOND: u32 = 10;

#[derive(Debug, Clone)]
pub struct MessageBudget {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl MessageBudget {
    pub fn new(burst: u32, per_second: u32, now: Instant) -> Self {
        Self {
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            tokens: f64::from(burst),
            last: now,
        }
    }

    pub fn for_clients(now: Instant) -> Self {
        Self::new(CLIENT_BURST, CLIENT_PER_SECOND, now)
    }

    /// Spends one frame; `false` when the client has none left.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let t0 = Instant::now();
        let mut b = MessageBudget::new(3, 2, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0), "burst spent");
        assert!(b.take(t0 + Duration::from_millis(500)), "refilled at 2/s");
        assert!(!b.take(t0 + Duration::from_millis(500)));
        // A long pause refills at most the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take(later)));
        assert!(!b.take(later));
    }
}
