//! The providers' event-stream parser: the events (and whether the line cap is hit) do not
//! depend on how the bytes are split into chunks, and no event is longer than the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runtime_headless::provider::sse::{SseEvent, SseParser};

const MAX_LINE: usize = 256;

fn run(chunks: &[&[u8]]) -> (Vec<SseEvent>, bool) {
    let mut parser = SseParser::new(MAX_LINE);
    let mut out = Vec::new();
    for chunk in chunks {
        if parser.feed(chunk, &mut out).is_err() {
            return (out, true);
        }
    }
    parser.finish(&mut out);
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let whole = run(&[body]);
    // Cut into pieces of `split % 7 + 1` bytes.
    let size = usize::from(split % 7) + 1;
    let pieces: Vec<&[u8]> = body.chunks(size).collect();
    let split_up = run(&pieces);
    assert_eq!(whole, split_up, "chunking changed the events");
    for event in &whole.0 {
        assert!(event.data.len() <= body.len() * 3 + 1);
    }
});
