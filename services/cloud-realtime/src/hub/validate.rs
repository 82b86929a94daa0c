//! Checks applied before anything is stored.

use cloud_common::realtime::EventEnvelope;

/// Instance ids name Redis keys: the one rule every service applies lives in cloud-common.
pub use cloud_common::internal::validate_instance_id;

const MAX_FIELD_LEN: usize = 200;

/// A publishable envelope: non-empty `id`, `type` and `organizationId`, an object `payload`.
/// `seq` and `epoch` are assigned by the stream and cleared here; a missing `ts` is filled in.
pub fn validate_envelope(mut event: EventEnvelope) -> Result<EventEnvelope, String> {
    let check = |name: &str, value: &str| -> Result<(), String> {
        if value.trim().is_empty() {
            return Err(format!("event.{name} must be a non-empty string"));
        }
        if value.len() > MAX_FIELD_LEN {
            return Err(format!(
                "event.{name} is longer than {MAX_FIELD_LEN} characters"
            ));
        }
        Ok(())
    };
    check("id", &event.id)?;
    check("type", &event.kind)?;
    match event.organization_id.as_deref() {
        Some(org) => check("organizationId", org)?,
        None => {
            return Err("event.organizationId is required (it decides who sees the event)".into());
        }
    }
    for (name, value) in [
        ("projectId", event.project_id.as_deref()),
        ("conversationId", event.conversation_id.as_deref()),
    ] {
        if let Some(v) = value
            && v.len() > MAX_FIELD_LEN
        {
            return Err(format!(
                "event.{name} is longer than {MAX_FIELD_LEN} characters"
            ));
        }
    }
    if !event.payload.is_object() {
        return Err("event.payload must be a JSON object".into());
    }
    if event.ts.trim().is_empty() {
        event.ts = cloud_common::time::now_iso();
    }
    event.seq = None;
    event.epoch = None;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: serde_json::Value) -> Result<EventEnvelope, String> {
        validate_envelope(serde_json::from_value(v).map_err(|e| e.to_string())?)
    }

    #[test]
    fn accepts_a_complete_envelope_and_clears_stream_fields() {
        let e = event(
            json!({"id":"e1","type":"conversation.event","ts":"","seq":7,"epoch":"x",
            "organizationId":"o1","payload":{"event":{"type":"agent_end"}}}),
        )
        .unwrap();
        assert_eq!(e.seq, None);
        assert_eq!(e.epoch, None);
        assert!(!e.ts.is_empty());
    }

    #[test]
    fn rejects_bad_envelopes() {
        let base = json!({"id":"e1","type":"t","ts":"2026-01-01T00:00:00.000Z","organizationId":"o1","payload":{}});
        for (field, value) in [
            ("id", json!("")),
            ("type", json!(" ")),
            ("organizationId", json!("")),
            ("payload", json!([1])),
            ("payload", json!("text")),
        ] {
            let mut v = base.clone();
            v[field] = value;
            assert!(event(v).is_err(), "{field} should be rejected");
        }
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove("organizationId");
        assert!(event(v).unwrap_err().contains("organizationId"));
        assert!(event(base).is_ok());
    }

    #[test]
    fn instance_ids_are_key_safe() {
        assert_eq!(
            validate_instance_id(" instance-u1 ").unwrap(),
            "instance-u1"
        );
        assert!(validate_instance_id("").is_err());
        assert!(validate_instance_id("a:b").is_err());
        assert!(validate_instance_id("a*").is_err());
        assert!(validate_instance_id(&"a".repeat(201)).is_err());
    }
}
