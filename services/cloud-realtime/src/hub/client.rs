//! What a websocket client may send. Only `{"type":"resume","epoch","afterSequence"}` means
//! something; any other text (malformed, nested, wrongly typed) is ignored, never an error.

use serde::Deserialize;

use super::Cursor;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// Resume from this position (a missing epoch or sequence is empty / 0: a resync).
    Resume(Cursor),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    epoch: Option<String>,
    after_sequence: Option<u64>,
}

impl ClientMessage {
    /// `None` for anything this server does not act on.
    pub fn parse(text: &str) -> Option<Self> {
        let raw: Raw = serde_json::from_str(text).ok()?;
        (raw.kind == "resume").then(|| {
            Self::Resume(Cursor {
                epoch: raw.epoch.unwrap_or_default(),
                seq: raw.after_sequence.unwrap_or(0),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_is_understood_and_the_rest_ignored() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"resume","epoch":"e","afterSequence":4}"#),
            Some(ClientMessage::Resume(Cursor {
                epoch: "e".into(),
                seq: 4
            }))
        );
        for other in [
            r#"{"type":"ping"}"#,
            r#"{"type":"resume","afterSequence":"4"}"#,
            r#"{"type":"resume","afterSequence":-1}"#,
            "[1]",
            "null",
            "{",
            &"[".repeat(10_000),
        ] {
            assert_eq!(ClientMessage::parse(other), None, "{other}");
        }
    }
}
