//! The OpenAI-compatible and Anthropic stream parsers on arbitrary event streams, and the
//! assembler that turns their events into the assistant message: errors are fine, panics are
//! not. The OpenAI parser numbers blocks itself, so its blocks must open and close in order; the
//! Anthropic parser passes the provider's indexes through (the assembler tolerates any order).
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use runtime_headless::agent::assembler::Assembler;
use runtime_headless::provider::StreamEvent;
use runtime_headless::provider::anthropic::AnthropicParser;
use runtime_headless::provider::openai::OpenAiParser;
use runtime_headless::provider::sse::{SseEvent, SseParser, WireParser};

fn check(parser: &mut dyn WireParser, events: &[SseEvent], strict: bool) {
    let mut open = HashSet::new();
    let mut seen = Vec::new();
    for event in events {
        match parser.feed(event) {
            Ok(out) => seen.extend(out),
            Err(_) => return,
        }
        if parser.is_done() {
            break;
        }
    }
    if let Ok(out) = parser.finish() {
        seen.extend(out);
    }
    let mut assembler = Assembler::new("m".into(), "api", "provider", "model", 0);
    for e in seen.iter().cloned() {
        let _ = assembler.apply(e);
    }
    let _ = assembler.finish(None);
    if !strict {
        return;
    }
    for e in seen {
        match e {
            StreamEvent::BlockStart { index, .. } => {
                assert!(open.insert(index), "block {index} started twice");
            }
            StreamEvent::BlockEnd { index } => {
                assert!(open.remove(&index), "block {index} ended but was not open");
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut sse = SseParser::new(64 * 1024);
    let mut events = Vec::new();
    if sse.feed(data, &mut events).is_err() {
        return;
    }
    sse.finish(&mut events);
    check(&mut OpenAiParser::default(), &events, true);
    check(&mut AnthropicParser::default(), &events, false);
});
