//! In-process token buckets for the credential endpoints (login, signup).
//!
//! Limits (per process; replicas each keep their own):
//! - per client IP: bursts of 30 attempts, refilled at 1 every 2 s (30/min);
//! - per account (the lower-cased email): bursts of 10, refilled at 1 every 6 s (10/min).
//!
//! A refused attempt answers 429 with `Retry-After` (seconds until one token is back). The maps
//! are pruned of full buckets when they grow large, so memory stays bounded under a spray of
//! distinct keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

pub const PER_IP: Rate = Rate {
    burst: 30.0,
    per_second: 0.5,
};
pub const PER_ACCOUNT: Rate = Rate {
    burst: 10.0,
    per_second: 1.0 / 6.0,
};

const MAX_KEYS: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; `Err(retry_after)` when the bucket is empty.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut map) = self.buckets.lock() else {
            // A poisoned lock only means another thread panicked mid-update; fail open
            // rather than lock everyone out.
            return Ok(());
        };
        if map.len() >= MAX_KEYS {
            let rate = self.rate;
            map.retain(|_, b| refill(b, rate, now) < rate.burst);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let rate = self.rate;
        let bucket = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        let tokens = refill(bucket, rate, now);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            bucket.at = now;
            Ok(())
        } else {
            let wait = (1.0 - tokens) / rate.per_second;
            Err(Duration::from_secs_f64(wait.max(1.0)))
        }
    }
}

fn refill(b: &Bucket, rate: Rate, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * rate.per_second).min(rate.burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refuses_then_refills() {
        let l = Limiter::new(Rate {
            burst: 3.0,
            per_second: 1.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at("a", t0).is_ok());
        }
        let wait = l.check_at("a", t0).unwrap_err();
        assert!(wait >= Duration::from_secs(1));
        assert!(l.check_at("b", t0).is_ok(), "keys are independent");
        assert!(l.check_at("a", t0 + Duration::from_millis(1100)).is_ok());
    }
}
