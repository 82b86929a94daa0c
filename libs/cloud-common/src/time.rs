//! Timestamps on the wire: ISO-8601 UTC with millisecond precision and a `Z`, as the first
//! system emitted them (JavaScript `toISOString`), so existing clients parse them unchanged.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

pub fn iso(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now_iso() -> String {
    iso(Utc::now())
}

/// `#[serde(serialize_with = "cloud_common::time::serialize")]`
pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*ts))
}

/// Same as [`serialize`] for optional timestamps.
pub fn serialize_opt<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => s.serialize_str(&iso(*ts)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_like_javascript() {
        let ts = Utc.with_ymd_and_hms(2026, 5, 3, 12, 0, 1).unwrap();
        assert_eq!(iso(ts), "2026-05-03T12:00:01.000Z");
    }
}
