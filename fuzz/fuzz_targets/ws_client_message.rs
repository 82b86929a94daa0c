//! What a websocket client sends cloud-realtime: any text is either a `resume` with its position
//! or ignored, and the flood budget never panics whatever the timing.
#![no_main]

use std::time::{Duration, Instant};

use cloud_realtime::hub::{ClientMessage, MessageBudget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(ClientMessage::Resume(cursor)) = ClientMessage::parse(text) {
            // A parsed position came from the text: its epoch is a substring-sized string.
            assert!(cursor.epoch.len() <= text.len());
        }
    }
    // Budget: arbitrary gaps between frames (first bytes as milliseconds).
    let start = Instant::now();
    let mut budget = MessageBudget::new(3, 2, start);
    let mut now = start;
    let mut granted = 0u64;
    for b in data.iter().take(256) {
        now += Duration::from_millis(u64::from(*b) * 8);
        if budget.take(now) {
            granted += 1;
        }
    }
    // Never more than the burst plus what the elapsed time refilled.
    let elapsed = now.duration_since(start).as_secs_f64();
    assert!(granted as f64 <= 3.0 + elapsed * 2.0 + 1e-6);
});
