//! The realtime event envelope: any JSON either fails to parse / validate, or validates and is
//! stored as a text that parses back to the same position, audience and fields.
#![no_main]

use cloud_common::realtime::EventEnvelope;
use cloud_realtime::broker::StoredEvent;
use cloud_realtime::hub::validate_envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<EventEnvelope>(data) else {
        return;
    };
    let Ok(valid) = validate_envelope(envelope) else {
        return;
    };
    let text = StoredEvent::render(&valid, "0123456789abcdef", 42).expect("a valid envelope renders");
    let stored = StoredEvent::from_text(text.clone()).expect("a rendered event parses back");
    assert_eq!(stored.seq, 42);
    assert_eq!(&*stored.epoch, "0123456789abcdef");
    assert_eq!(stored.organization_id, valid.organization_id);
    let back: EventEnvelope = serde_json::from_str(&text).expect("rendered text is an envelope");
    assert_eq!(back.seq, Some(42));
    assert_eq!(back.id, valid.id);
    assert_eq!(back.kind, valid.kind);
    assert_eq!(back.payload, valid.payload);
    assert_eq!(back.conversation_id, valid.conversation_id);
});
